"""predict.py on 120 photos of handwritten digits made here (tests/digit_photos.py: MNIST test digits redrawn as
ink on grey, tinted or shadowed paper, chalk on a board, a crop pasted onto a white page, grid paper, thin and
thick strokes, off-centre, 28 px to 3,000 px, blurred, JPEG), read by the committed sheet CNNs and `best`.

    python experiments/digit_photos.py [--out DIR]     (repository root, TensorFlow; about 3 minutes)

The digits: for each class, the first MNIST test digits that every model reads right in their own 28x28 form, so
that a miss is the preparation's, not the model's. Photo i shows class i mod 10 under condition i mod 16 (seed
1000 + i). Each photo goes through predict.py's preparation (predict.to_mnist), and, for comparison, through the
preparation predict.py had before it told ink from paper by contrast (a fixed 127 on the border's median). Output:
results/logs/digit_photos.txt (overwritten) and results/logs/digit_photos.png (photos, and what the model saw);
--out DIR also keeps the 120 photos as JPEG files.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from labtools import console  # noqa: E402

if __name__ == "__main__":  # run as a script: the Keras backend loaded first, its start-up lines filtered out
    console.start("experiments/digit_photos.py")

import data  # noqa: E402
import digit_photos  # noqa: E402
import logs  # noqa: E402
import models  # noqa: E402
import predict  # noqa: E402
from labtools import grading  # noqa: E402
from labtools.errors import DataError  # noqa: E402
from PIL import Image  # noqa: E402
from scipy import ndimage  # noqa: E402

MODELS = ("small_unnormalized", "small", "medium", "large", "large_original", "arn_cnn", "best")
PHOTOS, PER_CLASS = 120, 12


def fixed_127_preparation(gray, source="image"):
    """predict.py's first preparation: paper light when the border's median is above 127."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 127:
        gray, border = 255 - gray, 255 - border
    ink = np.clip(gray - np.median(border), 0, None)
    ink = ndimage.gaussian_filter(ink, sigma=max(gray.shape) / 500)
    if ink.max() < 20:
        raise DataError(f"{source}: no ink found (the image is blank or has no contrast)")
    return predict.centred_digit(ink / ink.max(), threshold=0.25)


def chosen_digits(loaded, images, labels):
    """Indices of PER_CLASS test digits of each class that every model reads right as MNIST gives them."""
    right = np.ones(len(labels), bool)
    for model, recipe, normalize in loaded.values():
        right &= predict.predict(model, images, normalize, recipe).argmax(axis=1) == labels
    return {label: np.flatnonzero(right & (labels == label))[:PER_CLASS] for label in range(10)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="keep the photos in this folder")
    args = parser.parse_args()
    _, (X_test, y_test), _ = data.get_data_mnist(normalize=True)
    images, labels = X_test[:3000, 0], y_test[:3000].argmax(axis=1)
    loaded = {}
    for name in MODELS:
        saved, recipe, normalize = grading.load_run(ROOT / "results" / "models" / name, models.MODELS)
        loaded[name] = (grading.channels_last(saved.model, recipe), recipe, normalize)
    digits = chosen_digits(loaded, images, labels)
    folder = Path(args.out or tempfile.mkdtemp(prefix="digit-photos-"))
    folder.mkdir(parents=True, exist_ok=True)
    photos = []  # (path, label, condition, test index)
    for i in range(PHOTOS):
        label, condition = i % 10, digit_photos.CONDITIONS[i % len(digit_photos.CONDITIONS)]
        index = int(digits[label][i // 10])
        path = folder / f"{i:03d}_{label}_{condition.replace(' ', '-')}.jpg"
        Image.fromarray(digit_photos.photo(images[index], condition, 1000 + i)).save(path, quality=95)
        photos.append((path, label, condition, index))
    with logs.tee("digit_photos.txt"):
        print(f"$ python experiments/digit_photos.py {' '.join(sys.argv[1:])}".rstrip())
        print(f"{PHOTOS} photos; MNIST test digits {sorted(int(i) for i in np.concatenate(list(digits.values())))}")
        for label, preparation in (("predict.to_mnist", predict.to_mnist),
                                   ("the fixed-127 preparation", fixed_127_preparation)):
            seen, failed = [], {}
            for path, _, condition, _ in photos:
                try:
                    seen.append(preparation(predict.load_grayscale(path), source=path.name))
                except DataError as error:
                    seen.append(None)
                    failed[path.name] = str(error).split(": ", 1)[1]
            print(f"\n{label}: {len(failed)} photos refused" + "".join(f"\n  {name}: {why}" for name, why in
                                                                    failed.items()))
            for name, (model, recipe, normalize) in loaded.items():
                answers = [None if digit is None else int(predict.predict(model, digit[None], normalize,
                                                                          recipe)[0].argmax()) for digit in seen]
                right = [answer == photo[1] for answer, photo in zip(answers, photos)]
                misses = [f"{photo[0].name} -> {answer}" for answer, photo, ok in zip(answers, photos, right)
                          if not ok]
                print(f"  {name:18s} {sum(right):3d} of {PHOTOS} right; missed: {', '.join(misses) or 'none'}")
            if label == "predict.to_mnist":
                figure(photos, seen, ROOT / "results" / "logs" / "digit_photos.png")
    return 0


def figure(photos, seen, path):
    """One photo per condition, and the 28x28 image predict.py made of it."""
    from labtools import plots

    shown = [next(i for i, photo in enumerate(photos) if photo[2] == condition)
             for condition in digit_photos.CONDITIONS]
    figure_, axes = plots.subplots(2, len(shown), figsize=(1.6 * len(shown), 3.6))
    for column, i in enumerate(shown):
        axes[0, column].imshow(np.asarray(Image.open(photos[i][0])))
        axes[0, column].set_title(photos[i][2], fontsize=7)
        if seen[i] is not None:
            axes[1, column].imshow(seen[i], cmap="gray")
        for axis in axes[:, column]:
            axis.axis("off")
    figure_.suptitle("Photos made by tests/digit_photos.py (top) and what predict.py gives the model (bottom)",
                     fontsize=9)
    figure_.tight_layout()
    figure_.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
