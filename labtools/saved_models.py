"""Model files any Keras wrote, read into a Keras 3 model that computes what their writer's Keras computed: this
project's pairs (persistence.save_keras_model), Keras 2 pairs (`filename.json` + `filename.h5`, from the sheet's own
code on tf.keras 2.x or on the tutorial's Keras 2.0, on TensorFlow or Theano: _model_from_legacy_json and
_set_legacy_weights), Keras 3's `.keras` archives and full-model `.h5` files (`model.save`, Keras 2 or 3). Keras 1's
files are refused in one line, as Keras 2 refused them. Every failure is a PairError that names the file.

A pair saved here records, in its weights file, the SHA-256 of its JSON (a JSON and weights that do not belong
together are caught) and of its weights' values (bytes damaged inside a weight array, which HDF5 does not check,
are caught too).

Nothing is read that does not fit: the total a file declares is bounded first (model_size), the model is built from
its config, and each stored weight's declared shape (h5py gives it without reading) is compared with the model's
before any value is read, on every path: Keras reads a stored array whole, then compares.
"""

import contextlib
import dataclasses
import hashlib
import inspect
import json
import tempfile
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np

from labtools import model_size, tf_formats
from labtools import ladder  # noqa: F401  (registers the ladder's own layer, NearestAugmentation, which its pairs hold)
from labtools.errors import PairError, short_error

JSON_SUFFIX = ".json"
WEIGHTS_SUFFIX = ".weights.h5"
LEGACY_WEIGHTS_SUFFIX = ".h5"  # what Keras 2's save_weights(filename + ".h5") wrote
HDF5_SUFFIXES = (".h5", ".hdf5")  # Keras 2 pairs' weights, and full-model files (model.save("model.h5"))
KERAS_SUFFIX = ".keras"  # Keras 3's archive: model.save("model.keras")
CHECKPOINT_SUFFIX = ".index"  # a TensorFlow checkpoint's index (tf.keras 2's save_weights("name") without .h5)
ARCHIVE_WEIGHTS = "model.weights.h5"  # the weights inside a .keras archive
PAIR_HASH_ATTRIBUTE = "model_json_sha256"
WEIGHTS_HASH_ATTRIBUTE = "weights_sha256"


def pair_paths(filename):
    """The (json, weights) paths of the pair `filename` (given without extension)."""
    filename = str(filename)
    return Path(filename + JSON_SUFFIX), Path(filename + WEIGHTS_SUFFIX)


def weights_sha256(model):
    """The SHA-256 of a model's weights' values, in order."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def sign(weights_path, model_json, model):
    """Record in a pair's weights file the SHA-256 of its JSON and of its weights (load checks both)."""
    with h5py.File(weights_path, "a") as f:
        f.attrs[PAIR_HASH_ATTRIBUTE] = hashlib.sha256(model_json.encode()).hexdigest()
        f.attrs[WEIGHTS_HASH_ATTRIBUTE] = weights_sha256(model)


@dataclasses.dataclass(frozen=True)
class Saved:
    """A loaded model, what wrote its files ("Keras 2.0.8 (theano)", "this project (Keras 3)") and the files."""

    model: keras.Model
    writer: str
    files: tuple


def model_files(filename):
    """The files that hold the model `filename`: (json, weights) for a pair, (file,) for a single-file model.

    A pair's name without extension, its .json, its weights (name.weights.h5, or Keras 2's name.h5 beside a
    name.json), a .keras archive, a full-model .h5/.hdf5 file, or a name whose only file is one of those.
    """
    path = Path(filename)
    if tf_formats.is_saved_model(path):
        return tf_formats.saved_model_files(path)
    if path.suffix == CHECKPOINT_SUFFIX:
        return path.with_suffix(JSON_SUFFIX), path
    for suffix in (WEIGHTS_SUFFIX, JSON_SUFFIX):
        if path.name.endswith(suffix) and path.name != suffix:
            return _pair_files(path.with_name(path.name[: -len(suffix)]))
    if path.suffix == KERAS_SUFFIX or path.suffix in HDF5_SUFFIXES and not path.with_suffix(JSON_SUFFIX).is_file():
        return (path,)
    if path.suffix in HDF5_SUFFIXES:
        return path.with_suffix(JSON_SUFFIX), path
    if not Path(f"{path}{JSON_SUFFIX}").is_file():
        for suffix in (KERAS_SUFFIX, *HDF5_SUFFIXES):
            if Path(f"{path}{suffix}").is_file():
                return (Path(f"{path}{suffix}"),)
    return _pair_files(path)


def _pair_files(name):
    json_path, weights_path = pair_paths(name)
    if not weights_path.is_file():
        weights_path = next((Path(f"{name}{suffix}") for suffix in (*HDF5_SUFFIXES, CHECKPOINT_SUFFIX)
                             if Path(f"{name}{suffix}").is_file()), weights_path)
    return json_path, weights_path


def load(filename, files=None):
    """A Saved: the model stored under `filename` (see model_files), or in `files` ((json, weights) or (file,)) when
    a caller has found them under other names, built in Keras's safe mode (no code from the file runs), with its
    weights; not compiled. Nothing is built or read that asks for more than model_size.MAX_PARAMETERS weights."""
    files = tuple(map(Path, files)) if files else model_files(filename)
    if files[0].name == tf_formats.SAVED_MODEL_FILE:
        model, version = tf_formats.load_saved_model(files[0].parent)
        return Saved(model, f"TensorFlow {version} (SavedModel)" if version else "TensorFlow (SavedModel)", files)
    if len(files) == 2 and files[0].is_file() and not files[1].is_file():
        raise PairError(f"{files[0]}: no weights beside it ({files[1].name}, or {files[1].name[:-len(WEIGHTS_SUFFIX)]}"
                        f".h5 as Keras 2 wrote them); put the pair's weights file there under that name")
    if len(files) == 2 and files[1].is_file() and not files[0].is_file():
        raise PairError(f"{files[1]}: no {files[0].name} beside it: weights without their architecture; put the "
                        "pair's JSON there under that name, or save the whole model with model.save")
    for path in files:
        if not path.is_file():
            raise PairError(f"{path}: file not found; train the model first (python train.py --model NAME)")
        if path.stat().st_size == 0:
            raise PairError(f"{path}: empty (0 bytes): the save or the upload did not finish; save it again")
    if len(files) == 2 and files[1].suffix.lower() == CHECKPOINT_SUFFIX:
        model, writer = _load_checkpoint_pair(*files)
    else:
        model, writer = _load_pair(*files) if len(files) == 2 else _load_single_file(files[0])
    return Saved(model, writer, files)


def _read_model_json(json_path):
    """(text, parsed) of a model's JSON; PairError for one that is not."""
    try:
        # Windows Notepad saves UTF-8 with a byte-order mark (and CRLF line ends, which JSON ignores)
        model_json = json_path.read_bytes().decode("utf-8-sig")
        config = json.loads(model_json)
        if not isinstance(config, dict) or "class_name" not in config:
            raise ValueError("no class_name at the top")
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise PairError(f"{json_path}: not a readable model JSON ({short_error(error)}); "
                        "save the model again") from None
    return model_json, config


def _load_checkpoint_pair(json_path, index_path):
    """A model's JSON beside a TensorFlow checkpoint (tf.keras 2's save_weights("NAME") without .h5)."""
    _, config = _read_model_json(json_path)
    tf_formats.tensorflow_or_refuse(index_path, "a TensorFlow checkpoint")
    prefix = index_path.name[: -len(CHECKPOINT_SUFFIX)]
    if not any(p.name.startswith(f"{prefix}.data-") for p in index_path.parent.iterdir()):
        raise PairError(f"{index_path}: a TensorFlow checkpoint without its {prefix}.data-00000-of-00001 file; "
                        "hand in both")
    version = str(config.get("keras_version") or "")
    _refuse_keras_1(json_path, version, config)
    model_size.check(config, json_path)
    model = _build(config, json_path)
    tf_formats.load_checkpoint_weights(model, index_path, json_path.name)
    return model, _writer(version or "2", config.get("backend"))


def _build(config, json_path):
    """The model a pair's parsed JSON describes, Keras 2's translated (safe mode: no Lambda code is run)."""
    try:
        return _model_from_legacy_json(config) if _is_legacy(config) else model_from_config(config)
    except Exception as error:
        raise PairError(f"{json_path}: Keras cannot build this model ({short_error(error)})") from None


def _load_pair(json_path, weights_path):
    model_json, config = _read_model_json(json_path)
    unreadable = f"{weights_path}: not a readable HDF5 weights file ({{}}); save the model again"
    with _one_line(unreadable):
        with h5py.File(weights_path, "r") as f:
            saved_hash, saved_weights = f.attrs.get(PAIR_HASH_ATTRIBUTE), f.attrs.get(WEIGHTS_HASH_ATTRIBUTE)
            stored_shapes = model_size.dataset_shapes(f)
            model_size.check_stored(model_size.stored_parameters(stored_shapes), weights_path)
            legacy_layout = _legacy_layout(f)  # names and declared shapes: no value is read before they are checked
            attributes = _text_attributes(f)
    if saved_hash is not None and saved_hash != hashlib.sha256(model_json.encode()).hexdigest():
        raise PairError(f"{weights_path}: these weights were saved with another {json_path.name}; save the pair again")
    version = str(config.get("keras_version") or attributes.get("keras_version") or "")
    file_backend = config.get("backend") or attributes.get("backend")
    _refuse_keras_1(json_path, version, config)
    legacy = _is_legacy(config)
    model_size.check(config, json_path)
    if saved_hash is not None:
        writer = "this project (Keras 3)"
    else:
        writer = _writer(version or ("2" if legacy else "3"), file_backend)
    loaded_model = _build(config, json_path)
    misfit = (f"{weights_path}: weights do not fit {json_path.name} ({{}}): the JSON and the weights do not belong "
              "together; hand in the pair as it was saved, or save the model again")
    # each stored weight's shape against the model's before any value is read: a file can declare a weight of
    # gigabytes that HDF5 would read (or fill) in full before Keras compares it
    with _one_line(misfit):
        if legacy_layout is not None:
            matched = _match_legacy_weights(loaded_model, legacy_layout)
        else:
            _check_keras_3_shapes(loaded_model, stored_shapes)
    with _one_line(misfit):
        # load weights into new model
        if legacy_layout is not None:
            with _one_line(unreadable):
                arrays = _read_legacy_weights(weights_path, matched)
            _set_legacy_weights(matched, arrays, file_backend)
        else:
            loaded_model.load_weights(weights_path)
    if saved_weights is not None and saved_weights != weights_sha256(loaded_model):
        raise PairError(f"{weights_path}: damaged: its weights are not those that were saved; save the pair again")
    return loaded_model, writer


def _load_single_file(path):
    """A .keras archive or a full-model HDF5 file: Keras 3's own loader for Keras 3's files, the Keras 2
    translation below for Keras 2's (Keras 3 cannot read their layer configs). Each stored weight's shape is checked
    against the model, built from the file's config, before Keras reads any value."""
    misfit = f"{path}: its weights do not fit its model ({{}}); save the model again"
    if zipfile.is_zipfile(path):
        with _one_line(f"{path}: not a Keras archive ({{}}); save the model again"):
            with zipfile.ZipFile(path) as archive:
                version = str(json.loads(archive.read("metadata.json")).get("keras_version", ""))
                config = json.loads(archive.read("config.json"))
                stored = sum(m.file_size for m in archive.infolist() if m.filename.endswith(".h5")) // 4
                stored_shapes = {}
                if ARCHIVE_WEIGHTS in archive.namelist():
                    # h5py reads the member where it lies, in the zip: its declared shapes only, nothing unpacked
                    with archive.open(ARCHIVE_WEIGHTS) as member, h5py.File(member, "r") as f:
                        stored_shapes = model_size.dataset_shapes(f)
                        stored = max(stored, model_size.stored_parameters(stored_shapes))
        model_size.check(config, path)
        model_size.check_stored(stored, path)
        try:
            model = model_from_config(config)
        except Exception as error:
            raise PairError(f"{path}: Keras cannot load this model ({short_error(error)})") from None
        with _one_line(misfit):
            _check_keras_3_shapes(model, stored_shapes)
        return _keras_load_model(path), _writer(version or "3", None)
    unreadable = (f"{path}: not a readable {'Keras archive' if path.suffix == KERAS_SUFFIX else 'HDF5 model file'} "
                  "({}); save the model again")
    with _one_line(unreadable):
        with h5py.File(path, "r") as f:
            attributes = _text_attributes(f)
            model_size.check_stored(model_size.stored_parameters(model_size.dataset_shapes(f)), path)
            legacy_layout = _legacy_layout(f)
    if "model_config" not in attributes:
        raise PairError(f"{path}: holds weights only, no architecture; put the model's JSON beside it as "
                        f"{path.with_suffix(JSON_SUFFIX).name}, or save the whole model with model.save")
    version, file_backend = attributes.get("keras_version", ""), attributes.get("backend")
    try:
        config = json.loads(attributes["model_config"])
    except ValueError as error:
        raise PairError(f"{path}: its model_config is not JSON ({short_error(error)}); save the model again") from None
    _refuse_keras_1(path, version, config)
    model_size.check(config, path)
    if version.startswith("3"):
        try:
            model = _model_from_h5_config(attributes["model_config"])
        except Exception as error:
            raise PairError(f"{path}: Keras cannot load this model ({short_error(error)})") from None
        with _one_line(misfit):
            _check_keras_3_h5_shapes(model, legacy_layout or [])
        return _keras_load_model(path), _writer(version, file_backend)
    try:
        model = _model_from_legacy_json(config)
    except Exception as error:
        raise PairError(f"{path}: Keras cannot build this model ({short_error(error)})") from None
    with _one_line(misfit):
        matched = _match_legacy_weights(model, legacy_layout or [])
    with _one_line(unreadable):
        arrays = _read_legacy_weights(path, matched)
    with _one_line(misfit):
        _set_legacy_weights(matched, arrays, file_backend)
    return model, _writer(version or "2", file_backend)


@contextlib.contextmanager
def _one_line(message):
    """A PairError of message (its {} the error) for whatever else the block raises: h5py raises many types for
    damaged files, Keras many for weights that do not fit; each means one thing to a student."""
    try:
        yield
    except PairError:
        raise
    except Exception as error:  # noqa: BLE001
        raise PairError(message.format(short_error(error))) from None


def _keras_load_model(path):
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:
        raise PairError(f"{path}: Keras cannot load this model ({short_error(error)})") from None
    if not isinstance(model, keras.Model):
        raise PairError(f"{path}: holds a {type(model).__name__}, not a model")
    return model


def _writer(version, file_backend):
    """'Keras 2.0.8 (theano)': what wrote a file, as its own attributes say."""
    return f"Keras {version}" + (f" ({file_backend})" if file_backend else "")


def _text_attributes(h5_file):
    """The HDF5 file's keras_version, backend and model_config attributes, as str."""
    attributes = {}
    for key in ("keras_version", "backend", "model_config"):
        value = h5_file.attrs.get(key)
        if value is not None:
            attributes[key] = _text(value)
    return attributes


def _refuse_keras_1(path, version, config):
    """Keras 1's layer configs (nb_filter, output_dim, init, ...) are a format that Keras 2 itself refuses."""
    old_keys = {"output_dim", "nb_filter", "init", "W_regularizer", "border_mode"}
    body = config.get("config")
    layers = body if isinstance(body, list) else (body or {}).get("layers", []) if isinstance(body, dict) else []
    keras_1_keys = any(isinstance(layer, dict) and isinstance(layer.get("config"), dict) and
                       old_keys & set(layer["config"]) for layer in layers)
    if version.startswith("1") or keras_1_keys:
        written = f"Keras {version}" if version else "Keras 1"
        raise PairError(f"{path}: written by {written}, whose format neither Keras 2 nor Keras 3 reads; retrain "
                        "the model, or open it with Keras 1 and save its weights into a model built with current Keras")


def model_from_config(config):
    """Build (not compile: load_keras_model compiles) the model that a parsed model JSON describes; ValueError for a
    JSON of something else."""
    # compiling here would build optimizer slots the weights file lacks
    config = {key: value for key, value in config.items() if key != "compile_config"}
    model = keras.models.model_from_json(json.dumps(config))
    if not isinstance(model, keras.Model):
        raise ValueError(f"the JSON describes a {type(model).__name__}, not a model")
    return model


# ----------------------------------------------------------------------------
# Keras 2 files: pairs, and full-model .h5 files


def _is_legacy(config):
    """Keras 2.x and tf.keras 2.x JSON carry keras_version; Keras 2.0's Sequential config is a list of layers."""
    return str(config.get("keras_version", "3")).startswith("2") or isinstance(config.get("config"), list)


def _model_from_legacy_json(config):
    """A Keras 3 model computing what the Keras 2 model (Sequential or functional) computed.

    Keras 3 cannot read Keras 2's layer configs as they are, so each layer is rebuilt from the arguments that
    its Keras 3 class still takes:
    - Keras 2.0's Flatten had no data_format: it flattened a channels_first tensor in (channels, rows, cols)
      order. Keras 3's Flatten(channels_first) moves channels last first, so such a Flatten becomes
      Flatten(data_format="channels_last"), which keeps the stored order. (Keras 2.2+ and tf.keras wrote
      data_format into Flatten and moved channels like Keras 3.)
    - tf.keras saved BatchNormalization's axis as a list ([3]); Keras 3 takes an int. LeakyReLU's alpha is
      Keras 3's negative_slope.
    - The input shape came as batch_input_shape on the first layer, on an InputLayer, or as the Sequential's
      build_input_shape; it becomes a keras.Input (Keras 3's batch_shape).
    Initializers, regularizers, constraints and dtypes only matter for training from scratch and changed names
    across versions: they are dropped (the model computes in float32).
    """
    class_name, body = config.get("class_name"), config.get("config")
    if class_name == "Sequential":
        layer_configs = body if isinstance(body, list) else body["layers"]
        name = None if isinstance(body, list) else body.get("name")
        input_shape, layers = None, []
        for layer in layer_configs:
            layer_config = dict(layer["config"])
            shape = layer_config.pop("batch_input_shape", None) or layer_config.pop("batch_shape", None)
            if shape is not None and input_shape is None:
                input_shape = tuple(shape[1:])
            if layer["class_name"] != "InputLayer":
                layers.append(_legacy_layer(layer["class_name"], layer_config))
        if input_shape is None and isinstance(body, dict) and body.get("build_input_shape"):
            input_shape = tuple(body["build_input_shape"][1:])
        if input_shape is None:
            raise ValueError("no batch_input_shape: the input shape is unknown")
        return keras.Sequential([keras.Input(shape=input_shape), *layers], name=name)
    if class_name in ("Model", "Functional"):  # Keras 2's functional models, by the name Keras 2.0-2.3 and 2.4+ gave
        layers = []
        for layer in body["layers"]:
            layer_config = dict(layer["config"])
            if layer["class_name"] == "InputLayer":
                shape = layer_config.get("batch_input_shape") or layer_config.get("batch_shape")
                serialized = keras.layers.serialize(keras.layers.InputLayer(batch_shape=tuple(shape),
                                                                            name=layer["name"]))
            else:
                serialized = keras.layers.serialize(_legacy_layer(layer["class_name"], layer_config))
            layers.append({**serialized, "name": layer["name"], "inbound_nodes": layer["inbound_nodes"]})
        model = keras.Model.from_config({"name": body.get("name"), "layers": layers,
                                         "input_layers": body["input_layers"],
                                         "output_layers": body["output_layers"]})
        return model
    raise ValueError(f"a {class_name} is neither a Sequential nor a functional Keras 2 model")


LEGACY_RENAMES = {"LeakyReLU": {"alpha": "negative_slope"}}  # {layer class: {Keras 2 argument: Keras 3 argument}}


def _legacy_layer(class_name, layer_config):
    """The Keras 3 layer for one Keras 2 layer config (see _model_from_legacy_json)."""
    if class_name in ("Sequential", "Model", "Functional"):
        raise ValueError(f"a model nested in the model ({layer_config.get('name')}) is not supported")
    if class_name == "Lambda":
        raise ValueError("a Lambda layer would run code from the file, which safe mode refuses")
    cls = getattr(keras.layers, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, keras.layers.Layer)):
        raise ValueError(f"layer {class_name} is not a Keras 3 layer")
    layer_config = dict(layer_config)
    for old, new in LEGACY_RENAMES.get(class_name, {}).items():
        if old in layer_config:
            layer_config[new] = layer_config.pop(old)
    if class_name == "Flatten" and "data_format" not in layer_config:
        layer_config["data_format"] = "channels_last"  # Keras 2.0: flatten in the stored order
    if isinstance(layer_config.get("axis"), list) and class_name in ("BatchNormalization", "LayerNormalization"):
        if len(layer_config["axis"]) != 1:
            raise ValueError(f"{class_name} {layer_config.get('name')} normalises over several axes")
        layer_config["axis"] = layer_config["axis"][0]
    parameters = inspect.signature(cls.__init__).parameters
    takes_base_arguments = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    accepted = set(parameters) | ({"name", "trainable"} if takes_base_arguments else set())
    kwargs = {key: value for key, value in layer_config.items() if key in accepted and
              not key.endswith(("_initializer", "_regularizer", "_constraint")) and key != "dtype"}
    return cls(**kwargs)


def _legacy_layout(h5_file):
    """[(layer name, [(weight name, declared shape)])] of a Keras 2 weights file (a layer_names attribute; Keras 3's
    full-model .h5 files keep that layout), or None for Keras 3's .weights.h5: names and shapes, no value read."""
    root = h5_file["model_weights"] if "model_weights" in h5_file else h5_file
    if "layer_names" not in root.attrs:
        return None
    layers = []
    for layer_name in root.attrs["layer_names"]:
        layer_name = _text(layer_name)
        group = root[layer_name]
        names = [_text(n) for n in group.attrs.get("weight_names", [])]
        layers.append((layer_name, [(n, tuple(group[n].shape)) for n in names]))
    return [(name, weights) for name, weights in layers if weights]


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


# Keras 2.2's list of the layers whose kernels Theano convolves (flipped) where TensorFlow correlates
THEANO_KERNEL_LAYERS = ("Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose")


def _match_legacy_weights(model, layout):
    """[(layer, stored layer name, [weight names])]: which stored weights go to which of the model's layers, by
    layer name when the file's names are the model's, else layer by layer in order (a notebook cell run twice saves
    conv2d_5's weights for a JSON that says conv2d_4), as Keras 2 did; each layer's declared shapes compared with
    the layer's own before any value is read (ValueError naming the layer)."""
    targets = [layer for layer in model.layers if layer.weights]
    saved = dict(layout)
    if len(saved) == len(layout) and sorted(saved) == sorted(layer.name for layer in targets):
        pairs = [(layer, layer.name, saved[layer.name]) for layer in targets]
    elif len(targets) != len(layout):
        raise ValueError(f"{len(layout)} layers with weights in the file, {len(targets)} in the model")
    else:
        pairs = [(layer, name, weights) for layer, (name, weights) in zip(targets, layout)]
    for layer, name, weights in pairs:
        stored, expected = [shape for _, shape in weights], [tuple(w.shape) for w in layer.weights]
        if stored != expected:
            raise ValueError(f"layer {name}: stored shapes {_shapes(stored)}, the model's {_shapes(expected)}")
    return [(layer, name, [weight_name for weight_name, _ in weights]) for layer, name, weights in pairs]


def _shapes(shapes):
    return ", ".join(map(str, shapes)) if shapes else "none"


def _read_legacy_weights(path, matched):
    """The arrays of _match_legacy_weights's weights, read from the file at path once their shapes are known to fit."""
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        return [[root[name][weight_name][()] for weight_name in weight_names] for _, name, weight_names in matched]


def _set_legacy_weights(matched, arrays, file_backend=None):
    """Assign Keras 2 weights (matched: _match_legacy_weights's, arrays: _read_legacy_weights's).

    Weights written on Theano: Theano convolves where TensorFlow (and Keras 3 on every backend) correlates, so
    their kernels are flipped in space, as Keras 2.2+ did when it loaded them (tf.keras 2.x no longer did, and
    computes something else for a Theano CNN).
    """
    for (layer, _, _), layer_arrays in zip(matched, arrays):
        if file_backend == "theano" and type(layer).__name__ in THEANO_KERNEL_LAYERS:
            kernel = layer_arrays[0]
            layer_arrays = [kernel[(slice(None, None, -1),) * (kernel.ndim - 2)], *layer_arrays[1:]]
        layer.set_weights(layer_arrays)


# ----------------------------------------------------------------------------
# Keras 3 files: what Keras reads, checked first (Keras reads each stored array whole, then compares its shape)


def _keras_3_layout(model):
    """{dataset path: shape} of the weights file Keras 3 writes for model, which is what its load_weights and
    load_model read for it: Keras's own layout (layers/dense/vars/0, nested models, seed generators...),
    written by Keras for this freshly built model into a temporary file and read back."""
    with tempfile.TemporaryDirectory(prefix="mnist-labs-layout-") as folder:
        reference = Path(folder) / "model.weights.h5"
        model.save_weights(reference)
        with h5py.File(reference, "r") as f:
            return model_size.dataset_shapes(f)


def _check_keras_3_shapes(model, stored):
    """ValueError naming the layer when a dataset that Keras 3 would read for model (stored: a .weights.h5's
    {path: shape}, as in a pair or inside a .keras archive) has another shape than the model's variable. A dataset
    under no path of the model's is never read by Keras (a layer whose group holds more or fewer variables is
    refused by Keras before it reads)."""
    legacy_names = any(name.startswith("_layer_checkpoint_dependencies/") for name in stored)
    for name, shape in _keras_3_layout(model).items():
        group, _, key = name.rpartition("/vars/")
        found = name
        if f"{group}/vars/{key}" not in stored and legacy_names:  # Keras 2.13's names, which Keras 3 still reads
            found = f"{group.replace('layers', '_layer_checkpoint_dependencies')}/vars/{key}"
        if found in stored and stored[found] != shape:
            layer = "/".join(part for part in group.split("/") if part != "layers") or "model"
            raise ValueError(f"layer {layer} ({found}): stored shape {stored[found]}, the model's {shape}")


def _model_from_h5_config(model_config):
    """The model of a Keras 3 full-model .h5 file's model_config, built in safe mode to learn its weights' shapes.
    Keras writes that config in its legacy form (no module names), which model_from_json resolves given Keras's own
    layer and model classes."""
    known = {name: cls for name, cls in vars(keras.layers).items() if inspect.isclass(cls)}
    known.update({"Sequential": keras.Sequential, "Functional": keras.Model, "Model": keras.Model})
    model = keras.models.model_from_json(model_config, custom_objects=known)
    if not isinstance(model, keras.Model):
        raise ValueError(f"the config describes a {type(model).__name__}, not a model")
    return model


def _check_keras_3_h5_shapes(model, layout):
    """ValueError naming the layer when a Keras 3 full-model .h5 file's weights (layout: _legacy_layout's) do not
    have the shapes of the model's, layer by layer in order, as Keras 3's loader assigns them."""
    targets = [layer for layer in model.layers if layer.weights]
    if len(targets) != len(layout):
        raise ValueError(f"{len(layout)} layers with weights in the file, {len(targets)} in the model")
    for layer, (name, weights) in zip(targets, layout):
        stored, expected = [shape for _, shape in weights], [tuple(w.shape) for w in layer.weights]
        if sorted(stored) != sorted(expected):  # Keras 3 orders them trainable first; which is which it checks
            raise ValueError(f"layer {name}: stored shapes {_shapes(stored)}, the model's {_shapes(expected)}")
