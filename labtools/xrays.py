"""The chest X-rays of the ARN sheet, part 2: a folder tree the user supplies (the public "Chest X-Ray Images
(Pneumonia)" data set, Kermany et al. 2018), its images read as the ARN notebook's image_dataset_from_directory reads
them, the class weights, the scores a student reports (precision, recall, F1, ROC AUC, the confusion matrix), and a
saved pneumonia model's evaluation and figures.
"""

import sys
from pathlib import Path

import numpy as np

from labtools import feature_cache, plots, report, scores
from labtools.errors import DataError, UsageError

ROOT = Path(__file__).resolve().parents[1]
XRAY_DATA = ("get the 'Chest X-Ray Images (Pneumonia)' data set (Kermany et al. 2018, CC BY 4.0: Kaggle "
             "paultimothymooney/chest-xray-pneumonia or Mendeley Data doi:10.17632/rscbjbr9sj.2) and pass "
             "--data-dir DIR, the folder that holds its train/ and test/")
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
            inner = _tree_inside(root) if split == "train" else None
            if inner is not None:  # the public archive unzips to a folder that holds chest_xray/
                raise DataError(f"--data-dir {root}: no train/ folder, but {inner.relative_to(root).as_posix()}/"
                                f"{_find_child(inner, 'train').name}/ is inside: use --data-dir {inner}")
            raise DataError(f"--data-dir {root}: no {split}/ folder; {XRAY_LAYOUT}")
        class_dirs = [_find_child(split_dir, name) for name in XRAY_CLASSES]
        if None in class_dirs:
            raise DataError(f"--data-dir {split_dir}: needs NORMAL/ and PNEUMONIA/ folders; {XRAY_LAYOUT}")
        for class_dir in class_dirs:
            if not any(_is_image_file(p) for p in class_dir.iterdir()):
                raise DataError(f"--data-dir {class_dir}: no images (.png, .jpg, ...); {XRAY_LAYOUT}")
        splits[split] = (split_dir, [d.name for d in class_dirs])
    return splits


def _tree_inside(root, depth=2):
    """The shallowest folder under root, at most `depth` levels down, that holds a train/ folder (skipping hidden
    folders and macOS's __MACOSX/ copies), or None."""
    level = [root]
    for _ in range(depth):
        level = sorted(child for folder in level for child in folder.iterdir()
                       if child.is_dir() and not child.name.startswith((".", "__MACOSX")))
        found = [folder for folder in level if _find_child(folder, "train") is not None]
        if found:
            return found[0]
    return None


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
        pool = concurrent.futures.ThreadPoolExecutor(feature_cache.worker_count())  # Pillow decodes outside the GIL
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


# ----------------------------------------------------------------------------
# A saved pneumonia model, evaluated


def test_tree(data_dir, run_history):
    """The chest X-ray tree to test a pair on: data_dir if given, else the one its history records where it is
    here (a relative folder: from where train.py ran, or from the repository); None without either."""
    recorded = run_history.get("config", {}).get("data_dir")
    here = [Path(recorded), ROOT / recorded] if recorded else []
    return data_dir or next((str(path) for path in here if path.is_dir()), None)


def evaluate_xray(filename, model, run_history, data_dir, test_images, plots_dir=None):
    """A chest X-ray pair on the test images of data_dir, or of the tree it was trained on: the sheet's two lines,
    precision, recall, F1, ROC AUC and the confusion matrix, and its figures. Returns (test loss, test accuracy,
    scores). Without --data-dir and without that tree, one line says where to get the data set, and the scores
    its history recorded at the end of training stand in (figures: history and confusion matrix only).
    test_images(tree): (images, labels, file names, how they are stored), read once per tree
    (grading.TestSets.xray_test_images)."""
    recorded = run_history.get("config", {}).get("data_dir")
    found = test_tree(data_dir, run_history)
    run = Path(filename).name
    if found is None:
        test = run_history.get("test", {})
        if "metrics" not in test:
            raise UsageError(f"{filename}: a chest X-ray model, and its test images are not here; {XRAY_DATA}")
        sys.stdout.flush()  # the line comes after the pair's name
        print(f"evaluate.py: {filename}: its test images ({recorded or 'folder not recorded'}) are not here: the "
              f"scores below are those recorded at the end of its training; to evaluate it again, {XRAY_DATA}",
              file=sys.stderr)
        scores.print_score(test["accuracy"])
        scores.print_xray_metrics(test["metrics"])
        if plots_dir is not None:
            draw_xray_figures(Path(plots_dir), run, run_history, test["metrics"])
        return test["loss"], test["accuracy"], test["metrics"]
    images, labels, names, stored_as = test_images(found)
    test_loss, test_accuracy = (float(value) for value in model.evaluate(images, labels, verbose=0))  # as the sheet
    scores.print_score(test_accuracy)
    probabilities = scores.xray_probabilities(model, images)
    found_scores = {**scores.xray_scores(probabilities, labels), "test_images_stored_as": stored_as}
    scores.print_xray_metrics(found_scores)
    if plots_dir is not None:
        draw_xray_figures(Path(plots_dir), run, run_history, found_scores, (images, labels, probabilities, names))
    return test_loss, test_accuracy, found_scores


def draw_xray_figures(plots_dir, run, run_history, results, predictions=None):
    """plots/<run>_history.png, _confusion.png and, with predictions (images, labels, PNEUMONIA probabilities,
    file names), _roc.png (the 0.5 threshold marked) and _errors.png (misclassified radiographs, named)."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    credit = report.xray_source(results.get("test_images_stored_as"), short=True)
    if run_history.get("epochs"):
        plots.plot_history(run_history["epochs"], plots_dir / f"{run}_history.png", f"{run}: training history",
                           run_history.get("config", {}).get("validation", "val"), credit=credit)
    plots.plot_confusion_matrix(np.array(results["confusion_matrix"]), plots_dir / f"{run}_confusion.png",
                                f"{run}: confusion matrix\n(test set, threshold {results.get('threshold', 0.5):g})",
                                list(XRAY_CLASSES), credit=credit.replace("; ", ";\n"))
    if predictions is None:
        return
    images, labels, probabilities, names = predictions
    fpr, tpr, _ = scores.roc_curve(probabilities, labels)
    (tn, fp), (fn, tp) = results["confusion_matrix"]
    plots.plot_roc(fpr, tpr, results["roc_auc"], (fp / max(fp + tn, 1), tp / max(tp + fn, 1)),
                   plots_dir / f"{run}_roc.png", f"{run}: ROC curve on the {len(labels)} test radiographs",
                   threshold=results.get("threshold", 0.5), credit=credit.replace("; ", ";\n"))
    plots.plot_misclassified_xrays(images, labels, probabilities, names, plots_dir / f"{run}_errors.png", run,
                                   threshold=results.get("threshold", 0.5), credit=credit)


def test_images_stored_as(data_dir):
    """How a tree's test images are stored (xray_storage): what the scores on them say with them."""
    return xray_storage([path for path, _ in xray_files(data_dir)[0]["test"]])
