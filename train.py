"""Train one model of the lab sheets with its sheet recipe, then save it.

    python train.py --model large

prints Keras's per-epoch log (the test set is the validation data, as in the
INSAT sheet), then the sheet's two lines "Model score" and "Model error rate"
(for the chest X-rays, then precision, recall, F1, ROC AUC and the confusion
matrix), and writes under --out (default results/):
    models/<run>.json, models/<run>.weights.h5   the pair (see persistence.py)
    models/<run>.history.json, .history.csv      per-epoch metrics and seconds (see history.py)
where <run> is the model name, plus "_seed<N>" when --seed is not 7.

Read Settings.of first (what a run is given, checked), then train_and_evaluate: model, data, model.fit, test,
save.
"""

import contextlib
import dataclasses
import json
import os
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

import cli  # first of the project's modules: it chooses the Keras backend and loads it with native lines filtered
import backend
import data
import history
import metrics
import models
import persistence
from cli import UsageError
from history import DEFAULT_OUT, DEFAULT_SEED

import keras  # noqa: E402  (after cli, see above)

PRECISIONS = {"fp32": "float32", "bf16": "mixed_bfloat16"}
# At most this many batches per call of Keras's compiled training step: the same arithmetic with fewer trips
# through Python between batches (timed in docs/speed.md). Progress bars and on_batch_end callbacks then update once
# per call. Not under --distribute: Keras 3.15's multi-step call fails inside TensorFlow's MirroredStrategy.
STEPS_PER_CALL = 50
# What a --resume must share with the interrupted run: all that decides its numbers.
RESUME_KEYS = ("model", "seed", "epochs", "batch_size", "normalize", "learning_rate", "precision", "slice_size",
               "train_images", "test_images", "data_dir")


@dataclass(frozen=True)
class Settings:
    """Everything that decides a training run: its recipe's values with the flags' overrides, and where it runs.

    Build it with Settings.of, which fills in the recipe and checks every value (UsageError for what cannot work);
    the run's history records it as it is, plus its training time. From Python, for instance in a notebook:

        import train
        result = train.train_and_evaluate(train.Settings.of("large", epochs=3, seed=8))
    """

    model: str
    seed: int
    epochs: int
    batch_size: int  # the global batch: --batch-size times the replicas under --distribute
    normalize: bool  # pixels /255
    optimizer: str
    learning_rate: Optional[float]  # None: Keras's default for the optimizer; with a schedule: its peak
    input_kind: str  # image, flat, hog, xray
    validation: str  # test, holdout or none; the chest X-rays: val (the tree's val/ folder) or test
    train_images: int
    test_images: int
    train_limit: Optional[int]
    test_limit: Optional[int]
    data_dir: Optional[str]  # the chest X-ray tree
    compute_data_format: Optional[str]  # None: no convolution
    precision: str
    slice_size: Optional[int]  # None: whole batches
    steps_per_call: int
    device: str  # where it trains: cpu or gpu
    replicas: int
    resume: bool
    machine: str
    versions: dict

    @classmethod
    def of(cls, name, *, seed=DEFAULT_SEED, epochs=None, batch_size=None, normalize=None, learning_rate=None,
           precision="fp32", slice_size=None, device="auto", distribute=False, data_dir=None, train_limit=None,
           test_limit=None, resume=False, steps_per_call=STEPS_PER_CALL):
        """The settings of a run of recipe `name`; the other arguments override the recipe (None: the recipe's).

        train_limit / test_limit keep only the first MNIST images (quick trials, tests). precision "bf16"
        computes in bfloat16 and still saves float32 weights. slice_size: compute each batch's gradient over
        slices of this many images, one optimizer step per batch. device: auto, cpu or gpu. distribute: train
        data-parallel on every GPU (backend.replicas_scope), batch_size per replica. resume: continue from the
        run's checkpoint. steps_per_call: at most this many batches per compiled Keras call.
        """
        if name not in models.MODELS:
            raise UsageError(f"--model {name}: unknown; choose one of: {', '.join(models.MODELS)}")
        recipe = models.MODELS[name]
        epochs = recipe.epochs if epochs is None else epochs
        batch_size = recipe.batch_size if batch_size is None else batch_size
        if epochs < 1 or batch_size < 1:
            raise UsageError("--epochs and --batch-size must be at least 1")
        if learning_rate is not None and not learning_rate > 0:
            raise UsageError(f"--learning-rate {learning_rate}: give a positive number, e.g. 0.001")
        if precision not in PRECISIONS:
            raise UsageError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
        if slice_size is not None and slice_size < 0:
            raise UsageError(f"--slice-size {slice_size}: give a number of images, or 0 for whole batches")
        validation = recipe.validation
        if recipe.input_kind == "xray":
            if data_dir is None:
                raise UsageError(f"--model {name} needs --data-dir DIR; {data.XRAY_LAYOUT}")
            train_images, test_images = data.count_xrays(data_dir)
            # the tree's val/ folder, as the ARN notebook validates on; without one, the test images, as the sheets
            validation = "val" if "val" in data.xray_split_dirs(data_dir) else "test"
        else:
            train_images = data.MNIST_TRAIN_IMAGES - (data.HOLDOUT_IMAGES if recipe.validation == "holdout" else 0)
            train_images = min(train_limit or train_images, train_images)
            test_images = min(test_limit or data.MNIST_TEST_IMAGES, data.MNIST_TEST_IMAGES)
        slice_size = slice_size if slice_size and slice_size < batch_size else None
        if slice_size:  # Keras averages the slices' gradients: equal slices of whole batches
            if distribute or recipe.input_kind == "xray":
                raise UsageError("--slice-size works for the MNIST recipes, without --distribute; drop one of them")
            if batch_size % slice_size or train_images % batch_size:
                raise UsageError(f"--slice-size {slice_size}: slices must split every batch evenly: choose a "
                                 f"divisor of the batch size {batch_size}, and a --train-limit that is a multiple "
                                 f"of it ({train_images:,} images now)")
            if recipe.builder_kwargs.get("batchnorm"):
                raise UsageError(f"--slice-size: {name} has BatchNormalization, whose statistics slicing would "
                                 "change; train it in whole batches")
        device = backend.resolve_device(device)
        replicas = backend.replica_count(device) if distribute else 1
        batch_size *= replicas
        steps_per_epoch = -(-train_images // (slice_size or batch_size))
        several = backend.steps_per_call_allowed() and not distribute
        return cls(model=name, seed=seed, epochs=epochs, batch_size=batch_size,
                   normalize=recipe.normalize if normalize is None else normalize, optimizer=recipe.optimizer,
                   learning_rate=recipe.learning_rate if learning_rate is None else learning_rate,
                   input_kind=recipe.input_kind, validation=validation, train_images=train_images,
                   test_images=test_images, train_limit=train_limit, test_limit=test_limit,
                   data_dir=str(data_dir) if data_dir else None,
                   compute_data_format=None if recipe.data_format is None else models.COMPUTE_DATA_FORMAT,
                   precision=precision, slice_size=slice_size,
                   steps_per_call=steps_per_execution(steps_per_epoch, steps_per_call) if several else 1,
                   device=device, replicas=replicas, resume=resume, machine=history.machine_description(),
                   versions=backend.versions())

    @property
    def recipe(self):
        return models.MODELS[self.model]

    @property
    def batches_per_epoch(self):
        return -(-self.train_images // self.batch_size)


def train_and_evaluate(settings, out=DEFAULT_OUT, verbose="auto", callbacks=()):
    """Train a run (Settings.of(...)), test it, save its pair and history under out/models/.

    After every epoch the run's state goes to out/checkpoints/<run>.npz; settings.resume continues from it, and
    ends with the weights an uninterrupted run would have. verbose: Keras's (auto: a progress bar on a terminal,
    one line per epoch otherwise). Returns a dict: run, model (in the sheet's layout), history, test_loss,
    test_accuracy, error_rate, filename, train_seconds, config (the history's), metrics (pneumonia's, else None).
    """
    filename = Path(out) / "models" / history.run_name(settings.model, settings.seed)
    check_writable(filename.parent)
    # Same seed, same machine: bit-identical weights (seeded init, shuffling and dropout; deterministic kernels).
    keras.utils.set_random_seed(settings.seed)
    backend.enable_determinism()
    parallel = backend.replicas_scope(settings.device) if settings.replicas > 1 else contextlib.nullcontext()
    with backend.on_device(settings.device), parallel:
        prepared = PREPARE[settings.input_kind](settings)
        model = build_model(settings)
        checkpoint = Checkpoint(Path(out) / "checkpoints" / f"{filename.name}.npz", settings)
        epochs_log = checkpoint.restore(model) if settings.resume else []
        resumed_at = len(epochs_log) if settings.resume else None
        if settings.resume:
            print(f"Resuming {filename.name} after epoch {resumed_at}/{settings.epochs} from {checkpoint.path}",
                  flush=True)
        model.steps_per_execution = settings.steps_per_call
        model.fit(**prepared.fit_arguments(first_epoch=len(epochs_log)), epochs=settings.epochs,
                  callbacks=[keras.callbacks.TerminateOnNaN(), EpochRecorder(epochs_log, checkpoint), *callbacks],
                  verbose=(1 if sys.stdout.isatty() else 2) if verbose == "auto" else verbose)
        if len(epochs_log) < settings.epochs:
            kept = f"; the last good epoch ({len(epochs_log)}) is kept in {checkpoint.path}" if epochs_log else ""
            raise UsageError(f"the loss became NaN or infinite in epoch {len(epochs_log) + 1}{kept}; nothing was "
                             "saved. Normalise the inputs (drop --no-normalize) or lower the learning rate")
        test_loss, test_accuracy, extra_metrics = prepared.test(model)  # prints the sheet's two lines
    saved = models.relayout(model, settings.recipe.data_format, float32=True)  # the sheet's layout, float32
    persistence.save_keras_model(saved, filename)
    config = {**dataclasses.asdict(settings), "train_seconds": round(sum(row["seconds"] for row in epochs_log), 2),
              "resumed_at_epoch": resumed_at}
    test = {"loss": test_loss, "accuracy": test_accuracy, "error_rate": 100 - test_accuracy * 100,
            **({"metrics": extra_metrics} if extra_metrics else {})}
    history.write_history(filename, config, epochs_log, test)
    checkpoint.delete()
    return {"run": filename.name, "model": saved, "history": epochs_log, "test_loss": test_loss,
            "test_accuracy": test_accuracy, "error_rate": test["error_rate"], "filename": filename,
            "train_seconds": config["train_seconds"], "config": config, "metrics": extra_metrics}


# ----------------------------------------------------------------------------
# The output directory, the model


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


def build_model(settings):
    """The recipe's compiled model, in the layout and precision it computes in (the global policy restored).

    With slices, Keras's optimizer accumulates the gradients of batch_size / slice_size steps of one slice each and
    applies their mean once: the whole batch's mean gradient, one optimizer step per batch, as the sheets train;
    only the order of the float additions differs, and each Dropout layer draws its masks slice by slice.
    """
    accumulate = settings.batch_size // settings.slice_size if settings.slice_size else None
    keras.mixed_precision.set_global_policy(PRECISIONS[settings.precision])
    try:
        model = models.build_model(settings.model, data_format=settings.compute_data_format,
                                   total_steps=settings.epochs * settings.batches_per_epoch,  # for a schedule
                                   learning_rate=settings.learning_rate, gradient_accumulation_steps=accumulate)
    finally:
        keras.mixed_precision.set_global_policy("float32")  # later models (and the saved one) are float32
    return model


def steps_per_execution(steps_per_epoch, most=STEPS_PER_CALL):
    """The largest divisor of steps_per_epoch up to `most`.

    Keras runs whole calls: one that crossed the end of an epoch of our one-stream-for-all-epochs
    data would move batches into the next epoch (the epoch's log and checkpoint would be wrong).
    """
    return max(d for d in range(1, min(most, steps_per_epoch) + 1) if steps_per_epoch % d == 0)


# ----------------------------------------------------------------------------
# Data: one function per kind of input, each returning what model.fit and the final test need


@dataclass
class Prepared:
    """A run's data: model.fit's arguments from a given first epoch, and the test that prints the sheet's lines."""

    fit_arguments: Callable[..., dict]  # first_epoch -> model.fit's keyword arguments
    test: Callable  # model -> (test loss, test accuracy, extra metrics or None)

    @classmethod
    def of(cls, settings, training, validation, test):
        """training: arrays indexed alike (inputs, labels[, sample weights]), each epoch in data.epoch_order, in
        batches, or in slices of slice_size images when the run has slices; validation: (inputs, labels) or None."""
        size, images = settings.slice_size or settings.batch_size, len(training[0])

        def fit_arguments(first_epoch):
            def orders():
                return (data.epoch_order(images, settings.seed, epoch) for epoch in range(first_epoch, settings.epochs))

            return {"x": backend.training_data(training, size, orders), "steps_per_epoch": -(-images // size),
                    "initial_epoch": first_epoch, "validation_data": validation,
                    "validation_batch_size": settings.batch_size if validation else None, "shuffle": False}

        return cls(fit_arguments, test)


def prepare_mnist(settings):
    """get_data_mnist as the recipe prepares it (images, flat rows or HOG features), in the compute layout.

    Validation: the test set, as the INSAT sheet does (it decides nothing: it is only watched); for recipes
    whose choices are made on data (validation="holdout"), the last 5,000 training images; "none": all 60,000
    training images are trained on and nothing is validated (once every choice is made).
    """
    (X_train, y_train), (X_test, y_test), _ = data.get_data_mnist(settings.normalize)
    if settings.validation == "holdout":
        (X_train, y_train), (X_valid, y_valid) = data.holdout_split(X_train, y_train)
    X_train, y_train = X_train[:settings.train_images], y_train[:settings.train_images]
    X_test, y_test = X_test[:settings.test_images], y_test[:settings.test_images]

    def prepare(images):
        return data.prepare_inputs(images, settings.input_kind, settings.compute_data_format,
                                   **settings.recipe.input_options)

    x_train, x_test = prepare(X_train), prepare(X_test)
    if settings.validation == "holdout":
        validation = (prepare(X_valid[:settings.test_limit]), y_valid[:settings.test_limit])
    else:
        validation = (x_test, y_test) if settings.validation == "test" else None
    return Prepared.of(settings, (x_train, y_train), validation,
                       lambda model: (*metrics.print_model_error_rate(model, x_test, y_test), None))


def prepare_xray(settings):
    """The chest X-ray tree as arrays; class weights from the training counts, as the ARN notebook does."""
    splits = data.load_xrays(settings.data_dir)
    (x_train, y_train), (x_test, y_test) = splits["train"], splits["test"]
    stored_as = data.xray_storage([path for path, _ in data.xray_files(settings.data_dir)[0]["test"]])
    counts = [int(np.sum(y_train == label)) for label in (0, 1)]
    weights = np.array([data.class_weights(counts)[int(label)] for label in y_train[:, 0]], dtype=np.float32)

    def test(model):  # the sheet's two lines, then the scores a student reports
        test_loss, test_accuracy = metrics.print_model_error_rate(model, x_test, y_test)
        scores = metrics.xray_metrics(model, x_test, y_test)
        metrics.print_xray_metrics(scores)
        return test_loss, test_accuracy, {**scores, "test_images_stored_as": stored_as}  # in the history

    return Prepared.of(settings, (x_train, y_train, weights), splits[settings.validation], test)


PREPARE = {"image": prepare_mnist, "flat": prepare_mnist, "hog": prepare_mnist, "xray": prepare_xray}


# ----------------------------------------------------------------------------
# During training: the epoch record, checkpoints


class EpochRecorder(keras.callbacks.Callback):
    """After every epoch: its metrics and seconds into epochs_log, then the run's state into the checkpoint."""

    def __init__(self, epochs_log, checkpoint):
        super().__init__()
        self.epochs_log, self.checkpoint = epochs_log, checkpoint

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.started
        if not all(np.isfinite(value) for value in logs.values()):
            return  # TerminateOnNaN stops the run; the last checkpoint stays the last good epoch
        self.epochs_log.append({"epoch": epoch + 1, **{key: float(value) for key, value in logs.items()},
                                "seconds": round(seconds, 3)})
        self.checkpoint.save(self.model, self.epochs_log)


class Checkpoint:
    """The state of a run after its last finished epoch: every variable of the model (weights, random-seed
    states) and of its optimizer, the epochs' history, and the settings (RESUME_KEYS) it was started with."""

    def __init__(self, path, settings):
        self.path = Path(path)
        self.settings = {key: getattr(settings, key) for key in RESUME_KEYS}

    def save(self, model, epochs_log):
        arrays = {f"model_{i}": v.numpy() for i, v in enumerate(model.variables)}
        arrays.update({f"optimizer_{i}": v.numpy() for i, v in enumerate(model.optimizer.variables)})
        arrays.update({f"random_{key}": value for key, value in backend.random_state().items()})
        state = json.dumps({"settings": self.settings, "epochs": epochs_log})
        data.write_npz_atomically(self.path, compress=False, state=np.array(state), **arrays)

    def restore(self, model):
        """Load the state into model (its optimizer built first); returns the epochs' history."""
        if not self.path.is_file():
            raise UsageError(f"--resume: no checkpoint {self.path}; train without --resume")
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
                backend.set_random_state({key[len("random_"):]: f[key] for key in f.files if key.startswith("random_")})
        except UsageError:
            raise
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            raise UsageError(f"--resume: {self.path} is damaged ({error}); train without --resume") from None
        return state["epochs"]

    def delete(self):
        self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()  # only if no other run's checkpoint is there


# ----------------------------------------------------------------------------
# Command line


def make_parser():
    """The command line's parser (the docs test reads its flags)."""
    names = list(models.MODELS)
    parser = cli.OneLineErrorParser(description="Train a model of the INSAT TP3 / HEIG-VD ARN PW4 lab sheets with "
                                                "its sheet recipe; flags override the recipe.")
    parser.add_argument("--model", required=True, metavar="NAME",
                        help=f"which recipe to train, one of: {', '.join(names)}; several separated by commas; "
                             "'all': every MNIST recipe of both sheets (and pneumonia when --data-dir is given); "
                             "'ladder': the rungs beyond the sheets (after the sheet's small)")
    parser.add_argument("--epochs", type=int, help="epochs (default: the recipe's, 10 for the INSAT CNNs)")
    parser.add_argument("--batch-size", type=int, help="batch size (default: the recipe's, 200 for the INSAT CNNs)")
    parser.add_argument("--learning-rate", type=float, metavar="LR",
                        help="the optimizer's learning rate, the peak of the recipe's schedule if it has one "
                             "(default: the recipe's; Keras's default for the sheets' recipes)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    parser.add_argument("--seeds", metavar="S1,S2,...",
                        help="train once per seed (e.g. 7,8,9) so evaluate.py can report the seed spread; "
                             "replaces --seed")
    parser.add_argument("--no-normalize", dest="normalize", action="store_const", const=False, default=None,
                        help="feed pixels 0..255 instead of 0..1 (default: the recipe's choice)")
    parser.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                        help="auto uses a GPU when the Keras backend sees one")
    parser.add_argument("--precision", choices=list(PRECISIONS), default="fp32",
                        help="bf16: compute in bfloat16 (CPUs with AVX-512 BF16 or AMX, GPU tensor cores); "
                             "the saved pair stays float32")
    parser.add_argument("--slice-size", type=int, metavar="N",
                        help="compute each batch's gradient over slices of N images (N divides the batch size), "
                             "then take one optimizer step (same mean gradient, less memory; default: whole batches)")
    parser.add_argument("--distribute", action="store_true",
                        help="data-parallel over all visible GPUs (TensorFlow or JAX backend); --batch-size is "
                             "then per GPU (global batch = batch size x GPUs)")
    parser.add_argument("--data-dir", metavar="DIR", help="chest X-ray tree for --model pneumonia "
                                                           "(train/, val/, test/ with NORMAL/ and PNEUMONIA/)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output directory (pairs go to OUT/models/)")
    parser.add_argument("--train-limit", type=int, metavar="N", help="train on the first N images only (quick trials)")
    parser.add_argument("--test-limit", type=int, metavar="N", help="evaluate on the first N test images only")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from its last finished epoch (same flags as before)")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress output")
    return parser


def parse_args(argv=None):
    parser = make_parser()
    names = list(models.MODELS)
    args = parser.parse_args(argv)
    if args.model == "all":
        args.models = [n for n in names if models.MODELS[n].sheet != models.BEYOND
                       and (models.MODELS[n].input_kind != "xray" or args.data_dir)]
    elif args.model == "ladder":
        args.models = models.LADDER[1:]
    else:
        args.models = args.model.split(",")
    for name in args.models:
        if name not in models.MODELS:
            parser.error(f"argument --model: unknown model {name!r}; choose one of: {', '.join(names)}, all, ladder")
    try:
        args.seeds = [int(seed) for seed in args.seeds.split(",")] if args.seeds else [args.seed]
    except ValueError:
        parser.error(f"argument --seeds: {args.seeds!r} is not a comma-separated list of integers")
    return args


def run(args):
    started = time.perf_counter()
    overrides = {key: getattr(args, key) for key in ("epochs", "batch_size", "normalize", "learning_rate", "precision",
                                                      "slice_size", "device", "distribute", "data_dir", "train_limit",
                                                      "test_limit", "resume")}
    runs = [Settings.of(name, seed=seed, **overrides) for name in args.models for seed in args.seeds]  # all checked
    print(backend.describe(runs[0].device), flush=True)
    for settings in runs:
        if len(runs) > 1:
            print(f"== {history.run_name(settings.model, settings.seed)}", flush=True)
        train_and_evaluate(settings, out=args.out, verbose=0 if args.quiet else "auto")
    if len(runs) > 1:
        print(f"Trained {len(runs)} runs in {time.perf_counter() - started:.0f} s; "
              f"now: python evaluate.py {args.out if args.out != DEFAULT_OUT else ''}".rstrip())
    return 0


def main(argv=None):
    return cli.main("train.py", run, parse_args(argv),
                    on_interrupt="interrupted; earlier results are untouched. Continue from the last finished epoch "
                                 "with the same command plus --resume",
                    after_os_error="; nothing was saved, earlier results are untouched")


if __name__ == "__main__":
    sys.exit(main())
