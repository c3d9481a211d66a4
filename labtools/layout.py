"""One set of weights, either data format: the sheet's channels_first models compute in channels_last.

The INSAT sheet sets channels_first (K.set_image_data_format('channels_first')), and its saved pairs keep it. The
scripts compute in channels_last (COMPUTE_DATA_FORMAT): TensorFlow runs channels_first convolutions on a CPU only
where it uses oneDNN, and slower there (docs/models.md); NVIDIA's tensor cores prefer NHWC too.
"""

import copy

import keras

COMPUTE_DATA_FORMAT = "channels_last"


def model_data_format(model):
    """'channels_first' or 'channels_last' if the model has layers with a data format, else None."""
    for layer in model.layers:
        if getattr(layer, "data_format", None) in ("channels_first", "channels_last"):
            return layer.data_format
    return None


def relayout(model, data_format, float32=False):
    """The same network, with the same weights, computing in another data format.

    In Keras 3 a Conv2D kernel has the same shape in both layouts and Flatten
    moves channels_first to channels_last before flattening, so the weights
    carry over unchanged and the two models compute the same function (the
    input must be transposed to match: (N,C,H,W) <-> (N,H,W,C)). A Keras 2.0
    Flatten kept in stored order (channels_last on a channels_first tensor:
    flattens C,H,W) gets a Permute before it in channels_last, so that it still
    flattens C,H,W. Batch normalisation's channel axis moves with the channels. Sequential and functional
    models (a functional Flatten's Permute is wired in between it and its input). float32=True also turns a
    mixed-precision model (bf16 compute, float32 weights) into a plain float32 one, for saving.
    """
    current = model_data_format(model)
    change_layout = current not in (None, data_format)
    change_dtype = float32 and any(layer.dtype_policy.name != "float32" for layer in model.layers)
    if not change_layout and not change_dtype:
        return model
    config = model.get_config()
    functional = not isinstance(model, keras.Sequential)
    layer_configs = []
    for layer in config["layers"]:
        layer.pop("build_config", None)  # rebuilt from the new input shape
        layer_config = layer["config"]
        if change_dtype and "dtype" in layer_config:
            layer_config["dtype"] = "float32"
        if change_layout and layer["class_name"] == "BatchNormalization":
            # the channel axis of (N, C, H, W) is 1, of (N, H, W, C) -1; on (N, features) both name the same axis
            layer_config["axis"] = -1 if data_format == "channels_last" and layer_config["axis"] == 1 else (
                1 if data_format == "channels_first" and layer_config["axis"] in (-1, 3) else layer_config["axis"])
        if change_layout and layer["class_name"] == "InputLayer":
            batch, *dims = layer_config["batch_shape"]
            if data_format == "channels_last":
                layer_config["batch_shape"] = [batch, *dims[1:], dims[0]]
            else:
                layer_config["batch_shape"] = [batch, dims[-1], *dims[:-1]]
        if change_layout and "data_format" in layer_config:
            if layer["class_name"] == "Flatten" and layer_config["data_format"] == data_format:
                if current != "channels_first":
                    raise ValueError(f"{model.name}: cannot move a stored-order Flatten to {data_format}")
                permute = keras.layers.serialize(keras.layers.Permute((3, 1, 2), name=f"{layer_config['name']}_chw"))
                if functional:  # the Permute takes the Flatten's input, the Flatten takes the Permute's output
                    permute.update(name=permute["config"]["name"], inbound_nodes=layer["inbound_nodes"])
                    layer["inbound_nodes"] = copy.deepcopy(layer["inbound_nodes"])
                    for argument in layer["inbound_nodes"][0]["args"]:
                        argument["config"]["keras_history"][0] = permute["name"]
                layer_configs.append(permute)  # back to C,H,W
            layer_config["data_format"] = data_format
        layer_configs.append(layer)
    config["layers"] = layer_configs
    config.pop("build_input_shape", None)
    if change_dtype:
        config["dtype"] = "float32"
    other = (keras.Model if functional else keras.Sequential).from_config(config)
    other.set_weights(model.get_weights())
    if model.compiled:
        other.compile_from_config(model.get_compile_config())
    return other


def channels_last_copy(model):
    """model computing in COMPUTE_DATA_FORMAT, with the same weights (the model itself when it has no convolution or
    already computes in it)."""
    return relayout(model, COMPUTE_DATA_FORMAT)


def count_parameters(model):
    """Trainable parameters per layer [(layer name, class, count)] and their total."""
    rows = [(layer.name, type(layer).__name__, sum(int(w.numpy().size) for w in layer.trainable_weights))
            for layer in model.layers]
    return rows, sum(count for _, _, count in rows)
