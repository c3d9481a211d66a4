"""Save and load a model as the INSAT sheet does (part 6): a JSON architecture plus HDF5 weights.

The pair for `filename` is:
  filename.json        model.to_json(), as in the sheet
  filename.weights.h5  model.save_weights(...); Keras 3 writes weights only to names ending in .weights.h5, so the
                       sheet's filename.h5 becomes filename.weights.h5
load_keras_model also reads what other Keras versions saved: Keras 2 pairs (filename.json + filename.h5), .keras
archives and full-model .h5 files (labtools/saved_models.py), and says in one line what is wrong with a file.
"""

from labtools import saved_models  # isort: skip  (labtools first: it sets KERAS_BACKEND, which Keras reads once)
import json

import models
from labtools import files


# This function saves a model on the drive using two files: a json and a h5
def save_keras_model(model, filename):
    """The sheet's function, with one difference: both files are written under temporary names, flushed to disk,
    then moved into place, so an interrupted save leaves the previous pair as it was."""
    json_path, weights_path = saved_models.pair_paths(filename)
    # serialize model to JSON
    model_json = model.to_json()
    with files.atomic_write(weights_path, json_path) as (weights_file, json_file):
        json_file.write_text(model_json)
        # serialize weights to HDF5, through an uncompiled copy: the layers' weights only (no optimizer slots)
        weights_only = saved_models.model_from_config(json.loads(model_json))
        weights_only.set_weights(model.get_weights())
        weights_only.save_weights(weights_file)
        saved_models.sign(weights_file, model_json, model)  # so that load_keras_model knows the two belong together


# This function loads a model from two files : a json and a h5
# BE CAREFUL : the model NEEDS TO BE COMPILED before any use !
def load_keras_model(filename, compile=True):
    """The sheet's function: the model saved under filename, compiled as its recipe compiles it (models.MODELS),
    else with adam and categorical_crossentropy.

    filename: the pair's name without extension (filename.json + filename.weights.h5, or Keras 2's filename.h5),
    any file of a pair, a .keras archive or a full-model .h5 file. A missing, broken or mismatched file is a
    PairError (labtools/errors.py) whose one-line message names the file.
    """
    # load json and create model, load weights into new model: for any Keras's files
    loaded_model = saved_models.load(filename).model
    if compile:
        recipe = models.MODELS.get(loaded_model.name)
        if recipe is not None:
            recipe.compile(loaded_model)
        else:
            loaded_model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return loaded_model
