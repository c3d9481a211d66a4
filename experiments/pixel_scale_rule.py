"""How `evaluate.py --normalize auto` tells the pixel scale a model was trained on, measured on every model whose
scale is known: the fixtures other Keras versions wrote (tests/fixtures/) and the project's committed MNIST pairs.

    python experiments/pixel_scale_rule.py [--all-seeds] [EXTRA_PAIR:0..1|0..255 ...]   (repository root, TensorFlow)

Output: results/logs/pixel_scale_rule.txt. For each model and each scale, on the first 500, 1,000 and 5,000 test
images: its mistakes, its loss, and the median margin (ln p1 - ln p2, how much likelier its first choice is than
its second, in nats; inf: the softmax saturated, p2 = 0 in float32); on the first 5,000, how many it gets right on
one scale only, each way, and the sign test's p-value (and its p-values on the first 2,000 and on all 10,000). Then what three rules choose, each marked WRONG where it
misses: the lower loss on 500 images (evaluate.py's first rule), 2 points of accuracy on 1,000 images before the
margins (its second), and grading.choose_pixel_scale (the sign test on 5,000 images before the margins).
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
OTHER_COUNTS = (2000, 10000)  # the sign test on fewer and on all test images too: why AUTO_SCALE_IMAGES is 5,000


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


def two_points_rule(probabilities, labels):
    """evaluate.py's second rule: on 1,000 images, 2 points of accuracy decide; else the margins, as now."""
    accuracy = {normalize: scores.loss_and_accuracy(probabilities[normalize], labels)[1] for normalize in (True, False)}
    if abs(accuracy[True] - accuracy[False]) >= 0.02:
        return accuracy[True] > accuracy[False]
    margin, raw_margin = (float(np.median(scores.output_margins(probabilities[normalize])))
                          for normalize in (True, False))
    return True if raw_margin <= pixel_scale.SCALE_FREE * margin else margin >= pixel_scale.MARGIN_SPLIT


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
    wrong = {"lower loss": 0, "2 points": 0, "choose_pixel_scale": 0}
    images = pixel_scale.AUTO_SCALE_IMAGES
    with logs.tee("pixel_scale_rule.txt"):
        print(f"$ python experiments/pixel_scale_rule.py {' '.join(sys.argv[1:])}".rstrip())
        print(f"model | trained on | per scale (0..1 ; 0..255), first 500, 1,000 and {images:,} images: mistakes, "
              f"loss, median margin | of {images:,}: right on 0..1 only, on 0..255 only, sign test's p (its p on the "
              f"first {' and '.join(f'{count:,}' for count in OTHER_COUNTS)}) | lower loss "
              "| 2 points | choose_pixel_scale")
        for label, path, normalized in [*known_models(args.all_seeds), *extra]:
            saved = saved_models.load(path)
            model = layout.channels_last_copy(saved.model)
            input_kind, data_format = grading.input_layout(model)
            cells, losses, probabilities, right = [], {}, {}, {}
            for normalize in (True, False):
                x, y, _ = test_sets.get(normalize, input_kind, data_format)
                probabilities[normalize] = scores.as_probabilities(grading.run_model(path, model, x))[0]
                right[normalize] = probabilities[normalize].argmax(axis=1) == y.argmax(axis=1)
                for count in (500, 1000, images):
                    mistakes, loss, margin = measured(probabilities[normalize][:count], y[:count])
                    cells.append(f"{mistakes} {loss:.3f} {margin:.3g}")
                    losses[normalize, count] = loss
            only = {count: [int(np.sum(right[normalize][:count] & ~right[not normalize][:count]))
                            for normalize in (True, False)] for count in OTHER_COUNTS + (images,)}
            choices = {"lower loss": losses[True, 500] <= losses[False, 500],
                       "2 points": two_points_rule({n: p[:1000] for n, p in probabilities.items()}, y[:1000])}
            choices["choose_pixel_scale"], note = grading.choose_pixel_scale(path, model, test_sets, input_kind,
                                                                             data_format, {})
            for rule, chosen in choices.items():
                wrong[rule] += chosen != normalized
            mark = {True: "", False: " WRONG"}
            print(f"{label} | {pixel_scale.PIXELS[normalized]} | {' / '.join(cells[:3])} ; {' / '.join(cells[3:])} | "
                  f"{only[images][0]} {only[images][1]} {pixel_scale.sign_test(*only[images]):.2g} ("
                  + ", ".join(f"{pixel_scale.sign_test(*only[count]):.2g}" for count in OTHER_COUNTS) + ") | "
                  + " | ".join(f"{pixel_scale.PIXELS[chosen]}{mark[chosen == normalized]}" for chosen in
                               choices.values()) + f" | {note}", flush=True)
        print("wrong choices: " + ", ".join(f"{rule} {count}" for rule, count in wrong.items()))


if __name__ == "__main__":
    main()
