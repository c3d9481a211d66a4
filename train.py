"""Train one model of the lab sheets with its sheet recipe, then save it.

    python train.py --model large

prints Keras's per-epoch log (the test set is the validation data, as in the
INSAT sheet), then the sheet's two lines "Model score" and "Model error rate",
and writes under --out (default results/):
    models/<run>.json, models/<run>.weights.h5   the pair (see persistence.py)
    models/<run>.history.json, .history.csv      per-epoch metrics and seconds
where <run> is the model name, plus "_seed<N>" when --seed is not 7.
"""

import argparse
import contextlib
import csv
import json
import os
import platform
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

import data
import models
import persistence

DEFAULT_SEED = 7  # the sheet's seed
DEFAULT_OUT = "results"


class UsageError(ValueError):
    """A flag or path the user gave cannot work; the message says what to do."""


def run_name(name, seed=DEFAULT_SEED):
    return name if seed == DEFAULT_SEED else f"{name}_seed{seed}"


def configure_device(device="auto"):
    """Hide or require the GPU before TensorFlow starts; returns 'gpu' or 'cpu'."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if device == "cpu" and gpus:
        tf.config.set_visible_devices([], "GPU")
        return "cpu"
    if device == "gpu" and not gpus:
        raise UsageError("--device gpu: TensorFlow sees no GPU; install GPU support "
                         "(pip install 'tensorflow[and-cuda]==2.21.0') or use --device cpu")
    return "gpu" if gpus and device != "cpu" else "cpu"


PRECISIONS = {"fp32": "float32", "bf16": "mixed_bfloat16"}
# At most this many batches per call of Keras's compiled training step: the same arithmetic with fewer trips
# through Python between batches; measured 8-15% faster for the medium CNN (results/BENCH.md). Progress bars
# and on_batch_end callbacks then update once per call. Not under --distribute: Keras 3.15's multi-step
# call fails inside MirroredStrategy (an unfed placeholder in its while loop).
STEPS_PER_EXECUTION = 50


def steps_per_execution(steps_per_epoch, most=STEPS_PER_EXECUTION):
    """The largest divisor of steps_per_epoch up to `most`.

    Keras runs whole calls: one that crossed the end of an epoch of our one-pipeline-for-all-epochs
    data would move batches into the next epoch (the epoch's log and checkpoint would be wrong).
    """
    return max(d for d in range(1, min(most, steps_per_epoch) + 1) if steps_per_epoch % d == 0)


def distribution_strategy():
    """MirroredStrategy over every visible GPU, or over every logical CPU device when there is no GPU."""
    import tensorflow as tf

    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy(devices=[device.name for device in devices])


def check_writable(directory):
    """Fail before training, not after, when the results cannot be written."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise UsageError(f"--out {directory.parent if directory.name == 'models' else directory}: "
                         f"cannot write there ({error.strerror}); choose another directory") from None


def epoch_batches(x, y, batch_size, seed, first_epoch, epochs):
    """Training batches for epochs first_epoch .. epochs-1, as one tf.data pipeline.

    Epoch e visits the images in an order that depends on (seed, e) only, so a
    run resumed at epoch e sees exactly the batches an uninterrupted run sees.
    """
    import tensorflow as tf

    x_all, y_all = tf.constant(x), tf.constant(y)

    def one_epoch(epoch):
        order = tf.random.experimental.stateless_shuffle(tf.range(len(x), dtype=tf.int64),
                                                         seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    batches = tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch)
    return batches.map(lambda index: (tf.gather(x_all, index), tf.gather(y_all, index))).prefetch(2)


def slice_train_step(model, slice_size):
    """Make model.fit compute each batch's gradient over slices of slice_size images, then step once.

    The gradient is the batch's mean gradient, as in Keras's own train_step (each slice's mean
    loss weighs by its share of the batch), so the recipe is unchanged: batch 200 is still one
    optimizer step on the mean over 200 images. Only the order of the float additions differs,
    and each Dropout layer draws its masks slice by slice. (None of the models has BatchNormalization,
    whose batch statistics slicing would change.) What it buys: the activations of one slice, not of
    the whole batch, in memory at a time; results/BENCH.md times it.
    """
    import keras
    import tensorflow as tf

    if any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers):
        raise ValueError(f"{model.name}: slicing a batch would change BatchNormalization's statistics")
    output_dtype = tf.as_dtype(model.outputs[0].dtype)
    output_shape = tf.TensorShape([None]).concatenate(model.output_shape[1:])

    def train_step(batch):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        images = tf.shape(x)[0]
        slices = (images + slice_size - 1) // slice_size
        weights = model.trainable_weights

        def one_slice(i, gradients, loss, predictions):
            part = slice(i * slice_size, (i + 1) * slice_size)
            x_part, y_part = x[part], y[part]
            weight_part = None if sample_weight is None else sample_weight[part]
            with tf.GradientTape() as tape:
                y_pred = model(x_part, training=True)
                part_loss = model.compute_loss(x_part, y_part, y_pred, weight_part, training=True)
                part_loss *= tf.cast(tf.shape(x_part)[0] / images, part_loss.dtype)
            part_gradients = tape.gradient(model.optimizer.scale_loss(part_loss), weights)
            return (i + 1, [g + p for g, p in zip(gradients, part_gradients)], loss + part_loss,
                    predictions.write(i, y_pred))

        # parallel_iterations=1: one slice at a time, else the slices' activations would share the cache again
        _, gradients, loss, predictions = tf.while_loop(
            lambda i, *_: i < slices, one_slice,
            (tf.constant(0), [tf.zeros_like(w) for w in weights], tf.constant(0.0),
             tf.TensorArray(output_dtype, size=slices, infer_shape=False, element_shape=output_shape)),
            parallel_iterations=1)
        model.optimizer.apply_gradients(zip(gradients, weights))
        model._loss_tracker.update_state(loss, sample_weight=images)  # what Keras's train_step does; no public API
        return model.compute_metrics(x, y, predictions.concat(), sample_weight=sample_weight)

    model.train_step = train_step
    return model


class Checkpoint:
    """The state of a run after its last finished epoch: every variable of the model (weights, random-seed
    states) and of its optimizer, the epochs' history, and the settings it was started with."""

    def __init__(self, path, settings):
        self.path, self.settings = Path(path), settings

    def save(self, model, epochs_log):
        arrays = {f"model_{i}": v.numpy() for i, v in enumerate(model.variables)}
        arrays.update({f"optimizer_{i}": v.numpy() for i, v in enumerate(model.optimizer.variables)})
        state = json.dumps({"settings": self.settings, "epochs": epochs_log})
        data.write_npz_atomically(self.path, compress=False, state=np.array(state), **arrays)

    def restore(self, model):
        """Load the state into model (its optimizer built first); returns the epochs' history."""
        try:
            with np.load(self.path, allow_pickle=False) as f:
                state = json.loads(str(f["state"]))
                if state["settings"] != self.settings:
                    different = sorted(k for k in self.settings if state["settings"].get(k) != self.settings[k])
                    raise UsageError(f"--resume: {self.path} was made with other settings ({', '.join(different)}); "
                                     "use the same flags, or train without --resume to start again")
                model.optimizer.build(model.trainable_variables)
                for prefix, variables in (("model", model.variables), ("optimizer", model.optimizer.variables)):
                    for i, variable in enumerate(variables):
                        variable.assign(f[f"{prefix}_{i}"])
        except UsageError:
            raise
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            raise UsageError(f"--resume: {self.path} is damaged ({error}); train without --resume") from None
        return state["epochs"]

    def delete(self):
        self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()  # only if no other run's checkpoint is there


def train_and_evaluate(name, out=DEFAULT_OUT, epochs=None, batch_size=None, seed=DEFAULT_SEED, normalize=None,
                       device="auto", data_format=None, data_dir=None, train_limit=None, test_limit=None,
                       resume=False, precision="fp32", distribute=False, slice_size=None, verbose="auto",
                       callbacks=()):
    """Train recipe `name` (overrides: epochs, batch_size, normalize), evaluate it on the test set, save it.

    data_dir: the chest X-ray tree, for the pneumonia recipe only.
    train_limit / test_limit keep only the first MNIST images (quick trials, tests).
    After every epoch the run's state goes to OUT/checkpoints/<run>.npz; resume=True
    continues from it, and ends with the weights an uninterrupted run would have.
    precision "bf16" computes in bfloat16 (Keras's mixed_bfloat16: AMX on recent
    Intel CPUs, tensor cores on GPUs) and still saves float32 weights.
    distribute=True trains under tf.distribute.MirroredStrategy on every visible
    GPU (or every logical CPU without one); batch_size is per replica, so the
    global batch is batch_size x replicas.
    slice_size: compute each batch's gradient over slices of this many images
    (see slice_train_step); None or 0: whole batches, as the sheets train.
    Returns a dict: run, model (in the sheet's layout), history, test_loss,
    test_accuracy, error_rate, filename, train_seconds (and metrics for pneumonia).
    """
    import keras
    import tensorflow as tf

    from evaluate import print_model_error_rate, xray_metrics

    recipe = models.MODELS[name]
    epochs = recipe.epochs if epochs is None else epochs
    batch_size = recipe.batch_size if batch_size is None else batch_size
    normalize = recipe.normalize if normalize is None else normalize
    if epochs < 1 or batch_size < 1:
        raise UsageError("--epochs and --batch-size must be at least 1")
    if recipe.input_kind == "xray" and data_dir is None:
        raise UsageError(f"--model {name} needs --data-dir DIR; {data.XRAY_LAYOUT}")
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
    if slice_size is not None and slice_size < 0:
        raise UsageError(f"--slice-size {slice_size}: give a number of images, or 0 for whole batches")
    if slice_size and distribute:  # slice_train_step is written for one device; nothing tests it under a strategy
        raise UsageError("--slice-size works without --distribute; drop one of them")
    if recipe.input_kind == "xray" and resume:
        raise UsageError("--resume works for the MNIST recipes; train pneumonia again from the start")
    models_dir = Path(out) / "models"
    check_writable(models_dir)
    used_device = configure_device(device)
    if recipe.data_format is not None:
        data_format = data_format or models.COMPUTE_DATA_FORMAT
    slice_size = slice_size if slice_size and slice_size < batch_size else None
    if verbose == "auto":  # the progress bar on a terminal, one line per epoch (like the sheet's log) in a file
        verbose = 1 if sys.stdout.isatty() else 2
    run = run_name(name, seed)
    filename = models_dir / run

    # Same seed, same machine: bit-identical weights (seeded init, shuffling and dropout; deterministic ops).
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    strategy = distribution_strategy() if distribute else None
    if strategy is not None:
        batch_size *= strategy.num_replicas_in_sync
    keras.mixed_precision.set_global_policy(PRECISIONS[precision])
    try:
        with strategy.scope() if strategy else contextlib.nullcontext():
            model = models.build_model(name, data_format=data_format)
    finally:
        keras.mixed_precision.set_global_policy("float32")  # later models (and the saved one) are float32
    if slice_size:
        slice_train_step(model, slice_size)

    metrics, epochs_log, first_epoch = None, [], 0
    if recipe.input_kind == "xray":
        datasets, counts = data.xray_datasets(data_dir, batch_size=batch_size, seed=seed)
        fit_data = {"x": datasets["train"], "validation_data": datasets.get("val", datasets["test"]),
                    "class_weight": data.class_weights(counts), "shuffle": False}  # train is shuffled by tf.data
        train_images, checkpoint = sum(counts), None
        # a finite data set: Keras stops a call at its end
        model.steps_per_execution = 1 if strategy else STEPS_PER_EXECUTION
    else:
        (X_train, y_train), (X_test, y_test), num_classes = data.get_data_mnist(normalize)
        X_train, y_train = X_train[:train_limit], y_train[:train_limit]
        X_test, y_test = X_test[:test_limit], y_test[:test_limit]
        x_train = data.prepare_inputs(X_train, recipe.input_kind, data_format, **recipe.input_options)
        x_test = data.prepare_inputs(X_test, recipe.input_kind, data_format, **recipe.input_options)
        train_images = len(x_train)
        settings = {"model": name, "seed": seed, "epochs": epochs, "batch_size": batch_size, "normalize": normalize,
                    "precision": precision, "slice_size": slice_size, "train_images": train_images,
                    "test_images": len(x_test)}
        checkpoint = Checkpoint(Path(out) / "checkpoints" / f"{run}.npz", settings)
        if resume:
            if not checkpoint.path.is_file():
                raise UsageError(f"--resume: no checkpoint {checkpoint.path}; train without --resume")
            epochs_log = checkpoint.restore(model)
            first_epoch = len(epochs_log)
            print(f"Resuming {run} after epoch {first_epoch}/{epochs} from {checkpoint.path}", flush=True)
        # The sheet validates on the test set: the last val_accuracy is the test accuracy.
        steps_per_epoch = -(-train_images // batch_size)
        model.steps_per_execution = 1 if strategy else steps_per_execution(steps_per_epoch, STEPS_PER_EXECUTION)
        fit_data = {"x": epoch_batches(x_train, y_train, batch_size, seed, first_epoch, epochs),
                    "steps_per_epoch": steps_per_epoch, "initial_epoch": first_epoch,
                    "validation_data": (x_test, y_test), "validation_batch_size": batch_size, "shuffle": False}

    epoch_started = []

    def end_of_epoch(epoch, logs):
        seconds = time.perf_counter() - epoch_started[-1]
        if not all(np.isfinite(value) for value in logs.values()):
            return  # TerminateOnNaN stops the run; the last checkpoint stays the last good epoch
        epochs_log.append({"epoch": epoch + 1, **{key: float(value) for key, value in logs.items()},
                           "seconds": round(seconds, 3)})
        if checkpoint is not None:
            checkpoint.save(model, epochs_log)

    recorder = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: epoch_started.append(time.perf_counter()), on_epoch_end=end_of_epoch)
    model.fit(**fit_data, epochs=epochs, callbacks=[keras.callbacks.TerminateOnNaN(), recorder, *callbacks],
              verbose=verbose)
    if len(epochs_log) < epochs:
        kept = (f"; the last good epoch ({len(epochs_log)}) is kept in {checkpoint.path}"
                if epochs_log and checkpoint else "")
        raise UsageError(f"the loss became NaN or infinite in epoch {len(epochs_log) + 1}{kept}; nothing was saved. "
                         "Normalise the inputs (drop --no-normalize) or lower the learning rate")
    train_seconds = sum(row["seconds"] for row in epochs_log)
    if recipe.input_kind == "xray":
        test_loss, test_accuracy = print_model_error_rate(model, datasets["test"], None)
        metrics = xray_metrics(model, datasets["test"])
    else:
        test_loss, test_accuracy = print_model_error_rate(model, x_test, y_test)

    saved = models.relayout(model, recipe.data_format, float32=True)  # the sheet's layout, float32, in the JSON
    persistence.save_keras_model(saved, filename)
    config = {
        "model": name, "seed": seed, "epochs": epochs, "batch_size": batch_size, "normalize": normalize,
        "optimizer": recipe.optimizer, "input_kind": recipe.input_kind, "train_images": train_images,
        "device": used_device, "compute_data_format": data_format, "precision": precision,
        "slice_size": slice_size,
        "replicas": strategy.num_replicas_in_sync if strategy else 1, "train_seconds": round(train_seconds, 2),
        "resumed_at_epoch": first_epoch or None, "data_dir": str(data_dir) if data_dir else None,
        "machine": machine_description(),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version()},
    }
    test = {"loss": test_loss, "accuracy": test_accuracy, "error_rate": 100 - test_accuracy * 100,
            **({"metrics": metrics} if metrics else {})}
    write_history(filename, config, epochs_log, test)
    if checkpoint is not None:
        checkpoint.delete()
    return {"run": run, "model": saved, "history": epochs_log, "test_loss": test_loss,
            "test_accuracy": test_accuracy, "error_rate": test["error_rate"], "filename": filename,
            "train_seconds": train_seconds, "metrics": metrics}


def write_history(filename, config, epochs_log, test):
    """<filename>.history.json (config, per-epoch metrics, test result) and .history.csv (per epoch)."""
    json_path = Path(f"{filename}.history.json")
    json_path.write_text(json.dumps({"config": config, "epochs": epochs_log, "test": test}, indent=2) + "\n")
    with open(f"{filename}.history.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(epochs_log[0]))
        writer.writeheader()
        writer.writerows(epochs_log)


def read_history(filename):
    """The .history.json written beside a pair, or None."""
    path = Path(f"{filename}.history.json")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def cpu_fields():
    """The first CPU's fields in /proc/cpuinfo ("model name", "flags", "cpu family", ...); {} where there is none."""
    try:
        with open("/proc/cpuinfo") as f:
            first_cpu = f.read().split("\n\n")[0].splitlines()
    except OSError:
        return {}
    pairs = (line.split(":", 1) for line in first_cpu if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def machine_description():
    """CPU model, core count and the vector extensions that matter for speed, for result tables."""
    fields = cpu_fields()
    cpu = fields.get("model name") or platform.processor() or platform.machine()
    flags = set(fields.get("flags", "").split())
    extensions = [name for flag, name in (("avx512f", "AVX-512"), ("avx512_bf16", "AVX-512 BF16"),
                                          ("amx_bf16", "AMX")) if flag in flags]
    return f"{cpu}, {os.cpu_count()} cores" + (f" ({', '.join(extensions)})" if extensions else "")


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse whose errors are one line (not usage + error), exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_args(argv=None):
    names = list(models.MODELS)
    parser = OneLineErrorParser(description="Train a model of the INSAT TP3 / HEIG-VD ARN PW4 lab sheets with "
                                            "its sheet recipe; flags override the recipe.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", required=True, metavar="NAME",
                        help=f"which recipe to train, one of: {', '.join(names)}; several separated by commas; "
                             "or 'all': every MNIST recipe of both sheets (and pneumonia when --data-dir is given)")
    parser.add_argument("--epochs", type=int, help="epochs (default: the recipe's, 10 for the INSAT CNNs)")
    parser.add_argument("--batch-size", type=int, help="batch size (default: the recipe's, 200 for the INSAT CNNs)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    parser.add_argument("--seeds", metavar="S1,S2,...",
                        help="train once per seed (e.g. 7,8,9) so evaluate.py can report the seed spread; "
                             "replaces --seed")
    parser.add_argument("--no-normalize", dest="normalize", action="store_const", const=False, default=None,
                        help="feed pixels 0..255 instead of 0..1 (default: the recipe's choice)")
    parser.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                        help="auto uses a GPU when TensorFlow sees one")
    parser.add_argument("--precision", choices=list(PRECISIONS), default="fp32",
                        help="bf16: compute in bfloat16 (AMX CPUs, GPU tensor cores); the saved pair stays float32")
    parser.add_argument("--slice-size", type=int, metavar="N",
                        help="compute each batch's gradient over slices of N images, then take one optimizer step "
                             "(same mean gradient, less memory; results/BENCH.md times it; default: whole batches)")
    parser.add_argument("--distribute", action="store_true",
                        help="MirroredStrategy over all visible GPUs; --batch-size is then per GPU "
                             "(global batch = batch size x GPUs)")
    parser.add_argument("--data-dir", metavar="DIR", help="chest X-ray tree for --model pneumonia "
                                                           "(train/, val/, test/ with NORMAL/ and PNEUMONIA/)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output directory (pairs go to OUT/models/)")
    parser.add_argument("--train-limit", type=int, metavar="N", help="train on the first N images only (quick trials)")
    parser.add_argument("--test-limit", type=int, metavar="N", help="evaluate on the first N test images only")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from its last finished epoch (same flags as before)")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress output")
    args = parser.parse_args(argv)
    if args.model == "all":
        args.models = [n for n in names if models.MODELS[n].input_kind != "xray" or args.data_dir]
    else:
        args.models = args.model.split(",")
    for name in args.models:
        if name not in models.MODELS:
            parser.error(f"argument --model: unknown model {name!r}; choose one of: {', '.join(names)}, all")
    if args.slice_size is not None and args.slice_size < 0:
        parser.error(f"argument --slice-size: {args.slice_size} is negative; give a number of images, or 0 for "
                     "whole batches")
    try:
        args.seeds = [int(seed) for seed in args.seeds.split(",")] if args.seeds else [args.seed]
    except ValueError:
        parser.error(f"argument --seeds: {args.seeds!r} is not a comma-separated list of integers")
    return args


def main(argv=None):
    args = parse_args(argv)
    with models.native_log_filter():
        return _run(args)


def _run(args):
    started = time.perf_counter()
    try:
        for name in args.models:
            for seed in args.seeds:
                if len(args.models) * len(args.seeds) > 1:
                    print(f"== {run_name(name, seed)}", flush=True)
                train_and_evaluate(name, out=args.out, epochs=args.epochs, batch_size=args.batch_size, seed=seed,
                                   normalize=args.normalize, device=args.device, data_dir=args.data_dir,
                                   train_limit=args.train_limit, test_limit=args.test_limit,
                                   resume=args.resume, precision=args.precision, distribute=args.distribute,
                                   slice_size=args.slice_size,
                                   verbose=0 if args.quiet else "auto")
    except (UsageError, data.DataError, persistence.PairError) as error:
        sys.exit(f"train.py: error: {error}")
    except KeyboardInterrupt:
        sys.exit("train.py: interrupted; earlier results are untouched. Continue from the last finished epoch "
                 "with the same command plus --resume")
    except OSError as error:  # a full disk, a results dir that vanished, ...: earlier pairs are untouched
        where = f"{error.filename}: " if error.filename else ""
        sys.exit(f"train.py: error: {where}{error.strerror or error}; nothing was saved, earlier results are untouched")
    if len(args.models) * len(args.seeds) > 1:
        print(f"Trained {len(args.models) * len(args.seeds)} runs in {time.perf_counter() - started:.0f} s; "
              f"now: python evaluate.py {args.out if args.out != DEFAULT_OUT else ''}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
