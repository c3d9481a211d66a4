"""Test-time augmentation for the ladder: does averaging a model's predictions over shifted copies of each image help?

    python experiments/ladder_tta.py            (from the repository root; TensorFlow, about a minute on 2 cores)

1. The choice, on the holdout (the last 5,000 training images) with the committed `deeper` pairs (seeds 7, 8, 9),
   which trained on the other 55,000: each view set's errors and loss. A view shifts the whole image by whole
   pixels, the background (0) filling in, so it is one of the moves the training augmentation drew; the model's
   softmax outputs are averaged over the views.
2. Only then, the test set once, for the `best` pairs (seeds 7, 8, 9; trained on all 60,000 images), without
   views and with the view set that the holdout chose (fewest errors over the three seeds, then the lower loss).

Output: results/logs/ladder_tta.txt, overwritten; the committed one is that command's, its three comment lines by
hand.
"""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from labtools import console  # noqa: E402

if __name__ == "__main__":  # run as a script: the Keras backend loaded first, its start-up lines filtered out
    console.start("experiments/ladder_tta.py")

import data  # noqa: E402
import logs  # noqa: E402
import persistence  # noqa: E402
from labtools import runs  # noqa: E402

VIEW_SETS = {
    "none": [(0, 0)],
    "4 shifts of 1 pixel": [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)],
    "8 shifts of 1 pixel": [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)],
    "4 shifts of 2 pixels": [(0, 0), (2, 0), (-2, 0), (0, 2), (0, -2)],
}


def shifted(images, dy, dx):
    """(N, 28, 28) images moved dy rows down and dx columns right, zeros coming in."""
    out = np.zeros_like(images)
    h, w = images.shape[1:]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        images[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def scores(model, images, labels, views):
    """(errors, mean cross-entropy) of the softmax averaged over the views."""
    probabilities = np.mean([model.predict(shifted(images, dy, dx)[..., None], batch_size=500, verbose=0)
                             for dy, dx in views], axis=0)
    truth = labels.argmax(axis=1)
    loss = -np.mean(np.log(np.clip(probabilities[np.arange(len(truth)), truth], 1e-7, 1)))
    return int((probabilities.argmax(axis=1) != truth).sum()), float(loss)


def main():
    (X_train, y_train), (X_test, y_test), _ = data.get_data_mnist(normalize=True)
    _, (X_holdout, y_holdout) = runs.holdout_split(X_train, y_train)
    pairs = {seed: persistence.load_keras_model(ROOT / "results" / "models" / f"deeper{suffix}")
             for seed, suffix in ((7, ""), (8, "_seed8"), (9, "_seed9"))}
    print("1. holdout (5,000 images), deeper's pairs; errors and loss for seeds 7, 8, 9:")
    totals = {}
    for name, views in VIEW_SETS.items():
        results = [scores(model, X_holdout[:, 0], y_holdout, views) for model in pairs.values()]
        totals[name] = (sum(errors for errors, _ in results), np.mean([loss for _, loss in results]))
        print(f"   {name:<22} errors {', '.join(str(e) for e, _ in results)} (total {totals[name][0]}); "
              f"loss {', '.join(f'{loss:.4f}' for _, loss in results)}", flush=True)
    chosen = min(totals, key=lambda name: totals[name])
    print(f"   chosen: {chosen}")
    print("2. test (10,000 images), best's pairs, seeds 7, 8, 9: error rate (%)")
    for name in dict.fromkeys(["none", chosen]):
        rates = []
        for suffix in ("", "_seed8", "_seed9"):
            model = persistence.load_keras_model(ROOT / "results" / "models" / f"best{suffix}")
            errors, _ = scores(model, X_test[:, 0], y_test, VIEW_SETS[name])
            rates.append(errors / 100)
        print(f"   {name:<22} {', '.join(f'{rate:.2f}' for rate in rates)}; mean {np.mean(rates):.3f}%", flush=True)


if __name__ == "__main__":
    logs.tee("ladder_tta.txt")
    main()
