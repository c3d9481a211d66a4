"""Data for both lab sheets: MNIST (in this repository), HOG features, chest X-ray folders, the training order.

MNIST ships with the project as datasets/mnist.npz: the four uint8 arrays that
keras.datasets.mnist.load_data() returns, compressed (11.5 MB). Every load
checks them against the SHA-256 of the real MNIST arrays, so a damaged file is
a clear error and never silently other data; nothing is downloaded, and no
pickle is read.

MNIST: Yann LeCun, Corinna Cortes and Christopher J. C. Burges, "The MNIST
database of handwritten digits". Yann LeCun and Corinna Cortes hold its
copyright (a derivative work of NIST's data sets); it is made available under
the Creative Commons Attribution-Share Alike 3.0 licence, as in keras.datasets.mnist.
"""

import contextlib
import functools
import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

NUM_CLASSES = 10
IMAGE_SIZE = 28

MNIST_FILE = Path(__file__).resolve().parent / "datasets" / "mnist.npz"
# SHA-256 over x_train, y_train, x_test, y_test (uint8, C order) of the real
# MNIST, exactly as keras.datasets.mnist.load_data() returns them.
MNIST_ARRAYS_SHA256 = "06b0d1f124c4e5fa796686ade41a9b778edacc8622f2195a352ef479ad44fc16"
MNIST_TRAIN_IMAGES, MNIST_TEST_IMAGES = 60000, 10000
MNIST_SHAPES = ((MNIST_TRAIN_IMAGES, 28, 28), (MNIST_TRAIN_IMAGES,), (MNIST_TEST_IMAGES, 28, 28), (MNIST_TEST_IMAGES,))
HOLDOUT_IMAGES = 5000  # validation images held out of the training set where choices are made on data


class DataError(ValueError):
    """A data set is missing, damaged or laid out wrongly; the message says what to do."""


def cache_dir():
    """Where derived data (HOG features) is cached; MNIST_LABS_CACHE overrides."""
    if os.environ.get("MNIST_LABS_CACHE"):
        return Path(os.environ["MNIST_LABS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnist-labs"


def _arrays_sha256(arrays):
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    return digest.hexdigest()


@contextlib.contextmanager
def replacing(*paths):
    """Temporary names beside `paths` to write the new files to (each keeps its path's suffixes: "m.weights.h5"
    gets "m.tmp-PID.weights.h5"). On leaving without an error every file is flushed to disk, then each is moved
    onto its path, in the order given: a reader never sees half a file, and a save interrupted while writing (even
    by kill -9) leaves the old files. Between two moves only, several files can be one old and one new: a pair's
    weights record its JSON's hash for that (persistence.py). On an error, the temporaries are removed."""
    paths = [Path(path) for path in paths]
    temporaries = []
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        stem, dot, suffixes = path.name.partition(".")
        temporaries.append(path.with_name(f"{stem}.tmp-{os.getpid()}{dot}{suffixes}"))
    try:
        yield temporaries
        for temporary in temporaries:
            with open(temporary, "rb+") as f:
                os.fsync(f.fileno())
        for temporary, path in zip(temporaries, paths):
            os.replace(temporary, path)
    finally:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)


def write_npz_atomically(path, compress=True, **arrays):
    """np.savez, through `replacing`."""
    with replacing(path) as (temporary,):
        (np.savez_compressed if compress else np.savez)(temporary, **arrays)


@functools.lru_cache(maxsize=1)
def _read_mnist(path, modified_ns, size):
    """The checked arrays of an MNIST .npz, once per process for a file that has not changed.

    The arrays come back read-only: a caller that scaled them in place would change them for the next one.
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = tuple(f[key] for key in ("x_train", "y_train", "x_test", "y_test"))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"{path}: cannot read this MNIST file ({type(error).__name__}); {_restore(path)}") from None
    shapes = tuple(array.shape for array in arrays)
    if shapes != MNIST_SHAPES or any(array.dtype != np.uint8 for array in arrays):
        raise DataError(f"{path}: unexpected MNIST arrays (shapes {shapes}); {_restore(path)}")
    if _arrays_sha256(arrays) != MNIST_ARRAYS_SHA256:
        raise DataError(f"{path}: contents differ from the real MNIST (SHA-256 mismatch); {_restore(path)}")
    for array in arrays:
        array.setflags(write=False)
    return arrays


def _restore(path):
    """The command that brings back the committed file, runnable from the current directory."""
    root = Path(__file__).resolve().parent
    try:
        relative = Path(path).resolve().relative_to(root)
    except ValueError:
        return f"restore it with: git checkout -- {path}"
    where = "" if Path.cwd().resolve() == root else f"-C {root} "
    return f"restore it with: git {where}checkout -- {relative.as_posix()}"


def load_mnist(path=None):
    """Real MNIST as uint8 arrays (read-only): (x_train (60000,28,28), y_train), (x_test, y_test).

    path: an .npz with the same four arrays (default: the repository's datasets/mnist.npz).
    """
    path = path or MNIST_FILE
    try:
        status = Path(path).stat()
    except OSError:
        raise DataError(f"{path}: MNIST file not found; {_restore(path)}") from None
    x_train, y_train, x_test, y_test = _read_mnist(Path(path), status.st_mtime_ns, status.st_size)
    return (x_train, y_train), (x_test, y_test)


def one_hot(labels, num_classes=NUM_CLASSES):
    """keras.utils.to_categorical, in float32 and without importing TensorFlow."""
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]


def get_data_mnist(normalize=True):
    """The INSAT sheet's function: MNIST as channels_first float32 and one-hot labels.

    Returns (X_train, y_train), (X_test, y_test), num_classes with X of shape
    (N, 1, 28, 28): pixels 0..255 when normalize is False, 0..1 when True.
    """
    (X_train, y_train), (X_test, y_test) = load_mnist()
    # reshape to be [samples][channels][width][height]
    X_train = X_train.reshape(X_train.shape[0], 1, 28, 28).astype("float32")
    X_test = X_test.reshape(X_test.shape[0], 1, 28, 28).astype("float32")
    if normalize:
        X_train /= 255
        X_test /= 255
    y_train = one_hot(y_train)
    y_test = one_hot(y_test)
    num_classes = y_test.shape[1]
    return (X_train, y_train), (X_test, y_test), num_classes


def holdout_split(X_train, y_train, images=HOLDOUT_IMAGES):
    """(X, y) for training and the last `images` training images for validation, as MNIST's own
    distribution (mnist.pkl.gz) kept its last 10,000 for validation: the test set then decides nothing."""
    return (X_train[:-images], y_train[:-images]), (X_train[-images:], y_train[-images:])


# ----------------------------------------------------------------------------
# The training order: which images each epoch visits, in which order, on every backend

# Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", 2011), as TensorFlow implements it
_PHILOX_MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
_PHILOX_KEY_STEPS = (0x9E3779B9, 0xBB67AE85)
_STATELESS_SCRAMBLE_KEY = (0x3EC8F720, 0x02461E29)  # TensorFlow's key for turning a stateless seed into a stream
_LOW = np.uint64(0xFFFFFFFF)


def _philox(counters, key):
    """Philox4x32-10 of (N, 4) 32-bit counters under a (2,) key: (N, 4) uint32, TensorFlow's PhiloxRandom()."""
    block = np.asarray(counters, dtype=np.uint64).reshape(-1, 4)
    key = [np.uint64(k) for k in key]
    for _ in range(10):
        high_low = [np.uint64(multiplier) * block[:, column] for multiplier, column in zip(_PHILOX_MULTIPLIERS, (0, 2))]
        block = np.stack([(high_low[1] >> np.uint64(32)) ^ block[:, 1] ^ key[0], high_low[1] & _LOW,
                          (high_low[0] >> np.uint64(32)) ^ block[:, 3] ^ key[1], high_low[0] & _LOW], axis=1)
        key = [(k + np.uint64(step)) & _LOW for k, step in zip(key, _PHILOX_KEY_STEPS)]
    return block.astype(np.uint32)


def epoch_order(images, seed, epoch):
    """The order in which epoch `epoch` of a run with `seed` visits training images 0..images-1.

    It is tf.random.experimental.stateless_shuffle(tf.range(images), seed=[seed, epoch]) computed in NumPy (a test
    compares the two): the seed scrambled into a Philox key and counter, one 32-bit draw per swap of a
    Fisher-Yates shuffle. So every backend trains on the same batches, the orders of the runs trained with
    TensorFlow's own shuffle stay as they were, and each epoch depends on (seed, epoch) only: a resumed run sees
    the batches an uninterrupted one sees.
    """
    seed, epoch = (int(value) & 0xFFFFFFFFFFFFFFFF for value in (seed, epoch))
    mixed = _philox([[seed & 0xFFFFFFFF, seed >> 32, epoch & 0xFFFFFFFF, epoch >> 32]], _STATELESS_SCRAMBLE_KEY)[0]
    blocks = np.arange(-(-max(images - 1, 0) // 4), dtype=np.uint64)  # the counter's low words count the blocks
    counters = np.stack([blocks & _LOW, blocks >> np.uint64(32), *(np.full_like(blocks, word) for word in mixed[2:])],
                        axis=1)
    draws = _philox(counters, mixed[:2]).reshape(-1).tolist()
    order = list(range(images))
    for i in range(images - 1):  # TensorFlow's ShuffleRange: swap i with i + draw mod (images - i)
        j = i + draws[i] % (images - i)
        order[i], order[j] = order[j], order[i]
    return np.array(order, dtype=np.int64)


def flatten_images(X):
    """(N, 1, 28, 28) or (N, 28, 28) images to the (N, 784) rows that the MLPs take."""
    return np.asarray(X).reshape(len(X), -1)


def prepare_inputs(X, input_kind, data_format="channels_first", **feature_options):
    """Turn get_data_mnist's (N, 1, 28, 28) images into what a model takes.

    input_kind "image": images in data_format ("channels_last" transposes to
    (N, 28, 28, 1)); "flat": (N, 784) rows; "grid": (N, 28, 28); "hog": HOG features (see
    hog_features; feature_options are its orientations and pixels_per_cell).
    """
    if input_kind == "image":
        if data_format == "channels_last":
            return np.ascontiguousarray(np.asarray(X).transpose(0, 2, 3, 1))
        return X
    if input_kind == "flat":
        return flatten_images(X)
    if input_kind == "grid":  # a model that flattens (28, 28) itself
        return np.asarray(X).reshape(len(X), 28, 28)
    if input_kind == "hog":
        return hog_features(X, **feature_options)
    raise ValueError(f"input kind {input_kind!r} is not made from MNIST arrays")


# ----------------------------------------------------------------------------
# HOG features (HEIG-VD ARN PW4): skimage.feature.hog image by image, as the course's notebooks do


def hog_size(orientations, pixels_per_cell, image_size=IMAGE_SIZE):
    """Features per image with cells_per_block=(1, 1): skimage keeps only whole cells.

    The sheet's formula 28*28*orientations/pixels_per_cell**2 agrees only when
    pixels_per_cell divides 28 (4 or 7); for 5 it says 250.88 where skimage gives
    (28 // 5)**2 * 8 = 200.
    """
    return (image_size // pixels_per_cell) ** 2 * orientations


def _hog_chunk(images, orientations, pixels_per_cell):
    from skimage.feature import hog

    return np.stack([
        hog(image, orientations=orientations, pixels_per_cell=(pixels_per_cell, pixels_per_cell),
            cells_per_block=(1, 1))
        for image in images
    ]).astype(np.float32)


def worker_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def hog_features(images, orientations=8, pixels_per_cell=4, cache=True):
    """HOG features of (N, 28, 28) or (N, 1, 28, 28) images: (N, hog_size) float32.

    Computed with skimage.feature.hog(image, orientations, pixels_per_cell=(p, p),
    cells_per_block=(1, 1)) per image, spread over all cores. With cache=True the
    result is stored in the cache directory under a key made of the parameters
    and a hash of the images, and its own hash is checked when it is reused.
    """
    images = np.ascontiguousarray(np.asarray(images, dtype=np.float32).reshape(len(images), IMAGE_SIZE, IMAGE_SIZE))
    if orientations < 1 or not 1 <= pixels_per_cell <= IMAGE_SIZE:
        raise ValueError(f"orientations must be >= 1 and pixels_per_cell in 1..{IMAGE_SIZE}")
    import skimage

    key = hashlib.sha256(images.tobytes() + f"{orientations},{pixels_per_cell},{skimage.__version__}".encode())
    path = cache_dir() / f"hog-o{orientations}-p{pixels_per_cell}-{key.hexdigest()[:20]}.npz"
    if cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                features, digest = f["features"], str(f["sha256"])
            if hashlib.sha256(features.tobytes()).hexdigest() == digest and len(features) == len(images):
                return features
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            pass
        path.unlink(missing_ok=True)  # damaged: computed again below

    workers = min(worker_count(), max(1, len(images) // 2000))
    if workers == 1:
        features = _hog_chunk(images, orientations, pixels_per_cell)
    else:
        import concurrent.futures
        import multiprocessing

        # "spawn": the parent may hold TensorFlow's threads, which fork does not copy safely.
        context = multiprocessing.get_context("spawn")
        chunks = np.array_split(images, workers * 4)
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            parts = pool.map(_hog_chunk, chunks, [orientations] * len(chunks), [pixels_per_cell] * len(chunks))
            features = np.concatenate(list(parts))
    if cache:
        try:
            # uncompressed: float features hardly compress, and reading them back stays well under a second
            write_npz_atomically(path, compress=False, features=features,
                                 sha256=hashlib.sha256(features.tobytes()).hexdigest())
        except OSError:
            pass
    return features


# ----------------------------------------------------------------------------
# Chest X-rays (HEIG-VD ARN PW4, part 2): a folder tree the user supplies

XRAY_CLASSES = ("NORMAL", "PNEUMONIA")  # label 0, label 1 (the positive class)
XRAY_LAYOUT = ("expected DIR/train/, DIR/test/ (and DIR/val/), each with NORMAL/ and PNEUMONIA/ image folders, "
               "as in the public 'Chest X-Ray Images (Pneumonia)' data set (Kermany et al., 2018)")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def _find_child(directory, name):
    """The subdirectory of directory called name, in any letter case, or None."""
    matches = [p for p in directory.iterdir() if p.is_dir() and p.name.lower() == name.lower()]
    return matches[0] if len(matches) == 1 else None


def _is_image_file(path):
    """Whether a class folder's entry is an image to read: a file with an image suffix whose name does not start
    with "." (.DS_Store, and the "._NAME.jpeg" resource forks that macOS writes beside each file in archives)."""
    return not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def xray_split_dirs(data_dir):
    """{split: (split dir, [normal dir name, pneumonia dir name])} for train, test and, if present, val."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"--data-dir {root}: no such directory; {XRAY_LAYOUT}")
    splits = {}
    for split in ("train", "val", "test"):
        split_dir = _find_child(root, split)
        if split_dir is None:
            if split == "val":
                continue
            raise DataError(f"--data-dir {root}: no {split}/ folder; {XRAY_LAYOUT}")
        class_dirs = [_find_child(split_dir, name) for name in XRAY_CLASSES]
        if None in class_dirs:
            raise DataError(f"--data-dir {split_dir}: needs NORMAL/ and PNEUMONIA/ folders; {XRAY_LAYOUT}")
        for class_dir in class_dirs:
            if not any(_is_image_file(p) for p in class_dir.iterdir()):
                raise DataError(f"--data-dir {class_dir}: no images (.png, .jpg, ...); {XRAY_LAYOUT}")
        splits[split] = (split_dir, [d.name for d in class_dirs])
    return splits


def xray_files(data_dir):
    """({split: [(image file, label)]}, [skipped entries]) of a chest X-ray tree, without reading the images.

    Each split's files come in name order, NORMAL (0) first, then PNEUMONIA (1): the order load_xrays returns
    them in. Skipped: what a class folder holds that is not an image to read (hidden files such as .DS_Store or
    macOS's "._" copies, other suffixes, subfolders), in path order.
    """
    files, skipped = {}, []
    for split, (split_dir, class_names) in xray_split_dirs(data_dir).items():
        files[split] = []
        for label, name in enumerate(class_names):
            entries = sorted((split_dir / name).iterdir())
            files[split] += [(path, label) for path in entries if _is_image_file(path)]
            skipped += [path for path in entries if not _is_image_file(path)]
    return files, skipped


def count_xrays(data_dir):
    """(training images, test images) of a chest X-ray tree, without reading them."""
    files, _ = xray_files(data_dir)
    return len(files["train"]), len(files["test"])


def skipped_line(data_dir, skipped):
    """One line on the entries of the tree that load_xrays skips, naming the first ones."""
    names = ", ".join(Path(path).relative_to(data_dir).as_posix() for path in skipped[:3])
    return (f"--data-dir {data_dir}: skipped {len(skipped)} entries that are not images to read (hidden files such "
            f"as .DS_Store or macOS's ._ copies, other suffixes than {', '.join(IMAGE_SUFFIXES)}, subfolders): "
            f"{names}{', ...' if len(skipped) > 3 else ''}")


def xray_storage(paths):
    """How the images at paths are stored, read from their headers only: "224 x 224 RGB JPEG" when they all share
    one size, mode and format, else the range of their sizes, their modes and formats."""
    from PIL import Image

    sizes, modes, formats = set(), set(), set()
    for path in paths:
        try:
            with Image.open(path) as image:
                sizes.add(image.size)
                modes.add(image.mode)
                formats.add(image.format or Path(path).suffix.lstrip(".").upper())
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning):
            formats.add("unreadable")
    if not sizes:
        return "no readable image"
    if len(sizes) == 1:
        (width, height), = sizes
        size = f"{width} x {height}"
    else:
        size = (f"{len(sizes)} sizes, {min(w * h for w, h in sizes):,} to {max(w * h for w, h in sizes):,} pixels")
    return f"{size} {'/'.join(sorted(modes))} {'/'.join(sorted(formats))}"


def _gray8(image):
    """A Pillow image as 8-bit grayscale ("L"): colour through ITU-R 601 luma (Pillow's convert), 16-bit
    grayscale (PNG "I;16", "I") scaled from 0..65535 to 0..255."""
    if image.mode == "L":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        from PIL import Image

        pixels = np.asarray(image, dtype=np.float64) / 257
        return Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8), "L")
    return image.convert("L")


def _xray_image(path, image_size):
    """One X-ray as (image_size, image_size) uint8 grayscale; DataError naming the file if Pillow cannot read it,
    or if it is too large to read safely (Pillow's decompression-bomb limit, its warning included: load_xrays
    turns the warning into an error)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.draft("L", (2 * image_size, 2 * image_size))  # JPEG: decode at a reduced scale, several times faster
            return np.asarray(_gray8(image).resize((image_size, image_size), Image.Resampling.BILINEAR))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise DataError(f"--data-dir {path}: too large to read safely ({str(error).rstrip('.')}); downsize it "
                        f"(X-rays need no more than a few thousand pixels a side) or remove it from the tree") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise DataError(f"--data-dir {path}: not an image Pillow can read ({type(error).__name__}: {error}); "
                        "replace it with a good copy or remove it from the tree") from None


def read_xrays(paths, image_size=128):
    """The images at paths, (N, image_size, image_size) uint8, in order; the first unreadable one (in order) is a
    DataError naming it, and then nothing is returned."""
    import concurrent.futures
    import warnings

    from PIL import Image

    with warnings.catch_warnings():  # the decompression-bomb warning: an error naming the file, not a traceback
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        pool = concurrent.futures.ThreadPoolExecutor(worker_count())  # Pillow decodes outside the GIL
        try:
            images = list(pool.map(lambda path: _xray_image(path, image_size), paths))
        finally:
            pool.shutdown(cancel_futures=True)
    return np.stack(images) if images else np.zeros((0, image_size, image_size), np.uint8)


def load_xrays(data_dir, image_size=128, splits=None, verbose=True):
    """{split: (images (N, image_size, image_size, 1), labels (N, 1))} for train, test and val; float32, pixels 0..255.

    Grayscale, resized to image_size (bilinear, as the ARN notebook's image_dataset_from_directory); labels NORMAL 0,
    PNEUMONIA 1 whatever the folders' letter case. Files in name order, NORMAL first (xray_files): training shuffles
    them per epoch (epoch_order), test and val keep this order, so predictions and labels line up. splits: only
    these (e.g. ("test",)). Entries that are not images (xray_files) are skipped, with one line saying how many
    when verbose; an image that cannot be read is a DataError naming it, and nothing is returned.
    """
    files, skipped = xray_files(data_dir)
    if skipped and verbose:
        print(skipped_line(data_dir, skipped), flush=True)
    loaded = {}
    for split, pairs in files.items():
        if splits is not None and split not in splits:
            continue
        paths, labels = zip(*pairs)
        images = read_xrays(paths, image_size)
        loaded[split] = (images[..., None].astype(np.float32), np.array(labels, dtype=np.float32)[:, None])
    return loaded


def class_weights(counts):
    """Weights that balance the classes: total / (classes * count), as sklearn's 'balanced'."""
    total = sum(counts)
    return {label: total / (len(counts) * count) for label, count in enumerate(counts)}
