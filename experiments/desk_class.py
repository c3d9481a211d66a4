"""The test class of tests/test_desk.py (11 students, as Moodle's "download all submissions" lays them out, with
what students' machines write and a few hostile files), zipped as the platform hands it over and graded as a teacher
would: `python evaluate.py "class download.zip" --csv grades.csv`, on the 10,000 test images.

    python experiments/desk_class.py   (repository root, TensorFlow)

Output: results/logs/desk_class.txt (stdout and stderr, as a terminal shows them), and the CSV's first lines as
written (UTF-8 with a byte-order mark). docs/usage.md's grading section quotes it.
"""

import contextlib
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import evaluate  # noqa: E402
import logs  # noqa: E402
import test_desk  # noqa: E402


def main():
    with tempfile.TemporaryDirectory() as temporary:
        base = Path(temporary)
        test_desk.make_class(base / "submissions")
        test_desk.zip_folder(base / "submissions", base / "class download.zip")
        os.chdir(base)
        with logs.tee("desk_class.txt"), contextlib.redirect_stderr(sys.stdout):
            print('$ python evaluate.py "class download.zip" --csv grades.csv')
            status = evaluate.main(["class download.zip", "--csv", "grades.csv"])
            print(f"(exit status {status})")
            raw = (base / "grades.csv").read_bytes()
            bom = raw.startswith(b"\xef\xbb\xbf")
            print(f"\ngrades.csv: {len(raw):,} bytes, starts with the byte-order mark: {bom}; its first lines:")
            print("\n".join(raw.decode("utf-8-sig").splitlines()[:4]))
        os.chdir(ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
