"""Evaluate saved json + h5 pairs on the test set, as the INSAT sheet does, and write the report.

    python evaluate.py                  # every pair under results/models/
    python evaluate.py results/models/large other_dir/

For each pair: the sheet's two lines (Model score, Model error rate), then one
table of all of them beside the error rate that the sheet or its tutorial
reports. For a directory it also writes, beside its models/ folder:
    RESULTS.md   one row per model (mean and sd over seeds), machine, versions
    plots/       per run: history, confusion matrix, misclassified test images
"""

import collections
import hashlib
import json
import statistics
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
from cli import UsageError, markdown_table
from metrics import print_model_error_rate  # noqa: F401  (the sheet's function, where the sheet's part 4.c uses it)

ROOT = Path(__file__).resolve().parent
PREDICT_BATCH_SIZE = 1000  # test images per predict call
# What `--readme` copies from RESULTS.md into the documents: {document: {marker: how the block starts in RESULTS.md}}
GENERATED = {"README.md": {"results": "| model | sheet | error rate |"},
             "README.fr.md": {"results": "| model | sheet | error rate |"},
             "docs/ladder.md": {"ladder": "| rung |", "ladder-goal": "Goal: `"}}
# README.fr.md's table in French: its header's words, and the sheets' names
FRENCH = {"| model | sheet | error rate | over seeds | reference | difference | train time |":
          "| modèle | TP | taux d'erreur | sur les graines | référence | écart | temps d'entraînement |",
          "beyond the sheets": "au-delà des TP", " seeds) |": " graines) |"}
NEAR_CHANCE_ERROR = 80.0  # % error: chance is 90%; a model trained on pixels 0..255 and fed /255 lands here


def find_pairs(paths):
    """Pair filenames (without extension) for directories and pair names; raises UsageError for others."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            for json_path in sorted(models_dir(path).glob("*" + persistence.JSON_SUFFIX)):
                filename = json_path.with_name(json_path.name[: -len(persistence.JSON_SUFFIX)])
                weights = [Path(f"{filename}{suffix}") for suffix in (persistence.WEIGHTS_SUFFIX,
                                                                       persistence.LEGACY_WEIGHTS_SUFFIX)]
                if not json_path.name.endswith(".history.json") and any(p.is_file() for p in weights):
                    found.append(filename)
            continue
        for suffix in (persistence.WEIGHTS_SUFFIX, persistence.JSON_SUFFIX, persistence.LEGACY_WEIGHTS_SUFFIX):
            if path.name.endswith(suffix):
                path = path.with_name(path.name[: -len(suffix)])
        json_path, weights_path = persistence.pair_paths(path)
        if not json_path.exists() and not weights_path.exists():
            raise UsageError(f"{path}: no such directory or pair ({json_path.name} + {weights_path.name})")
        found.append(path)
    return found


def models_dir(directory):
    """A results directory keeps its pairs in models/; a directory of pairs is taken as it is."""
    directory = Path(directory)
    return directory / "models" if (directory / "models").is_dir() else directory


class TestSets:
    """get_data_mnist's test set, loaded once per normalisation and prepared once per input kind."""

    def __init__(self, test_limit=None):
        self.test_limit = test_limit
        self._test_sets, self._prepared = {}, {}

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

    VERSION = 2  # raise it when what evaluate_pair measures or draws changes

    def __init__(self, path=None, ignore=False):
        self.path = Path(path or data.cache_dir() / "evaluations.json")
        try:
            self.entries = {} if ignore else json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    def key(self, filename, normalize, test_limit):
        digest = hashlib.sha256(json.dumps([self.VERSION, normalize, test_limit, backend.versions()]).encode())
        for suffix in (persistence.JSON_SUFFIX, persistence.WEIGHTS_SUFFIX, persistence.LEGACY_WEIGHTS_SUFFIX,
                       ".history.json"):
            path = Path(f"{filename}{suffix}")
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


def evaluate_pair(filename, test_sets, normalize=None, data_dir=None, plots_dir=None, kept=None):
    """Load one pair, print the sheet's lines, draw its figures into plots_dir, return a result row.

    kept (a Kept): where an unchanged pair's numbers were kept by an earlier run; they are printed and used again.
    """
    run_history = history.read_history(filename) or {}
    config = run_history.get("config", {})
    run = Path(filename).name
    key = kept.key(filename, normalize, test_sets.test_limit) if kept is not None else None
    entry = kept.get(key, figure_paths(plots_dir, run, run_history)) if key else None
    print(f"== {filename}")
    if entry is not None:
        metrics.print_score(entry["accuracy"])
        warn_near_chance(filename, entry["normalize"], entry["accuracy"])
        return result_row(run, entry, config)
    model, recipe, trained_normalize = persistence.load_run(filename, run_history)
    input_kind = models.input_kind_of(model, recipe)
    xray = None
    if input_kind == "xray":
        normalize = True  # the model rescales its own input
        data_dir = data_dir or config.get("data_dir")
        if data_dir is None:
            raise UsageError(f"{filename}: a chest X-ray model; pass --data-dir DIR to evaluate it")
        x_test, y_test = data.load_xrays(data_dir)["test"]
        test_loss, test_accuracy = metrics.print_model_error_rate(model, x_test, y_test)
        xray = metrics.xray_metrics(model, x_test, y_test)
        metrics.print_xray_metrics(xray)
        matrix, class_names, misclassified = np.array(xray["confusion_matrix"]), list(data.XRAY_CLASSES), None
    else:
        normalize = trained_normalize if normalize is None else normalize
        # Compute in channels_last; the weights carry over unchanged (models.relayout).
        compute_model = models.compute_model(model)
        data_format = models.model_data_format(compute_model)
        options = recipe.input_options if recipe else {}
        x_test, y_test, images = test_sets.get(normalize, input_kind, data_format, **options)
        probabilities = compute_model.predict(x_test, batch_size=PREDICT_BATCH_SIZE, verbose=0)
        # model.evaluate's two numbers, from the predictions that the figures need anyway
        test_loss, test_accuracy = metrics.loss_and_accuracy(probabilities, y_test)
        metrics.print_score(test_accuracy)
        warn_near_chance(filename, normalize, test_accuracy)
        labels, predictions = y_test.argmax(axis=1), probabilities.argmax(axis=1)
        matrix, class_names = plots.confusion_matrix(labels, predictions, y_test.shape[1]), None
        misclassified = (images, labels, predictions)
    if plots_dir is not None:
        draw_figures(Path(plots_dir), run, run_history, matrix, class_names, misclassified)
    entry = {"model": recipe.name if recipe else model.name, "parameters": model.count_params(),
             "layers": models.count_parameters(model)[0], "normalize": normalize, "test_loss": test_loss,
             "accuracy": test_accuracy, "metrics": xray}
    if key and input_kind != "xray":  # the X-ray tree is the user's and may change: evaluated every time
        kept.put(key, entry)
    return result_row(run, entry, config)


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
            "error_rate": error_rate, "reference": reference, "difference": distance_outside(error_rate, reference)}


def draw_figures(plots_dir, run, run_history, matrix, class_names, misclassified):
    plots_dir.mkdir(parents=True, exist_ok=True)
    if run_history.get("epochs"):
        plots.plot_history(run_history["epochs"], plots_dir / f"{run}_history.png", f"{run}: training history",
                           run_history.get("config", {}).get("validation", "test"))  # the sheets validate on the test
    plots.plot_confusion_matrix(matrix, plots_dir / f"{run}_confusion.png", f"{run}: confusion matrix (test set)",
                                class_names)
    if misclassified is not None:
        plots.plot_misclassified(*misclassified, plots_dir / f"{run}_errors.png", run)


def distance_outside(value, reference):
    """How far value lies outside the reference range (0 inside it); None without reference."""
    if reference is None:
        return None
    low, high = reference
    return value - high if value > high else value - low if value < low else 0.0


def format_reference(reference):
    if reference is None:
        return "-"
    low, high = reference
    return f"{low:.2f}%" if low == high else f"{low:.2f}-{high:.2f}%"


def format_difference(difference):
    return "-" if difference is None else "within" if difference == 0 else f"{difference:+.2f}"


def results_table(rows):
    """One line per run, as printed after the sheet's lines."""
    header = ["model", "parameters", "epochs", "normalised", "test loss", "accuracy", "error rate",
              "reference", "difference"]
    return markdown_table(header, [
        [row["run"], f"{row['parameters']:,}", row["epochs"] or "?", "yes" if row["normalize"] else "no",
         f"{row['test_loss']:.4f}", f"{row['accuracy'] * 100:.2f}%", f"{row['error_rate']:.2f}%",
         format_reference(row["reference"]), format_difference(row["difference"])]
        for row in rows
    ])


def group_by_model(rows):
    """{model name: [rows of its runs]}, the default-seed run first, in registry order."""
    order = {name: index for index, name in enumerate(models.MODELS)}
    groups = {}
    for row in rows:
        groups.setdefault(row["model"], []).append(row)
    for runs in groups.values():
        runs.sort(key=lambda row: (row["run"] != row["model"], row["run"]))
    return dict(sorted(groups.items(), key=lambda item: order.get(item[0], len(order))))


def seed_spread(runs):
    """'mean ± sd (n)' of the error rates of a model's runs; '-' for a single run."""
    rates = [row["error_rate"] for row in runs]
    if len(rates) < 2:
        return "-"
    return f"{statistics.mean(rates):.2f} ± {statistics.stdev(rates):.2f}% ({len(rates)} seeds)"


def summary_table(rows):
    """The READMEs' table: per model, its default-seed run's error rate, the spread over seeds, the reference."""
    header = ["model", "sheet", "error rate", "over seeds", "reference", "difference", "train time"]
    table = []
    for name, runs in group_by_model(rows).items():
        row = runs[0]
        table.append([name, row["recipe"].sheet if row["recipe"] else "-", f"{row['error_rate']:.2f}%",
                      seed_spread(runs), format_reference(row["reference"]), format_difference(row["difference"]),
                      train_time(row)])
    return markdown_table(header, table)


def report_table(rows):
    """RESULTS.md's table: one row per model (its default-seed run), with the spread over seeds."""
    header = ["model", "sheet", "parameters", "epochs", "batch", "optimizer", "normalised", "test loss", "accuracy",
              "error rate", "over seeds", "reference", "difference", "train time", "trained with"]
    table = []
    for name, runs in group_by_model(rows).items():
        row, recipe, config = runs[0], runs[0]["recipe"], runs[0]["config"]
        table.append([
            name, recipe.sheet if recipe else "-", f"{row['parameters']:,}", row["epochs"] or "?",
            config.get("batch_size", "?"), config.get("optimizer", "?"), "yes" if row["normalize"] else "no",
            f"{row['test_loss']:.4f}", f"{row['accuracy'] * 100:.2f}%", f"{row['error_rate']:.2f}%",
            seed_spread(runs), format_reference(row["reference"]), format_difference(row["difference"]),
            train_time(row), history.trained_with(config) or "-",
        ])
    return markdown_table(header, table)


def ladder_table(rows):
    """The ladder beyond the sheets: per rung, what it adds, the mean ± sd of its seeds' error rates, the gain
    over the rung before it and its training time per run; None until every rung has been trained."""
    groups = group_by_model(rows)
    if not all(name in groups for name in models.LADDER):
        return None
    header = ["rung", "adds", "parameters", "epochs", "error rate, mean ± sd", "seeds", "gain over the rung before",
              "train time per run"]
    table, previous = [], None
    for name in models.LADDER:
        runs, recipe = groups[name], models.MODELS[name]
        rates = [row["error_rate"] for row in runs]
        mean = statistics.mean(rates)
        spread = f"{mean:.2f} ± {statistics.stdev(rates):.2f}%" if len(rates) > 1 else f"{mean:.2f}%"
        seconds = recorded_seconds(runs)
        adds = "the sheet's small CNN, pixels /255" if recipe.sheet != models.BEYOND else recipe.description
        table.append([name, adds, f"{runs[0]['parameters']:,}", runs[0]["epochs"] or "?", spread, len(rates),
                      "-" if previous is None else f"{previous - mean:+.2f} points",
                      f"{statistics.mean(seconds) / 60:.1f} min" if seconds else "-"])
        previous = mean
    return markdown_table(header, table)


def recorded_seconds(runs):
    """The training seconds of those runs whose history records them (older histories may not)."""
    return [row["config"]["train_seconds"] for row in runs if row["config"].get("train_seconds") is not None]


def train_time(row):
    """A run's training time for a table: "300 s", or "-" when its history does not record it."""
    seconds = recorded_seconds([row])
    return f"{seconds[0]:.0f} s" if seconds else "-"


def ladder_figure(rows, path):
    """results/plots/ladder.png: each rung's error rate (its seeds and their mean) and its training time."""
    groups = group_by_model(rows)
    rates = [[row["error_rate"] for row in groups[name]] for name in models.LADDER]
    minutes = [statistics.mean(recorded_seconds(groups[name]) or [float("nan")]) / 60 for name in models.LADDER]
    plots.plot_ladder(models.LADDER, rates, minutes, path, goal=models.LADDER_GOAL_ERROR,
                      limit_minutes=models.LADDER_TIME_LIMIT)


def parameters_table(rows):
    """Sheet part 3 (do deeper models have more weights?): trainable weights per layer and in total."""
    table = []
    for runs in sorted(group_by_model(rows).values(), key=lambda runs: runs[0]["parameters"]):
        per_layer = runs[0]["layers"]
        weighted = [f"{kind} {count:,}" for _, kind, count in per_layer if count]
        table.append([runs[0]["model"], len(weighted), ", ".join(weighted), f"{sum(c for _, _, c in per_layer):,}"])
    return markdown_table(["model", "layers with weights", "weights per layer", "total"], table)


def write_report(rows, path, ladder=None):
    """RESULTS.md: the results table, notes on references, the part 3 table, machine and versions; ladder: the
    ladder's table (ladder_table), if every rung has been trained."""
    versions = backend.versions()
    notes = [f"- **{name}**: {runs[0]['recipe'].note}" for name, runs in group_by_model(rows).items()
             if runs[0]["recipe"] is not None and runs[0]["recipe"].note]
    sources = [f"- **{name}**: {format_reference(runs[0]['reference'])}, {runs[0]['recipe'].reference_source}"
               + (f"; the sheet's test loss {runs[0]['recipe'].reference_loss:.4f}, ours {runs[0]['test_loss']:.4f}"
                  if runs[0]["recipe"].reference_loss else "")
               for name, runs in group_by_model(rows).items() if runs[0]["reference"] is not None]
    configs = [row["config"] for row in rows if row["config"]]
    devices = sorted({config.get("device", "?") for config in configs}) or ["?"]
    machines = sorted({config["machine"] for config in configs if config.get("machine")}) or ["unknown"]
    timed = recorded_seconds([row for row in rows if row["config"]])
    backends = collections.Counter(history.trained_with(config) for config in configs)
    text = "\n".join([
        "# Results", "",
        "Written by `python evaluate.py` from the pairs in models/ (trained by `python train.py`).",
        "Error rate: the default-seed (7) run on the 10,000 MNIST test images; *over seeds*: mean ± sample sd",
        "of all its runs; *difference*: how far the error rate lies outside the reference range.", "",
        summary_table(rows), "", "All the columns:", "",
        report_table(rows), "",
        *(ladder_section(rows, ladder) if ladder else []),
        "## References", "", *sources, "",
        *(["## Notes", "", *notes, ""] if notes else []),
        "## Weights per layer (ARN sheet, part 3)", "", parameters_table(rows), "",
        "## Where these numbers come from", "",
        f"- Trained on: {'; '.join(machines)} ({', '.join(devices)}); evaluated on: {history.machine_description()}",
        f"- Training time, {'all' if len(timed) == len(configs) else f'the {len(timed)} of'} {len(configs)} runs"
        f"{'' if len(timed) == len(configs) else ' that record it'}: {sum(timed) / 60:.1f} min",
        "- Trained with (Keras backend, device): " + "; ".join(f"{name}: {count} runs" for name, count in
                                                               sorted(backends.items())),
        f"- Evaluated with: Python {versions['python']}, {versions['backend']} {versions[versions['backend']]}, "
        f"Keras {versions['keras']}, NumPy {versions['numpy']}",
        f"- Commit: {history.commit_description()}", "",
    ])
    Path(path).write_text(text)


def ladder_section(rows, ladder):
    """RESULTS.md's lines on the ladder beyond the sheets: how it was chosen, its table, where it was trained."""
    groups = group_by_model(rows)
    rungs_by_machines = {}  # "machine; machine" -> the rungs whose seeds were trained there, in ladder order
    for name in models.LADDER:
        machines = "; ".join(sorted({row["config"].get("machine", "unknown") for row in groups[name]}))
        rungs_by_machines.setdefault(machines, []).append(name)
    where = "; ".join(f"{', '.join(names)}: {machines}" for machines, names in rungs_by_machines.items())
    return [
        "## Beyond the sheets: a ladder from the sheet's small CNN", "",
        "Each rung adds one idea to the rung before it (`python train.py --model NAME`, seeds 7, 8, 9). The rungs "
        "after `small` hold out the last 5,000 training images as validation data; every choice (learning rate, "
        "schedule, resampling, the third convolution, epochs) was made on those, and the test set was used once per "
        "run, after training (results/logs/ladder_choices.txt). *Gain*: how many points of error rate the rung's "
        "mean takes off the mean of the rung before it. Figure: plots/ladder.png.", "",
        ladder, "",
        ladder_goal(groups[models.LADDER[-1]]), "",
        f"Trained on (train times are comparable within one machine only): {where}.", "",
    ]


def ladder_goal(runs):
    """One sentence: whether the last rung's runs meet the ladder's goal (models.LADDER_GOAL_ERROR as their mean
    error rate, each run trained in under models.LADDER_TIME_LIMIT minutes), and by how much they miss it."""
    goal, limit = models.LADDER_GOAL_ERROR, models.LADDER_TIME_LIMIT
    # Three decimals: fine enough for one test image in one of three runs, coarse enough to drop the float noise of
    # the accuracies; the table's two decimals would call a mean of 0.403% "at most 0.40%".
    mean = round(statistics.mean(row["error_rate"] for row in runs), 3)
    seconds = recorded_seconds(runs)
    longest = max(seconds, default=0) / 60
    unknown = len(runs) - len(seconds)  # a run without its time cannot show that it was under the limit
    misses = ([f"{mean - goal:.3f} points of error above it"] if mean > goal else []) + (
        [f"a run trained {longest:.1f} min"] if longest >= limit else [])
    verdict = (f"missed, {' and '.join(misses)}" if misses else
               f"not shown, {unknown} of its runs without a recorded training time" if unknown else "met")
    times = f"the longest {longest:.1f} min" if seconds else "no training time recorded"
    return (f"Goal: `{runs[0]['model']}` at most {goal:.2f}% error ({100 - goal:.2f}% accuracy) as the mean of its "
            f"seeds, each run trained in under {limit} minutes: {verdict}. "
            f"Its {len(runs)} runs: {mean:.3f}% ({100 - mean:.3f}% accuracy), {times}.")


def generated_block(report_text, document, marker):
    """The block of RESULTS.md (its text) that `document` shows between its `marker` markers, or None."""
    opening = GENERATED[document][marker]
    block = next((block for block in report_text.split("\n\n") if block.startswith(opening)), None)
    if block is not None and document.endswith(".fr.md"):
        for english, french in FRENCH.items():
            block = block.replace(english, french)
    return block


def update_readme(report_path, root=ROOT):
    """Copy RESULTS.md's generated blocks between the documents' markers (<!-- results:start --> ...): the
    results table into both READMEs (in French in README.fr.md), the ladder's table and goal line into
    docs/ladder.md."""
    report_text = Path(report_path).read_text()
    for document, markers in GENERATED.items():
        path = Path(root) / document
        text = path.read_text()
        for marker in markers:
            start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
            generated = generated_block(report_text, document, marker)
            if generated is None:
                continue
            if start not in text or end not in text:
                raise UsageError(f"{path}: no {start} ... {end} markers to fill")
            head, rest = text.split(start, 1)
            _, tail = rest.split(end, 1)
            text = f"{head}{start}\n{generated}\n{end}{tail}"
        path.write_text(text)


def make_parser():
    """The command line's parser (the docs test reads its flags)."""
    parser = cli.OneLineErrorParser(description="Evaluate saved json + h5 pairs on the test set and write "
                                                "RESULTS.md and figures.")
    parser.add_argument("paths", nargs="*", default=[history.DEFAULT_OUT], metavar="PATH",
                        help="results directories, directories of pairs, or pair filenames without extension")
    parser.add_argument("--normalize", choices=["auto", "yes", "no"], default="auto",
                        help="input scaling; auto: what the pair was trained with (its history or recipe)")
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
    # A single results directory gets its report and figures; loose pairs are only printed.
    report_dir = None
    if not args.no_report and len(args.paths) == 1 and Path(args.paths[0]).is_dir():
        report_dir = Path(args.paths[0])
    test_sets = TestSets(args.test_limit)
    kept = Kept(ignore=args.redraw)
    rows, failures = [], 0
    for filename in pairs:
        try:
            rows.append(evaluate_pair(filename, test_sets, normalize, args.data_dir,
                                      report_dir / "plots" if report_dir else None, kept))
        except cli.PROJECT_ERRORS as error:  # one bad pair does not stop the others
            print(f"evaluate.py: error: {error}", file=sys.stderr)
            failures += 1
    kept.save()
    if rows:
        print()
        print(results_table(rows))
        if args.params:
            print()
            print(parameters_table(rows))
        if report_dir is not None:
            ladder = ladder_table(rows)
            write_report(rows, report_dir / "RESULTS.md", ladder)
            if ladder:
                ladder_figure(rows, report_dir / "plots" / "ladder.png")
            if args.readme:
                update_readme(report_dir / "RESULTS.md")
            print(f"\nWrote {report_dir / 'RESULTS.md'} and figures in {report_dir / 'plots'}/")
    return 1 if failures else 0


def main(argv=None):
    return cli.main("evaluate.py", run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
