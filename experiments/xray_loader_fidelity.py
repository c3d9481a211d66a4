"""labtools.xrays.load_xrays against the ARN notebook's loader, keras.utils.image_dataset_from_directory, on the
same files.

    python experiments/xray_loader_fidelity.py --data-dir DIR [--model results/models/pneumonia]

Prints, into results/logs/xray_loader_fidelity.txt too (overwritten; the committed one is the run with --data-dir
../shared/datasets/chest_xray, the output as it printed it):
1. time and peak memory of loading the whole tree (train, val, test) each way, each in a fresh process;
2. the pixel differences, image by image, matched by file path (both in 0..255 at 128 x 128, grayscale);
3. the test scores of one trained pair fed the test images both ways, and how many predictions change;
4. the notebook's trap: a shuffled test data set (its default) whose labels are collected in a second pass.
The ARN notebook's call: image_dataset_from_directory(DIR, image_size=(128, 128), color_mode="grayscale",
label_mode="binary", batch_size=64); here with shuffle=False except in 4.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SPLITS = ("train", "val", "test")


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def keras_split(data_dir, split, shuffle=False, seed=None):
    """(images (N, 128, 128, 1) float32 0..255, labels (N,), file paths) as the ARN notebook loads a split."""
    import keras
    import numpy as np

    dataset = keras.utils.image_dataset_from_directory(
        Path(data_dir) / split, image_size=(128, 128), color_mode="grayscale", label_mode="binary", batch_size=64,
        shuffle=shuffle, seed=seed, verbose=False)
    images, labels = zip(*((np.asarray(x), np.asarray(y)) for x, y in dataset))
    return np.concatenate(images), np.concatenate(labels)[:, 0], list(dataset.file_paths), dataset


def measure(loader, data_dir):
    """Run in a fresh process: time and peak memory of loading the whole tree; JSON on stdout."""
    if loader == "ours":
        from labtools import xrays

        before = peak_mib()
        started = time.perf_counter()
        loaded = xrays.load_xrays(data_dir, verbose=False)
    else:
        import keras  # noqa: F401  (its import is not the loading)

        before = peak_mib()
        started = time.perf_counter()
        loaded = {split: keras_split(data_dir, split)[:2] for split in SPLITS}
    seconds = time.perf_counter() - started
    images = sum(len(loaded[split][0]) for split in loaded)
    print(json.dumps({"seconds": seconds, "peak_mib": peak_mib(), "before_mib": before, "images": images,
                      "array_mib": sum(loaded[split][0].nbytes for split in loaded) / 2 ** 20}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="the chest X-ray tree (train/, val/, test/)")
    parser.add_argument("--model", default=str(ROOT / "results" / "models" / "pneumonia"), help="a pneumonia pair")
    parser.add_argument("--measure", choices=["ours", "keras"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.measure:
        return measure(args.measure, args.data_dir)

    import logs
    from labtools import errors, history, xrays

    try:
        xrays.xray_files(args.data_dir)
    except errors.DataError as error:
        sys.exit(f"xray_loader_fidelity.py: error: {error}")
    logs.tee("xray_loader_fidelity.txt")  # not in the --measure processes: their stdout is this one's to read
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {history.machine_description()}; "
          f"commit {history.commit_description()}")
    print(f"$ python experiments/xray_loader_fidelity.py --data-dir {args.data_dir}")
    print("\n1. Loading the whole tree (train, val, test), each way in a fresh process, cold file cache not forced:")
    sys.stdout.flush()
    for loader in ("ours", "keras", "ours", "keras"):
        result = json.loads(subprocess.run([sys.executable, __file__, "--data-dir", args.data_dir, "--measure", loader],
                                           capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        name = "xrays.load_xrays" if loader == "ours" else "image_dataset_from_directory"
        print(f"   {name:29s} {result['images']} images in {result['seconds']:5.1f} s; peak memory "
              f"{result['peak_mib']:5.0f} MiB ({result['peak_mib'] - result['before_mib']:+5.0f} MiB over the "
              f"{result['before_mib']:.0f} MiB after imports); arrays {result['array_mib']:.0f} MiB (float32)")

    import numpy as np

    import persistence
    from labtools import scores

    files, _ = xrays.xray_files(args.data_dir)
    ours = xrays.load_xrays(args.data_dir, verbose=False)
    print("\n2. Pixels, 0..255, image by image (matched by file path): "
          "|xrays.load_xrays - image_dataset_from_directory|")
    theirs = {}
    for split in SPLITS:
        images, labels, paths, _ = keras_split(args.data_dir, split)
        theirs[split] = images, labels
        assert [Path(p) for p in paths] == [path for path, _ in files[split]], "file order differs"
        assert np.array_equal(labels, ours[split][1][:, 0]), "labels differ"
        difference = np.abs(ours[split][0].astype(np.float64) - images)
        per_image = difference.mean(axis=(1, 2, 3))
        print(f"   {split:5s} {len(images):4d} images, same files and labels: mean {difference.mean():.2f}, "
              f"median image {np.median(per_image):.2f}, worst image {per_image.max():.2f}; pixels off by more than "
              f"2: {np.mean(difference > 2):.1%}, more than 10: {np.mean(difference > 10):.2%}, "
              f"max {difference.max():.0f}")
    # Where the difference comes from: Pillow's decoding, resized the way TensorFlow resizes (bilinear, no
    # antialiasing: a 224 -> 128 reduction samples 2 x 2 neighbours; Pillow's bilinear filter averages ~4 x 4)
    import tensorflow as tf
    from PIL import Image

    decoded = []
    for path, _ in files["test"]:
        with Image.open(path) as image:
            image.draft("L", image.size)  # JPEG: grayscale straight from the decoder (its Y), as TensorFlow's
            decoded.append(np.asarray(image.convert("L"), dtype=np.float32)[..., None])
    resized = tf.image.resize(np.stack(decoded), (128, 128), method="bilinear", antialias=False).numpy()
    difference = np.abs(resized - theirs["test"][0])
    print(f"   test, Pillow's decoding resized as TensorFlow resizes: mean {difference.mean():.4f}, max "
          f"{difference.max():.2f} (what is left: the two JPEG decoders)")
    model = persistence.load_keras_model(args.model)
    print(f"\n3. {Path(args.model).name} on the {len(theirs['test'][0])} test images, fed both ways (threshold 0.5):")
    predictions = {}
    for name, (images, labels) in (("xrays.load_xrays", (ours["test"][0], ours["test"][1][:, 0])),
                                   ("image_dataset_from_directory", theirs["test"])):
        probabilities = scores.xray_probabilities(model, images)
        predictions[name] = probabilities > 0.5
        found = scores.xray_scores(probabilities, labels)
        print(f"   {name:29s} accuracy {found['accuracy']:.2%}, precision {found['precision']:.4f}, recall "
              f"{found['recall']:.4f}, F1 {found['f1']:.4f}, ROC AUC {found['roc_auc']:.4f}, "
              f"confusion {found['confusion_matrix']}")
    changed = int(np.sum(predictions["xrays.load_xrays"] != predictions["image_dataset_from_directory"]))
    print(f"   predictions that differ: {changed} of {len(theirs['test'][0])}")
    _, _, _, shuffled = keras_split(args.data_dir, "test", shuffle=True, seed=7)
    probabilities = model.predict(shuffled, verbose=0).reshape(-1)  # a first pass over the shuffled data set
    labels = np.concatenate([np.asarray(y) for _, y in shuffled])[:, 0]  # a second pass: another order
    found = scores.xray_scores(probabilities, labels)
    print(f"\n4. The notebook's trap: test data set shuffled (its default, seed 7), labels collected in a second pass: "
          f"accuracy {found['accuracy']:.2%}, confusion {found['confusion_matrix']} (the same predictions, "
          "matched to the wrong labels)")


if __name__ == "__main__":
    main()
