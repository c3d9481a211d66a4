"""Photos of handwritten digits, made here rather than collected: MNIST test digits redrawn as ink strokes on paper,
then photographed as students photograph them: grey, tinted or shadowed paper, lighting that falls off, ink darker
or lighter than the paper, a crop pasted onto another canvas, grid paper, thin and thick strokes, digits off-centre,
blur, JPEG, from 28 px to 3,000 px a side.

photo(digit, condition, seed) returns one RGB photo (uint8); CONDITIONS names them. experiments/digit_photos.py
measures predict.py on 120 of them, tests/test_predict.py checks its preparation on some.
"""

import io

import numpy as np
from PIL import Image
from scipy import ndimage

CONDITIONS = ("white paper", "grey paper", "tinted paper", "shadow", "light falling off", "chalk on a dark board",
              "pasted crop", "grid paper", "thin pen", "thick marker", "off-centre", "tiny", "huge", "tight crop",
              "pencil on grey", "specks")
PAPER = {"white": (235, 235, 228), "yellow": (232, 214, 150), "blue": (178, 200, 222), "pink": (236, 200, 205),
         "green": (200, 225, 190)}
BOARD = {"green board": (42, 58, 50), "black board": (30, 30, 34), "blue board": (30, 40, 70)}
INK = {"black": (25, 25, 30), "blue pen": (30, 45, 140), "pencil": (95, 95, 100), "marker": (15, 15, 15),
       "red pen": (170, 30, 35)}


def strokes(digit, height, width_factor=1.0):
    """The MNIST digit (28x28, 0..1) redrawn `height` pixels high as an ink coverage map 0..1, its strokes
    width_factor times their width in MNIST."""
    scale = height / 20  # MNIST's digits fill a 20x20 box
    big = ndimage.zoom(np.asarray(digit, np.float64), scale, order=3)
    big = ndimage.gaussian_filter(big, sigma=scale * 0.4)
    shape = big > 0.35 * big.max()  # the stroke itself, sharp-edged as ink is
    radius = int(round(abs(width_factor - 1) * scale * 0.5))  # MNIST's strokes are about 2 of its 20 pixels wide
    if radius:
        structure = ndimage.generate_binary_structure(2, 1)
        operation = ndimage.binary_dilation if width_factor > 1 else ndimage.binary_erosion
        thinner = operation(shape, structure, iterations=radius)
        shape = thinner if thinner.any() else shape
    return ndimage.gaussian_filter(shape.astype(np.float64), sigma=max(0.6, scale * 0.15))


def paint(paper, ink, coverage):
    """An RGB canvas: the paper colour where coverage is 0, the ink colour where it is 1."""
    paper, ink = np.asarray(paper, np.float64), np.asarray(ink, np.float64)
    return paper * (1 - coverage[..., None]) + ink * coverage[..., None]


def place(coverage, canvas_shape, where):
    """coverage put into a zero canvas with its top-left corner at `where` (row, column), cut where it sticks out."""
    canvas = np.zeros(canvas_shape)
    top, left = where
    rows = slice(max(0, top), min(canvas_shape[0], top + coverage.shape[0]))
    columns = slice(max(0, left), min(canvas_shape[1], left + coverage.shape[1]))
    canvas[rows, columns] = coverage[rows.start - top: rows.stop - top, columns.start - left: columns.stop - left]
    return canvas


def lighting(shape, rng, low=0.55):
    """A brightness field falling off linearly from 1 to `low` across the image, in a random direction."""
    rows, columns = np.mgrid[0: shape[0], 0: shape[1]]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * rows / shape[0] + np.sin(angle) * columns / shape[1]
    ramp = (ramp - ramp.min()) / max(ramp.max() - ramp.min(), 1e-9)
    return low + (1 - low) * ramp


def shadow(shape, rng, depth=0.45):
    """A soft-edged shadow over part of the image (a hand or a phone), darkening it by `depth`."""
    rows, columns = np.mgrid[0: shape[0], 0: shape[1]]
    angle = rng.uniform(0, 2 * np.pi)
    side = np.cos(angle) * (rows / shape[0] - 0.5) + np.sin(angle) * (columns / shape[1] - 0.5)
    edge = 1 / (1 + np.exp(-(side - rng.uniform(0.0, 0.25)) / 0.04))
    return 1 - depth * edge


def grid(shape, spacing, rng):
    """The lines of grid paper, 0..1, every `spacing` pixels, slightly rotated."""
    rows, columns = np.mgrid[0: shape[0], 0: shape[1]].astype(np.float64)
    angle = rng.uniform(-0.03, 0.03)
    u, v = rows * np.cos(angle) - columns * np.sin(angle), rows * np.sin(angle) + columns * np.cos(angle)
    distance = np.minimum(np.abs((u + spacing / 2) % spacing - spacing / 2),
                          np.abs((v + spacing / 2) % spacing - spacing / 2))  # to the nearest line
    return np.clip(max(1.0, spacing / 30) - distance + 0.5, 0, 1)


def camera(image, rng, blur=1.0, noise=4.0, quality=85, size=None):
    """What a phone does to it: blur, sensor noise, resizing to `size` (width, height), JPEG."""
    image = np.stack([ndimage.gaussian_filter(image[..., c], blur) for c in range(3)], axis=-1) if blur else image
    image = np.clip(image + rng.normal(0, noise, image.shape), 0, 255).astype(np.uint8)
    picture = Image.fromarray(image)
    if size is not None:
        picture = picture.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))


def grey(level, rng):
    """A grey paper of about `level`, slightly tinted."""
    return tuple(level + rng.uniform(-6, 6) for _ in range(3))


def photo(digit, condition, seed):
    """One photo of `digit` (28x28, 0..1, MNIST's strokes) under `condition` (one of CONDITIONS), RGB uint8."""
    rng = np.random.default_rng(seed)
    height, width = int(rng.integers(420, 700)), int(rng.integers(420, 760))
    digit_height = int(min(height, width) * rng.uniform(0.45, 0.68))
    paper, ink, width_factor = grey(rng.uniform(222, 245), rng), INK[rng.choice(["black", "blue pen", "marker"])], 1.0
    spot = None  # where the digit's 28x28 box goes (row, column); None: anywhere it fits
    light, extra, specks = None, None, 0  # light: a function of the photo's shape, once it is known
    opacity, size, blur, quality = 1.0, None, rng.uniform(0.6, 1.8), int(rng.integers(45, 92))
    if condition == "grey paper":
        paper, ink = grey(rng.uniform(85, 160), rng), INK[rng.choice(["marker", "black", "blue pen"])]
    elif condition == "tinted paper":
        paper, ink = PAPER[rng.choice(["yellow", "blue", "pink", "green"])], INK[rng.choice(["black", "red pen"])]
    elif condition == "shadow":
        depth = rng.uniform(0.3, 0.6)
        light = lambda shape: shadow(shape, rng, depth)  # noqa: E731
    elif condition == "light falling off":
        low = rng.uniform(0.35, 0.6)
        light = lambda shape: lighting(shape, rng, low)  # noqa: E731
    elif condition == "chalk on a dark board":
        paper, ink, opacity = BOARD[rng.choice(list(BOARD))], (225, 228, 220), rng.uniform(0.75, 0.95)
    elif condition == "grid paper":
        lines = rng.choice([(150, 175, 205), (170, 170, 170), (215, 160, 170)])
        extra = (digit_height / rng.uniform(3, 5), lines)
    elif condition == "thin pen":
        ink, width_factor = INK[rng.choice(["blue pen", "pencil", "black"])], 0.6
    elif condition == "thick marker":
        ink, width_factor = INK["marker"], 1.8
    elif condition == "off-centre":
        digit_height = int(min(height, width) * rng.uniform(0.22, 0.35))
        corner = rng.integers(0, 2, 2)
        spot = tuple(int(8 + c * (side - digit_height * 1.4 - 16)) for c, side in zip(corner, (height, width)))
    elif condition == "tiny":
        size = (int(rng.integers(28, 48)),) * 2
        height = width = int(rng.integers(300, 400))
        digit_height = int(height * rng.uniform(0.55, 0.68))
        spot = ((height - int(digit_height * 1.4)) // 2,) * 2
        blur = 0.5
    elif condition == "huge":
        height, width = int(rng.integers(2200, 2600)), int(rng.integers(2800, 3000))
        digit_height = int(min(height, width) * rng.uniform(0.4, 0.6))
        blur = rng.uniform(2, 5)
    elif condition == "tight crop":  # cropped to the digit's box: its strokes come near the edges
        height = width = int(rng.integers(300, 500))
        digit_height = int(height / 1.4 * rng.uniform(0.9, 1.0))
        spot = ((height - int(digit_height * 1.4)) // 2,) * 2
    elif condition == "pencil on grey":
        paper, ink, opacity = grey(rng.uniform(150, 195), rng), INK["pencil"], rng.uniform(0.6, 0.9)
    elif condition == "specks":
        specks = int(rng.integers(15, 40))
    elif condition == "pasted crop":  # a grey photo of the digit, cut out around it and pasted onto another page
        crop = photo(digit, "grey paper", seed + 1)
        margin = rng.uniform(0.05, 0.3)
        deviation = np.abs(crop.astype(np.float64).mean(axis=2) - np.median(crop))
        rows, columns = np.nonzero(deviation > 0.5 * deviation.max())  # the ink
        box = [rows.min(), rows.max(), columns.min(), columns.max()]
        pad = int(margin * (box[1] - box[0]))
        crop = crop[max(0, box[0] - pad): box[1] + pad, max(0, box[2] - pad): box[3] + pad]
        page = np.broadcast_to(np.asarray(grey(rng.uniform(225, 250), rng)), (height, width, 3)).copy()
        scale = min(1.0, 0.8 * min(height / crop.shape[0], width / crop.shape[1]))
        crop = np.asarray(Image.fromarray(crop).resize((max(8, int(crop.shape[1] * scale)),
                                                        max(8, int(crop.shape[0] * scale))), Image.Resampling.LANCZOS))
        top, left = int(rng.integers(0, height - crop.shape[0])), int(rng.integers(0, width - crop.shape[1]))
        page[top: top + crop.shape[0], left: left + crop.shape[1]] = crop
        return camera(page, rng, blur=0.8, noise=2.0, quality=quality)
    elif condition != "white paper":
        raise ValueError(f"unknown condition {condition!r}")
    if spot is None:
        spot = (int((height - digit_height * 1.4) * rng.uniform(0.15, 0.85)),
                int((width - digit_height * 1.4) * rng.uniform(0.15, 0.85)))
    drawn = ndimage.rotate(strokes(digit, digit_height, width_factor), rng.uniform(-8, 8), reshape=False, order=1)
    coverage = place(np.clip(drawn, 0, 1) * opacity, (height, width), spot)
    image = paint(paper, ink, coverage)
    if extra is not None:  # the ink goes over the grid
        spacing, colour = extra
        lines = grid((height, width), spacing, rng)
        image = paint(paper, colour, lines) * (1 - coverage[..., None]) + image * coverage[..., None]
    for _ in range(specks):  # dust and pen dots, away from nothing in particular
        row, column, radius = rng.integers(0, height), rng.integers(0, width), rng.uniform(1, 4)
        rows, columns = np.ogrid[0: height, 0: width]
        dot = np.clip(radius - np.hypot(rows - row, columns - column), 0, 1)
        image = image * (1 - dot[..., None]) + np.asarray(INK["black"]) * dot[..., None]
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (height, width)), 6) * 30  # paper grain, uneven
    image = image + texture[..., None]
    if light is not None:
        image = image * light((height, width))[..., None]
    return camera(image, rng, blur=blur, quality=quality, size=size)
