"""Which framework Keras runs on (TensorFlow, JAX or PyTorch), on which device, deterministically.

Keras 3 runs the same models on three frameworks and reads KERAS_BACKEND once, when it is first imported. Importing
this module (any `from labtools import ...` does) sets it where it is unset, and changes nothing else:
TensorFlow where it is installed (the sheets' framework, and the fastest on CPUs), else JAX (Python 3.14, where
TensorFlow publishes no wheel), else PyTorch. docs/backends.md says which backend each Python gets, how to pick one,
and what each is measured to cost.

The rest of the project uses Keras alone (keras.ops, keras.random); what a backend does differently lives here: the
device, determinism, data parallelism, versions. keras_patches.py holds the changes made to Keras's own functions.
"""

import contextlib
import importlib
import importlib.util
import os

from labtools.errors import BackendError

BACKENDS = ("tensorflow", "jax", "torch")
INSTALL = {"tensorflow": "pip install -r requirements.txt (Python 3.11-3.13)",
           "jax": "pip install -r requirements-jax.txt", "torch": "pip install -r requirements-torch.txt"}


def installed(name):
    return importlib.util.find_spec(name) is not None


_ASKED = os.environ.get("KERAS_BACKEND", "").strip()
if not _ASKED:
    os.environ["KERAS_BACKEND"] = next((name for name in BACKENDS if installed(name)), "tensorflow")
NAME = os.environ["KERAS_BACKEND"].strip().lower()


def steps_per_call_allowed():
    """Whether Keras runs several batches per compiled call (steps_per_execution) on this backend: not on PyTorch."""
    return NAME != "torch"


def unavailable():
    """None when the chosen backend can be imported, else a one-line error saying what to install or set."""
    if NAME not in BACKENDS:
        return f"KERAS_BACKEND={_ASKED}: choose tensorflow, jax or torch (or unset it)"
    if os.environ["KERAS_BACKEND"] != NAME:  # Keras itself reads the variable as it is
        return f"KERAS_BACKEND={os.environ['KERAS_BACKEND']!r}: write it as Keras reads it, KERAS_BACKEND={NAME}"
    if not installed(NAME):
        others = [name for name in BACKENDS if installed(name)]
        if not others and not _ASKED:
            return f"no Keras backend is installed: {INSTALL['tensorflow']}, or pip install -r requirements-jax.txt"
        other = f", or use KERAS_BACKEND={others[0]} (installed)" if others else ""
        return f"KERAS_BACKEND={NAME}, but {NAME} is not installed: {INSTALL[NAME]}{other}"
    return None


def training_environment():
    """Set what the backend's framework reads once, when it starts its devices, for the same numbers every run and
    its fastest CPU kernels; call it before anything runs on a device (console.start does, for the scripts).

    JAX: XLA's GPU reductions in a fixed order, and jaxlib 0.10's YNNPACK convolutions off (slower than XLA's own on
    the CPU: docs/speed.md). PyTorch: cuBLAS's deterministic workspace. A setting already made is kept."""
    if NAME == "jax":
        flags = os.environ.get("XLA_FLAGS", "")
        for flag in ("--xla_gpu_deterministic_ops=true", "--xla_cpu_experimental_ynn_fusion_type="):
            if flag.split("=")[0] not in flags:
                flags = f"{flags} {flag}".strip()
        os.environ["XLA_FLAGS"] = flags
    elif NAME == "torch":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


# The CPU features with which TensorFlow turns oneDNN on by itself on Linux (tensorflow/core/util/port.cc,
# DefaultOneDnnPolicy: AVX512_VNNI, AVX512_BF16, AVX_VNNI, AMX_TILE, AMX_INT8, AMX_BF16), as /proc/cpuinfo names them
ONEDNN_BY_DEFAULT = ("avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
ONEDNN_TURNED_ON = False  # whether use_onednn_kernels turned it on in this process (describe() says so)


def onednn_wanted(cpu_flags, environ=os.environ, system="linux"):
    """Whether to turn TensorFlow's oneDNN kernels on: on Linux with AVX2, where TensorFlow leaves them off (no
    neural-network instructions: AVX2 laptops, AMD before Zen 4), and nobody set TF_ENABLE_ONEDNN_OPTS. Measured
    on 2 cores with oneDNN capped at AVX2: `large` trains 3-4x faster an epoch (docs/speed.md)."""
    return (NAME == "tensorflow" and system == "linux" and "TF_ENABLE_ONEDNN_OPTS" not in environ
            and "avx2" in cpu_flags and not any(flag in cpu_flags for flag in ONEDNN_BY_DEFAULT))


def use_onednn_kernels():
    """For the scripts' start-up (console.start), before TensorFlow loads: TF_ENABLE_ONEDNN_OPTS=1 where
    onednn_wanted says so; the first line the scripts print then says it (describe)."""
    global ONEDNN_TURNED_ON
    import sys

    from labtools import history

    flags = set(history.cpu_fields().get("flags", "").split())
    if onednn_wanted(flags, system=sys.platform):
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"
        ONEDNN_TURNED_ON = True


def import_framework():
    """Import the backend's framework (console.start does it under its filter of native log lines)."""
    if unavailable() is None:
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
    # jax: XLA_FLAGS (training_environment); its CPU kernels are deterministic


def gradient(function, inputs):
    """The gradient of sum(function(inputs)) with respect to inputs, as a NumPy array: function is built from Keras
    layers and keras.ops, inputs a NumPy array. Keras has no gradient of its own outside training; each framework
    takes it its way (labtools/inside.py's attribution maps)."""
    import numpy as np

    if NAME == "tensorflow":
        import tensorflow as tf

        inputs = tf.convert_to_tensor(inputs)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            total = tf.reduce_sum(function(inputs))
        return tape.gradient(total, inputs).numpy()
    if NAME == "jax":
        import jax

        return np.asarray(jax.grad(lambda values: jax.numpy.sum(function(values)))(jax.numpy.asarray(inputs)))
    import keras
    import torch

    inputs = keras.ops.convert_to_tensor(inputs).detach().requires_grad_(True)  # on Keras's device
    (found,) = torch.autograd.grad(function(inputs).sum(), inputs)  # the weights' .grad left as they are
    return found.detach().cpu().numpy()


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
    onednn = (", oneDNN's CPU kernels turned on (TensorFlow leaves them off on this CPU; faster; "
              "TF_ENABLE_ONEDNN_OPTS=0 turns them off: docs/speed.md)") if ONEDNN_TURNED_ON and device == "cpu" else ""
    return (f"Keras {keras.__version__} on {NAME} {framework_version()}, {device}" + (f" ({name})" if name else "")
            + onednn)
