"""Train one model of the lab sheets with its sheet's recipe, then save it.

    python train.py --model large

prints Keras's log of each epoch (the test set is the validation data, as in the INSAT sheet), then the sheet's two
lines "Model score" and "Model error rate" (for the chest X-rays, then precision, recall, F1, ROC AUC and the
confusion matrix), and writes under --out (default runs/, which git ignores; `--out results` rewrites the committed
reference):
    models/<run>.json, models/<run>.weights.h5   the pair (persistence.py)
    models/<run>.history.json, .history.csv      per-epoch metrics and seconds
where <run> is the model's name, plus "_seed<N>" when the seed is not the sheet's 7.

train_and_evaluate holds the sheet's steps in order: the seed, the data, the model, model.fit, the error rate, the
save. What the sheet does not need (flags, checkpoints, the batches' order on every backend) is in labtools/.
"""

if __name__ == "__main__":  # run as a script: Keras's backend loaded first, its start-up lines filtered out
    from labtools import console

    console.start("train.py")

from labtools import backend  # isort: skip  (labtools first: it sets KERAS_BACKEND, which Keras reads once)
import dataclasses
import sys
import time
from pathlib import Path

import keras
import numpy as np

import data
import models
import persistence
from evaluate import print_model_error_rate
from labtools import batches, console, history, keras_patches, ladder, layout, runs, scores, xrays
from labtools.errors import UsageError
from labtools.recipes import BEYOND


def settings_for(name, **flags):
    """A run's settings (labtools.runs.Settings): recipe `name`'s values with the flags' overrides, all checked.
    From Python, for instance in a notebook: train_and_evaluate(settings_for("large", epochs=3, seed=8))."""
    if name not in models.MODELS:
        raise UsageError(f"--model {name}: unknown; choose one of: {', '.join(models.MODELS)}")
    return runs.Settings.of(models.MODELS[name], **flags)


def train_and_evaluate(settings, out=history.DEFAULT_OUT, verbose="auto", callbacks=()):
    """Train a run (settings_for(...)), test it, save its pair and history under out/models/.

    After every epoch the run's state goes to out/checkpoints/<run>.npz; settings.resume continues from it, and
    ends with the weights an uninterrupted run would have. verbose: Keras's (auto: a progress bar on a terminal,
    one line per epoch otherwise). Returns a dict: run, model (in the sheet's layout), history, test_loss,
    test_accuracy, error_rate, filename, train_seconds, config (the history's), metrics (pneumonia's, else None).
    """
    recipe = models.MODELS[settings.model]
    filename = Path(out) / "models" / history.run_name(settings.model, settings.seed)
    runs.check_writable(filename.parent)
    # fix random seed for reproducibility: the same weights every run on the same machine (seeded initial weights,
    # batches and dropout; deterministic kernels)
    keras.utils.set_random_seed(settings.seed)
    backend.enable_determinism()
    keras_patches.faster_training()  # JAX's max pooling, PyTorch's layouts: the same numbers, sooner
    with runs.devices(settings):
        (x_train, y_train, sample_weight), validation_data, (x_test, y_test) = load_data(settings)
        model = runs.build_model(settings, recipe)  # computing in channels_last, --precision, --learning-rate
        checkpoint = runs.Checkpoint(Path(out) / "checkpoints" / f"{filename.name}.npz", settings)
        epochs_log = checkpoint.restore(model) if settings.resume else []  # --resume: the epochs already done
        first_epoch = len(epochs_log)
        if settings.resume:
            print(f"Resuming {filename.name} after epoch {first_epoch}/{settings.epochs} from {checkpoint.path}",
                  flush=True)
        batch_size = settings.slice_size or settings.batch_size  # --slice-size: one optimizer step per batch still
        # the sheet: model.fit(X_train, y_train, validation_data=(X_test, y_test), epochs=10, batch_size=200)
        model.fit(
            batches.shuffled_batches(x_train, y_train, sample_weight, batch_size=batch_size, seed=settings.seed,
                                     epochs=range(first_epoch, settings.epochs)),  # the same on every backend
            steps_per_epoch=settings.steps_per_epoch, shuffle=False,
            validation_data=validation_data, validation_batch_size=settings.batch_size,
            epochs=settings.epochs, initial_epoch=first_epoch,
            callbacks=[keras.callbacks.TerminateOnNaN(), runs.EpochRecorder(epochs_log, checkpoint), *callbacks],
            verbose=(1 if sys.stdout.isatty() else 2) if verbose == "auto" else verbose,
        )
        if len(epochs_log) < settings.epochs:
            kept = f"; the last good epoch ({len(epochs_log)}) is kept in {checkpoint.path}" if epochs_log else ""
            raise UsageError(f"the loss became NaN or infinite in epoch {len(epochs_log) + 1}{kept}; nothing was "
                             "saved. Normalise the inputs (drop --no-normalize) or lower the learning rate")
        test_loss, test_accuracy = print_model_error_rate(model, x_test, y_test)
        xray_scores = None
        if settings.input_kind == "xray":  # then the scores a student reports on the radiographs
            xray_scores = {**scores.xray_metrics(model, x_test, y_test),
                           "test_images_stored_as": xrays.test_images_stored_as(settings.data_dir)}
            scores.print_xray_metrics(xray_scores)
    saved = layout.relayout(model, recipe.data_format, float32=True)  # the sheet's channels_first, float32 weights
    persistence.save_keras_model(saved, filename)
    config = {**dataclasses.asdict(settings), "train_seconds": round(sum(row["seconds"] for row in epochs_log), 2),
              "resumed_at_epoch": first_epoch if settings.resume else None}
    test = {"loss": test_loss, "accuracy": test_accuracy, "error_rate": 100 - test_accuracy * 100,
            **({"metrics": xray_scores} if xray_scores else {})}
    history.write_history(filename, config, epochs_log, test)
    checkpoint.delete()
    return {"run": filename.name, "model": saved, "history": epochs_log, "test_loss": test_loss,
            "test_accuracy": test_accuracy, "error_rate": test["error_rate"], "filename": filename,
            "train_seconds": config["train_seconds"], "config": config, "metrics": xray_scores}


def load_data(settings):
    """((x_train, y_train, sample weights or None), validation data or None, (x_test, y_test)): the recipe's data,
    prepared as its model takes it."""
    if settings.input_kind == "xray":  # ARN part 2: the chest X-ray tree, labels NORMAL 0 and PNEUMONIA 1
        splits = xrays.load_xrays(settings.data_dir)
        (x_train, y_train), (x_test, y_test) = splits["train"], splits["test"]
        # as the ARN notebook: each class weighs total / (2 x its count), so the rarer NORMAL counts as much
        counts = [int(np.sum(y_train == label)) for label in (0, 1)]
        weights = np.array([xrays.class_weights(counts)[int(label)] for label in y_train[:, 0]], dtype=np.float32)
        return (x_train, y_train, weights), splits[settings.validation], (x_test, y_test)
    (X_train, y_train), (X_test, y_test), num_classes = data.get_data_mnist(settings.normalize)
    validation_data = None
    if settings.validation == "holdout":  # the ladder: choices made on the last 5,000 training images
        (X_train, y_train), (X_valid, y_valid) = runs.holdout_split(X_train, y_train)
        validation_data = (prepare(X_valid[:settings.test_limit], settings), y_valid[:settings.test_limit])
    X_train, y_train = X_train[:settings.train_images], y_train[:settings.train_images]
    X_test, y_test = X_test[:settings.test_images], y_test[:settings.test_images]
    x_test = prepare(X_test, settings)
    if settings.validation == "test":  # the INSAT sheet: the test set, which decides nothing, is only watched
        validation_data = (x_test, y_test)
    return (prepare(X_train, settings), y_train, None), validation_data, (x_test, y_test)


def prepare(images, settings):
    """get_data_mnist's images as the recipe's model takes them: in its layout, flat rows, or HOG features."""
    recipe = models.MODELS[settings.model]
    return data.prepare_inputs(images, settings.input_kind, settings.compute_data_format, **recipe.input_options)


def make_parser():
    """The command line's parser (the docs test reads its flags)."""
    parser = console.HelpParser(description="Train a model of the INSAT TP3 / HEIG-VD ARN PW4 lab sheets with its "
                                            "sheet recipe; flags override the recipe.")
    parser.add_argument("--model", required=True, metavar="NAME",
                        help=f"which recipe to train, one of: {', '.join(models.MODELS)}; several separated by "
                             "commas; 'all': every MNIST recipe of both sheets (and pneumonia when --data-dir is "
                             "given); 'ladder': the rungs beyond the sheets (after the sheet's small)")
    parser.add_argument("--epochs", type=int, help="epochs (default: the recipe's, 10 for the INSAT CNNs)")
    parser.add_argument("--batch-size", type=int, help="batch size (default: the recipe's, 200 for the INSAT CNNs)")
    parser.add_argument("--learning-rate", type=float, metavar="LR",
                        help="the optimizer's learning rate, the peak of the recipe's schedule if it has one "
                             "(default: the recipe's; Keras's default for the sheets' recipes)")
    parser.add_argument("--seed", type=int, default=history.DEFAULT_SEED, help="random seed")
    parser.add_argument("--seeds", metavar="S1,S2,...",
                        help="train once per seed (e.g. 7,8,9) so evaluate.py can report the seed spread; "
                             "replaces --seed")
    parser.add_argument("--no-normalize", dest="normalize", action="store_const", const=False, default=None,
                        help="feed pixels 0..255 instead of 0..1 (default: the recipe's choice)")
    parser.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                        help="auto uses a GPU when the Keras backend sees one")
    parser.add_argument("--precision", choices=list(runs.PRECISIONS), default="fp32",
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
    parser.add_argument("--out", default=history.DEFAULT_OUT,
                        help="output directory (pairs go to OUT/models/); the default is yours and git ignores it; "
                             "results: the committed reference runs, for maintainers reproducing them")
    parser.add_argument("--train-limit", type=int, metavar="N", help="train on the first N images only (quick trials)")
    parser.add_argument("--test-limit", type=int, metavar="N", help="evaluate on the first N test images only")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from its last finished epoch (same flags as before)")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress output")
    return parser


def parse_args(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.model == "all":  # both sheets; the chest X-rays only with their data
        args.models = [name for name, recipe in models.MODELS.items()
                       if recipe.sheet != BEYOND and (recipe.input_kind != "xray" or args.data_dir)]
    elif args.model == "ladder":
        args.models = ladder.LADDER[1:]
    else:
        args.models = args.model.split(",")
    for name in args.models:
        if name not in models.MODELS:
            parser.error(f"argument --model: unknown model {name!r}; choose one of: {', '.join(models.MODELS)}, "
                         "all, ladder")
    try:
        args.seeds = [int(seed) for seed in args.seeds.split(",")] if args.seeds else [args.seed]
    except ValueError:
        parser.error(f"argument --seeds: {args.seeds!r} is not a comma-separated list of integers")
    return args


def run(args):
    started = time.perf_counter()
    flags = {key: getattr(args, key) for key in ("epochs", "batch_size", "normalize", "learning_rate", "precision",
                                                 "slice_size", "device", "distribute", "data_dir", "train_limit",
                                                 "test_limit", "resume")}
    planned = [settings_for(name, seed=seed, **flags) for name in args.models for seed in args.seeds]  # all checked
    print(backend.describe(planned[0].device), flush=True)
    for settings in planned:
        if len(planned) > 1:
            print(f"== {history.run_name(settings.model, settings.seed)}", flush=True)
        train_and_evaluate(settings, out=args.out, verbose=0 if args.quiet else "auto")
    if len(planned) > 1:
        print(f"Trained {len(planned)} runs in {time.perf_counter() - started:.0f} s; "
              f"now: python evaluate.py {args.out if args.out != history.DEFAULT_OUT else ''}".rstrip())
    return 0


def main(argv=None):
    return console.run("train.py", run, parse_args(argv),
                       on_interrupt="interrupted; earlier results are untouched. Continue from the last finished "
                                    "epoch with the same command plus --resume",
                       after_os_error="; nothing was saved, earlier results are untouched")


if __name__ == "__main__":
    sys.exit(main())
