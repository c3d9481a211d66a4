"""Which holdout images the ladder's pairs get wrong, and how much of that is shared (no test image is predicted).

    python experiments/ladder_holdout_errors.py [--figure PNG] PAIR [PAIR ...]   (from the repository root)

PAIR: a pair trained on the first 55,000 training images (the `deeper` rung's, or ladder_variants.py's), named
without its extension. For each pair: its errors on the holdout (the last 5,000 training images). Then: the images
that every pair gets wrong, how many pairs miss each image that any pair misses, and the errors of the pairs'
softmax outputs averaged (an ensemble, which the ladder's goal excludes: it bounds what one more model of the same
kind could add). --figure: those images, missed by most pairs, drawn with their label and the averaged prediction.

Output: results/logs/ladder_holdout_errors.txt, overwritten. The committed one and its figure: `python
experiments/ladder_holdout_errors.py --figure results/logs/ladder_holdout_errors.png` and the 13 pairs its comment
lines name; by hand, those lines, and the pairs outside results/models named by what they are instead of their paths.
"""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))
from labtools import console  # noqa: E402

if __name__ == "__main__":  # run as a script: the Keras backend loaded first, its start-up lines filtered out
    console.start("experiments/ladder_holdout_errors.py")

import data  # noqa: E402
import ladder_variants  # noqa: E402,F401  (registers ElasticNearestAugmentation, for the pairs that hold one)
import logs  # noqa: E402
import persistence  # noqa: E402
from labtools import runs  # noqa: E402


def main(paths, figure=None):
    (train_images, train_labels), _, _ = data.get_data_mnist(normalize=True)  # the test set is not predicted
    _, (images, labels) = runs.holdout_split(train_images, train_labels)
    images = np.transpose(images, (0, 2, 3, 1))  # the ladder's pairs are channels_last
    labels = labels.argmax(axis=1)
    wrong, summed = {}, 0
    for path in paths:
        probabilities = persistence.load_keras_model(path).predict(images, batch_size=1000, verbose=0)
        summed = summed + probabilities
        wrong[path] = set(np.flatnonzero(probabilities.argmax(axis=1) != labels).tolist())
        print(f"{path}: {len(wrong[path])} holdout errors of {len(labels)}")
    every = set.intersection(*wrong.values())
    # how many pairs miss each image that any pair misses (the figure draws those that most pairs miss)
    counts = {index: sum(index in missed for missed in wrong.values()) for index in set.union(*wrong.values())}
    predicted = summed.argmax(axis=1)
    print(f"mean over the {len(paths)} pairs: {np.mean([len(missed) for missed in wrong.values()]):.1f} errors")
    print(f"missed by every pair: {len(every)}; by any: {len(counts)}; images missed by exactly 1, 2, ... "
          f"{len(paths)} pairs: {np.bincount(list(counts.values()), minlength=len(paths) + 1)[1:].tolist()}")
    print(f"softmax averaged over the {len(paths)} pairs: {int((predicted != labels).sum())} errors")
    print("missed by every pair (holdout index: label -> averaged prediction):",
          ", ".join(f"{index}: {labels[index]}->{predicted[index]}" for index in sorted(every)))
    if figure:
        draw(images, labels, predicted, counts, len(paths), figure)


def draw(images, labels, predicted, counts, pairs, figure):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    most = sorted((index for index, count in counts.items() if count > pairs / 2), key=lambda i: -counts[i])
    columns = 9
    rows = -(-len(most) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.35), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, index in zip(axes.flat, most):
        axis.imshow(images[index, :, :, 0], cmap="gray_r")
        axis.set_title(f"{labels[index]} -> {predicted[index]}\n{counts[index]}/{pairs}", fontsize=8)
    fig.suptitle(f"Holdout images that most of {pairs} models miss (label -> averaged prediction, "
                 f"models missing it)", fontsize=9)
    fig.tight_layout()
    fig.savefig(figure, dpi=100)
    print(f"figure: {figure} ({len(most)} images)")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    figure = arguments[1] if arguments[:1] == ["--figure"] else None
    paths = arguments[2:] if figure else arguments
    if not paths:
        sys.exit("usage: python experiments/ladder_holdout_errors.py [--figure PNG] PAIR [PAIR ...]")
    logs.tee("ladder_holdout_errors.txt")
    main(paths, figure)
