"""The teacher's desk on a class: 40 students of 3 models each, as a course platform's download gives them, graded as
`python evaluate.py CLASS.zip --csv grades.csv` grades them (labtools/desk.py), timed.

    python experiments/desk_bench.py [--students 40]   (repository root, TensorFlow)

Output: results/logs/desk_bench.txt. The class is built in a temporary folder from the committed MNIST pairs of
results/models/ (every kind of the sheets: the INSAT CNNs, the ARN MLPs on pixels and on HOG, the ARN CNN, and the
ladder's), each copied as a student hands it in: its JSON and weights only, no history (a model's name still gives
its recipe, as for a student who trained with this project), and, for every third model, one of the files other
people's Keras wrote (tests/fixtures/: Keras 2.0.8 and 2.3.1 on Theano, tf.keras 2.12 and 2.21 pairs and .h5 files,
Keras 3 archives, a SavedModel folder, a checkpoint beside its JSON), for which nothing says how it was trained and
the pixel scale is chosen from its outputs (twice the predictions). One student in three uploaded a zip of their
folder; the class is one zip, as the platform gives it. Every model is evaluated: the
evaluation cache is off (two students with the same file would otherwise cost one evaluation). Reports the seconds
per model (wall clock, TensorFlow's start-up and the MNIST load included) and the process's peak RSS.
"""

import argparse
import json
import platform
import resource
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(ROOT))
START = time.perf_counter()

from labtools import console  # noqa: E402

if __name__ == "__main__":
    console.start("experiments/desk_bench.py")

import data  # noqa: E402
import keras  # noqa: E402
import logs  # noqa: E402
import models  # noqa: E402
from labtools import backend, desk, grading  # noqa: E402

KINDS = ["small", "medium", "large", "large_original", "small_unnormalized", "mlp1", "mlp2", "mlp3", "hog_mlp1",
         "hog_mlp2", "arn_cnn", "best", "batchnorm", "dropout", "deeper"]


def cpu_name():
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def foreign_files():
    """[[path, ...]]: the files of each loadable fixture (tests/fixtures/fixtures.jsonl), SavedModels only where
    the backend runs them."""
    manifest = [json.loads(line) for line in (FIXTURES / "fixtures.jsonl").read_text().splitlines() if line]
    return [[FIXTURES / name for name in entry["files"]] for _, entry in manifest
            if entry.get("expect") != "refused" and
            (entry.get("needs") != "the TensorFlow backend" or keras.backend.backend() == "tensorflow")]


def make_class(root, students):
    pairs = []
    for seed in ("", "_seed8", "_seed9"):
        pairs += [ROOT / "results" / "models" / f"{kind}{seed}" for kind in KINDS]
    foreign = foreign_files()
    folders = root / "download"
    for number in range(students):
        folder = folders / f"Étudiant{number:02d} Numéro{number}_{1000 + number}_assignsubmission_file_"
        work = folder / "TP3" if number % 3 else root / "zip" / str(number) / "TP3"
        for slot in range(3):
            work.mkdir(parents=True, exist_ok=True)
            if slot == 2:  # a file from elsewhere
                for path in foreign[number % len(foreign)]:
                    (shutil.copytree if path.is_dir() else shutil.copy)(path, work / path.name)
                continue
            pair = pairs[(2 * number + slot) % len(pairs)]
            shutil.copy(f"{pair}.json", work / f"{pair.name}.json")
            shutil.copy(f"{pair}.weights.h5", work / f"{pair.name}.weights.h5")
        if number % 3 == 0:  # a zip of their own folder
            folder.mkdir(parents=True)
            with zipfile.ZipFile(folder / "rendu.zip", "w", zipfile.ZIP_DEFLATED) as z:
                for path in sorted(work.parent.rglob("*")):
                    z.write(path, path.relative_to(work.parent).as_posix())
    archive = root / "class.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        for path in sorted(folders.rglob("*")):
            z.write(path, path.relative_to(folders).as_posix())
    shutil.rmtree(folders)
    return archive


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=40, help="students in the class (default: 40)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        archive = make_class(Path(temporary), args.students)
        logs.tee("desk_bench.txt")
        print(f"# {backend.describe()}; {cpu_name()}, "
              f"{len(__import__('os').sched_getaffinity(0))} cores; python experiments/desk_bench.py "
              f"--students {args.students}")
        test_sets = grading.TestSets(data.get_data_mnist, data.prepare_inputs)
        began = time.perf_counter()
        seconds = []

        def evaluate_one(hand_in, run):
            start = time.perf_counter()
            row = grading.evaluate_pair(desk.model_name(hand_in), test_sets, models.MODELS, files=hand_in.files,
                                        run=run)
            seconds.append(time.perf_counter() - start)
            return row

        rows, students = desk.grade(archive, evaluate_one, progress=lambda line: None)
        elapsed = time.perf_counter() - began
    graded = [row for row in rows if not row.get("refused")]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"students: {len(students)}; models graded: {len(graded)} of {len(rows)}")
    print(f"grading: {elapsed:.1f} s, {elapsed / max(len(rows), 1):.2f} s per model (first model, with the MNIST "
          f"load and the first traces: {seconds[0]:.1f} s; median model {sorted(seconds)[len(seconds) // 2]:.2f} s; "
          f"slowest {max(seconds):.1f} s)")
    total = time.perf_counter() - START
    print(f"whole process, TensorFlow's start-up and building the class included: {total:.1f} s, "
          f"{total / max(len(rows), 1):.2f} s per model")
    print(f"peak RSS: {peak:.0f} MiB")
    chosen = sum(1 for row in graded if row.get("pixels"))
    print(f"pixel scale chosen from the outputs (twice the predictions): {chosen} of {len(graded)} models (the "
          "files from elsewhere); the others are this project's pairs, whose recipe the model's name gives")
    for kind, group in (("this project's pairs", [s for s, r in zip(seconds, graded) if not r.get("pixels")]),
                        ("files from elsewhere", [s for s, r in zip(seconds, graded) if r.get("pixels")])):
        if group:
            print(f"  {kind}: {len(group)} models, {sum(group) / len(group):.2f} s per model on average")
    slowest = sorted(zip(seconds, (row["run"] for row in graded)), reverse=True)[:5]
    print("slowest models: " + ", ".join(f"{run} {second:.1f} s" for second, run in slowest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
