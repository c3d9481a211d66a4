"""TensorFlow's own formats in a student's hand-in, read without running code from the file.

- A SavedModel folder (saved_model.pb + variables/): what tf.keras 2 wrote for model.save("DIR") (TensorFlow
  2.0-2.15, Colab before 2024), and Keras 3's model.export("DIR"). TensorFlow's loader behind
  keras.layers.TFSMLayer runs the file's own graph functions, so they are read first, as data (the protocol
  buffer), and every op that loading and calling the model can run must be one that only computes
  (COMPUTE_OPS): no file, print, network or Python op. Only Keras's TensorFlow backend runs a SavedModel.
- A TensorFlow checkpoint (NAME.index + NAME.data-00000-of-00001): what tf.keras 2's save_weights("NAME") wrote
  without .h5. Weights only: graded beside the model's JSON, each variable's shape read from the index and checked
  against the model before its values are read. Reading one needs TensorFlow installed (any backend).
"""

import math
from pathlib import Path

from labtools import model_size
from labtools.errors import PairError, short_error

SAVED_MODEL_FILE = "saved_model.pb"
SAVED_MODEL_MAX_BYTES = 64 * 1024 ** 2  # a lab model's graph is a few hundred kB
RESAVE = "in the student's TensorFlow, load it and save it with model.save(\"model.keras\")"

# Ops that only compute on tensors and on the model's own variables, in memory. Anything else (ReadFile,
# WriteFile, PrintV2, PyFunc, SaveV2, ImmutableConst, datasets, ...) is refused by name.
COMPUTE_OPS = frozenset("""
Abs Acos Acosh Add AddN AddV2 All Any ArgMax ArgMin Asin Asinh Atan Atan2 Atanh AvgPool AvgPool3D BatchMatMul
BatchMatMulV2 BatchMatMulV3 BiasAdd BiasAddV1 BroadcastArgs BroadcastTo Cast Ceil CheckNumerics ClipByValue
Complex ConcatV2 Const Conv1D Conv2D Conv3D Cos Cosh Cumprod Cumsum DepthToSpace DepthwiseConv2dNative Diag
DisableCopyOnRead Einsum Elu Equal Erf Erfc Exp ExpandDims Expm1 Fill Floor FloorDiv FloorMod FusedBatchNorm
FusedBatchNormV2 FusedBatchNormV3 GatherNd GatherV2 Greater GreaterEqual Identity IdentityN If Imag InvertPermutation
IsFinite IsInf IsNan L2Loss LeakyRelu Less LessEqual Lgamma LinSpace Log Log1p LogSoftmax LogicalAnd LogicalNot
LogicalOr MatMul MatrixBandPart MatrixDiag MatrixDiagV3 Max MaxPool MaxPool3D MaxPoolV2 Maximum Mean Min Minimum Mod
Mul MulNoNan Neg NoOp NotEqual OneHot OnesLike Pack Pad PadV2 PartitionedCall Pow Prod Range Rank ReadVariableOp Real
RealDiv Reciprocal Relu Relu6 Reshape ResizeBilinear ResizeNearestNeighbor ReverseV2 Round Rsqrt Select SelectV2
Selu Shape ShapeN Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split SplitV Sqrt Square
SquaredDifference Squeeze StatefulPartitionedCall StatelessIf StatelessWhile StopGradient StridedSlice Sub Sum Tan
Tanh Tile TopKV2 Transpose Unpack Where While Xdivy Xlog1py Xlogy ZerosLike
AssignAddVariableOp AssignSubVariableOp AssignVariableOp VarHandleOp VarIsInitializedOp
RandomStandardNormal RandomUniform RandomUniformInt StatelessRandomGetKeyCounter StatelessRandomNormalV2
StatelessRandomUniformV2 StatelessRandomUniformIntV2 StatelessTruncatedNormalV2 TruncatedNormal
""".split())


def is_saved_model(folder):
    # its exact name: TensorFlow's loader opens no other
    return (Path(folder) / SAVED_MODEL_FILE).is_file()


def saved_model_files(folder):
    """The files a SavedModel's grade depends on (its graph and its variables), for the evaluation cache."""
    folder = Path(folder)
    return (folder / SAVED_MODEL_FILE, *sorted((folder / "variables").glob("variables.*")))


def tensorflow_or_refuse(path, what):
    """TensorFlow, imported; PairError naming path (a file that is `what`) where it is not installed."""
    try:
        import tensorflow as tf
    except ImportError:
        raise PairError(f"{path}: {what}, which only TensorFlow reads, and TensorFlow is not installed here "
                        f"(Python 3.11-3.13: pip install -r requirements.txt); or {RESAVE}") from None
    return tf


def saved_model_ops(folder):
    """({op: count}, the TensorFlow version that wrote it) over every function that TensorFlow's loader and the
    model's calls can run: those that the SavedModel's object graph names, and every function they call, through
    any attribute; read from the protocol buffer, nothing run. PairError for a SavedModel that is not a
    TensorFlow 2 one, or cannot be read."""
    path = Path(folder) / SAVED_MODEL_FILE
    if path.stat().st_size > SAVED_MODEL_MAX_BYTES:
        raise PairError(f"{folder}: a SavedModel whose graph is {path.stat().st_size:,} bytes, over "
                        f"{SAVED_MODEL_MAX_BYTES:,}; not read")
    tensorflow_or_refuse(folder, "a TensorFlow SavedModel folder")
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    try:
        saved.ParseFromString(path.read_bytes())
    except Exception as error:  # protobuf's DecodeError, and whatever a damaged file raises
        raise PairError(f"{folder}: not a readable SavedModel ({short_error(error) or type(error).__name__}); "
                        f"{RESAVE}") from None
    if not saved.meta_graphs:
        raise PairError(f"{folder}: not a readable SavedModel (no graph in its {SAVED_MODEL_FILE}); {RESAVE}")
    if len(saved.meta_graphs) != 1 or not saved.meta_graphs[0].HasField("object_graph_def"):
        raise PairError(f"{folder}: a TensorFlow 1 SavedModel (no object graph), which TensorFlow 2 loads by "
                        f"running its own init ops; not graded. {RESAVE[0].upper()}{RESAVE[1:]}")
    meta_graph = saved.meta_graphs[0]
    library = {function.signature.name: function for function in meta_graph.graph_def.library.function}
    pending = []
    for node in meta_graph.object_graph_def.nodes:
        kind = node.WhichOneof("kind")
        if kind == "function":
            pending.extend(node.function.concrete_functions)
        elif kind == "bare_concrete_function":
            pending.append(node.bare_concrete_function.concrete_function_name)
        elif kind in ("resource", "asset") or node.saveable_objects or node.registered_saver:
            raise PairError(f"{folder}: a SavedModel holding a {kind or 'saver'} (tables, files or savers that the "
                            f"loader would run); not graded. {RESAVE[0].upper()}{RESAVE[1:]}")
    ops, seen = {}, set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        if name not in library:
            raise PairError(f"{folder}: its object graph names a function ({name}) the graph does not hold; "
                            f"{RESAVE}")
        for node in library[name].node_def:
            ops[node.op] = ops.get(node.op, 0) + 1
            for value in node.attr.values():  # f, then_branch, body, ...: the functions a node calls
                if value.HasField("func"):
                    pending.append(value.func.name)
                if value.HasField("list"):
                    pending.extend(function.name for function in value.list.func)
    return ops, meta_graph.meta_info_def.tensorflow_version


def check_saved_model(folder, shown=None):
    """The TensorFlow version that wrote the SavedModel; PairError, naming the folder as shown, unless every op
    it can run only computes (COMPUTE_OPS) and its variables are within model_size.MAX_PARAMETERS (counted from
    the index)."""
    shown = shown or folder
    ops, version = saved_model_ops(folder)
    refused = sorted(set(ops) - COMPUTE_OPS)
    if refused:
        raise PairError(f"{shown}: a SavedModel whose graph runs more than computations ({', '.join(refused[:5])}"
                        f"{', ...' if len(refused) > 5 else ''}): not loaded, so none of it runs. {RESAVE[0].upper()}"
                        f"{RESAVE[1:]}")
    if not (Path(folder) / "variables" / "variables.index").is_file():
        raise PairError(f"{shown}: a SavedModel folder without its variables/variables.index; hand in the whole "
                        "folder")
    _, shapes = open_checkpoint(Path(folder) / "variables" / "variables", shown)
    model_size.check_stored(_model_values(shapes), shown)
    return version


def load_saved_model(folder, shown=None):
    """(A Keras model computing what the SavedModel's serving signature computes, through keras.layers.TFSMLayer,
    after check_saved_model, its one input shaped as the signature says; the TensorFlow version that wrote it)."""
    import keras

    shown = shown or folder
    if keras.backend.backend() != "tensorflow":
        raise PairError(f"{shown}: a TensorFlow SavedModel folder, which Keras runs on its TensorFlow backend only "
                        f"(this is {keras.backend.backend()}: KERAS_BACKEND=tensorflow on Python 3.11-3.13); or "
                        f"{RESAVE}")
    version = check_saved_model(folder, shown)
    try:
        layer = keras.layers.TFSMLayer(str(folder), call_endpoint="serving_default")
        signature = layer._reloaded_obj.signatures["serving_default"]
        _, inputs = signature.structured_input_signature
    except Exception as error:
        raise PairError(f"{shown}: TensorFlow cannot load this SavedModel ({short_error(error)}); {RESAVE}") from None
    if len(inputs) != 1:
        raise PairError(f"{shown}: its serving signature takes {len(inputs)} inputs, not one MNIST digit")
    (input_name, spec), = inputs.items()
    outputs = signature.structured_outputs
    if len(outputs) != 1:
        raise PairError(f"{shown}: its serving signature gives {len(outputs)} outputs ({', '.join(outputs)}), "
                        "not one")
    (output_name,) = outputs
    image = keras.Input(batch_shape=tuple(spec.shape), name=input_name, dtype=spec.dtype.name)
    result = layer(image)  # the flat signature: its one tensor, by position
    output = result[output_name] if isinstance(result, dict) else result
    return keras.Model(image, output, name="saved_model"), version


def _model_values(shapes):
    """The values a checkpoint's {key: shape} stores for the model: its optimizer's and its object graph aside."""
    return sum(math.prod(shape) for key, shape in shapes.items() if not (
        key.startswith("optimizer/") or ".OPTIMIZER_SLOT" in key or key == "_CHECKPOINTABLE_OBJECT_GRAPH"))


def open_checkpoint(prefix, shown=None):
    """(TensorFlow's reader, {key: shape}) of a checkpoint (prefix: the path without .index); the shapes come from
    its index only, no value read."""
    tf = tensorflow_or_refuse(shown or prefix, "a TensorFlow checkpoint")
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        return reader, {key: tuple(shape) for key, shape in reader.get_variable_to_shape_map().items()}
    except Exception as error:
        raise PairError(f"{shown or prefix}: not a readable TensorFlow checkpoint "
                        f"({short_error(error) or type(error).__name__}); {RESAVE}") from None


CHECKPOINT_NAMES = {"DepthwiseConv2D": {"kernel": "depthwise_kernel"}}  # Keras 3 name: what tf.keras 2 called it


def load_checkpoint_weights(model, index_path, json_name):
    """Set the weights of model (built from the JSON beside it) from the tf.keras 2 checkpoint index_path
    (NAME.index): its n-th layer with weights is layer_with_weights-n there, each variable under its attribute
    name; every shape is compared with the model's before any value is read."""
    reader, shapes = open_checkpoint(str(index_path)[: -len(".index")], index_path)
    model_size.check_stored(_model_values(shapes), index_path)
    layers = [layer for layer in model.layers if layer.weights]
    stored_layers = {key.split("/")[0] for key in shapes if key.startswith("layer_with_weights-")}
    if len(stored_layers) != len(layers):
        raise PairError(f"{index_path}: {len(stored_layers)} layers with weights in the checkpoint, {len(layers)} in "
                        f"{json_name}: they do not belong together; hand in the pair saved together")
    keys = []
    for number, layer in enumerate(layers):
        renames = CHECKPOINT_NAMES.get(type(layer).__name__, {})
        for weight in layer.weights:
            name = weight.name.split("/")[-1]
            key = f"layer_with_weights-{number}/{renames.get(name, name)}/.ATTRIBUTES/VARIABLE_VALUE"
            if key not in shapes or shapes[key] != tuple(weight.shape):
                stored = shapes.get(key, "none")
                raise PairError(f"{index_path}: layer {layer.name}'s {name} is {stored} in the checkpoint, "
                                f"{tuple(weight.shape)} in {json_name}: they do not belong together; hand in the "
                                "pair saved together")
            keys.append(key)
    try:
        values = [reader.get_tensor(key) for key in keys]
    except Exception as error:
        raise PairError(f"{index_path}: damaged ({short_error(error) or type(error).__name__}); {RESAVE}") from None
    position = 0
    for layer in layers:
        layer.set_weights(values[position: position + len(layer.weights)])
        position += len(layer.weights)
