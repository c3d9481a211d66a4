"""Save and load a model as the INSAT sheet does: a JSON architecture plus HDF5 weights.

Pairs written by Keras 2 (`filename.json` + `filename.h5`, from the sheet's own
code on tf.keras 2.x or on the tutorial's Keras 2.0) load too: see
_model_from_legacy_json and _set_legacy_weights.

The pair for `filename` is:
  filename.json        model.to_json(), as in the sheet
  filename.weights.h5  model.save_weights(...); Keras 3 only writes weights to
                       names ending in .weights.h5, so the sheet's filename.h5
                       becomes filename.weights.h5
The weights file also records the SHA-256 of the JSON it was saved with, so a
JSON and weights that do not belong together are caught on load.

Saves are atomic: both files are written under temporary names, flushed to
disk, and only then moved into place, weights first and JSON last; an
interrupted save leaves the previous pair as it was.
"""

import hashlib
import inspect
import json
from pathlib import Path

import h5py
import keras

import data
import history
import models

JSON_SUFFIX = ".json"
WEIGHTS_SUFFIX = ".weights.h5"
LEGACY_WEIGHTS_SUFFIX = ".h5"  # what Keras 2's save_weights(filename + ".h5") wrote
PAIR_HASH_ATTRIBUTE = "model_json_sha256"


class PairError(ValueError):
    """A json + h5 pair is missing, broken or mismatched; the message names the file."""


def pair_paths(filename):
    """The (json, weights) paths of the pair `filename` (given without extension)."""
    filename = str(filename)
    return Path(filename + JSON_SUFFIX), Path(filename + WEIGHTS_SUFFIX)


def save_keras_model(model, filename):
    """Write model to filename.json + filename.weights.h5, atomically (data.replacing: weights first, JSON last)."""
    json_path, weights_path = pair_paths(filename)
    # serialize model to JSON
    model_json = model.to_json()
    with data.replacing(weights_path, json_path) as (weights_temporary, json_temporary):
        json_temporary.write_text(model_json)
        # serialize weights to HDF5; through an uncompiled copy, so the file holds the layers' weights only:
        # a compiled model adds its optimizer's slots, 2x more for adam
        weights_only = _model_from_config(json.loads(model_json))
        weights_only.set_weights(model.get_weights())
        weights_only.save_weights(weights_temporary)
        with h5py.File(weights_temporary, "a") as f:
            f.attrs[PAIR_HASH_ATTRIBUTE] = hashlib.sha256(model_json.encode()).hexdigest()


def load_keras_model(filename, compile=True):
    """Load the pair saved by save_keras_model, or a Keras 2 pair; the model comes back compiled.

    The sheet warns that a loaded model must be compiled before use: the JSON
    carries no optimizer, so we compile it with the recipe of the model's name
    (see models.MODELS), or adam + categorical_crossentropy for other models.
    Raises PairError with a one-line message for any missing or broken file.
    """
    json_path, weights_path = pair_paths(filename)
    if not weights_path.is_file() and Path(str(filename) + LEGACY_WEIGHTS_SUFFIX).is_file():
        weights_path = Path(str(filename) + LEGACY_WEIGHTS_SUFFIX)
    for path in (json_path, weights_path):
        if not path.is_file():
            raise PairError(f"{path}: file not found; train the model first (python train.py --model NAME)")
    try:
        model_json = json_path.read_text()
        config = json.loads(model_json)
        if not isinstance(config, dict) or "class_name" not in config:
            raise ValueError("no class_name at the top")
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise PairError(f"{json_path}: not a readable model JSON ({_short(error)}); save the model again") from None
    try:
        with h5py.File(weights_path, "r") as f:
            saved_hash = f.attrs.get(PAIR_HASH_ATTRIBUTE)
            legacy_weights = _legacy_weight_arrays(f)
    except Exception as error:  # h5py raises many types for damaged files; all mean the same to a student
        raise PairError(f"{weights_path}: not a readable HDF5 weights file ({_short(error)}); "
                        "save the model again") from None
    if saved_hash is not None and saved_hash != hashlib.sha256(model_json.encode()).hexdigest():
        raise PairError(f"{weights_path}: these weights were saved with another {json_path.name}; save the pair again")
    try:
        # load json and create model (safe mode: no Lambda code is run)
        loaded_model = _model_from_legacy_json(config) if _is_legacy(config) else _model_from_config(config)
    except Exception as error:
        raise PairError(f"{json_path}: Keras cannot build this model ({_short(error)})") from None
    try:
        # load weights into new model
        if legacy_weights is not None:
            _set_legacy_weights(loaded_model, legacy_weights)
        else:
            loaded_model.load_weights(weights_path)
    except Exception as error:
        raise PairError(f"{weights_path}: weights do not fit {json_path.name} ({_short(error)})") from None
    if compile:
        _compile_like_recipe(loaded_model)
    return loaded_model


def load_run(filename, run_history=None):
    """A trained pair and what its run recorded: (compiled model, recipe or None, normalize).

    The recipe is the one its history names, else its model's name (models.recipe_for); normalize is whether it
    takes pixels /255: what it was trained with (its history), else its recipe's choice, else yes.
    run_history: the pair's history, if the caller has read it already.
    """
    model = load_keras_model(filename)
    run_history = (history.read_history(filename) or {}) if run_history is None else run_history
    recipe = models.recipe_for(model, run_history)
    normalize = run_history.get("config", {}).get("normalize", recipe.normalize if recipe else True)
    return model, recipe, normalize


def _model_from_config(config):
    """Build (not compile: load_keras_model compiles) the model that a parsed model JSON describes."""
    # compiling here would build optimizer slots the weights file lacks
    config = {key: value for key, value in config.items() if key != "compile_config"}
    model = keras.models.model_from_json(json.dumps(config))
    if not isinstance(model, keras.Model):
        raise ValueError(f"the JSON describes a {type(model).__name__}, not a model")
    return model


# ----------------------------------------------------------------------------
# Keras 2 pairs


def _is_legacy(config):
    """tf.keras 2.x and Keras 2.0 JSON carry keras_version; Keras 2.0's Sequential config is a list of layers."""
    return "keras_version" in config or isinstance(config.get("config"), list)


def _model_from_legacy_json(config):
    """A Keras 3 Sequential model computing what the Keras 2 model computed.

    Two Keras 2 behaviours need care:
    - Keras 2.0's Flatten had no data_format: it flattened a channels_first
      tensor in (channels, rows, cols) order. Keras 3's Flatten(channels_first)
      moves channels last first, so such a Flatten becomes
      Flatten(data_format="channels_last"), which keeps the stored order.
      (tf.keras 2.x wrote data_format into Flatten and moved channels like Keras 3.)
    - The input shape came as batch_input_shape on the first layer (or on an
      InputLayer); it becomes a keras.Input.
    Initializers, regularizers and constraints only matter for training from
    scratch and changed names across versions: they are dropped.
    """
    if config.get("class_name") != "Sequential":
        raise ValueError(f"only Sequential Keras 2 models are supported, not {config.get('class_name')}")
    body = config["config"]
    layer_configs = body if isinstance(body, list) else body["layers"]
    name = None if isinstance(body, list) else body.get("name")
    input_shape, layers = None, []
    for layer in layer_configs:
        class_name, layer_config = layer["class_name"], dict(layer["config"])
        shape = layer_config.pop("batch_input_shape", None) or layer_config.pop("batch_shape", None)
        if shape is not None and input_shape is None:
            input_shape = tuple(shape[1:])
        if class_name == "InputLayer":
            continue
        if class_name == "Flatten" and "data_format" not in layer_config:
            layer_config["data_format"] = "channels_last"  # Keras 2.0: flatten in the stored order
        cls = getattr(keras.layers, class_name, None)
        if cls is None:
            raise ValueError(f"layer {class_name} is not a Keras 3 layer")
        accepted = set(inspect.signature(cls.__init__).parameters) | {"name", "trainable"}
        kwargs = {key: value for key, value in layer_config.items() if key in accepted and
                  not key.endswith(("_initializer", "_regularizer", "_constraint")) and key != "dtype"}
        layers.append(cls(**kwargs))
    if input_shape is None:
        raise ValueError("no batch_input_shape: the input shape is unknown")
    return keras.Sequential([keras.Input(shape=input_shape), *layers], name=name)


def _legacy_weight_arrays(h5_file):
    """[(layer name, [arrays])] of a Keras 2 weights file (a layer_names attribute), or None for Keras 3's."""
    root = h5_file["model_weights"] if "model_weights" in h5_file else h5_file
    if "layer_names" not in root.attrs:
        return None
    layers = []
    for layer_name in root.attrs["layer_names"]:
        layer_name = layer_name.decode() if isinstance(layer_name, bytes) else str(layer_name)
        group = root[layer_name]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])]
        layers.append((layer_name, [group[n][()] for n in names]))
    return [(name, arrays) for name, arrays in layers if arrays]


def _set_legacy_weights(model, legacy_layers):
    """Assign Keras 2 weights, layer by layer in order (names may differ between versions)."""
    targets = [layer for layer in model.layers if layer.weights]
    if len(targets) != len(legacy_layers):
        raise ValueError(f"{len(legacy_layers)} layers with weights in the file, {len(targets)} in the model")
    for layer, (name, arrays) in zip(targets, legacy_layers):
        expected = [tuple(w.shape) for w in layer.weights]
        if [a.shape for a in arrays] != expected:
            raise ValueError(f"layer {name}: shapes {[a.shape for a in arrays]}, the model expects {expected}")
        layer.set_weights(arrays)


def _compile_like_recipe(model):
    recipe = models.recipe_for(model)
    if recipe is not None:
        models.compile_recipe(model, recipe)
    else:
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])


def _short(error):
    text = " ".join(str(error).split())
    return text if len(text) <= 200 else text[:197] + "..."
