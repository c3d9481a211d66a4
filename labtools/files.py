"""Files the project writes: atomically (a reader never sees half a file, an interrupted write keeps the old one),
and the cache folder of what it derives (HOG features, kept evaluations)."""

import contextlib
import os
from pathlib import Path

import numpy as np


def cache_dir():
    """Where derived data (HOG features, kept evaluations) is cached; MNIST_LABS_CACHE overrides."""
    if os.environ.get("MNIST_LABS_CACHE"):
        return Path(os.environ["MNIST_LABS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnist-labs"


@contextlib.contextmanager
def atomic_write(*paths):
    """Temporary names beside `paths` to write the new files to (each keeps its path's suffixes: "m.weights.h5"
    gets "m.tmp-PID.weights.h5"). On leaving without an error every file is flushed to disk, then each is moved
    onto its path, in the order given: a reader never sees half a file, and a save interrupted while writing (even
    by kill -9) leaves the old files. Between two moves only, several files can be one old and one new: a pair's
    weights record its JSON's hash for that (saved_models.py). On an error, the temporaries are removed."""
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


def write_npz(path, compress=True, **arrays):
    """np.savez (np.savez_compressed), through atomic_write."""
    with atomic_write(path) as (temporary,):
        (np.savez_compressed if compress else np.savez)(temporary, **arrays)
