"""Features computed from images in parallel on every core, and kept in the project's cache (files.cache_dir()):
the ARN sheet's HOG features of 60,000 training images take a minute on one core, a second to read back."""

import concurrent.futures
import hashlib
import multiprocessing
import os
import zipfile

import numpy as np

from labtools import files


def worker_count():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def computed(function, images, name, version="", cache=True, **options):
    """function(images, **options), (N, features) float32, for a C-ordered float32 array of images.

    Spread over every core for more than 2,000 images (function must be importable: the workers start afresh).
    With cache=True the result is kept under name plus a key made of the images, the options and `version` (of the
    library that computes it), and its own hash is checked when it is read back; a damaged entry is computed again.
    """
    text = ",".join(str(value) for value in options.values()) + f",{version}"
    key = hashlib.sha256(images.tobytes() + text.encode()).hexdigest()[:20]
    path = files.cache_dir() / f"{name}-{key}.npz"
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
        features = function(images, **options)
    else:
        # "spawn": the parent may hold TensorFlow's threads, which fork does not copy safely.
        context = multiprocessing.get_context("spawn")
        chunks = np.array_split(images, workers * 4)
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            parts = pool.map(function, chunks, *([value] * len(chunks) for value in options.values()))
            features = np.concatenate(list(parts))
    if cache:
        try:
            # uncompressed: float features hardly compress, and reading them back stays well under a second
            files.write_npz(path, compress=False, features=features,
                            sha256=hashlib.sha256(features.tobytes()).hexdigest())
        except OSError:
            pass
    return features
