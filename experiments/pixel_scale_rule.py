"""How `evaluate.py --normalize auto` tells the pixel scale a model was trained on, measured on every model whose
scale is known: the fixtures other Keras versions wrote (tests/fixtures/) and the project's committed MNIST pairs.

    python experiments/pixel_scale_rule.py [--all-seeds] [EXTRA_PAIR:0..1|0..255 ...]   (repository root, TensorFlow)

Output: results/logs/pixel_scale_rule.txt. For each model and each scale, on the first 500 and 1,000 test images:
its mistakes, its loss, and the median margin (ln p1 - ln p2, how much likelier its first choice is than its
second, in nats; inf: the softmax saturated, p2 = 0 in float32). Then what the old rule (the lower loss on 500
images, before issue 37) and grading.choose_pixel_scale choose, each marked WRONG where it misses.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

from labtools import console  # noqa: E402

if __name__ == "__main__":  # run as a script: the Keras backend loaded first, its start-up lines filtered out
    console.start("experiments/pixel_scale_rule.py")

import data  # noqa: E402
import logs  # noqa: E402
import make_fixtures  # noqa: E402  (its manifest of the fixtures)
import models  # noqa: E402
from labtools import grading, history, layout, pixel_scale, saved_models, scores  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
SHEET_SEEDS = ("", "_seed8", "_seed9")


def known_models(all_seeds):
    """(label, file, trained on 0..1?) for each fixture that loads, then each committed MNIST pair."""
    for name, entry in sorted(make_fixtures.read_manifest().items()):
        if entry.get("expect") != "refused":
            yield name, FIXTURES / entry["files"][0], entry["pixels"] == "0..1"
    for name, recipe in models.MODELS.items():
        if recipe.input_kind not in ("image", "flat"):
            continue  # HOG features and chest X-rays: no pixel scale to guess
        for suffix in SHEET_SEEDS if all_seeds else SHEET_SEEDS[:1]:
            path = ROOT / "results" / "models" / f"{name}{suffix}"
            run = history.read_history(path) or {}
            if path.with_suffix(".json").is_file() and "normalize" in run.get("config", {}):
                yield f"{name}{suffix}", path, run["config"]["normalize"]


def measured(probabilities, labels):
    """(mistakes, loss, median margin) of predictions against one-hot labels."""
    loss, accuracy = scores.loss_and_accuracy(probabilities, labels)
    return round((1 - accuracy) * len(labels)), loss, float(np.median(scores.output_margins(probabilities)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all-seeds", action="store_true", help="the committed pairs of seeds 8 and 9 too")
    parser.add_argument("extra", nargs="*", help="more models, each FILE:0..1 or FILE:0..255")
    args = parser.parse_args()
    test_sets = grading.TestSets(data.get_data_mnist, data.prepare_inputs)
    extra = [(Path(item.rsplit(":", 1)[0]).name, Path(item.rsplit(":", 1)[0]), item.endswith(":0..1"))
             for item in args.extra]
    wrong = {"old": 0, "new": 0}
    with logs.tee("pixel_scale_rule.txt"):
        print(f"$ python experiments/pixel_scale_rule.py {' '.join(sys.argv[1:])}".rstrip())
        print("model | trained on | per scale (0..1 ; 0..255), first 500 and 1,000 images: mistakes, loss, median "
              "margin | old rule | choose_pixel_scale")
        for label, path, normalized in [*known_models(args.all_seeds), *extra]:
            saved = saved_models.load(path)
            model = layout.channels_last_copy(saved.model)
            input_kind, data_format = grading.input_layout(model)
            cells, losses = [], {}
            for normalize in (True, False):
                x, y, _ = test_sets.get(normalize, input_kind, data_format)
                probabilities, _ = scores.as_probabilities(grading.run_model(path, model, x[:1000]))
                for count in (500, 1000):
                    mistakes, loss, margin = measured(probabilities[:count], y[:count])
                    cells.append(f"{mistakes} {loss:.3f} {margin:.3g}")
                    losses[normalize, count] = loss
            old = losses[True, 500] <= losses[False, 500]
            new, note = grading.choose_pixel_scale(path, model, test_sets, input_kind, data_format, {})
            for rule, chosen in (("old", old), ("new", new)):
                wrong[rule] += chosen != normalized
            mark = {True: "", False: " WRONG"}
            print(f"{label} | {pixel_scale.PIXELS[normalized]} | {' / '.join(cells[:2])} ; {' / '.join(cells[2:])} | "
                  f"{pixel_scale.PIXELS[old]}{mark[old == normalized]} | "
                  f"{pixel_scale.PIXELS[new]}{mark[new == normalized]}"
                  f" | {note}")
        print(f"wrong choices: old rule {wrong['old']}, choose_pixel_scale {wrong['new']}")


if __name__ == "__main__":
    main()
