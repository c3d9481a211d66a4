"""The data of both lab sheets: MNIST as the INSAT sheet prepares it, and what the ARN sheet's MLPs take (flat
rows, HOG features).

MNIST ships with the project as datasets/mnist.npz: the four arrays that keras.datasets.mnist.load_data() returns,
checked against the real MNIST on every load, so nothing is downloaded (labtools/mnist_file.py). MNIST: Yann LeCun,
Corinna Cortes and Christopher J. C. Burges, "The MNIST database of handwritten digits"; Yann LeCun and Corinna
Cortes hold its copyright (a derivative work of NIST's data sets); it is made available under the Creative Commons
Attribution-Share Alike 3.0 licence, as in keras.datasets.mnist.

The chest X-rays (ARN part 2) are a folder tree you bring: labtools/xrays.py reads it.
"""

from pathlib import Path

import numpy as np
import skimage
from skimage.feature import hog

from labtools import feature_cache, mnist_file

NUM_CLASSES = 10
MNIST_FILE = Path(__file__).resolve().parent / "datasets" / "mnist.npz"


def load_mnist(path=None):
    """As keras.datasets.mnist.load_data(): (x_train (60000, 28, 28), y_train), (x_test, y_test), uint8, from the
    repository's file or `path` (read-only arrays; a DataError names a missing or damaged file, and how to restore
    it)."""
    return mnist_file.load(path or MNIST_FILE)


def one_hot(labels, num_classes=NUM_CLASSES):
    """The sheet's np_utils.to_categorical, in float32."""
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]


def get_data_mnist(normalize=True):
    """The INSAT sheet's function: MNIST as channels_first float32 and one-hot labels.

    Returns (X_train, y_train), (X_test, y_test), num_classes with X of shape
    (N, 1, 28, 28): pixels 0..255 when normalize is False, 0..1 when True.
    """
    # load data
    (X_train, y_train), (X_test, y_test) = load_mnist()
    # reshape to be [samples][channels][width][height]
    X_train = X_train.reshape(X_train.shape[0], 1, 28, 28).astype("float32")
    X_test = X_test.reshape(X_test.shape[0], 1, 28, 28).astype("float32")
    if normalize:  # sheet part 5: pixels 0..1 instead of 0..255
        X_train /= 255
        X_test /= 255
    # one hot encode outputs
    y_train = one_hot(y_train)
    y_test = one_hot(y_test)
    num_classes = y_test.shape[1]
    return (X_train, y_train), (X_test, y_test), num_classes


def prepare_inputs(X, input_kind, data_format="channels_first", **hog_options):
    """get_data_mnist's (N, 1, 28, 28) images as a model takes them.

    input_kind "image": images in data_format ("channels_last": (N, 28, 28, 1)); "flat": the (N, 784) rows of the
    ARN MLPs (Dense(512, input_shape=(784,))); "grid": (N, 28, 28), for a model that flattens them itself; "hog": the
    ARN HOG features (hog_features, with hog_options: orientations, pixels_per_cell).
    """
    if input_kind == "image":
        if data_format == "channels_last":
            return np.ascontiguousarray(np.asarray(X).transpose(0, 2, 3, 1))
        return X
    if input_kind == "flat":
        return np.asarray(X).reshape(len(X), 784)
    if input_kind == "grid":
        return np.asarray(X).reshape(len(X), 28, 28)
    if input_kind == "hog":
        return hog_features(X, **hog_options)
    raise ValueError(f"input kind {input_kind!r} is not made from MNIST arrays")


def hog_size(orientations, pixels_per_cell, image_size=28):
    """Features per image with cells_per_block=(1, 1): skimage keeps only whole cells.

    The sheet's formula 28*28*orientations/pixels_per_cell**2 agrees only when pixels_per_cell divides 28 (4 or 7);
    for 5 it says 250.88 where skimage gives (28 // 5)**2 * 8 = 200.
    """
    return (image_size // pixels_per_cell) ** 2 * orientations


def hog_of_images(images, orientations, pixels_per_cell):
    """As the ARN course's notebooks compute HOG: skimage.feature.hog of each image, one cell per block."""
    return np.stack([
        hog(image, orientations=orientations, pixels_per_cell=(pixels_per_cell, pixels_per_cell),
            cells_per_block=(1, 1))
        for image in images
    ]).astype(np.float32)


def hog_features(images, orientations=8, pixels_per_cell=4, cache=True):
    """HOG features of (N, 28, 28) or (N, 1, 28, 28) images: (N, hog_size) float32, hog_of_images computed on every
    core and kept in the project's cache for the next run (labtools/feature_cache.py; cache=False: neither read nor
    written)."""
    images = np.ascontiguousarray(np.asarray(images, dtype=np.float32).reshape(len(images), 28, 28))
    if orientations < 1 or not 1 <= pixels_per_cell <= 28:
        raise ValueError("orientations must be >= 1 and pixels_per_cell in 1..28")
    return feature_cache.computed(hog_of_images, images, f"hog-o{orientations}-p{pixels_per_cell}",
                                  version=skimage.__version__, cache=cache, orientations=orientations,
                                  pixels_per_cell=pixels_per_cell)
