"""The report of evaluated models: RESULTS.md, its tables (results, seeds, the ladder, weights per layer, chest
X-rays), the ladder's figure, the CSV of the printed table, and the README blocks copied from RESULTS.md.

evaluate.py evaluates the models (grading.py) and hands this module one row per run (grading.result_row, which
carries the run's recipe and its place in the registry); nothing here runs a model.
"""

import collections
import csv
import statistics
from pathlib import Path

from labtools import backend, files, history, ladder, plots
from labtools.errors import UsageError
from labtools.recipes import BEYOND

ROOT = Path(__file__).resolve().parents[1]

# What `--readme` copies from RESULTS.md into the documents: {document: {marker: how the block starts in RESULTS.md}}
GENERATED = {"README.md": {"results": "| model | sheet | error rate |"},
             "README.fr.md": {"results": "| model | sheet | error rate |"},
             "docs/ladder.md": {"ladder": "| rung |", "ladder-goal": "Goal: `"}}


# README.fr.md's table in French: its header's words, and the sheets' names
FRENCH = {"| model | sheet | error rate | over seeds | reference | difference | train time |":
          "| modèle | TP | taux d'erreur | sur les graines | référence | écart | temps d'entraînement |",
          "beyond the sheets": "au-delà des TP", " seeds) |": " graines) |"}


def xray_source(stored_as, short=False):
    """What every chest X-ray number or figure says with it: the data set, its credit, how its test images are
    stored (a copy re-saved at one size is not the original files, whose sizes vary)."""
    stored_as = stored_as or "stored as not recorded"
    one_size = stored_as[:1].isdigit() and " sizes" not in stored_as
    if short:
        return (f"Chest X-rays: Kermany et al. 2018, CC BY 4.0; test images {stored_as}"
                + (" (a re-saved copy)" if one_size else ""))
    return ("the test radiographs of the 'Chest X-Ray Images (Pneumonia)' data set (Kermany et al. 2018, CC BY 4.0), "
            f"stored {stored_as}" + (": a copy re-saved at one size by third parties, not the original files (results "
                                     "on those are close, not identical; docs/data.md)" if one_size else ""))


def xray_rows(rows):
    """The chest X-ray runs among rows (their scores in row["metrics"]), default seed first."""
    return group_by_model([row for row in rows if row.get("metrics")]).get("pneumonia", [])


def xray_table(runs):
    """Per chest X-ray run: accuracy, precision, recall, F1, specificity, ROC AUC, the confusion matrix and its
    training time; then their mean ± sample sd over the runs."""
    keys = ["accuracy", "precision", "recall", "f1", "specificity", "roc_auc"]
    header = ["run", "test images", "accuracy", "precision", "recall", "F1", "specificity", "ROC AUC",
              "confusion [[TN, FP], [FN, TP]]", "train time"]

    def cell(key, value):
        return "-" if value is None else f"{value * 100:.2f}%" if key == "accuracy" else f"{value:.3f}"

    table = [[row["run"], row["metrics"]["images"], *(cell(key, row["metrics"].get(key)) for key in keys),
              str(row["metrics"]["confusion_matrix"]), train_time(row)] for row in runs]
    if len(runs) > 1:
        spreads = []
        for key in keys:
            values = [row["metrics"].get(key) for row in runs]
            if None in values:
                spreads.append("-")
                continue
            scale, unit, digits = (100, "%", 2) if key == "accuracy" else (1, "", 3)
            spreads.append(f"{statistics.mean(values) * scale:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"
                           f"{unit}")
        seconds = recorded_seconds(runs)
        table.append([f"mean ± sd ({len(runs)} runs)", "", *spreads, "",
                      f"{statistics.mean(seconds):.0f} s" if seconds else "-"])
    return markdown_table(header, table)


def xray_section(runs):
    """RESULTS.md's lines on the chest X-rays: where the numbers come from, the scores per run, the references."""
    stored = sorted({row["metrics"].get("test_images_stored_as") or "" for row in runs})
    return [
        "## Chest X-rays (ARN PW4, part 2)", "",
        f"The `pneumonia` runs on {' / '.join(xray_source(kind) for kind in stored)}. PNEUMONIA is the positive "
        "class; a radiograph is called PNEUMONIA when the model's probability is above 0.5 (as Keras's accuracy); "
        "ROC AUC does not depend on that threshold. During training the runs validate on the tree's val/ folder "
        "(16 radiographs in the public data set), too few to choose anything on (docs/data.md). Figures per run in plots/: "
        "`<run>_history.png`, `<run>_confusion.png`, `<run>_roc.png` (the 0.5 threshold marked) and "
        "`<run>_errors.png` (misclassified radiographs with their file names). Reproduce: `python train.py --model "
        "pneumonia --data-dir DIR --seeds 7,8,9 --out results`, then `python evaluate.py results --data-dir DIR`.", "",
        xray_table(runs), "",
        "References: the ARN students report about 76-80% test accuracy with recall near 0.99; Kermany et al. "
        "(Cell, 2018) report 92.8% accuracy (sensitivity 93.2%, specificity 90.1%) with transfer learning from an "
        "ImageNet-trained Inception v3, on the original images.", "",
    ]


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
    """One line per model, as printed after the sheet's lines."""
    header, table = results_cells(rows)
    return markdown_table(header, table)


def results_cells(rows):
    """(header, rows of cells) of the printed table, also what --csv writes; a file that could not be evaluated
    (row["refused"]: why) has its row too, "refused" in its *saved by* cell."""
    header = ["model", "saved by", "input", "parameters", "epochs", "normalised", "test loss", "accuracy",
              "error rate", "reference", "difference"]
    if any("student" in row for row in rows):  # a class's hand-in: the student first, then the path inside it
        _, table = results_cells([{k: v for k, v in row.items() if k != "student"} for row in rows])
        return ["student", *header], [[row["student"], *cells] for row, cells in zip(rows, table)]
    return header, [
        [row["run"], "refused", *["-"] * (len(header) - 2)] if row.get("refused") else
        [row["run"], row.get("writer", "?"), row.get("input", "?"), f"{row['parameters']:,}", row["epochs"] or "?",
         normalised(row), f"{row['test_loss']:.4f}", f"{row['accuracy'] * 100:.2f}%", f"{row['error_rate']:.2f}%",
         format_reference(row["reference"]), format_difference(row["difference"])]
        for row in rows
    ]


def normalised(row):
    """'yes' or 'no' (pixels /255 or 0..255), with '(chosen)' when choose_pixel_scale decided from the data."""
    return ("yes" if row["normalize"] else "no") + (" (chosen)" if row.get("pixels") else "")


def write_csv(rows, path):
    """The printed table as CSV, for a spreadsheet, with each model's file and notes (pixel scale, outputs; why a
    file was refused); written atomically."""
    header, table = results_cells(rows)
    class_hand_in = header[0] == "student"
    with files.atomic_write(Path(path)) as (temporary,):
        # UTF-8 with a byte-order mark: what Excel needs to read accents on a double-click (LibreOffice reads both)
        with open(temporary, "w", newline="", encoding="utf-8-sig") as f:
            writer = csv.writer(f)
            writer.writerow([*header, "notes", "file"] if class_hand_in else ["file", *header, "notes"])
            for row, cells in zip(rows, table):
                notes = "; ".join([row[key] for key in ("refused", "pixels", "outputs") if row.get(key)] +
                                  row.get("notes_extra", []))
                file = row.get("file", row["run"])
                writer.writerow([*cells, notes, file] if class_hand_in else [file, *cells, notes])


def group_by_model(rows):
    """{model name: [rows of its runs]}, the default-seed run first, in registry order (row["order"]), then the
    models from elsewhere."""
    groups = {}
    for row in rows:
        groups.setdefault(row["model"], []).append(row)
    for runs in groups.values():
        runs.sort(key=lambda row: (row["run"] != row["model"], row["run"]))
    order = {name: runs[0].get("order") for name, runs in groups.items()}
    return dict(sorted(groups.items(), key=lambda item: (order[item[0]] is None, order[item[0]] or 0)))


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
            config.get("batch_size", "?"), config.get("optimizer", "?"), normalised(row),
            f"{row['test_loss']:.4f}", f"{row['accuracy'] * 100:.2f}%", f"{row['error_rate']:.2f}%",
            seed_spread(runs), format_reference(row["reference"]), format_difference(row["difference"]),
            train_time(row), history.trained_with(config) or "-",
        ])
    return markdown_table(header, table)


def ladder_table(rows):
    """The ladder beyond the sheets: per rung, what it adds, the mean ± sd of its seeds' error rates, the gain
    over the rung before it and its training time per run; None until every rung has been trained."""
    groups = group_by_model(rows)
    if not all(name in groups for name in ladder.LADDER):
        return None
    header = ["rung", "adds", "parameters", "epochs", "error rate, mean ± sd", "seeds", "gain over the rung before",
              "train time per run"]
    table, previous = [], None
    for name in ladder.LADDER:
        runs, recipe = groups[name], groups[name][0]["recipe"]
        rates = [row["error_rate"] for row in runs]
        mean = statistics.mean(rates)
        spread = f"{mean:.2f} ± {statistics.stdev(rates):.2f}%" if len(rates) > 1 else f"{mean:.2f}%"
        seconds = recorded_seconds(runs)
        adds = "the sheet's small CNN, pixels /255" if recipe.sheet != BEYOND else recipe.description
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
    rates = [[row["error_rate"] for row in groups[name]] for name in ladder.LADDER]
    minutes = [statistics.mean(recorded_seconds(groups[name]) or [float("nan")]) / 60 for name in ladder.LADDER]
    plots.plot_ladder(ladder.LADDER, rates, minutes, path, goal=ladder.LADDER_GOAL_ERROR,
                      limit_minutes=ladder.LADDER_TIME_LIMIT)


def parameters_table(rows):
    """Sheet part 3 (do deeper models have more weights?): trainable weights per layer and in total."""
    table = []
    for runs in sorted(group_by_model(rows).values(), key=lambda runs: runs[0]["parameters"]):
        per_layer = runs[0]["layers"]
        weighted = [f"{kind} {count:,}" for _, kind, count in per_layer if count]
        table.append([runs[0]["model"], len(weighted), ", ".join(weighted), f"{sum(c for _, _, c in per_layer):,}"])
    return markdown_table(["model", "layers with weights", "weights per layer", "total"], table)


def write_report(rows, path, rungs=None):
    """RESULTS.md: the results table, notes on references, the part 3 table, machine and versions; rungs: the
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
        summary_table(rows), "",
        *([f"pneumonia's error rate: on {xray_source(xray_rows(rows)[0]['metrics'].get('test_images_stored_as'))}; "
           "its scores: Chest X-rays below.", ""] if xray_rows(rows) else []),
        "All the columns:", "",
        report_table(rows), "",
        *(ladder_section(rows, rungs) if rungs else []),
        *(xray_section(xray_rows(rows)) if xray_rows(rows) else []),
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


def ladder_section(rows, rungs):
    """RESULTS.md's lines on the ladder beyond the sheets: how it was chosen, its table (rungs), where it was
    trained."""
    groups = group_by_model(rows)
    rungs_by_machines = {}  # "machine; machine" -> the rungs whose seeds were trained there, in ladder order
    for name in ladder.LADDER:
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
        rungs, "",
        ladder_goal(groups[ladder.LADDER[-1]]), "",
        f"Trained on (train times are comparable within one machine only): {where}.", "",
    ]


def ladder_goal(runs):
    """One sentence: whether the last rung's runs meet the ladder's goal (ladder.LADDER_GOAL_ERROR as their mean
    error rate, each run trained in under ladder.LADDER_TIME_LIMIT minutes), and by how much they miss it."""
    goal, limit = ladder.LADDER_GOAL_ERROR, ladder.LADDER_TIME_LIMIT
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


def markdown_table(header, rows):
    """A Markdown table: the header's cells, then one line per row."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(map(str, cells)) + " |" for cells in lines)


def write_all(rows, report_dir, readme=False):
    """What evaluate.py writes for a results directory: RESULTS.md, the ladder's figure once every rung has been
    evaluated, and with readme the blocks the documents copy from RESULTS.md."""
    rungs = ladder_table(rows)
    write_report(rows, Path(report_dir) / "RESULTS.md", rungs)
    if rungs:
        ladder_figure(rows, Path(report_dir) / "plots" / "ladder.png")
    if readme:
        update_readme(Path(report_dir) / "RESULTS.md")


def beside_reference(rows, reference=history.REFERENCE):
    """evaluate.py's table for the student's own runs: each run's error rate beside the committed reference run of
    the same name (its test error rate as its history in reference/models/ records it, not evaluated again) and the
    figure the sheet or its tutorial reports; a reference trained for other epochs or images says so."""
    header = ["run", "epochs", "test loss", "error rate", "this repository's run (results/)", "sheet / tutorial",
              "difference"]
    table = []
    for row in rows:
        if row.get("refused"):
            table.append([row["run"], *["-"] * 2, "refused", *["-"] * 3])
            continue
        committed = history.read_history(Path(reference) / "models" / Path(row["file"]).name) or {}
        config, test = committed.get("config", {}), committed.get("test", {})
        cell = "-"
        if "error_rate" in test:
            differs = [f"{config.get(key)} {word}" for key, word in (("epochs", "epochs"), ("train_images", "images"))
                       if config.get(key) != row["config"].get(key) and row["config"]]
            cell = f"{test['error_rate']:.2f}%" + (f" ({', '.join(differs)})" if differs else "")
        table.append([row["run"], row["epochs"] or "?", f"{row['test_loss']:.4f}", f"{row['error_rate']:.2f}%", cell,
                      format_reference(row["reference"]), format_difference(row["difference"])])
    return markdown_table(header, table)
