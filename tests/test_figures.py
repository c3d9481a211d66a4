"""A figure is a function of its numbers: the same PNG bytes whatever the process drew or set before it."""

import json

import matplotlib
import numpy as np
from conftest import ROOT

from labtools import plots

MATRIX = np.diag([976, 1131, 1025, 1003, 975, 884, 950, 1019, 966, 1001]).astype(np.int64) + 1
EPOCHS = [{"epoch": epoch, "loss": 1 / epoch, "accuracy": 1 - 0.1 / epoch, "val_loss": 1.1 / epoch,
           "val_accuracy": 1 - 0.12 / epoch, "seconds": 3.0} for epoch in range(1, 4)]


def draw_both(folder):
    plots.plot_confusion_matrix(MATRIX, folder / "confusion.png", "large: confusion matrix (test set)")
    plots.plot_history(EPOCHS, folder / "history.png", "large: training history")
    return [(folder / name).read_bytes() for name in ("confusion.png", "history.png")]


def test_figures_are_the_same_bytes_whatever_was_set_or_drawn_before(tmp_path):
    first = draw_both(tmp_path)
    (tmp_path / "other").mkdir()
    # what a notebook's style or a matplotlibrc in the home folder would set, and a figure drawn in between
    with matplotlib.rc_context({"font.size": 14, "axes.titlesize": "small", "figure.titlesize": 20,
                                "axes.grid": True, "lines.linewidth": 3, "figure.dpi": 72}):
        plots.plot_ladder(["a", "b"], [[1.0, 1.1], [0.9, 0.8]], [1.0, 2.0], tmp_path / "ladder.png", goal=0.5)
        second = draw_both(tmp_path / "other")
    assert second == first
    history_first = tmp_path / "history_first"
    history_first.mkdir()
    plots.plot_history(EPOCHS, history_first / "history.png", "large: training history")  # the other order
    plots.plot_confusion_matrix(MATRIX, history_first / "confusion.png", "large: confusion matrix (test set)")
    assert [(history_first / name).read_bytes() for name in ("confusion.png", "history.png")] == first
    assert matplotlib.rcParams["font.size"] == matplotlib.rcParamsDefault["font.size"]  # nothing leaks out either


def test_a_committed_figure_is_drawn_again_bit_for_bit(tmp_path):
    """The committed large_history.png from the committed history: a fresh clone draws the same bytes (a title
    size once came out smaller there: fontsize=None is font.size, not the default title size)."""
    run = json.loads((ROOT / "results" / "models" / "large.history.json").read_text())
    plots.plot_history(run["epochs"], tmp_path / "large_history.png", "large: training history",
                       run["config"].get("validation", "test"))
    assert (tmp_path / "large_history.png").read_bytes() == (ROOT / "results" / "plots" / "large_history.png").read_bytes()
