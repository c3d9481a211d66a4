"""Classify your own handwritten digits with a trained pair.

    python predict.py my_digit.jpg other.png [--model large] [--show]

A photo or scan of any size, dark ink on light paper or the reverse, on white,
grey or tinted paper, shadowed or not, is prepared the way MNIST itself was:
the ink found by its contrast with the paper around it (ink_map), cropped, its
longer side scaled to 20 px keeping the aspect ratio, then pasted into 28x28
with its centre of mass at the centre.
"""

if __name__ == "__main__":  # run as a script: Keras's backend loaded first, its start-up lines filtered out
    from labtools import console

    console.start("predict.py")

import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage
from skimage.transform import resize

import data
import models
from labtools import console, grading, history, scores
from labtools.errors import DataError, UsageError, short_error

DEFAULT_MODEL = "large"


def load_grayscale(path, source=None):
    """A 2-D float array 0..255 from any image file Pillow reads (a path, or a file object: draw.py's uploads);
    DataError otherwise, naming `source` (default: the path)."""
    path = path if hasattr(path, "read") else Path(path)
    source = source or path
    try:
        with warnings.catch_warnings():  # Pillow's decompression-bomb warning: an error naming the file
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image = ImageOps.exif_transpose(image)  # phone photos are often stored rotated
                gray = np.asarray(image.convert("L"), dtype=np.float32)
    except FileNotFoundError:
        raise DataError(f"{source}: no such file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise DataError(f"{source}: too large to read safely ({str(error).rstrip('.')}); scale the photo down "
                             "to a few thousand pixels a side") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise DataError(f"{source}: not an image Pillow can read ({type(error).__name__}); "
                             "use a PNG or JPEG photo or scan of one digit") from None
    if gray.ndim != 2 or min(gray.shape) < 2:
        raise DataError(f"{source}: image too small ({gray.shape}); use a photo or scan of one digit")
    return gray


ANALYSIS_SIDE = 256  # pixels on the longer side where the ink is found: MNIST's digits are 20 pixels high


def to_mnist(gray, source="image"):
    """A (28, 28) float32 array 0..1, light ink on black, prepared as MNIST's digits were: the ink (ink_map) cropped,
    its longer side scaled to 20 px keeping the aspect ratio, pasted into 28x28 with its centre of mass at the
    centre."""
    return centred_digit(ink_map(gray, source), threshold=0.05)


def centred_digit(ink, threshold):
    """The ink (0..1) cropped to where it exceeds threshold, its longer side scaled to 20 px, pasted into 28x28 with
    its centre of mass at the centre, as MNIST's digits were."""
    rows, columns = np.nonzero(ink > threshold)
    ink = ink[rows.min(): rows.max() + 1, columns.min(): columns.max() + 1]
    scale = 20 / max(ink.shape)
    height, width = max(1, round(ink.shape[0] * scale)), max(1, round(ink.shape[1] * scale))
    digit = resize(ink, (height, width), anti_aliasing=True)
    center_row, center_column = ndimage.center_of_mass(digit)
    top, left = int(round(14 - center_row)), int(round(14 - center_column))
    top, left = min(max(top, 0), 28 - height), min(max(left, 0), 28 - width)
    canvas = np.zeros((28, 28), np.float32)
    canvas[top: top + height, left: left + width] = digit
    return np.clip(canvas / canvas.max(), 0, 1).astype(np.float32)


def ink_map(gray, source="image"):
    """The digit's ink in a grayscale image 0..255, 0..1 (paper 0), the image's longer side at most ANALYSIS_SIDE.

    The ink is told from the paper by its contrast with the paper around it, whatever the paper's own level:
    1. Which way: the image less a blur of it far wider than any stroke is the ink's contrast, on top of the
       paper's shading; the ink is its longer tail away from the photo's edge, darker or lighter than the paper
       (pen on paper, chalk on a board).
    2. How much: a top-hat keeps what stands out of its surroundings within a window wider than any stroke (a
       quarter of the image) and narrower than the paper around the digit, so that the paper's grey, a shadow,
       light falling off, the edge of a crop pasted onto another page are not ink; each stroke is then measured
       against the strongest ink near it, so that strokes in a shadow count as fully as the others.
    3. Which marks: of the marks the strokes make, the digit is the biggest that does not touch the photo's edge
       (grid lines and a table's edge do), with the marks near it, a tenth of its size or more, that do not
       either; not specks of dust.
    DataError when nothing stands out (a blank page, no contrast) or only specks do.
    """
    gray = np.asarray(gray, np.float32)
    if max(gray.shape) > ANALYSIS_SIDE:  # area averaging: the grain and the JPEG blocks of a big photo average out
        scale = ANALYSIS_SIDE / max(gray.shape)
        size = (max(2, round(gray.shape[1] * scale)), max(2, round(gray.shape[0] * scale)))
        gray = np.asarray(Image.fromarray(gray, "F").resize(size, Image.Resampling.BOX), np.float32)
    short = min(gray.shape)
    contrast = gray - ndimage.gaussian_filter(gray, sigma=short / 4)
    frame = short // 16  # the photo's edge left out: the page around a pasted crop, a table's edge
    low, high = np.percentile(contrast[frame: gray.shape[0] - frame, frame: gray.shape[1] - frame], [0.1, 99.9])
    dark = -low > high
    ink = top_hat(255 - gray if dark else gray, short)  # the ink bright, as in MNIST
    # the ink's contrast (a digit covers more than a thousandth of the image), and the paper's grain: on the pages of
    # tests/digit_photos.py, a digit stands 45 levels and 8 times the grain's median out of it, a blank page 16 and 3
    level, grain = np.percentile(ink, [99.9, 50])
    if level < max(20, 6 * grain):
        raise DataError(f"{source}: no ink found (the image is blank or has no contrast)")
    # each stroke against the strongest ink near it: in a shadow, or where the light falls off, the ink's contrast
    # is lower by as much as the paper's, and the strokes there are as much ink
    nearby = ndimage.maximum_filter(ink, size=max(3, short // 4))
    ink = ink / np.maximum(nearby, 0.3 * level) * (ink > 0.25 * level)
    marks, count = ndimage.label(ink > 0.45, structure=np.ones((3, 3)))
    sizes = ndimage.sum_labels(np.ones_like(ink), marks, index=np.arange(1, count + 1))
    edge = set(np.unique(np.concatenate([marks[0], marks[-1], marks[:, 0], marks[:, -1]]))) - {0}
    inside = [label for label in range(1, count + 1) if label not in edge]
    largest = int(np.argmax(sizes)) + 1
    digit = max(inside, key=lambda label: sizes[label - 1]) if inside else largest
    if sizes[digit - 1] < 0.25 * sizes[largest - 1]:  # a digit cut by the photo's edge
        digit = largest
    boxes = ndimage.find_objects(marks)
    (top, bottom), (left, right) = ((box.start, box.stop) for box in boxes[digit - 1])
    if max(bottom - top, right - left) < 0.04 * short:
        raise DataError(f"{source}: no digit found, only specks (a digit should fill a good part of the photo)")
    reach = 0.6 * max(bottom - top, right - left)
    kept = [label for label in inside + [digit] if sizes[label - 1] >= 0.1 * sizes[digit - 1]
            and boxes[label - 1][0].start < bottom + reach and boxes[label - 1][0].stop > top - reach
            and boxes[label - 1][1].start < right + reach and boxes[label - 1][1].stop > left - reach]
    near = ndimage.binary_dilation(np.isin(marks, kept), iterations=2)  # with the strokes' soft edges
    # 1 from seven tenths of the strokes' contrast up: MNIST's strokes are saturated but for their edges
    return np.where(near, np.clip((ink - 0.2) / 0.5, 0, 1), 0)


def top_hat(raised, short):
    """What stands out of its surroundings in `raised` (the ink bright) within a window of a quarter of the image's
    shorter side, smoothed a little against paper grain and sensor noise."""
    window = max(3, short // 4)
    ink = raised - ndimage.grey_opening(raised, size=(window, window))
    return ndimage.gaussian_filter(ink, sigma=max(0.5, short / 300))


def default_pair(name):
    """Your own run's pair (runs/models/), else the one committed under results/models/."""
    found = history.own_or_reference(name)
    if found is not None:
        return found
    raise UsageError(f"no trained {name!r} pair in results/models/; run: python train.py --model {name}")


def predict(model, images, normalize=True, recipe=None):
    """Class probabilities (N, 10) for (N, 28, 28) images 0..1; recipe defaults to the model's own. A model from
    elsewhere gets its inputs in the shape it takes (grading.input_layout); ValueError if it takes no digits."""
    recipe = recipe or grading.recipe_for(model, models.MODELS)
    model = grading.channels_last(model, recipe)  # channels_first convolutions are slower on most CPUs
    X = images.reshape(-1, 1, 28, 28) * (1 if normalize else 255)
    input_kind, data_format = grading.input_layout(model, recipe)
    inputs = data.prepare_inputs(X, input_kind, data_format, **(recipe.input_options if recipe else {}))
    probabilities, _ = scores.as_probabilities(model.predict(inputs, verbose=0))
    return probabilities


def make_parser():
    """The command line's parser (the docs test reads its flags)."""
    parser = console.HelpParser(description="Classify photos or scans of handwritten digits with a trained pair.")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files, one digit each")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="registry name of a trained MNIST model")
    parser.add_argument("--pair", metavar="PATH", help="a saved model: a pair's name without extension, a .keras "
                                                       "archive or a full-model .h5 (overrides --model)")
    parser.add_argument("--normalize", choices=["auto", "yes", "no"], default="auto",
                        help="pixels /255 (yes) or 0..255 (no); auto: what the model was trained with, else the "
                             "scale it scores better on (as evaluate.py --normalize auto)")
    parser.add_argument("--show", action="store_true", help="save the 28x28 image the model saw as IMAGE_28x28.png "
                                                           "in the current directory")
    return parser


def parse_args(argv=None):
    return make_parser().parse_args(argv)


def run(args):
    pair = Path(args.pair) if args.pair else default_pair(args.model)
    saved, recipe, normalize = grading.load_run(pair, models.MODELS)
    model = grading.channels_last(saved.model, recipe)  # once, not per image
    try:
        input_kind, data_format = grading.input_layout(model, recipe)
    except ValueError as error:
        raise UsageError(f"{pair}: not an MNIST digit model: {error}") from None
    if input_kind not in ("image", "flat", "grid", "hog"):
        raise UsageError(f"{pair}: not an MNIST digit model")
    if model.output_shape != (None, 10):
        raise UsageError(f"{pair}: it gives outputs of shape {model.output_shape}, not MNIST's 10 classes")
    normalize = {"auto": normalize, "yes": True, "no": False}[args.normalize]
    if normalize is None:  # nothing recorded how it was trained: the MNIST test images tell
        options = recipe.input_options if recipe else {}
        test_sets = grading.TestSets(data.get_data_mnist, data.prepare_inputs)
        normalize, note = grading.choose_pixel_scale(pair, model, test_sets, input_kind, data_format, options)
        print(f"{pair}: {note}")
    failures = 0
    for path in args.images:
        try:
            digit = to_mnist(load_grayscale(path), source=path)
        except DataError as error:  # one bad photo does not stop the others
            print(f"predict.py: error: {error}", file=sys.stderr)
            failures += 1
            continue
        try:
            probabilities = predict(model, digit[None], normalize, recipe)[0]
        except Exception as error:  # a model from elsewhere that cannot run: its failure, not a bug of ours
            if recipe is not None:
                raise
            raise UsageError(f"{pair}: Keras cannot run this model on a digit ({short_error(error)})") from None
        top = np.argsort(probabilities)[::-1][:3]
        print(f"{path}: {top[0]}   (top 3: " + ", ".join(f"{k} {probabilities[k] * 100:.1f}%" for k in top) + ")")
        if args.show:
            shown = Path(f"{Path(path).stem}_28x28.png")
            Image.fromarray((digit * 255).astype(np.uint8)).save(shown)
            print(f"  the model saw: {shown}")
    return 1 if failures else 0


def main(argv=None):
    return console.run("predict.py", run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
