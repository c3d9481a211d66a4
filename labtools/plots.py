"""Figures for a lab report: training history, confusion matrix, misclassified digits or radiographs, ROC curve.

PNG files, drawn on matplotlib Figure objects without pyplot: no window, and no change to the matplotlib backend of
the process that imports this (a notebook keeps its own). A figure is a function of its numbers: each is drawn
under matplotlib's default settings (same_style), whatever a style, a matplotlibrc or earlier code set.
"""

import functools

import matplotlib
import numpy as np
from matplotlib.figure import Figure


def same_style(draw):
    """`draw` run under matplotlib's default rcParams, its bundled DejaVu Sans first, restored afterwards: the
    same PNG bytes whatever the process set before (a notebook's style, a matplotlibrc in the home folder)."""

    @functools.wraps(draw)
    def drawn(*args, **kwargs):
        with matplotlib.rc_context():
            matplotlib.rcdefaults()  # all but the backend and interactivity, which a figure's pixels do not use
            return draw(*args, **kwargs)

    return drawn


def subplots(*grid, figsize, **options):
    """(figure, axes) as pyplot.subplots makes them, on a Figure of its own."""
    figure = Figure(figsize=figsize)
    return figure, figure.subplots(*grid, **options)


# What a run validated on (its history's config["validation"]): the legend's words, and the title's
VALIDATION_DATA = {"test": ("test set", "validation data: the test images, as the sheets do"),
                   "holdout": ("held-out images",
                               "validation data: the last 5,000 training images, held out of training"),
                   "none": (None, "no validation data: every training image is trained on"),
                   "val": ("val/ folder", "validation data: the tree's val/ folder (16 radiographs in the public data "
                                          "set: one more right answer moves its accuracy by 6.25 points)")}


@same_style
def plot_history(epochs_log, path, title, validation="test", credit=None):
    """Loss and accuracy per epoch, train and validation: the sheet's 'graphique de l'historique'.

    validation: what the run validated on, a key of VALIDATION_DATA (the sheets: the test set), named in the
    legend and the title. credit: a line under the figure (the data set's). Returns the title."""
    epochs = [row["epoch"] for row in epochs_log]
    has_validation = "val_loss" in epochs_log[0]
    figure, axes = subplots(1, 2, figsize=(10, 3.8))
    for axis, metric in zip(axes, ("loss", "accuracy")):
        axis.plot(epochs, [row[metric] for row in epochs_log], "o-", label=f"training {metric}")
        if has_validation:
            axis.plot(epochs, [row[f"val_{metric}"] for row in epochs_log], "s-",
                      label=f"validation {metric} ({VALIDATION_DATA[validation][0]})")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    title = f"{title}\n{VALIDATION_DATA[validation][1]}"
    # fontsize=None would not mean the default title size but font.size, smaller: leave it out instead
    figure.suptitle(title, **({"fontsize": 10} if len(title) > 110 else {}))
    figure.tight_layout(rect=(0, 0.03, 1, 1) if credit else None)
    _credit(figure, credit)
    figure.savefig(path, dpi=110)
    return title


def confusion_matrix(labels, predictions, num_classes):
    """Counts: rows are true classes, columns predicted classes."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


@same_style
def plot_confusion_matrix(matrix, path, title, class_names=None, credit=None):
    num_classes = len(matrix)
    class_names = class_names or [str(i) for i in range(num_classes)]
    figure, axis = subplots(figsize=(max(1.2 + 0.55 * num_classes, 4.2), max(1.0 + 0.5 * num_classes, 3.6)))
    axis.imshow(np.log1p(matrix), cmap="Blues")
    for true in range(num_classes):
        for predicted in range(num_classes):
            count = matrix[true, predicted]
            axis.text(predicted, true, str(count), ha="center", va="center", fontsize=8,
                      color="white" if true == predicted else "black")
    axis.set_xticks(range(num_classes), class_names)
    axis.set_yticks(range(num_classes), class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title, **({"fontsize": 9} if credit else {}))
    figure.tight_layout(rect=(0, 0.1, 1, 1) if credit else None)
    _credit(figure, credit)
    figure.savefig(path, dpi=110)


def image_grid(count, columns, cell, title_height):
    """A figure of `count` image cells, `columns` a row (at least one row), each cell (width, height) inches, axes
    off; title_height inches above them for the title."""
    rows = max(1, int(np.ceil(count / columns)))
    figure, axes = subplots(rows, columns, figsize=(columns * cell[0], rows * cell[1] + title_height),
                                squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    return figure, axes


@same_style
def plot_misclassified(images, labels, predictions, path, title, count=36):
    """A grid of the first misclassified test images, each titled 'true -> predicted'."""
    wrong = np.flatnonzero(labels != predictions)[:count]
    figure, axes = image_grid(len(wrong), 9, (1.1, 1.25), 0.5)
    for axis, index in zip(axes.ravel(), wrong):
        axis.imshow(images[index].reshape(28, 28), cmap="gray_r")
        axis.set_title(f"{labels[index]} -> {predictions[index]}", fontsize=9, color="crimson")
    figure.suptitle(f"{title}: {int(np.sum(labels != predictions))} errors, first {len(wrong)} (true -> predicted)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


@same_style
def plot_ladder(names, error_rates, minutes, path, goal=None, limit_minutes=None):
    """Error rate per rung (each seed a dot, the mean a bar with its sd), and training minutes per run.

    goal: an error rate (%) drawn as a dashed line, the target of the last rung's mean; limit_minutes: the
    time a run must stay under, drawn the same way.
    """
    figure, (left, right) = subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 2]})
    positions = np.arange(len(names))
    means = [np.mean(rates) for rates in error_rates]
    spreads = [np.std(rates, ddof=1) if len(rates) > 1 else 0 for rates in error_rates]
    left.bar(positions, means, yerr=spreads, capsize=4, color="#9ecae1", label="mean ± sd over seeds")
    for position, rates in zip(positions, error_rates):
        left.plot([position] * len(rates), rates, "o", color="#08519c", markersize=4)
    if goal is not None:
        left.axhline(goal, color="crimson", linestyle="--", linewidth=1, label=f"goal: {goal:.2f}% (mean)")
    left.set_ylabel("test error rate (%)")
    left.set_title("error rate per rung (dots: seeds)")
    right.bar(positions, minutes, color="#fdae6b")
    if limit_minutes is not None:
        right.axhline(limit_minutes, color="crimson", linestyle="--", linewidth=1,
                      label=f"limit: {limit_minutes:g} min a run")
        right.legend()
    right.set_ylabel("training minutes per run")
    right.set_title("cost per rung")
    for axis in (left, right):
        axis.set_xticks(positions, names, rotation=30, ha="right")
        axis.grid(axis="y", alpha=0.3)
    left.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _credit(figure, credit):
    """The data set's credit under a figure made from it (its licence asks for it wherever the figure goes)."""
    if credit:
        figure.text(0.5, 0.005, credit, ha="center", va="bottom", fontsize=7, color="dimgray")


@same_style
def plot_roc(fpr, tpr, auc, operating_point, path, title, threshold=0.5, credit=None):
    """The ROC curve (PNEUMONIA positive) with the point the threshold gives marked: operating_point is its
    (false positive rate, true positive rate), from the confusion matrix at that threshold."""
    figure, axis = subplots(figsize=(5.2, 5.2))
    axis.plot(fpr, tpr, "-", color="#08519c", label=f"ROC curve, AUC {auc:.3f}")
    axis.plot([0, 1], [0, 1], ":", color="gray", label="chance")
    axis.plot(*operating_point, "o", color="crimson", markersize=8,
              label=f"threshold {threshold:g}: {operating_point[0]:.1%} of NORMAL called PNEUMONIA,\n"
                    f"{operating_point[1]:.1%} of PNEUMONIA found (recall)")
    axis.set_xlabel("false positive rate (1 - specificity)")
    axis.set_ylabel("true positive rate (recall)")
    axis.set_xlim(-0.01, 1.01)
    axis.set_ylim(-0.01, 1.01)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=7)
    axis.set_title(title, fontsize=10)
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    _credit(figure, credit)
    figure.savefig(path, dpi=110)


def misclassified_xrays(labels, probabilities, threshold=0.5, count=24):
    """Indices of misclassified images to show: the most confident errors first, a third of the places kept for
    missed PNEUMONIA (false negatives) when there are any, then NORMAL called PNEUMONIA (false positives)."""
    labels = np.asarray(labels).reshape(-1) >= 0.5
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    predicted = probabilities > threshold
    false_negatives = np.flatnonzero(labels & ~predicted)
    false_positives = np.flatnonzero(~labels & predicted)
    false_negatives = false_negatives[np.argsort(probabilities[false_negatives], kind="stable")]
    false_positives = false_positives[np.argsort(-probabilities[false_positives], kind="stable")]
    missed = false_negatives[:max(count // 3, count - len(false_positives))]
    return np.concatenate([false_positives[:count - len(missed)], missed]).astype(np.int64)


@same_style
def plot_misclassified_xrays(images, labels, probabilities, names, path, title, threshold=0.5, count=24,
                             credit=None):
    """A grid of misclassified radiographs (misclassified_xrays), each with its file name, its true class and the
    model's PNEUMONIA probability. images: (N, H, W[, 1]) pixels 0..255 as the model saw them."""
    shown = misclassified_xrays(labels, probabilities, threshold, count)
    labels = np.asarray(labels).reshape(-1) >= 0.5
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    wrong = labels != (probabilities > threshold)
    figure, axes = image_grid(len(shown), 6, (1.9, 2.15), 0.8)
    for axis, index in zip(axes.ravel(), shown):
        axis.imshow(np.asarray(images[index]).squeeze(), cmap="gray", vmin=0, vmax=255)
        truth = "PNEUMONIA" if labels[index] else "NORMAL"
        axis.set_title(f"{names[index]}\ntrue {truth}, p={probabilities[index]:.2f}", fontsize=6.5, color="crimson")
    false_positives, false_negatives = int(np.sum(wrong & ~labels)), int(np.sum(wrong & labels))
    figure.suptitle(f"{title}: {false_positives} NORMAL called PNEUMONIA, {false_negatives} PNEUMONIA called NORMAL"
                    f" (p: PNEUMONIA probability, threshold {threshold:g});\nshown: the {len(shown)} most confident "
                    "errors", fontsize=9)
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    _credit(figure, credit)
    figure.savefig(path, dpi=110)
