"""Evaluate saved json + h5 pairs on the MNIST test set, as the INSAT sheet does.

    python evaluate.py                  # every pair under results/models/
    python evaluate.py results/models/large other_dir/

For each pair: the sheet's two lines (Model score, Model error rate), then one
table of all of them beside the error rate that the sheet or its tutorial
reports.
"""

import argparse
import os
import sys
from pathlib import Path

import data
import models
import persistence
from train import DEFAULT_OUT, OneLineErrorParser, UsageError, compute_data_format, read_history


def print_model_error_rate(model, X_test, y_test):
    """The sheet's function; also returns (test loss, test accuracy)."""
    # Final evaluation of the model
    scores = model.evaluate(X_test, y_test, verbose=0)
    print("Model score : %.2f%%" % (scores[1] * 100))
    print("Model error rate : %.2f%%" % (100 - scores[1] * 100))
    return float(scores[0]), float(scores[1])


def xray_metrics(model, dataset, threshold=0.5):
    """Accuracy, precision, recall, F1 (PNEUMONIA positive) and the confusion matrix on an unshuffled set.

    Predictions and labels come from the same batches in one pass, so they line
    up even if the dataset were shuffled.
    """
    import numpy as np

    labels, predicted = [], []
    for images, batch_labels in dataset:
        probabilities = np.asarray(model.predict_on_batch(images)).reshape(-1)
        predicted.append(probabilities >= threshold)
        labels.append(np.asarray(batch_labels).reshape(-1) >= 0.5)
    labels, predicted = np.concatenate(labels), np.concatenate(predicted)
    true_positive = int(np.sum(labels & predicted))
    false_positive = int(np.sum(~labels & predicted))
    false_negative = int(np.sum(labels & ~predicted))
    true_negative = int(np.sum(~labels & ~predicted))
    precision = true_positive / max(true_positive + false_positive, 1)
    recall = true_positive / max(true_positive + false_negative, 1)
    return {
        "images": int(len(labels)), "accuracy": float(np.mean(labels == predicted)), "precision": precision,
        "recall": recall, "f1": 2 * precision * recall / max(precision + recall, 1e-12),
        # rows: true NORMAL, PNEUMONIA; columns: predicted NORMAL, PNEUMONIA
        "confusion_matrix": [[true_negative, false_positive], [false_negative, true_positive]],
    }


def print_xray_metrics(metrics):
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    print(f"Precision : {metrics['precision']:.4f}  Recall : {metrics['recall']:.4f}  F1 : {metrics['f1']:.4f}"
          f"  ({metrics['images']} test images, PNEUMONIA positive)")
    print("Confusion matrix (rows true, columns predicted):")
    print(f"             NORMAL  PNEUMONIA\n  NORMAL    {tn:8d} {fp:10d}\n  PNEUMONIA {fn:8d} {tp:10d}")


def find_pairs(paths):
    """Pair filenames (without extension) for directories and pair names; raises UsageError for others."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            directory = path / "models" if not list(path.glob("*.json")) and (path / "models").is_dir() else path
            found += sorted(weights.with_name(weights.name[: -len(persistence.WEIGHTS_SUFFIX)])
                            for weights in directory.glob("*" + persistence.WEIGHTS_SUFFIX))
            continue
        for suffix in (persistence.WEIGHTS_SUFFIX, persistence.JSON_SUFFIX):
            if path.name.endswith(suffix):
                path = path.with_name(path.name[: -len(suffix)])
        json_path, weights_path = persistence.pair_paths(path)
        if not json_path.exists() and not weights_path.exists():
            raise UsageError(f"{path}: no such directory or pair ({json_path.name} + {weights_path.name})")
        found.append(path)
    return found


def input_kind_of(model):
    recipe = models.recipe_for(model)
    if recipe is not None:
        return recipe.input_kind
    return "image" if len(model.input_shape) == 4 else "flat"


class TestSets:
    """get_data_mnist's test set, loaded once per normalisation and prepared once per input kind."""

    def __init__(self, test_limit=None):
        self.test_limit = test_limit
        self._prepared = {}

    def get(self, normalize, input_kind, data_format, **input_options):
        key = (normalize, input_kind, data_format, tuple(sorted(input_options.items())))
        if key not in self._prepared:
            _, (X_test, y_test), _ = data.get_data_mnist(normalize)
            X_test, y_test = X_test[: self.test_limit], y_test[: self.test_limit]
            self._prepared[key] = (data.prepare_inputs(X_test, input_kind, data_format, **input_options), y_test)
        return self._prepared[key]


def evaluate_pair(filename, test_sets, normalize=None, data_dir=None):
    """Load one pair, print the sheet's lines, return a result row (dict)."""
    model = persistence.load_keras_model(filename)
    history = read_history(filename) or {}
    config = history.get("config", {})
    recipe = models.recipe_for(model)
    input_kind = input_kind_of(model)
    print(f"== {filename}")
    metrics = None
    if input_kind == "xray":
        normalize = True  # the model rescales its own input
        data_dir = data_dir or config.get("data_dir")
        if data_dir is None:
            raise UsageError(f"{filename}: a chest X-ray model; pass --data-dir DIR to evaluate it")
        datasets, _ = data.xray_datasets(data_dir)
        test_loss, test_accuracy = print_model_error_rate(model, datasets["test"], None)
        metrics = xray_metrics(model, datasets["test"])
        print_xray_metrics(metrics)
    else:
        if normalize is None:
            normalize = config.get("normalize", recipe.normalize if recipe else True)
        # Compute in the fast layout; the weights carry over unchanged (models.relayout).
        data_format = compute_data_format("cpu") if models.model_data_format(model) else None
        compute_model = models.relayout(model, data_format)
        options = recipe.input_options if recipe else {}
        x_test, y_test = test_sets.get(normalize, input_kind, data_format, **options)
        test_loss, test_accuracy = print_model_error_rate(compute_model, x_test, y_test)
    error_rate = 100 - test_accuracy * 100
    reference = recipe.reference_error if recipe else None
    return {
        "run": Path(filename).name, "model": model.name, "keras_model": model, "parameters": model.count_params(),
        "epochs": config.get("epochs"), "normalize": normalize, "test_loss": test_loss,
        "accuracy": test_accuracy, "error_rate": error_rate, "reference": reference,
        "difference": distance_outside(error_rate, reference), "metrics": metrics,
        "reference_source": recipe.reference_source if recipe else "",
    }


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


def results_table(rows):
    """A markdown table of the result rows."""
    header = ["model", "parameters", "epochs", "normalised", "test loss", "accuracy", "error rate",
              "reference", "difference"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        difference = "-" if row["difference"] is None else f"{row['difference']:+.2f}"
        cells = [row["run"], f"{row['parameters']:,}", str(row["epochs"] or "?"), "yes" if row["normalize"] else "no",
                 f"{row['test_loss']:.4f}", f"{row['accuracy'] * 100:.2f}%", f"{row['error_rate']:.2f}%",
                 format_reference(row["reference"]), difference]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parameters_table(rows):
    """Sheet part 3 (do deeper models have more weights?): trainable weights per layer and in total."""
    lines = ["| model | layers with weights | weights per layer | total |", "|---|---|---|---|"]
    for row in sorted(rows, key=lambda row: row["parameters"]):
        per_layer, total = models.count_parameters(row["keras_model"])
        weighted = [f"{kind} {count:,}" for _, kind, count in per_layer if count]
        lines.append(f"| {row['run']} | {len(weighted)} | {', '.join(weighted)} | {total:,} |")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = OneLineErrorParser(description="Evaluate saved json + h5 pairs on the MNIST test set.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("paths", nargs="*", default=[DEFAULT_OUT], metavar="PATH",
                        help="directories of pairs, or pair filenames without extension")
    parser.add_argument("--normalize", choices=["auto", "yes", "no"], default="auto",
                        help="input scaling; auto: what the pair was trained with (its history or recipe)")
    parser.add_argument("--data-dir", metavar="DIR", help="chest X-ray tree for pneumonia pairs "
                                                           "(default: the one it was trained on)")
    parser.add_argument("--params", action="store_true",
                        help="also print each model's trainable weights per layer (ARN sheet part 3)")
    parser.add_argument("--test-limit", type=int, metavar="N", help="evaluate on the first N test images only")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    with models.native_log_filter():
        return _run(args)


def _run(args):
    normalize = {"auto": None, "yes": True, "no": False}[args.normalize]
    try:
        pairs = find_pairs(args.paths)
    except UsageError as error:
        sys.exit(f"evaluate.py: error: {error}")
    if not pairs:
        sys.exit(f"evaluate.py: no trained model in {', '.join(args.paths)}; "
                 "train one first: python train.py --model large")
    test_sets = TestSets(args.test_limit)
    rows, failures = [], 0
    for filename in pairs:
        try:
            rows.append(evaluate_pair(filename, test_sets, normalize, args.data_dir))
        except (persistence.PairError, data.DataError, UsageError) as error:
            print(f"evaluate.py: error: {error}", file=sys.stderr)
            failures += 1
    if rows:
        print()
        print(results_table(rows))
        if args.params:
            print()
            print(parameters_table(rows))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
