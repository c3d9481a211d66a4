"""datasets/mnist.npz, checked on every load against the real MNIST, so that a damaged file is a clear error and
never silently other data; nothing is downloaded, and no pickle is read. data.load_mnist reads it through here.

The file holds the four uint8 arrays that keras.datasets.mnist.load_data() returns, compressed (11.5 MB).
"""

import functools
import hashlib
import zipfile
from pathlib import Path

import numpy as np

from labtools.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
# SHA-256 over x_train, y_train, x_test, y_test (uint8, C order) of the real MNIST, exactly as
# keras.datasets.mnist.load_data() returns them.
MNIST_ARRAYS_SHA256 = "06b0d1f124c4e5fa796686ade41a9b778edacc8622f2195a352ef479ad44fc16"
TRAIN_IMAGES, TEST_IMAGES = 60000, 10000
SHAPES = ((TRAIN_IMAGES, 28, 28), (TRAIN_IMAGES,), (TEST_IMAGES, 28, 28), (TEST_IMAGES,))


def arrays_sha256(arrays):
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _read(path, modified_ns, size):
    """The checked arrays of an MNIST .npz, once per process for a file that has not changed.

    The arrays come back read-only: a caller that scaled them in place would change them for the next one.
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = tuple(f[key] for key in ("x_train", "y_train", "x_test", "y_test"))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"{path}: cannot read this MNIST file ({type(error).__name__}); {restore_hint(path)}") from None
    shapes = tuple(array.shape for array in arrays)
    if shapes != SHAPES or any(array.dtype != np.uint8 for array in arrays):
        raise DataError(f"{path}: unexpected MNIST arrays (shapes {shapes}); {restore_hint(path)}")
    if arrays_sha256(arrays) != MNIST_ARRAYS_SHA256:
        raise DataError(f"{path}: contents differ from the real MNIST (SHA-256 mismatch); {restore_hint(path)}")
    for array in arrays:
        array.setflags(write=False)
    return arrays


def restore_hint(path):
    """The command that brings back the committed file, runnable from the current directory."""
    try:
        relative = Path(path).resolve().relative_to(ROOT)
    except ValueError:
        return f"restore it with: git checkout -- {path}"
    where = "" if Path.cwd().resolve() == ROOT else f"-C {ROOT} "
    return f"restore it with: git {where}checkout -- {relative.as_posix()}"


def load(path):
    """Real MNIST from an .npz with the four arrays: (x_train (60000, 28, 28), y_train), (x_test, y_test), uint8,
    read-only; DataError for a missing, unreadable or other file."""
    try:
        status = Path(path).stat()
    except OSError:
        raise DataError(f"{path}: MNIST file not found; {restore_hint(path)}") from None
    x_train, y_train, x_test, y_test = _read(Path(path), status.st_mtime_ns, status.st_size)
    return (x_train, y_train), (x_test, y_test)
