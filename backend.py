"""Which framework Keras runs on (TensorFlow, JAX or PyTorch), on which device, deterministically.

Keras 3 runs the same models on three frameworks; this is the one module of the project that imports a framework
itself. Importing it chooses the backend before Keras is first imported (Keras reads KERAS_BACKEND once, at its
own import):
- KERAS_BACKEND=tensorflow, jax or torch, if set;
- else TensorFlow where it is installed (the sheets' framework, and the fastest on CPUs), else JAX (Python 3.14,
  where TensorFlow publishes no wheel), else PyTorch.
docs/backends.md says which backend each Python gets, how to pick one, and what each is measured to cost.

The rest of the project uses Keras alone (keras.ops, keras.random); what a backend does differently lives here:
the device, determinism, data parallelism, versions.
"""

import contextlib
import importlib.util
import os

BACKENDS = ("tensorflow", "jax", "torch")
INSTALL = {"tensorflow": "pip install -r requirements.txt (Python 3.11-3.13)",
           "jax": "pip install -r requirements-jax.txt", "torch": "pip install -r requirements-torch.txt"}


class BackendError(ValueError):
    """The backend asked for cannot work here; the message says what to do."""


def installed(name):
    return importlib.util.find_spec(name) is not None


def _choose():
    asked = os.environ.get("KERAS_BACKEND", "").strip().lower()
    if asked:
        return asked
    return next((name for name in BACKENDS if installed(name)), "tensorflow")


_ASKED = bool(os.environ.get("KERAS_BACKEND", "").strip())
NAME = _choose()
os.environ["KERAS_BACKEND"] = NAME
if NAME == "jax":
    # Before JAX starts: the same numbers on a GPU every run (its default reductions are not ordered), and jaxlib
    # 0.10's YNNPACK convolutions off (slower than XLA's own on the CPU: docs/speed.md).
    _flags = os.environ.get("XLA_FLAGS", "")
    for _flag in ("--xla_gpu_deterministic_ops=true", "--xla_cpu_experimental_ynn_fusion_type="):
        if _flag.split("=")[0] not in _flags:
            _flags = f"{_flags} {_flag}".strip()
    os.environ["XLA_FLAGS"] = _flags
elif NAME == "torch":
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's deterministic mode, before CUDA starts


def steps_per_call_allowed():
    """Whether Keras runs several batches per compiled call (steps_per_execution) on this backend: not on PyTorch."""
    return NAME != "torch"


def problem():
    """None when the chosen backend can be imported, else a one-line error saying what to install."""
    if NAME not in BACKENDS:
        return f"KERAS_BACKEND={NAME}: choose tensorflow, jax or torch (or unset it)"
    if not installed(NAME):
        others = [name for name in BACKENDS if installed(name)]
        if not others and not _ASKED:
            return f"no Keras backend is installed: {INSTALL['tensorflow']}, or pip install -r requirements-jax.txt"
        other = f", or use KERAS_BACKEND={others[0]} (installed)" if others else ""
        return f"KERAS_BACKEND={NAME}, but {NAME} is not installed: {INSTALL[NAME]}{other}"
    return None


def import_framework():
    """Import the backend's framework (cli.py does it under its filter of native log lines)."""
    if problem() is None:
        importlib.import_module(NAME)


def framework_version():
    return importlib.import_module(NAME).__version__


def accelerators():
    """The GPUs (or Apple-silicon GPU) the backend sees, as 'gpu:0'-style names; [] on a CPU-only machine."""
    if NAME == "tensorflow":
        import tensorflow as tf

        return [f"gpu:{index}" for index, _ in enumerate(tf.config.list_physical_devices("GPU"))]
    if NAME == "jax":
        import jax

        return [f"gpu:{device.id}" for device in jax.devices() if device.platform != "cpu"]
    import torch

    if torch.cuda.is_available():
        return [f"gpu:{index}" for index in range(torch.cuda.device_count())]
    return ["mps:0"] if torch.backends.mps.is_available() else []


def accelerator_name():
    """The first accelerator's model name ("NVIDIA H200"), or None."""
    if not accelerators():
        return None
    if NAME == "tensorflow":
        import tensorflow as tf

        details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
        return details.get("device_name", "GPU")
    if NAME == "jax":
        import jax

        return next(device.device_kind for device in jax.devices() if device.platform != "cpu")
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "Apple silicon GPU (mps)"


def resolve_device(device="auto"):
    """'gpu' or 'cpu': where training runs for --device auto (a GPU when the backend sees one), cpu or gpu.

    TensorFlow's GPUs are hidden here for 'cpu', before anything starts TensorFlow's runtime (after, it cannot).
    """
    found = accelerators()
    if device == "gpu" and not found:
        raise BackendError(f"--device gpu: {NAME} sees no GPU; install its GPU build (docs/backends.md) "
                           "or use --device cpu")
    if device == "cpu" and found and NAME == "tensorflow":
        import tensorflow as tf

        tf.config.set_visible_devices([], "GPU")
    return "gpu" if found and device != "cpu" else "cpu"


def on_device(device):
    """A context in which Keras builds and trains on `device` (resolve_device's answer): Keras's device scope for
    the CPU on JAX and PyTorch when they see a GPU; nothing else (each backend takes the first GPU by itself)."""
    if device == "gpu" or NAME == "tensorflow" or not accelerators():
        return contextlib.nullcontext()
    import keras

    return keras.device("cpu")


def enable_determinism():
    """The same seed gives the same weights, run after run, on the same machine and versions.

    Keras seeds its initialisers, dropout and augmentation (keras.utils.set_random_seed); what is left is the
    order of floating-point additions inside the framework's kernels.
    """
    if NAME == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif NAME == "torch":
        import torch

        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    # jax: XLA_FLAGS, set above before JAX started; its CPU kernels are deterministic


def random_state():
    """The framework's own random state, which Keras's variables do not hold, as arrays: PyTorch's global
    generators, from which Keras's Dropout draws there (its unseeded fast path); nothing on TensorFlow and JAX,
    where every random draw of Keras comes from a seed generator's state variable."""
    if NAME != "torch":
        return {}
    import torch

    state = {"torch_cpu": torch.get_rng_state().numpy()}
    if torch.cuda.is_available():
        state.update({f"torch_cuda_{i}": s.numpy() for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return state


def set_random_state(arrays):
    """Put back what random_state() returned (a resumed run then draws what the interrupted one would have)."""
    if NAME != "torch" or not arrays:
        return
    import torch

    torch.set_rng_state(torch.from_numpy(arrays["torch_cpu"]))
    cuda = sorted(key for key in arrays if key.startswith("torch_cuda_"))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.from_numpy(arrays[key]) for key in cuda])


def _parallel_devices(device):
    """The devices --distribute trains on: every GPU, or every CPU device without one (or with --device cpu)."""
    if NAME == "tensorflow":
        import tensorflow as tf

        return [each.name for each in tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")]
    if NAME == "jax":
        import keras

        return keras.distribution.list_devices("cpu" if device == "cpu" else None)
    raise BackendError("--distribute: Keras's data parallelism runs on TensorFlow and JAX, not on PyTorch; "
                       "drop --distribute, or use KERAS_BACKEND=jax")


def replica_count(device):
    """How many replicas --distribute trains on (BackendError on PyTorch)."""
    return len(_parallel_devices(device))


@contextlib.contextmanager
def replicas_scope(device):
    """Data parallelism over _parallel_devices, for building the model and training it: TensorFlow's
    MirroredStrategy, or Keras's DataParallel distribution on JAX."""
    devices = _parallel_devices(device)
    if NAME == "tensorflow":
        import tensorflow as tf

        with tf.distribute.MirroredStrategy(devices=devices).scope():
            yield
        return
    import keras

    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    try:
        yield
    finally:
        keras.distribution.set_distribution(previous)


def training_data(arrays, batch_size, orders):
    """What model.fit reads its training batches from: tuples of `arrays` (indexed alike) for the indices of each
    order in orders() (one per epoch), batch_size at a time.

    A generator of NumPy batches on JAX. On PyTorch a DataLoader over the same batches, indexed (batch i of the
    whole run), so that each pass over it starts again at the first batch: Keras's torch trainer reads one batch
    to build the model, then starts a new pass, and a stream would have lost that batch (every epoch a batch
    late, the last one short; an epoch of one batch lost whole). Its random generator is its own: the one Keras
    would make draws its seed from torch's global generator, which Keras's dropout uses there, so a resumed run
    would drop other units. On TensorFlow a tf.data pipeline that gathers the batches in its own threads, as
    TensorFlow's own shuffling did (a Python generator there adds a hop per batch, which the small models feel),
    with the same batches, so the same numbers.
    """
    if NAME == "jax":
        return (tuple(array[order[start: start + batch_size]] for array in arrays)
                for order in orders() for start in range(0, len(order), batch_size))
    if NAME == "torch":
        import torch

        epochs = list(orders())  # one permutation of the indices per epoch: a few MB for the longest run
        starts = [(epoch, start) for epoch, order in enumerate(epochs) for start in range(0, len(order), batch_size)]

        class Batches(torch.utils.data.Dataset):
            def __len__(self):
                return len(starts)

            def __getitem__(self, index):
                epoch, start = starts[index]
                return tuple(array[epochs[epoch][start: start + batch_size]] for array in arrays)

        return torch.utils.data.DataLoader(Batches(), batch_size=None, shuffle=False, generator=torch.Generator())
    import tensorflow as tf

    constants = [tf.constant(array) for array in arrays]
    epochs = tf.data.Dataset.from_generator(orders, output_signature=tf.TensorSpec((None,), tf.int64))
    indices = epochs.flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
    return indices.map(lambda index: tuple(tf.gather(constant, index) for constant in constants)).prefetch(2)


def versions():
    """The versions that decide the digits: the backend and its framework, Keras, NumPy, Python."""
    import platform

    import keras
    import numpy

    return {"backend": NAME, NAME: framework_version(), "keras": keras.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def describe(device=None):
    """One line: "Keras 3.15.1 on tensorflow 2.21.0, cpu" (plus the GPU's name)."""
    import keras

    device = device or ("gpu" if accelerators() else "cpu")
    name = accelerator_name() if device == "gpu" else None
    return f"Keras {keras.__version__} on {NAME} {framework_version()}, {device}" + (f" ({name})" if name else "")


def tune_keras():
    """What makes Keras run, and faster, on this backend without changing what it computes; called once Keras is
    imported (models.py, which every model goes through)."""
    if NAME == "tensorflow":
        _tensorflow_channels_first_convolutions()
    elif NAME == "jax":
        _jax_window_max_pooling()
    elif NAME == "torch":
        _torch_channels_last_views()


def _tensorflow_channels_first_convolutions():
    """Keras's channels_first 2D convolutions on TensorFlow as channels_last ones between two transposes, as Keras
    already does for its poolings.

    TensorFlow's own CPU convolutions take NHWC only. They run NCHW only where its oneDNN rewrite is on, which it
    is by default on Linux x86 CPUs with AVX-512 VNNI or newer. Elsewhere (AVX2-only CPUs, macOS, Windows, or
    TF_ENABLE_ONEDNN_OPTS=0), the sheet's channels_first models failed to fit or predict: models.small_model(),
    or a Keras 2 pair from persistence.load_keras_model ("The Conv2D op currently only supports the NHWC tensor
    format on the CPU"). train.py and evaluate.py never met this: they compute in channels_last (models.relayout).
    The kernels are the channels_last model's, so the model computes what its channels_last copy computes,
    bit for bit (tests/test_sheet_calls.py). On a GPU too: asking whether one is there would start TensorFlow's
    devices at import, and NVIDIA's tensor cores prefer NHWC.
    """
    import inspect

    import tensorflow as tf
    from keras.src.backend.config import standardize_data_format
    from keras.src.backend.tensorflow import nn

    if getattr(nn.conv, "channels_last_inside", False):
        return

    def channels_last_inside(keras_function):
        signature = inspect.signature(keras_function)

        def function(*args, **kwargs):
            arguments = signature.bind(*args, **kwargs)
            arguments.apply_defaults()
            inputs = arguments.arguments["inputs"]
            if standardize_data_format(arguments.arguments["data_format"]) != "channels_first" or \
                    len(inputs.shape) != 4:
                return keras_function(*args, **kwargs)
            arguments.arguments.update(inputs=tf.transpose(inputs, (0, 2, 3, 1)), data_format="channels_last")
            return tf.transpose(keras_function(*arguments.args, **arguments.kwargs), (0, 3, 1, 2))

        function.channels_last_inside = True
        return function

    for name in ("conv", "depthwise_conv", "separable_conv", "conv_transpose"):
        setattr(nn, name, channels_last_inside(getattr(nn, name)))


def _torch_channels_last_views():
    """Keras's channels_last convolutions and poolings on PyTorch without two copies of each input.

    Keras hands torch an (N, H, W, C) tensor as the (N, C, H, W) one torch's functions take by a permute and a
    .contiguous() copy, then, for a convolution, copies it back to torch's channels_last memory format, whose
    oneDNN kernels it prefers. The permuted view of a contiguous (N, H, W, C) tensor already is (N, C, H, W) in
    channels_last memory format: passed as it is, the convolution gets the input it was going to get, with no copy,
    and max pooling runs torch's channels_last kernel (2.6 ms instead of 17.6, forward and backward, for the sheet's
    large CNN's pooling: results/logs/torch_channels_last.txt). The same kernels, so the same numbers: three epochs
    of large and of small give the same weights bit for bit. Inputs of other shapes or strides go through Keras's
    own function.
    """
    import torch
    from keras.src.backend.torch import nn

    if getattr(nn._transpose_spatial_inputs, "channels_last_views", False):
        return
    keras_transpose = nn._transpose_spatial_inputs

    def transpose_spatial_inputs(inputs):
        if inputs.ndim == 4:
            view = torch.permute(inputs, (0, 3, 1, 2))
            if view.is_contiguous(memory_format=torch.channels_last):
                return view
        return keras_transpose(inputs)

    transpose_spatial_inputs.channels_last_views = True
    nn._transpose_spatial_inputs = transpose_spatial_inputs


def _jax_window_max_pooling():
    """Keras's max pooling on JAX, where its windows do not overlap (pool size = strides: the sheets' and the
    ladder's 2x2), as a reshape and a max instead of XLA's reduce_window, whose gradient (select_and_scatter) took
    40 of the sheet's large CNN's 71-76 ms a step on a CPU (results/logs/large_step_by_backend.txt). The gradient
    goes to the first maximum of each window in row-major order, as XLA's select_and_scatter gives it, so training
    computes what it computed with Keras's own. Other poolings (overlapping windows, "same" padding that pads) go
    to Keras's own. The saved model is Keras's MaxPooling2D as before: nothing of this is in it."""
    import functools

    import jax
    import jax.numpy as jnp
    from keras.src.backend.config import standardize_data_format
    from keras.src.backend.jax import nn

    if getattr(nn.max_pool, "window_max", False):
        return
    keras_max_pool = nn.max_pool

    def windows(x, pool, spatial):
        """x cropped to whole windows and reshaped so that window (i, j) is x[..., i, a, ..., j, b, ...]."""
        (h_axis, w_axis), (ph, pw) = spatial, pool
        h, w = x.shape[h_axis] // ph, x.shape[w_axis] // pw
        x = jax.lax.slice_in_dim(jax.lax.slice_in_dim(x, 0, h * ph, axis=h_axis), 0, w * pw, axis=w_axis)
        shape = list(x.shape)
        shape[w_axis:w_axis + 1] = [w, pw]
        shape[h_axis:h_axis + 1] = [h, ph]
        return x.reshape(shape)

    @functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
    def window_max(x, pool, spatial):
        return windows(x, pool, spatial).max(axis=(spatial[0] + 1, spatial[1] + 2))

    def forward(x, pool, spatial):
        y = window_max(x, pool, spatial)
        return y, (x, y)

    def backward(pool, spatial, saved, g):
        x, y = saved
        window_axes = (spatial[0] + 1, spatial[1] + 2)
        blocks = windows(x, pool, spatial)
        # the first maximum of each window, in row-major order: one-hot over the window's ph * pw positions
        is_max = jnp.moveaxis(blocks == jnp.expand_dims(y, window_axes), window_axes, (-2, -1))
        flat = is_max.reshape(*is_max.shape[:-2], pool[0] * pool[1])
        first = jax.nn.one_hot(jnp.argmax(flat, axis=-1), flat.shape[-1], dtype=g.dtype)
        grad = jnp.moveaxis((first * g[..., None]).reshape(is_max.shape), (-2, -1), window_axes)
        merged = list(grad.shape)  # (.., h, ph, .., w, pw, ..) -> (.., h * ph, .., w * pw, ..)
        merged[window_axes[1] - 1:window_axes[1] + 1] = [merged[window_axes[1] - 1] * merged[window_axes[1]]]
        merged[window_axes[0] - 1:window_axes[0] + 1] = [merged[window_axes[0] - 1] * merged[window_axes[0]]]
        grad = grad.reshape(merged)
        pads = [(0, x.shape[axis] - grad.shape[axis]) for axis in range(x.ndim)]
        return (jnp.pad(grad, pads),)

    window_max.defvjp(forward, backward)

    def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
        data_format = standardize_data_format(data_format)
        pool = (pool_size,) * 2 if isinstance(pool_size, int) else tuple(pool_size)
        step = pool if strides is None else (strides,) * 2 if isinstance(strides, int) else tuple(strides)
        spatial = (1, 2) if data_format == "channels_last" else (2, 3)
        whole = inputs.ndim == 4 and all(inputs.shape[axis] % p == 0 for axis, p in zip(spatial, pool))
        if inputs.ndim != 4 or step != pool or (padding == "same" and not whole):
            return keras_max_pool(inputs, pool_size, strides, padding, data_format)
        return window_max(inputs, pool, spatial)

    max_pool.window_max = True
    nn.max_pool = max_pool
