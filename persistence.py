"""Save and load a model as the INSAT sheet does: a JSON architecture plus HDF5 weights.

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
import json
import os
from pathlib import Path

import h5py

JSON_SUFFIX = ".json"
WEIGHTS_SUFFIX = ".weights.h5"
PAIR_HASH_ATTRIBUTE = "model_json_sha256"


class PairError(ValueError):
    """A json + h5 pair is missing, broken or mismatched; the message names the file."""


def pair_paths(filename):
    """The (json, weights) paths of the pair `filename` (given without extension)."""
    filename = str(filename)
    return Path(filename + JSON_SUFFIX), Path(filename + WEIGHTS_SUFFIX)


def _fsync(path):
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def save_keras_model(model, filename):
    """Write model to filename.json + filename.weights.h5, atomically."""
    import keras

    json_path, weights_path = pair_paths(filename)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    # serialize model to JSON
    model_json = model.to_json()
    tag = f".tmp-{os.getpid()}"
    json_temporary = json_path.with_name(json_path.name + tag)
    weights_temporary = weights_path.with_name(weights_path.name[: -len(WEIGHTS_SUFFIX)] + tag + WEIGHTS_SUFFIX)
    try:
        with open(json_temporary, "w") as json_file:
            json_file.write(model_json)
        # serialize weights to HDF5; through an uncompiled copy, so the file holds the layers' weights
        # only (a compiled model would add its optimizer's state, which the sheet's pair never had)
        weights_only = keras.models.model_from_json(model_json)
        weights_only.set_weights(model.get_weights())
        weights_only.save_weights(weights_temporary)
        with h5py.File(weights_temporary, "a") as f:
            f.attrs[PAIR_HASH_ATTRIBUTE] = hashlib.sha256(model_json.encode()).hexdigest()
        _fsync(json_temporary)
        _fsync(weights_temporary)
        os.replace(weights_temporary, weights_path)
        os.replace(json_temporary, json_path)
    finally:
        for temporary in (json_temporary, weights_temporary):
            temporary.unlink(missing_ok=True)


def load_keras_model(filename, compile=True):
    """Load the pair saved by save_keras_model; the model comes back compiled.

    The sheet warns that a loaded model must be compiled before use: the JSON
    carries no optimizer, so we compile it with the recipe of the model's name
    (see models.MODELS), or adam + categorical_crossentropy for other models.
    Raises PairError with a one-line message for any missing or broken file.
    """
    import keras

    json_path, weights_path = pair_paths(filename)
    for path in (json_path, weights_path):
        if not path.is_file():
            raise PairError(f"{path}: file not found; train the model first (python train.py --model NAME)")
    try:
        model_json = json_path.read_text()
        json.loads(model_json)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise PairError(f"{json_path}: not a readable model JSON ({error}); save the model again") from None
    try:
        with h5py.File(weights_path, "r") as f:
            saved_hash = f.attrs.get(PAIR_HASH_ATTRIBUTE)
    except OSError as error:
        raise PairError(f"{weights_path}: not a readable HDF5 weights file ({error}); save the model again") from None
    if saved_hash is not None and saved_hash != hashlib.sha256(model_json.encode()).hexdigest():
        raise PairError(f"{weights_path}: these weights were saved with another {json_path.name}; save the pair again")
    try:
        # load json and create model (safe mode: no Lambda code is run)
        loaded_model = keras.models.model_from_json(model_json)
    except Exception as error:
        raise PairError(f"{json_path}: Keras cannot build this model ({_short(error)})") from None
    try:
        # load weights into new model
        loaded_model.load_weights(weights_path)
    except Exception as error:
        raise PairError(f"{weights_path}: weights do not fit {json_path.name} ({_short(error)})") from None
    if compile:
        _compile_like_recipe(loaded_model)
    return loaded_model


def _compile_like_recipe(model):
    import models

    recipe = models.recipe_for(model)
    if recipe is not None:
        models.compile_recipe(model, recipe)
    else:
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])


def _short(error):
    text = " ".join(str(error).split())
    return text if len(text) <= 200 else text[:197] + "..."
