"""Evaluate saved models on the MNIST test set, as the INSAT sheet does; report.py writes the report.

    python evaluate.py                  # every pair under results/models/
    python evaluate.py results/models/large other_dir/
    python evaluate.py students/ --csv grades.csv   # a teacher's folder of models saved by any Keras

For each model: the sheet's two lines (Model score, Model error rate), then one
table of all of them beside the error rate that the sheet or its tutorial
reports. A model is a json + h5 pair (this project's, or Keras 2's), a Keras 3
.keras archive or a full-model .h5 file; its inputs are shaped to what it takes
and, where nothing recorded how it was trained, its pixel scale is chosen from
the data (choose_pixel_scale). For a results directory (train.py's, with a
models/ folder) it also writes, beside models/:
    RESULTS.md   one row per model (mean and sd over seeds), machine, versions
    plots/       per run: history, confusion matrix, misclassified test images
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

import cli  # first of the project's modules: it chooses the Keras backend and loads it with native lines filtered
import backend
import data
import history
import metrics
import models
import persistence
import plots
import report
from cli import UsageError
from metrics import print_model_error_rate  # noqa: F401  (the sheet's function, where the sheet's part 4.c uses it)

ROOT = Path(__file__).resolve().parent
PREDICT_BATCH_SIZE = 1000  # test images per predict call
NEAR_CHANCE_ERROR = 80.0  # % error: chance is 90%; a model trained on pixels 0..255 and fed /255 lands here
XRAY_DATA = ("get the 'Chest X-Ray Images (Pneumonia)' data set (Kermany et al. 2018, CC BY 4.0: Kaggle "
             "paultimothymooney/chest-xray-pneumonia or Mendeley Data doi:10.17632/rscbjbr9sj.2) and pass "
             "--data-dir DIR, the folder that holds its train/ and test/")


def find_pairs(paths):
    """The saved models that paths name: a directory's (models_in), a pair's name, any of its files, a .keras
    archive, a full-model .h5, each as model_name names it. UsageError for a path that names nothing."""
    found = []
    for path in map(Path, paths):
        if path.is_dir() and not (path / "saved_model.pb").is_file():
            found.extend(models_in(models_dir(path)))
            continue
        files = persistence.model_files(path)
        if not any(p.exists() for p in files):
            raise UsageError(f"{path}: no such directory, pair ({files[0].name} + weights) or model file")
        found.append(model_name(path))
    return found


def model_name(path):
    """A model named from any of its files: a pair by its name without extension, a single-file model as it is."""
    files = persistence.model_files(path)
    return files[0] if len(files) == 1 else files[0].with_name(files[0].name[: -len(persistence.JSON_SUFFIX)])


def models_in(directory):
    """Every saved model in directory and in its subfolders one level down (a course platform's download gives
    one folder per student): pairs (name.json + name.weights.h5 or name.h5), .keras archives, .h5 files that are
    not a pair's weights, TensorFlow SavedModel folders; sorted. Loading says what is wrong with a file that is
    not a model (a JSON without weights, weights without JSON): the teacher sees every file that was handed in."""
    directory = Path(directory)
    folders = [directory, *sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))]
    found = set()
    for folder in folders:
        if folder != directory and (folder / "saved_model.pb").is_file():
            found.add(folder)
            continue
        for path in folder.iterdir():
            if path.name.startswith(".") or not path.is_file() or path.name.endswith(".history.json"):
                continue
            if path.suffix in (persistence.JSON_SUFFIX, persistence.KERAS_SUFFIX, *persistence.HDF5_SUFFIXES):
                found.add(model_name(path))
    return sorted(found)


def display_name(filename, paths):
    """How the table names a model: its name, with its folder when it lies in a subfolder of a directory given."""
    filename = Path(filename)
    for path in map(Path, paths):
        if path.is_dir():
            root = models_dir(path)
            if filename.parent.parent == root:
                return f"{filename.parent.name}/{filename.name}"
    return filename.name


def models_dir(directory):
    """A results directory keeps its pairs in models/; a directory of pairs is taken as it is."""
    directory = Path(directory)
    return directory / "models" if (directory / "models").is_dir() else directory


class TestSets:
    """get_data_mnist's test set, loaded once per normalisation and prepared once per input kind."""

    def __init__(self, test_limit=None):
        self.test_limit = test_limit
        self._test_sets, self._prepared, self._xrays = {}, {}, {}

    def xrays(self, data_dir):
        """A chest X-ray tree's test images and labels (all of them: --test-limit would keep only NORMAL ones),
        their file names and how they are stored (data.xray_storage), read once per tree."""
        key = str(Path(data_dir).resolve())
        if key not in self._xrays:
            paths = [path for path, _ in data.xray_files(data_dir)[0]["test"]]
            images, labels = data.load_xrays(data_dir, splits=("test",))["test"]
            self._xrays[key] = images, labels, [path.name for path in paths], data.xray_storage(paths)
        return self._xrays[key]

    def get(self, normalize, input_kind, data_format, **input_options):
        """(model inputs, one-hot labels, (N, 1, 28, 28) images for the figures)."""
        key = (normalize, input_kind, data_format, tuple(sorted(input_options.items())))
        if key not in self._prepared:
            if normalize not in self._test_sets:
                _, (X_test, y_test), _ = data.get_data_mnist(normalize)
                self._test_sets[normalize] = X_test[: self.test_limit], y_test[: self.test_limit]
            X_test, y_test = self._test_sets[normalize]
            self._prepared[key] = (data.prepare_inputs(X_test, input_kind, data_format, **input_options), y_test,
                                   X_test)
        return self._prepared[key]


class Kept:
    """What evaluating each MNIST pair gave, kept between runs (in the project's cache, data.cache_dir()) under a
    key of all that decides it: the pair's and its history's bytes, the options, the backend and the versions.
    An unchanged pair is then neither loaded nor evaluated again, and its figures are redrawn only if one is
    missing; `evaluate.py --redraw` ignores what was kept."""

    VERSION = 3  # raise it when what evaluate_pair measures or draws changes

    def __init__(self, path=None, ignore=False):
        self.path = Path(path or data.cache_dir() / "evaluations.json")
        try:
            self.entries = {} if ignore else json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    def key(self, filename, normalize, test_limit):
        digest = hashlib.sha256(json.dumps([self.VERSION, normalize, test_limit, backend.versions()]).encode())
        for path in (*persistence.model_files(filename), Path(f"{filename}.history.json")):
            digest.update(path.read_bytes() if path.is_file() else b"-")
        return digest.hexdigest()

    def get(self, key, figures):
        entry = self.entries.get(key)
        return entry if entry and all(Path(path).is_file() for path in figures) else None

    def put(self, key, entry):
        self.entries[key] = entry

    def save(self):
        try:
            with data.replacing(self.path) as (temporary,):
                temporary.write_text(json.dumps(self.entries))
        except OSError:  # a cache that cannot be written costs time next run, nothing else
            pass


def figure_paths(plots_dir, run, run_history, mnist=True):
    """The figures draw_figures writes for a run."""
    if plots_dir is None:
        return []
    kinds = (["history"] if run_history.get("epochs") else []) + ["confusion"] + (["errors"] if mnist else [])
    return [str(Path(plots_dir) / f"{run}_{kind}.png") for kind in kinds]


def evaluate_pair(filename, test_sets, normalize=None, data_dir=None, plots_dir=None, kept=None, run=None):
    """Load one saved model (a pair, a .keras archive, a full-model .h5), print the sheet's lines, draw its
    figures into plots_dir, return a result row.

    normalize: None decides as load_run and choose_pixel_scale say. kept (a Kept): where an unchanged model's
    numbers were kept by an earlier run; they are printed and used again. run: its name in the tables.
    """
    run_history = history.read_history(filename) or {}
    config = run_history.get("config", {})
    run = run or Path(filename).name
    figures_name = run.replace("/", "_")
    key = kept.key(filename, normalize, test_sets.test_limit) if kept is not None else None
    entry = kept.get(key, figure_paths(plots_dir, figures_name, run_history)) if key else None
    print(f"== {filename}")
    if entry is not None:
        print_notes(entry)
        metrics.print_score(entry["accuracy"])
        warn_near_chance(filename, entry["normalize"], entry["accuracy"])
        # the key is the files' bytes: a copy elsewhere (two students handing in the same file) is named as itself
        here = {"file": str(filename)} if entry["model"] in models.MODELS else {"file": str(filename), "model": run}
        return result_row(run, {**entry, **here}, config)
    saved, recipe, trained_normalize = persistence.load_run(filename, run_history)
    model = saved.model
    xray, notes = None, {"writer": saved.writer, "input": str(tuple(model.input_shape[1:]))}
    if recipe is not None and recipe.input_kind == "xray":
        normalize = True  # the model rescales its own input
        test_loss, test_accuracy, xray = evaluate_xray(filename, model, run_history, data_dir, test_sets, plots_dir)
    else:
        compute_model = channels_last(model, recipe)
        try:
            input_kind, data_format = models.input_layout(compute_model, recipe)
        except ValueError as error:
            raise persistence.PairError(f"{filename}: not an MNIST digit model: {error}") from None
        options = recipe.input_options if recipe else {}
        if normalize is None:
            normalize = trained_normalize
        if normalize is None:
            normalize, notes["pixels"] = choose_pixel_scale(filename, compute_model, test_sets, input_kind,
                                                            data_format, options)
        print_notes(notes)
        x_test, y_test, images = test_sets.get(normalize, input_kind, data_format, **options)
        probabilities, logits = metrics.as_probabilities(run_model(filename, compute_model, x_test))
        if logits:
            notes["outputs"] = ("its outputs are not probabilities (no softmax at the end): scored by the largest, "
                                "the loss from their softmax")
            print(f"   {notes['outputs']}")
        # model.evaluate's two numbers, from the predictions that the figures need anyway
        test_loss, test_accuracy = metrics.loss_and_accuracy(probabilities, y_test)
        metrics.print_score(test_accuracy)
        warn_near_chance(filename, normalize, test_accuracy)
        labels, predictions = y_test.argmax(axis=1), probabilities.argmax(axis=1)
        matrix = plots.confusion_matrix(labels, predictions, y_test.shape[1])
        if plots_dir is not None:
            draw_figures(Path(plots_dir), figures_name, run_history, matrix, None, (images, labels, predictions))
    entry = {"model": recipe.name if recipe else run, "parameters": model.count_params(),
             "layers": models.count_parameters(model)[0], "normalize": normalize, "test_loss": test_loss,
             "accuracy": test_accuracy, "metrics": xray, "file": str(filename), **notes}
    if key and xray is None:  # the X-ray tree is the user's and may change: evaluated every time
        kept.put(key, entry)
    return result_row(run, entry, config)


def channels_last(model, recipe):
    """The model computing in channels_last, where TensorFlow runs convolutions on every CPU; the weights carry
    over unchanged (models.relayout). A model from elsewhere that cannot be moved (a layer that names an axis,
    say) computes as it was saved."""
    try:
        return models.compute_model(model)
    except Exception:  # its own layout then; run_model says in one line if it cannot run here
        if recipe is not None:  # one of ours: a bug
            raise
        return model


AUTO_SCALE_IMAGES = 1000  # test images scored on each pixel scale when nothing recorded the model's
CLEARLY_MORE_RIGHT = 0.02  # right on 2% more of them on one scale: that scale, outright
MARGIN_SPLIT = 0.5  # nats: the median image's margin on 0..1 from which the model was trained on 0..1
CLOSE_MARGIN = 3.0  # within a factor 3 of MARGIN_SPLIT, either way, the note says the margin is close to the split
SCALE_FREE = 2.0  # margins on 0..255 at most twice those on 0..1: the outputs do not follow the pixels' size
PIXELS = {True: "0..1", False: "0..255"}  # normalize: the pixel scale


def choose_pixel_scale(filename, model, test_sets, input_kind, data_format, options):
    """(normalize, note): the pixel scale, 0..1 or 0..255, that `model` was trained on, for a model whose
    training nobody recorded (a model from elsewhere), from its outputs on the first AUTO_SCALE_IMAGES test
    images fed on each scale.

    1. If it gets clearly more of them right on one scale (CLEARLY_MORE_RIGHT), that one: a network that is not
       scale-free (sigmoid units, batch normalisation) falls apart on the scale it was not trained on.
    2. Otherwise its choices hardly depend on the scale (a relu network: relu is linear above 0), and how sure it
       is tells: trained with cross-entropy, a network's first choice for the median image is a few nats ahead of
       its second (metrics.output_margins); 255 times larger inputs make that margin about 255 times larger (the
       softmax saturates), 255 times smaller inputs about 255 times smaller (nearly uniform outputs). So 0..1 when
       the median margin on 0..1 is at least MARGIN_SPLIT, else 0..255.
    3. Where the margin does not grow with the pixels (SCALE_FREE: a model whose outputs ignore its inputs), it
       tells nothing either: 0..1, the sheets' scale, and the note says to compare.
    results/logs/pixel_scale_rule.txt measures the rule on every fixture and committed model
    (experiments/pixel_scale_rule.py). Not the lower loss, as before 2026-12-04: an accurate model fed 255 times
    larger pixels is overconfident and still right on nearly every image, so its loss there was the lower one
    (the tf_keras_accurate fixtures).
    """
    scores = {}
    for normalize in (True, False):
        x, y, _ = test_sets.get(normalize, input_kind, data_format, **options)
        probabilities, _ = metrics.as_probabilities(run_model(filename, model, x[:AUTO_SCALE_IMAGES]))
        accuracy = metrics.loss_and_accuracy(probabilities, y[:AUTO_SCALE_IMAGES])[1]
        scores[normalize] = accuracy, float(np.median(metrics.output_margins(probabilities)))
    (accuracy, margin), (raw_accuracy, raw_margin) = scores[True], scores[False]
    measured = (f"chosen on {min(AUTO_SCALE_IMAGES, len(y))} test images: {accuracy:.1%} right on 0..1, "
                f"{raw_accuracy:.1%} on 0..255")
    if abs(accuracy - raw_accuracy) >= CLEARLY_MORE_RIGHT:
        chosen = accuracy > raw_accuracy
        return chosen, f"pixels {PIXELS[chosen]}, {measured}"
    margins = (f"the median image's first choice {format_margin(margin)} ahead of its second on 0..1, "
               f"{format_margin(raw_margin)} on 0..255")
    if raw_margin <= SCALE_FREE * margin:  # also margins equal on both scales: 0 (ties) or saturated on both
        return True, (f"pixels 0..1, the sheets' scale: {measured}, and {margins}: its outputs do not follow the "
                      "pixels' size; compare with --normalize yes and no")
    chosen = margin >= MARGIN_SPLIT
    note = f"pixels {PIXELS[chosen]}, {measured}, so by how sure it is: {margins}"
    if MARGIN_SPLIT / CLOSE_MARGIN < margin < MARGIN_SPLIT * CLOSE_MARGIN:
        note += "; close to the split: compare with --normalize yes and no"
    return chosen, note


def format_margin(margin):
    """A margin in nats for the note: "9.1 nats", or "saturated" where the softmax's second output is 0."""
    return "saturated" if not np.isfinite(margin) else f"{margin:.3g} nats"


def run_model(filename, model, inputs):
    """model's outputs for inputs, (N, 10); a model that cannot run on them, or gives other than 10 outputs per
    image, is a PairError naming the file (a teacher's folder holds models that nobody here wrote)."""
    try:
        outputs = np.asarray(model.predict(inputs, batch_size=PREDICT_BATCH_SIZE, verbose=0))
    except Exception as error:  # whatever a model from elsewhere raises, it is that file's failure only
        raise persistence.PairError(f"{filename}: Keras cannot run this model on MNIST digits "
                                    f"({persistence.short_error(error)})") from None
    if outputs.ndim != 2 or outputs.shape[1] != 10:
        raise persistence.PairError(f"{filename}: it gives outputs of shape {outputs.shape[1:]} per image, not "
                                    "MNIST's 10 classes")
    return outputs


def print_notes(notes):
    """The lines under a model's name: what wrote it, its input, the pixel scale chosen for it, its outputs."""
    print(f"   saved by {notes.get('writer', '?')}; input {notes.get('input', '?')}")
    for key in ("pixels", "outputs"):
        if notes.get(key):
            print(f"   {notes[key]}")


def evaluate_xray(filename, model, run_history, data_dir, test_sets, plots_dir=None):
    """A chest X-ray pair on the test images of data_dir, or of the tree it was trained on: the sheet's two lines,
    precision, recall, F1, ROC AUC and the confusion matrix, and its figures. Returns (test loss, test accuracy,
    scores). Without --data-dir and without that tree, one line says where to get the data set, and the scores
    its history recorded at the end of training stand in (figures: history and confusion matrix only)."""
    recorded = run_history.get("config", {}).get("data_dir")
    here = [Path(recorded), ROOT / recorded] if recorded else []  # a relative folder: from where train.py ran
    found = data_dir or next((str(path) for path in here if path.is_dir()), None)
    run = Path(filename).name
    if found is None:
        test = run_history.get("test", {})
        if "metrics" not in test:
            raise UsageError(f"{filename}: a chest X-ray model, and its test images are not here; {XRAY_DATA}")
        sys.stdout.flush()  # the line comes after the pair's name
        print(f"evaluate.py: {filename}: its test images ({recorded or 'folder not recorded'}) are not here: the scores "
              f"below are those recorded at the end of its training; to evaluate it again, {XRAY_DATA}",
              file=sys.stderr)
        metrics.print_score(test["accuracy"])
        metrics.print_xray_metrics(test["metrics"])
        if plots_dir is not None:
            draw_xray_figures(Path(plots_dir), run, run_history, test["metrics"])
        return test["loss"], test["accuracy"], test["metrics"]
    images, labels, names, stored_as = test_sets.xrays(found)
    test_loss, test_accuracy = metrics.print_model_error_rate(model, images, labels)
    probabilities = metrics.xray_probabilities(model, images)
    scores = {**metrics.xray_scores(probabilities, labels), "test_images_stored_as": stored_as}
    metrics.print_xray_metrics(scores)
    if plots_dir is not None:
        draw_xray_figures(Path(plots_dir), run, run_history, scores, (images, labels, probabilities, names))
    return test_loss, test_accuracy, scores


def draw_xray_figures(plots_dir, run, run_history, scores, predictions=None):
    """plots/<run>_history.png, _confusion.png and, with predictions (images, labels, PNEUMONIA probabilities,
    file names), _roc.png (the 0.5 threshold marked) and _errors.png (misclassified radiographs, named)."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    credit = report.xray_source(scores.get("test_images_stored_as"), short=True)
    if run_history.get("epochs"):
        plots.plot_history(run_history["epochs"], plots_dir / f"{run}_history.png", f"{run}: training history",
                           run_history.get("config", {}).get("validation", "val"), credit=credit)
    plots.plot_confusion_matrix(np.array(scores["confusion_matrix"]), plots_dir / f"{run}_confusion.png",
                                f"{run}: confusion matrix\n(test set, threshold {scores.get('threshold', 0.5):g})",
                                list(data.XRAY_CLASSES), credit=credit.replace("; ", ";\n"))
    if predictions is None:
        return
    images, labels, probabilities, names = predictions
    fpr, tpr, _ = metrics.roc_curve(probabilities, labels)
    (tn, fp), (fn, tp) = scores["confusion_matrix"]
    plots.plot_roc(fpr, tpr, scores["roc_auc"], (fp / max(fp + tn, 1), tp / max(tp + fn, 1)),
                   plots_dir / f"{run}_roc.png", f"{run}: ROC curve on the {len(labels)} test radiographs",
                   threshold=scores.get("threshold", 0.5), credit=credit.replace("; ", ";\n"))
    plots.plot_misclassified_xrays(images, labels, probabilities, names, plots_dir / f"{run}_errors.png", run,
                                   threshold=scores.get("threshold", 0.5), credit=credit)


def warn_near_chance(filename, normalize, accuracy):
    if normalize and 100 - accuracy * 100 >= NEAR_CHANCE_ERROR:
        print(f"evaluate.py: {filename} scores near chance on pixels /255: it may expect raw pixels 0..255; "
              "try --normalize no", file=sys.stderr)


def result_row(run, entry, config):
    """A table row from what evaluating a pair gave (entry) and its history's config."""
    recipe = models.MODELS.get(entry["model"])
    error_rate = 100 - entry["accuracy"] * 100
    reference = recipe.reference_error if recipe else None
    return {**entry, "run": run, "recipe": recipe, "config": config, "epochs": config.get("epochs"),
            "error_rate": error_rate, "reference": reference,
            "difference": report.distance_outside(error_rate, reference)}


def draw_figures(plots_dir, run, run_history, matrix, class_names, misclassified):
    plots_dir.mkdir(parents=True, exist_ok=True)
    if run_history.get("epochs"):
        plots.plot_history(run_history["epochs"], plots_dir / f"{run}_history.png", f"{run}: training history",
                           run_history.get("config", {}).get("validation", "test"))  # the sheets validate on the test
    plots.plot_confusion_matrix(matrix, plots_dir / f"{run}_confusion.png", f"{run}: confusion matrix (test set)",
                                class_names)
    if misclassified is not None:
        plots.plot_misclassified(*misclassified, plots_dir / f"{run}_errors.png", run)


def make_parser():
    """The command line's parser (the docs test reads its flags)."""
    parser = cli.OneLineErrorParser(description="Evaluate saved json + h5 pairs on the test set and write "
                                                "RESULTS.md and figures.")
    parser.add_argument("paths", nargs="*", default=[history.DEFAULT_OUT], metavar="PATH",
                        help="results directories, folders of saved models (and their subfolders), pairs (name "
                             "without extension, or any of its files), .keras archives, full-model .h5 files")
    parser.add_argument("--normalize", choices=["auto", "yes", "no"], default="auto",
                        help="pixels /255 (yes) or 0..255 (no); auto: what the model was trained with (its history "
                             "or recipe), else the one its outputs on 1,000 test images point to (docs/usage.md)")
    parser.add_argument("--csv", metavar="FILE", help="also write the printed table to FILE as CSV (a spreadsheet)")
    parser.add_argument("--data-dir", metavar="DIR", help="chest X-ray tree for pneumonia pairs "
                                                           "(default: the one it was trained on)")
    parser.add_argument("--params", action="store_true",
                        help="also print each model's trainable weights per layer (ARN sheet part 3)")
    parser.add_argument("--no-report", action="store_true", help="print only: no RESULTS.md, no figures")
    parser.add_argument("--readme", action="store_true",
                        help="also copy RESULTS.md's tables into README.md, README.fr.md and docs/ladder.md "
                             "(for maintainers)")
    parser.add_argument("--test-limit", type=int, metavar="N", help="evaluate on the first N test images only")
    parser.add_argument("--redraw", action="store_true",
                        help="evaluate every pair and draw every figure again, also those unchanged since the last "
                             "run (their numbers are kept in the project's cache otherwise)")
    return parser


def parse_args(argv=None):
    return make_parser().parse_args(argv)


def run(args):
    print(backend.describe(), flush=True)
    normalize = {"auto": None, "yes": True, "no": False}[args.normalize]
    pairs = find_pairs(args.paths)
    if not pairs:
        raise UsageError(f"no trained model in {', '.join(args.paths)}; train one first: python train.py --model large")
    # A single results directory (train.py's: models/ inside) gets its report and figures; a folder of models
    # from elsewhere (a teacher's) and loose files are only printed: nothing is written among them.
    report_dir = None
    if not args.no_report and len(args.paths) == 1 and (Path(args.paths[0]) / "models").is_dir():
        report_dir = Path(args.paths[0])
    test_sets = TestSets(args.test_limit)
    kept = Kept(ignore=args.redraw)
    rows, failures = [], 0
    for filename in pairs:
        try:
            rows.append(evaluate_pair(filename, test_sets, normalize, args.data_dir,
                                      report_dir / "plots" if report_dir else None, kept,
                                      display_name(filename, args.paths)))
        except cli.PROJECT_ERRORS as error:  # one bad file does not stop the others
            print(f"evaluate.py: error: {error}", file=sys.stderr, flush=True)
            failures += 1
    kept.save()
    if args.csv:
        report.write_csv(rows, args.csv)
    if rows:
        print()
        print(report.results_table(rows))
        if args.params:
            print()
            print(report.parameters_table(rows))
        if report_dir is not None:
            ladder = report.ladder_table(rows)
            report.write_report(rows, report_dir / "RESULTS.md", ladder)
            if ladder:
                report.ladder_figure(rows, report_dir / "plots" / "ladder.png")
            if args.readme:
                report.update_readme(report_dir / "RESULTS.md")
            print(f"\nWrote {report_dir / 'RESULTS.md'} and figures in {report_dir / 'plots'}/")
    return 1 if failures else 0


def main(argv=None):
    return cli.main("evaluate.py", run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
