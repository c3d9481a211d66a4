"""Inside a CNN: its first convolution's filters, every convolution's feature maps, where it looks (attribution
maps), and how faithful those maps are (the deletion check). visualize.py draws the figures; docs/inside.md shows
them and says what the deletion check found; experiments/attribution.py measures it.

Any model that is a chain of layers (every Sequential model, and the project's pairs as grading.load_run loads them,
in channels_last: layout.channels_last_copy) on TensorFlow, JAX or PyTorch: Keras layers and keras.ops throughout,
the one gradient from backend.gradient. Two attribution methods, both explaining the class score before the
softmax (or sigmoid):

- Grad-CAM (Selvaraju et al. 2017): the last convolution's maps weighted by the mean gradient of the score over
  each map, summed, negative values set to 0, resized to the image. As fine as that convolution: 24 x 24 for the
  small CNN, 10 x 10 for the large one, 7 x 7 for the ARN CNN, 4 x 4 for the ladder's best, 8 x 8 (16 pixels a
  cell) for the pneumonia CNN.
- Integrated gradients (Sundararajan et al. 2017): per pixel, (pixel - baseline) times the mean gradient along the
  straight path from the baseline to the image; the baseline is black (0), MNIST's background and what the deletion
  check fills with. The attributions add up to score(image) - score(black) (completeness; integrated_gradients
  returns how far from it the 32 steps land).

The deletion check (Petsiuk et al. 2018): set an image's most attributed pixels to black first, in steps, and follow
the probability of the class the map explains; the smaller the area under that curve, the more the map found what
the model uses. Its controls: random order, brightness order, and the maps of the same model with its weights
re-drawn at random (the model-randomisation test of Adebayo et al. 2018), which only do as well as the trained
model's maps when a method shows the image rather than the model. What it found: docs/inside.md.
"""

import warnings

import keras
import numpy as np
from keras import layers, ops
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.patches import Rectangle

from labtools import backend, plots, scores

BATCH_SIZE = 256  # images (or path points) per forward or gradient call
IG_STEPS = 32
ELEMENTWISE = (layers.BatchNormalization, layers.Activation, layers.ReLU, layers.LeakyReLU, layers.Dropout)


class Probe:
    """A model opened up as the chain of its layers: the convolutions' outputs, the class scores before the last
    activation, their gradients. ValueError for a model without a convolution, or that is not a chain of layers."""

    def __init__(self, model):
        self.model = model
        chain = [layer for layer in model.layers if not isinstance(layer, layers.InputLayer)]
        self.convolutions = [index for index, layer in enumerate(chain) if isinstance(layer, layers.Conv2D)]
        if not self.convolutions:
            raise ValueError("it has no convolution: no filters, feature maps or Grad-CAM to draw")
        last = chain[-1]
        activation = keras.activations.serialize(getattr(last, "activation", None) or keras.activations.linear)
        activation = activation if isinstance(activation, str) else activation.get("config", {}).get("name")
        if isinstance(last, layers.Dense) and activation in ("softmax", "sigmoid"):
            self.body, self.last = chain[:-1], last  # the scores: its kernel and bias, before the activation
        elif isinstance(last, layers.Softmax) or (isinstance(last, layers.Activation)
                                                  and activation in ("softmax", "sigmoid")):
            self.body, self.last = chain[:-1], None
        else:  # outputs that are scores already (no softmax at the end)
            self.body, self.last = chain, None
        # a convolution's maps are taken after the batch normalisation and activation that follow it (the ladder's
        # rungs); Grad-CAM's are the last convolution's
        self.block_ends = [self._block_end(index) for index in self.convolutions]
        self.cam_layer = self.block_ends[-1]
        self.data_format = getattr(chain[self.convolutions[-1]], "data_format", "channels_last")
        self._check_chain(chain)

    def _block_end(self, index):
        while index + 1 < len(self.body) and isinstance(self.body[index + 1], ELEMENTWISE):
            index += 1
        return index

    def _check_chain(self, chain):
        sample = np.random.default_rng(0).random((2, *self.model.input_shape[1:]), dtype=np.float32)
        with warnings.catch_warnings():  # a functional model from elsewhere warns that its input was not named
            warnings.simplefilter("ignore", UserWarning)
            direct = ops.convert_to_numpy(self.model(sample, training=False))
        try:
            through = ops.convert_to_numpy(self.run(sample, 0, None, chain))
        except Exception:  # a layer that takes several inputs, or other shapes than its predecessor gives
            through = None
        if through is None or through.shape != direct.shape or not np.allclose(through, direct, rtol=1e-3,
                                                                                 atol=1e-4):
            raise ValueError("it is not a chain of layers (each taking the one before it): only such models "
                             "(every Sequential model) can be opened here")

    def run(self, inputs, start=0, stop=None, chain=None):
        for layer in (chain or self.body)[start:stop]:
            inputs = layer(inputs, training=False)
        return inputs

    def class_scores(self, features, classes):
        """The score of class classes[i] for each row of the body's output: the last Dense layer before its
        softmax; for one sigmoid unit, its logit for PNEUMONIA (1) and minus it for NORMAL (0)."""
        found = features if self.last is None else ops.matmul(features, self.last.kernel) + self.last.bias
        if found.shape[-1] == 1:
            return ops.squeeze(found, -1) * ops.convert_to_tensor(2.0 * classes - 1.0, dtype=found.dtype)
        return ops.sum(found * ops.one_hot(classes, found.shape[-1], dtype=found.dtype), axis=-1)

    def feature_maps(self, images):
        """[(convolution's name, maps (N, H, W, channels))] for every convolution, in order: its outputs after the
        batch normalisation and activation that follow it, if any."""
        found = {index: [] for index in self.block_ends}
        for start in range(0, len(images), BATCH_SIZE):
            outputs = images[start:start + BATCH_SIZE]
            for index, layer in enumerate(self.body[:self.block_ends[-1] + 1]):
                outputs = layer(outputs, training=False)
                if index in found:
                    found[index].append(self._channels_last(ops.convert_to_numpy(outputs)))
        return [(self.body[convolution].name, np.concatenate(found[end]))
                for convolution, end in zip(self.convolutions, self.block_ends)]

    def _channels_last(self, maps):
        return np.moveaxis(maps, 1, -1) if self.data_format == "channels_first" else maps

    def first_filters(self):
        """The first convolution's kernels, (height, width, input channels, filters)."""
        return ops.convert_to_numpy(self.body[self.convolutions[0]].kernel)

    def gradcam(self, images, classes, size):
        """Grad-CAM maps (N, height, width) resized to size (height, width), for class classes[i]; values >= 0."""
        images, classes = np.asarray(images, np.float32), np.asarray(classes)
        maps = []
        for start in range(0, len(images), BATCH_SIZE):
            batch, wanted = images[start:start + BATCH_SIZE], classes[start:start + BATCH_SIZE]
            activations = ops.convert_to_numpy(self.run(batch, 0, self.cam_layer + 1))
            gradients = backend.gradient(
                lambda a: self.class_scores(self.run(a, self.cam_layer + 1), wanted), activations)
            activations, gradients = self._channels_last(activations), self._channels_last(gradients)
            weights = gradients.mean(axis=(1, 2), keepdims=True)
            cam = np.maximum((weights * activations).sum(axis=-1), 0)[..., None]
            maps.append(ops.convert_to_numpy(ops.image.resize(cam, tuple(size), interpolation="bilinear"))[..., 0])
        return np.concatenate(maps)

    def scores(self, images, classes):
        return ops.convert_to_numpy(self.class_scores(self.run(np.asarray(images, np.float32)), np.asarray(classes)))

    def integrated_gradients(self, images, classes, steps=IG_STEPS):
        """(attributions, completeness gaps (N,)): integrated gradients from black for class classes[i], one per
        input value (the input's shape); a gap is |sum of the attributions - (score(image) - score(black))| over
        |score(image)| + |score(black)|: how far the midpoint sum of `steps` points lands from the integral."""
        images, classes = np.asarray(images, np.float32), np.asarray(classes)
        alphas = ((np.arange(steps) + 0.5) / steps).astype(np.float32).reshape(-1, *[1] * images.ndim)
        per_call = max(1, BATCH_SIZE // steps)
        found = []
        for start in range(0, len(images), per_call):
            batch, wanted = images[start:start + per_call], classes[start:start + per_call]
            path = (alphas * batch[None]).reshape(-1, *batch.shape[1:])
            repeated = np.tile(wanted, steps)  # path point k * len(batch) + i is image i's
            gradients = backend.gradient(lambda x: self.class_scores(self.run(x), repeated), path)
            found.append(batch * gradients.reshape(steps, *batch.shape).mean(axis=0))
        found = np.concatenate(found)
        image_scores, black_scores = self.scores(images, classes), self.scores(np.zeros_like(images), classes)
        gaps = np.abs(found.reshape(len(found), -1).sum(axis=1) - (image_scores - black_scores))
        return found, gaps / (np.abs(image_scores) + np.abs(black_scores) + 1e-6)


def pixel_maps(attributions, size):
    """Attributions of any input layout ((N, H, W, C), (N, C, H, W), (N, H, W), (N, H * W)) as (N, H, W) maps,
    summed over the colour channels; size: (H, W)."""
    per_image = attributions.reshape(len(attributions), -1)
    if per_image.shape[1] == size[0] * size[1]:
        return per_image.reshape(-1, *size)
    if attributions.ndim == 4 and attributions.shape[1:3] == tuple(size):
        return attributions.sum(axis=-1)
    return attributions.sum(axis=1)  # channels first


def probabilities(model, images):
    """(N, classes) probabilities: a single sigmoid unit becomes [1 - p, p]; outputs that are not probabilities (a
    model from elsewhere without a softmax at the end), their softmax."""
    found = np.asarray(model.predict(np.asarray(images, np.float32), batch_size=BATCH_SIZE, verbose=0), np.float64)
    if found.shape[1] == 1:
        return np.concatenate([1 - found, found], axis=1)
    return scores.as_probabilities(found)[0].astype(np.float64)


def randomized_copy(model, seed):
    """The same architecture with every weight drawn again by its initialiser (Adebayo et al.'s model
    randomisation), seeded."""
    keras.utils.set_random_seed(seed)
    copy = keras.models.clone_model(model)
    copy.build(model.input_shape)
    return copy


def deletion_orders(maps, seed):
    """Per image, the pixels (row-major indices) from the most attributed to the least; ties in random order."""
    flat = maps.reshape(len(maps), -1)
    rng = np.random.default_rng(seed)
    return np.stack([np.lexsort((rng.random(flat.shape[1]), -row)) for row in flat])


def random_orders(count, pixels, seed):
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(pixels) for _ in range(count)])


def deletion_curves(model, images, classes, orders, fractions, fill=0.0):
    """(N, len(fractions)): the probability of class classes[i] as the first fractions[j] of image i's pixels in
    orders[i] are set to fill (black)."""
    images = np.asarray(images, np.float32)
    count, height, width = images.shape[0], images.shape[1], images.shape[2]
    ranks = np.empty_like(orders)
    np.put_along_axis(ranks, orders, np.arange(orders.shape[1])[None].repeat(count, 0), axis=1)
    ranks = ranks.reshape(count, height, width, 1)
    curves = np.empty((count, len(fractions)))
    for step, fraction in enumerate(fractions):
        deleted = np.where(ranks < round(fraction * height * width), np.float32(fill), images)
        curves[:, step] = probabilities(model, deleted)[np.arange(count), classes]
    return curves


def area(curves, fractions):
    """The area under each deletion curve (trapezoids), in probability x fraction of the pixels."""
    steps = np.diff(fractions)
    return ((curves[:, 1:] + curves[:, :-1]) / 2 * steps).sum(axis=1)


def rank_correlation(first, second):
    """Spearman's rank correlation between two maps of each image (ties ranked by position)."""
    def ranks(maps):
        flat = maps.reshape(len(maps), -1)
        return np.argsort(np.argsort(flat, axis=1, kind="stable"), axis=1).astype(np.float64)

    a, b = ranks(first), ranks(second)
    a -= a.mean(axis=1, keepdims=True)
    b -= b.mean(axis=1, keepdims=True)
    return (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))


# ----------------------------------------------------------------------------
# A box for the chest: where a radiograph's lungs and heart lie, as a fraction of its side

CHEST_BOX = (0.15, 0.85, 0.10, 0.90)  # x from, x to, y from, y to: docs/inside.md shows it on test radiographs


def outside_share(maps, box=CHEST_BOX):
    """Per map (N, H, W), the share of its positive attribution that falls outside box; NaN where none is
    positive."""
    positive = np.maximum(maps, 0)
    height, width = maps.shape[1:3]
    x0, x1, y0, y1 = (round(box[0] * width), round(box[1] * width), round(box[2] * height), round(box[3] * height))
    inside = positive[:, y0:y1, x0:x1].sum(axis=(1, 2))
    total = positive.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 1 - inside / total, np.nan)


def box_area(box=CHEST_BOX):
    return (box[1] - box[0]) * (box[3] - box[2])


# ----------------------------------------------------------------------------
# Figures

# blue (against the class) to clear (0) to red (for it): the image shows through where the map is near 0
FOR_AND_AGAINST = LinearSegmentedColormap.from_list("for_and_against", [(0, 0.2, 1, 1), (1, 1, 1, 0), (1, 0, 0, 1)])


def _mosaic(maps, columns):
    """Channels (H, W, C) tiled into one image, `columns` a row, one pixel of NaN between tiles."""
    height, width, channels = maps.shape
    rows = -(-channels // columns)
    tiled = np.full((rows * (height + 1) - 1, columns * (width + 1) - 1), np.nan)
    for channel in range(channels):
        row, column = divmod(channel, columns)
        tiled[row * (height + 1):row * (height + 1) + height,
              column * (width + 1):column * (width + 1) + width] = maps[..., channel]
    return tiled


@plots.same_style
def plot_filters(kernels, path, title):
    """The first convolution's filters, one square each, blue negative, red positive, one scale for all."""
    kernels = kernels.sum(axis=2) if kernels.shape[2] > 1 else kernels[:, :, 0]  # (h, w, filters)
    count = kernels.shape[-1]
    columns = min(count, 8 if count <= 32 else 16)
    figure, axes = plots.image_grid(count, columns, (0.9, 0.95), 0.6)
    limit = float(np.abs(kernels).max()) or 1.0
    for index, axis in enumerate(axes.ravel()[:count]):
        shown = axis.imshow(kernels[..., index], cmap="RdBu_r", vmin=-limit, vmax=limit)
        axis.set_title(str(index), fontsize=7)
    figure.colorbar(shown, ax=list(axes.ravel()), shrink=0.6, label="weight")
    figure.suptitle(title, fontsize=9)
    figure.savefig(path, dpi=110)


@plots.same_style
def plot_feature_maps(images, maps, labels, path, title, credit=None):
    """For each image: the image, then every convolution's maps (all its channels tiled), each convolution on one
    scale (0, relu's floor, black; its largest value over the images white). One column per image, one row per
    convolution, or the other way round where there are more convolutions than images."""
    across = len(images) >= len(maps) + 1  # images across the page
    grid = (1 + len(maps), len(images)) if across else (len(images), 1 + len(maps))
    cell = 1.45 if across else 2.0
    figure, axes = plots.subplots(*grid, figsize=(grid[1] * cell + 0.9, grid[0] * cell + 0.7), squeeze=False)
    axes = axes if across else axes.T  # axes[step][image]
    names = ["image", *(f"{name}\n{found.shape[-1]} maps, {found.shape[1]} x {found.shape[2]}" for name, found in maps)]
    for column, (image, label) in enumerate(zip(images, labels)):
        axes[0, column].imshow(np.asarray(image).squeeze(), cmap="gray" if credit else "gray_r")
        (axes[0, column].set_title if across else axes[0, column].set_ylabel)(label, fontsize=8)
        for row, (_, found) in enumerate(maps, start=1):
            tiled = _mosaic(found[column], int(np.ceil(np.sqrt(found.shape[-1]))))
            axes[row, column].imshow(tiled, cmap="magma", vmin=min(0.0, float(found.min())),
                                     vmax=float(found.max()) or 1.0)
    for step, axes_row in enumerate(axes):
        for axis in axes_row:
            axis.set_xticks([])
            axis.set_yticks([])
        if across:
            axes_row[0].set_ylabel(names[step], fontsize=7.5)
        else:
            axes_row[0].set_title(names[step], fontsize=7.5)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout(rect=(0, 0.03 if credit else 0, 1, 1))
    plots._credit(figure, credit)
    figure.savefig(path, dpi=110)


@plots.same_style
def plot_attributions(panels, row_names, path, title, credit=None, box=None):
    """A grid of attribution maps over their images: panels[row][column] is (image (H, W), map (H, W), caption,
    wrong) or None (an empty place); red pixels raise the class's score, blue ones lower it, each map on its own
    symmetric scale (its 99.5th percentile of |value| is full colour). box: the chest box (CHEST_BOX), drawn on each."""
    rows, columns = len(panels), max(len(row) for row in panels)
    cell = (1.9, 2.1) if box is not None else (1.3, 1.45)
    figure, axes = plots.subplots(rows, columns, figsize=(columns * cell[0] + 0.4, rows * cell[1] + 0.8),
                                  squeeze=False)
    for row, (axes_row, panels_row) in enumerate(zip(axes, panels)):
        for column, axis in enumerate(axes_row):
            axis.set_xticks([])
            axis.set_yticks([])
            panel = panels_row[column] if column < len(panels_row) else None
            if column == 0:
                axis.set_ylabel(row_names[row], fontsize=8)
            if panel is None:
                axis.set_frame_on(False)
                axis.text(0.5, 0.5, "none", ha="center", va="center", fontsize=7, color="gray",
                          transform=axis.transAxes)
                continue
            image, found, caption, wrong = panel
            image = np.asarray(image).squeeze()
            if box is None:  # digits: the ink light grey, so that the map's colours show on it
                axis.imshow(image, cmap="gray_r", vmin=0, vmax=2.5 * (float(image.max()) or 1.0))
            else:
                axis.imshow(image, cmap="gray")
            limit = float(np.percentile(np.abs(found), 99.5)) or 1.0  # a few extreme pixels would hide the rest
            axis.imshow(found, cmap=FOR_AND_AGAINST, vmin=-limit, vmax=limit)
            if box is not None:
                height, width = found.shape
                axis.add_patch(Rectangle((box[0] * width - 0.5, box[2] * height - 0.5), (box[1] - box[0]) * width,
                                         (box[3] - box[2]) * height, fill=False, edgecolor="gold", linewidth=0.8))
            axis.set_title(caption, fontsize=6.5 if box is not None else 7, color="crimson" if wrong else "black")
    figure.suptitle(title, fontsize=9)
    figure.tight_layout(rect=(0, 0.03 if credit else 0, 1, 1))
    plots._credit(figure, credit)
    figure.savefig(path, dpi=110)
