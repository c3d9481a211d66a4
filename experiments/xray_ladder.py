"""A small ladder beyond the ARN pneumonia notebook: what class weights, augmentation, more epochs and a decision
threshold chosen on held-out training images do to the test scores.

    python experiments/xray_ladder.py --data-dir DIR [--seeds 7,8,9]

Every rung trains the notebook's CNN (models.pneumonia_model, Adam 1e-3, batch 64, binary cross-entropy) on the
training images minus a holdout: 10% of the patients of each class (file names: personN_... for PNEUMONIA,
[NORMAL2-]IM-NNNN-... for NORMAL), so no patient is on both sides. Every choice (the epoch count of `longer`, the
threshold of `threshold`) is made on that holdout; the test set is used once per run, after its choices, and the
val/ folder (16 images) not at all. Batches come in labtools.batches.epoch_order, as train.py's.

Rungs, each on top of the one before it:
    unweighted  5 epochs, no class weights
    weighted    + class weights from the training counts (the notebook's recipe)
    augmented   + random rotation (up to 0.03 turn, ~11 degrees), translation (5%) and zoom (10%), training only
    longer      + up to 15 epochs, the count chosen as the lowest mean holdout loss over the seeds
    threshold   + the threshold that maximises each run's balanced accuracy on its holdout (instead of 0.5)

Writes results/logs/xray_ladder.json (every run: holdout and test scores, per-epoch holdout loss, seconds) and the
figure results/plots/pneumonia_ladder.png, and prints the table; what it prints goes to results/logs/xray_ladder.txt
too (overwritten; with --figure-only, its table is added to the end). The committed log: that command with
--data-dir ../shared/datasets/chest_xray, then the same with --figure-only (later, once the table had the holdout's
recall and specificity); the lines between the two, /usr/bin/time's and the second command, by hand.
"""

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labtools import console  # noqa: E402

if __name__ == "__main__":  # run as a script: the Keras backend loaded first, its start-up lines filtered out
    console.start("experiments/xray_ladder.py")

import keras  # noqa: E402
import logs  # noqa: E402
import models  # noqa: E402
import numpy as np  # noqa: E402
from labtools import backend, batches, errors, history, report, scores, xrays  # noqa: E402

RUNGS = ["unweighted", "weighted", "augmented", "longer", "threshold"]
EPOCHS, LONGEST = 5, 15
HOLDOUT_FRACTION = 0.1
HOLDOUT_SEED = 0  # which patients are held out: the same for every run
PATIENT = re.compile(r"^(person\d+|(?:NORMAL2-)?IM-\d+)")
KERMANY_ACCURACY = 92.8  # Kermany et al. 2018, transfer learning (Inception v3), on the original images
ARN_ACCURACY = (76.0, 80.0)  # ARN students' reports


def holdout_mask(paths, labels):
    """True for the training images held out: HOLDOUT_FRACTION of each class's patients, drawn once."""
    rng = np.random.default_rng(HOLDOUT_SEED)
    patients = [PATIENT.match(Path(path).name).group(1) for path in paths]
    mask = np.zeros(len(paths), dtype=bool)
    for label in (0, 1):
        names = sorted({patient for patient, y in zip(patients, labels) if y == label})
        held = set(rng.choice(names, size=round(HOLDOUT_FRACTION * len(names)), replace=False).tolist())
        mask |= np.array([y == label and patient in held for patient, y in zip(patients, labels)])
    return mask


def build(augment):
    """The notebook's CNN, compiled as the recipe compiles it; augment: random rotation, translation, zoom first."""
    base = models.pneumonia_model()
    layers = list(base.layers)
    if augment:
        layers = [keras.layers.RandomRotation(0.03), keras.layers.RandomTranslation(0.05, 0.05),
                  keras.layers.RandomZoom(0.1), *layers]
    model = keras.Sequential([keras.Input((128, 128, 1)), *layers], name="pneumonia")
    return models.MODELS["pneumonia"].compile(model)


def balanced_accuracy(found):
    return (found["recall"] + found["specificity"]) / 2


def best_threshold(probabilities, labels):
    """The threshold with the highest balanced accuracy on these images (ties: the one nearest 0.5)."""
    candidates = np.unique(np.r_[0.5, probabilities])
    values = [(balanced_accuracy(scores.xray_scores(probabilities, labels, t)), -abs(t - 0.5), t)
              for t in candidates[:-1]]  # above the highest probability nothing is PNEUMONIA
    return float(max(values)[2])


def binary_cross_entropy(probabilities, labels):
    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def train_run(seed, epochs, weighted, augment, train_set, holdout, test):
    """Train one run; returns its per-epoch holdout loss and probabilities, the seconds of training, a function
    giving test probabilities for the weights of a given epoch, and the model (experiments/attribution.py's)."""
    keras.utils.set_random_seed(seed)
    backend.enable_determinism()
    (x, y), (x_hold, y_hold) = train_set, holdout
    counts = [int(np.sum(y == label)) for label in (0, 1)]
    weights = xrays.class_weights(counts) if weighted else {0: 1.0, 1: 1.0}
    sample_weights = np.array([weights[int(label)] for label in y], dtype=np.float32)
    model = build(augment)
    snapshots, holdout_losses, holdout_probabilities, seconds = [], [], [], []

    class Watch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.started)
            probabilities = scores.xray_probabilities(model, x_hold)
            holdout_probabilities.append(probabilities)
            holdout_losses.append(binary_cross_entropy(probabilities, y_hold))
            snapshots.append(model.get_weights())

    def orders():
        return (batches.epoch_order(len(x), seed, epoch) for epoch in range(epochs))

    model.fit(batches.training_data((x, y[:, None], sample_weights), 64, orders), steps_per_epoch=-(-len(x) // 64),
              epochs=epochs, shuffle=False, verbose=0, callbacks=[Watch()])

    def test_probabilities(epoch):
        model.set_weights(snapshots[epoch - 1])
        return scores.xray_probabilities(model, test[0])

    return holdout_losses, holdout_probabilities, seconds, test_probabilities, model


def summary(values):
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def table(runs, seeds):
    header = ["rung", "adds", "epochs", "threshold", "test accuracy %", "recall", "specificity", "ROC AUC",
              "holdout balanced accuracy %", "holdout recall", "holdout specificity", "train time per run"]
    adds = {"unweighted": "the notebook's CNN, no class weights", "weighted": "class weights (the notebook's recipe)",
            "augmented": "rotation, translation, zoom", "longer": "more epochs, chosen on the holdout",
            "threshold": "threshold chosen on the holdout"}
    rows = []
    for rung in RUNGS:
        chosen = [runs[rung][str(seed)] for seed in seeds]
        rows.append([
            rung, adds[rung], ", ".join(sorted({str(run["epochs"]) for run in chosen})),
            ", ".join(f"{run['threshold']:.3g}" for run in chosen),
            summary([100 * run["test"]["accuracy"] for run in chosen]),
            summary([run["test"]["recall"] for run in chosen]), summary([run["test"]["specificity"] for run in chosen]),
            summary([run["test"]["roc_auc"] for run in chosen]),
            summary([100 * balanced_accuracy(run["holdout"]) for run in chosen]),
            summary([run["holdout"]["recall"] for run in chosen]),
            summary([run["holdout"]["specificity"] for run in chosen]),
            f"{statistics.mean(run['seconds'] for run in chosen):.0f} s"])
    return report.markdown_table(header, rows)


def figure(runs, seeds, path):
    from labtools import plots

    figure_, (left, right) = plots.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    positions = np.arange(len(RUNGS))
    for position, rung in zip(positions, RUNGS):
        accuracies = [100 * runs[rung][str(seed)]["test"]["accuracy"] for seed in seeds]
        left.bar(position, statistics.mean(accuracies), color="#9ecae1")
        left.plot([position] * len(accuracies), accuracies, "o", color="#08519c", markersize=4,
                  label="test accuracy, each seed" if position == 0 else None)
        held = [100 * balanced_accuracy(runs[rung][str(seed)]["holdout"]) for seed in seeds]
        left.plot([position + 0.25] * len(held), held, "x", color="#636363", markersize=5,
                  label="holdout balanced accuracy (where the choices were made)" if position == 0 else None)
        for offset, key, colour in ((-0.15, "recall", "#31a354"), (0.15, "specificity", "#e6550d")):
            values = [runs[rung][str(seed)]["test"][key] for seed in seeds]
            right.plot([position + offset] * len(values), values, "o", color=colour, markersize=4,
                       label=key if position == 0 else None)
    left.axhspan(*ARN_ACCURACY, color="gray", alpha=0.2, label="ARN students: 76-80%")
    left.axhline(KERMANY_ACCURACY, color="crimson", linestyle="--", linewidth=1,
                 label="Kermany et al. 2018: 92.8% (transfer learning)")
    left.set_ylim(60, 100)
    left.set_ylabel("test accuracy (%)")
    left.set_title("test accuracy per rung (bars: mean over seeds)", fontsize=10)
    left.legend(fontsize=7, loc="lower right")
    right.set_ylim(0, 1.02)
    right.set_title("test recall (PNEUMONIA) and specificity (NORMAL)", fontsize=10)
    right.legend(fontsize=8, loc="lower right")
    for axis in (left, right):
        axis.set_xticks(positions, RUNGS, rotation=20)
        axis.grid(axis="y", alpha=0.3)
    figure_.tight_layout(rect=(0, 0.04, 1, 1))
    plots._credit(figure_, "Chest X-rays: Kermany et al. 2018, CC BY 4.0; test images 224 x 224 RGB JPEG (a re-saved "
                           "copy); choices on held-out training patients only")
    figure_.savefig(path, dpi=110)


def main():
    parser = console.HelpParser(description="The chest X-ray ladder (see this script's docstring).")
    parser.add_argument("--data-dir", required=True, metavar="DIR", help="the chest X-ray tree")
    parser.add_argument("--seeds", default="7,8,9", help="one run per seed and rung")
    parser.add_argument("--figure-only", action="store_true",
                        help="print the table and redraw the figure from xray_ladder.json, without training "
                             "(the table added to the end of xray_ladder.txt)")
    args = parser.parse_args()
    out = logs.LOGS / "xray_ladder.json"
    try:
        seeds = [int(seed) for seed in args.seeds.split(",")]
        if not args.figure_only:
            xrays.xray_files(args.data_dir)
    except ValueError as error:  # a bad --seeds, or errors.DataError: the tree
        sys.exit(f"xray_ladder.py: error: {error if isinstance(error, errors.DataError) else '--seeds: ' + args.seeds}")
    logs.tee("xray_ladder.txt", append=args.figure_only)  # --figure-only: the same runs, so the same log
    if args.figure_only:
        runs = json.loads(out.read_text())["runs"]
        print(table(runs, seeds))
        figure(runs, seeds, ROOT / "results" / "plots" / "pneumonia_ladder.png")
        return
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {backend.describe()}; "
          f"{history.machine_description()}; commit {history.commit_description()}; machine shared with other work")
    print(f"$ python experiments/xray_ladder.py --data-dir {args.data_dir} --seeds {args.seeds}", flush=True)
    files, _ = xrays.xray_files(args.data_dir)
    splits = xrays.load_xrays(args.data_dir, splits=("train", "test"))
    (x_all, y_all), (x_test, y_test) = splits["train"], splits["test"]
    y_all, y_test = y_all[:, 0], y_test[:, 0]
    held = holdout_mask([path for path, _ in files["train"]], y_all)
    train_set, holdout, test = (x_all[~held], y_all[~held]), (x_all[held], y_all[held]), (x_test, y_test)
    print(f"training {int((~held).sum())} images ({int(np.sum(y_all[~held] == 0))} NORMAL), holdout "
          f"{int(held.sum())} ({int(np.sum(y_all[held] == 0))} NORMAL) of 10% of each class's patients; "
          f"test {len(y_test)}", flush=True)
    runs = {rung: {} for rung in RUNGS}
    longer = {}
    for rung, epochs, weighted, augment in (("unweighted", EPOCHS, False, False), ("weighted", EPOCHS, True, False),
                                            ("augmented", EPOCHS, True, True), ("longer", LONGEST, True, True)):
        for seed in seeds:
            losses, probabilities, seconds, test_probabilities, _ = train_run(seed, epochs, weighted, augment,
                                                                              train_set, holdout, test)
            if rung == "longer":  # the epoch count is chosen once every seed's holdout curve is in
                longer[seed] = (losses, probabilities, seconds, test_probabilities)
                print(f"{rung} seed {seed}: holdout loss by epoch {', '.join(f'{v:.4f}' for v in losses)}; "
                      f"{sum(seconds):.0f} s", flush=True)
                continue
            runs[rung][str(seed)] = record(epochs, 0.5, losses, probabilities[-1], holdout[1],
                                           test_probabilities(epochs), y_test, seconds)
            print(f"{rung} seed {seed}: {summary_line(runs[rung][str(seed)])}", flush=True)
    mean_losses = np.mean([longer[seed][0] for seed in seeds], axis=0)
    chosen = int(np.argmin(mean_losses)) + 1
    print(f"longer: mean holdout loss by epoch {', '.join(f'{v:.4f}' for v in mean_losses)}: {chosen} epochs chosen")
    for seed in seeds:
        losses, probabilities, seconds, test_probabilities = longer[seed]
        chosen_test = test_probabilities(chosen)
        runs["longer"][str(seed)] = record(chosen, 0.5, losses, probabilities[chosen - 1], holdout[1], chosen_test,
                                           y_test, seconds)
        threshold = best_threshold(probabilities[chosen - 1], holdout[1])
        runs["threshold"][str(seed)] = record(chosen, threshold, losses, probabilities[chosen - 1], holdout[1],
                                              chosen_test, y_test, seconds)
        for rung in ("longer", "threshold"):
            print(f"{rung} seed {seed}: {summary_line(runs[rung][str(seed)])}", flush=True)
    out.write_text(json.dumps({"machine": history.machine_description(), "versions": backend.versions(),
                               "holdout_images": int(held.sum()), "longer_epochs_chosen": chosen,
                               "longer_mean_holdout_loss": [float(v) for v in mean_losses], "runs": runs},
                              indent=1) + "\n")
    print()
    print(table(runs, seeds))
    figure(runs, seeds, ROOT / "results" / "plots" / "pneumonia_ladder.png")
    print(f"\nWrote {out.relative_to(ROOT)} and results/plots/pneumonia_ladder.png")


def record(epochs, threshold, losses, holdout_probabilities, holdout_labels, test_probabilities, test_labels, seconds):
    """One run of a rung: its choices, its scores on the holdout and (once, after the choices) on the test set.
    seconds: the training time of every epoch trained (for `longer`, all 15: the run trained them all)."""
    holdout = scores.xray_scores(holdout_probabilities, holdout_labels, threshold)
    test = scores.xray_scores(test_probabilities, test_labels, threshold)
    return {"epochs": epochs, "threshold": threshold, "holdout_loss_by_epoch": losses, "holdout": holdout,
            "test": test, "seconds": round(sum(seconds), 1)}


def summary_line(run):
    return (f"{run['epochs']} epochs, threshold {run['threshold']:.3g}: holdout balanced accuracy "
            f"{balanced_accuracy(run['holdout']):.4f}; test accuracy {run['test']['accuracy']:.4f}, recall "
            f"{run['test']['recall']:.4f}, specificity {run['test']['specificity']:.4f}, ROC AUC "
            f"{run['test']['roc_auc']:.4f}, confusion {run['test']['confusion_matrix']}; {run['seconds']:.0f} s")


if __name__ == "__main__":
    with console.native_log_filter():  # TensorFlow's native start-up and tf.data lines
        main()
