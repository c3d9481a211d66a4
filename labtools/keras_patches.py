"""The changes this project makes to Keras's own functions, and where each is made.

- channels_first_convolutions(): on TensorFlow, so that the sheet's channels_first models fit and predict on every
  CPU. models.py calls it, once, where it is imported: the sheet's own calls need it.
- faster_training(): on JAX, max pooling without XLA's slow gradient; on PyTorch, no copies around convolutions and
  poolings. Speed only, the same numbers; train.py calls it where training starts.

Each replaces a function inside keras.src, which a Keras release may change. So each first checks that the
function is the one it was written for (its module, its name, its parameters, KERAS_INTERNALS); if not, it
leaves Keras as it is and warns once (KerasInternalsChanged): the scripts still work, on Keras's own functions.
"""

import inspect
import warnings

from labtools import backend

# The Keras internals each change replaces, with the parameters it was written for (Keras 3.15).
KERAS_INTERNALS = {
    "tensorflow": ("keras.src.backend.tensorflow.nn", {
        "conv": ("inputs", "kernel", "strides", "padding", "data_format", "dilation_rate"),
        "depthwise_conv": ("inputs", "kernel", "strides", "padding", "data_format", "dilation_rate"),
        "separable_conv": ("inputs", "depthwise_kernel", "pointwise_kernel", "strides", "padding", "data_format",
                           "dilation_rate"),
        "conv_transpose": ("inputs", "kernel", "strides", "padding", "output_padding", "data_format",
                           "dilation_rate"),
    }),
    "jax": ("keras.src.backend.jax.nn", {"max_pool": ("inputs", "pool_size", "strides", "padding", "data_format")}),
    "torch": ("keras.src.backend.torch.nn", {"_transpose_spatial_inputs": ("inputs",)}),
}
MARK = "labtools_patch"  # set on each replacement: a second call leaves it alone
_warned = set()  # the modules already found changed: one warning each, however often a change is asked for


class KerasInternalsChanged(UserWarning):
    """A function this project replaces is not the one it was written for: Keras is left as it is."""


def _checked_module(name, purpose):
    """keras.src's module for backend `name` if each function KERAS_INTERNALS names is there with its parameters
    (or is already replaced), else None, after one warning that says what stays as Keras has it."""
    import importlib

    import keras

    module_name, functions = KERAS_INTERNALS[name]
    try:
        module = importlib.import_module(module_name)
        for function_name, parameters in functions.items():
            function = getattr(module, function_name)
            if getattr(function, MARK, False):
                continue
            found = tuple(inspect.signature(function).parameters)
            if found != parameters:
                raise ValueError(f"{function_name}{found}, written for {function_name}{parameters}")
    except (ImportError, AttributeError, TypeError, ValueError) as error:
        if module_name not in _warned:
            _warned.add(module_name)
            warnings.warn(f"Keras {keras.__version__} changed {module_name} ({error}); labtools leaves it as it is, "
                          f"so {purpose}", KerasInternalsChanged, stacklevel=3)
        return None
    return module


def channels_first_convolutions():
    """On TensorFlow, Keras's channels_first 2D convolutions as channels_last ones between two transposes, as Keras
    already does for its poolings; True when they are (or were already) replaced.

    TensorFlow's own CPU convolutions take NHWC only. They run NCHW only where its oneDNN rewrite is on, which it
    is by default on Linux x86 CPUs with AVX-512 VNNI or newer. Elsewhere (AVX2-only CPUs, macOS, Windows, or
    TF_ENABLE_ONEDNN_OPTS=0) the sheet's channels_first models failed to fit or predict: models.small_model(), or a
    Keras 2 pair from persistence.load_keras_model ("The Conv2D op currently only supports the NHWC tensor format on
    the CPU"). The kernels are the channels_last model's, so the model computes what its channels_last copy
    computes, bit for bit (tests/test_sheet_calls.py). On a GPU too: asking whether one is there would start
    TensorFlow's devices at import, and NVIDIA's tensor cores prefer NHWC.
    """
    if backend.NAME != "tensorflow":
        return False
    nn = _checked_module("tensorflow", "channels_first convolutions run only where TensorFlow uses oneDNN (train.py "
                                       "computes in channels_last and is not affected)")
    if nn is None:
        return False
    import tensorflow as tf
    from keras.src.backend.config import standardize_data_format

    def channels_last_inside(keras_function):
        if getattr(keras_function, MARK, False):
            return keras_function
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

        setattr(function, MARK, True)
        return function

    for name in KERAS_INTERNALS["tensorflow"][1]:
        setattr(nn, name, channels_last_inside(getattr(nn, name)))
    return True


def faster_training():
    """The backend's speed-only change, where training runs: JAX's max pooling (_jax_window_max_pooling) or
    PyTorch's channels_last views (_torch_channels_last_views); True when it is (or was already) made."""
    if backend.NAME == "jax":
        nn = _checked_module("jax", "max pooling keeps XLA's slower gradient (the same numbers)")
        return nn is not None and _jax_window_max_pooling(nn)
    if backend.NAME == "torch":
        nn = _checked_module("torch", "convolutions and poolings keep Keras's copies (the same numbers, slower)")
        return nn is not None and _torch_channels_last_views(nn)
    return False


def _torch_channels_last_views(nn):
    """Keras's channels_last convolutions and poolings on PyTorch without two copies of each input.

    Keras hands torch an (N, H, W, C) tensor as the (N, C, H, W) one torch's functions take by a permute and a
    .contiguous() copy, then, for a convolution, copies it back to torch's channels_last memory format, whose
    oneDNN kernels it prefers. The permuted view of a contiguous (N, H, W, C) tensor already is (N, C, H, W) in
    channels_last memory format: passed as it is, the convolution gets the input it was going to get, with no copy,
    and max pooling runs torch's channels_last kernel, several times faster (docs/speed.md). The same kernels, so the
    same numbers: three epochs of large and of small give the same weights bit for bit. Inputs of other shapes or
    strides go through Keras's own function.
    """
    import torch

    keras_transpose = nn._transpose_spatial_inputs
    if getattr(keras_transpose, MARK, False):
        return True

    def transpose_spatial_inputs(inputs):
        if inputs.ndim == 4:
            view = torch.permute(inputs, (0, 3, 1, 2))
            if view.is_contiguous(memory_format=torch.channels_last):
                return view
        return keras_transpose(inputs)

    setattr(transpose_spatial_inputs, MARK, True)
    nn._transpose_spatial_inputs = transpose_spatial_inputs
    return True


def _jax_window_max_pooling(nn):
    """Keras's max pooling on JAX, where its windows do not overlap (pool size = strides: the sheets' and the
    ladder's 2x2), as a reshape and a max instead of XLA's reduce_window, whose gradient (select_and_scatter) took
    half of a training step of the sheet's large CNN on a CPU (docs/speed.md). The gradient
    goes to the first maximum of each window in row-major order, as XLA's select_and_scatter gives it, so training
    computes what it computed with Keras's own. Other poolings (overlapping windows, "same" padding that pads) go
    to Keras's own. The saved model holds Keras's MaxPooling2D: nothing of this is in it."""
    import functools

    import jax
    import jax.numpy as jnp
    from keras.src.backend.config import standardize_data_format

    keras_max_pool = nn.max_pool
    if getattr(keras_max_pool, MARK, False):
        return True

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

    setattr(max_pool, MARK, True)
    nn.max_pool = max_pool
    return True
