"""How many weights a saved model asks for, read from its config and its weights file before anything is built or
read: a file from elsewhere can declare a Dense layer of terabytes, or an HDF5 dataset of 150 GiB, and building or
reading it would take the memory of the whole desk. Over MAX_PARAMETERS, the model is refused in one line.
"""

import math

from labtools.errors import PairError

# A lab's largest model has a few million weights (the ladder's best: 1.3 M); evaluate.py --max-params raises it
MAX_PARAMETERS = 50_000_000
SAME_SHAPE = {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
              "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax", "ThresholdedReLU", "ActivityRegularization",
              "Rescaling", "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "RandomContrast",
              "Masking", "UnitNormalization", "NearestAugmentation"}


def check(config, path, limit=None):
    """PairError naming path when the config asks for more than limit weights (MAX_PARAMETERS)."""
    limit = MAX_PARAMETERS if limit is None else limit
    count = estimate_parameters(config)
    if count is not None and count > limit:
        raise PairError(f"{path}: its model asks for {count:,} weights, over the limit of {limit:,} (no lab model "
                        "comes near it); not built. If it is genuine, raise it with --max-params")


def check_stored(count, path, limit=None):
    limit = MAX_PARAMETERS if limit is None else limit
    if count > limit:
        raise PairError(f"{path}: it stores {count:,} weights, over the limit of {limit:,}; not read. If it is "
                        "genuine, raise it with --max-params")


def dataset_shapes(h5_group):
    """{path: declared shape} of every dataset under an HDF5 group, read from its header (no value read)."""
    import h5py

    shapes = {}

    def visit(name, item):
        if isinstance(item, h5py.Dataset):
            shapes[name] = tuple(item.shape or ())

    h5_group.visititems(visit)
    return shapes


def stored_parameters(shapes):
    """The number of values that dataset_shapes's {path: shape} declare, an optimizer's state left out."""
    return sum(math.prod(shape) for name, shape in shapes.items()
               if not any(part.startswith("optimizer") for part in name.split("/")))


def estimate_parameters(config):
    """The weights that a model config (Keras 2 or 3, Sequential or functional) asks for, by following the shapes
    through its layers in order; None where a layer or shape is not known here (the weights file's own check then
    applies)."""
    try:
        return _estimate(config)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None


def _estimate(config):
    body = config.get("config")
    layers = body if isinstance(body, list) else (body or {}).get("layers")
    if not isinstance(layers, list):
        return None
    shape, total = None, 0
    if isinstance(body, dict) and body.get("build_input_shape"):
        shape = list(body["build_input_shape"][1:])
    for layer in layers:
        kind, options = layer["class_name"], layer.get("config") or {}
        given = options.get("batch_input_shape") or options.get("batch_shape")
        if given:
            shape = list(given[1:])
        built = (layer.get("build_config") or {}).get("input_shape")
        if built and not isinstance(built[0], list):
            shape = list(built[1:])
        if kind == "InputLayer":
            continue
        if kind in ("Sequential", "Functional", "Model"):
            inner = _estimate(layer)
            if inner is None:
                return None
            total += inner
            shape = None
            continue
        if shape is None:
            return None
        count, shape = _layer(kind, options, shape)
        if count is None:
            return None
        total += count
    return total


def _layer(kind, options, shape):
    """(weights, output shape) of one layer on an input of shape (no batch axis), or (None, None)."""
    if kind in SAME_SHAPE:
        return (shape[-1] if kind == "PReLU" else 0), shape
    if kind == "Dense":
        units = int(options["units"])
        return shape[-1] * units + (units if options.get("use_bias", True) else 0), [*shape[:-1], units]
    if kind == "Flatten":
        return 0, [math.prod(shape)]
    if kind == "Reshape":
        return 0, list(options["target_shape"])
    if kind in ("BatchNormalization", "LayerNormalization"):
        axis = options.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) else axis
        size = shape[axis if axis < 0 else axis - 1]
        return (4 if kind == "BatchNormalization" else 2) * size, shape
    channels_first = options.get("data_format") == "channels_first"
    spatial = shape[1:] if channels_first else shape[:-1]
    channels = shape[0] if channels_first else shape[-1]
    if kind in ("Conv1D", "Conv2D", "Conv3D"):
        kernel = _tuple(options["kernel_size"], len(spatial))
        filters = int(options["filters"])
        count = math.prod(kernel) * channels // int(options.get("groups", 1) or 1) * filters
        count += filters if options.get("use_bias", True) else 0
        out = _window(spatial, kernel, options, _tuple(options.get("dilation_rate", 1), len(spatial)))
        return count, ([filters, *out] if channels_first else [*out, filters])
    if kind.startswith(("MaxPooling", "AveragePooling")):
        pool = _tuple(options.get("pool_size", 2), len(spatial))
        options = {**options, "strides": options.get("strides") or pool}
        out = _window(spatial, pool, options, (1,) * len(spatial))
        return 0, ([channels, *out] if channels_first else [*out, channels])
    if kind.startswith(("GlobalAveragePooling", "GlobalMaxPooling")):
        return 0, [channels]
    return None, None


def _tuple(value, length):
    return tuple(value) if isinstance(value, (list, tuple)) else (int(value),) * length


def _window(spatial, kernel, options, dilation):
    strides = _tuple(options.get("strides", 1), len(spatial))
    same = options.get("padding", "valid") == "same"
    out = []
    for size, k, s, d in zip(spatial, kernel, strides, dilation):
        span = (k - 1) * d + 1
        out.append(-(-size // s) if same else (size - span) // s + 1)
    if any(size <= 0 for size in out):
        raise ValueError("a window larger than its input")
    return out
