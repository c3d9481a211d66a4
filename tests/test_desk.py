"""A class's hand-in as a course platform gives it (labtools/desk.py): a Moodle-style download built here from the
fixtures (tests/fixtures/), with what students' machines write: folders with accents and spaces, a results tree two
folders down, zips inside zips, a Notepad JSON, upper-case extensions, a pair whose names differ, junk, an empty
file, a zip bomb, a climbing path, a config that asks too much. Every student gets a row."""

import csv
import importlib.util
import json
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import keras
import pytest

import evaluate
from labtools import desk, model_size

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TENSORFLOW = importlib.util.find_spec("tensorflow") is not None  # reads checkpoints, on any backend


def moodle(name, number):
    return f"{name}_{number}_assignsubmission_file_"


def copy_pair(name, folder, json_name=None, weights_name=None):
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / f"{name}.json", folder / (json_name or f"{name}.json"))
    shutil.copy(FIXTURES / f"{name}.h5", folder / (weights_name or f"{name}.h5"))


def zip_folder(folder, archive, prefix=""):
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(folder.rglob("*")):
            z.write(path, prefix + path.relative_to(folder).as_posix())


def make_class(root):
    """The download unpacked: {folder: what its row must say}."""
    root.mkdir()
    s = {}
    zoe = root / moodle("Zoé Dupont", 1001)  # a results tree two folders down
    copy_pair("keras208_theano_cnn", zoe / "TP3" / "modeles", "large.json", "large.h5")
    s["Zoé Dupont"] = [("TP3/modeles/large", "Keras 2.0.8 (theano)")]
    jean = root / moodle("Jean-Luc Le Gall", 1002)  # a zip of the folder, with a zip inside it
    work = root.parent / "work-jean"
    (work / "rendu").mkdir(parents=True)
    shutil.copy(FIXTURES / "keras3_model.keras", work / "rendu" / "model.keras")
    inner = root.parent / "inner"
    inner.mkdir()
    shutil.copy(FIXTURES / "tf_keras_full.h5", inner / "full.h5")
    zip_folder(inner, work / "rendu" / "ancien.zip")
    (work / "__MACOSX" / "rendu").mkdir(parents=True)
    (work / "__MACOSX" / "rendu" / "._model.keras").write_bytes(b"\0\5\26\7junk")
    jean.mkdir()
    zip_folder(work, jean / "rendu.zip")
    s["Jean-Luc Le Gall"] = [("rendu.zip/rendu/ancien.zip/full.h5", "Keras 2.21.0 (tensorflow)"),
                             ("rendu.zip/rendu/model.keras", "Keras 3.15.1")]
    ana = root / moodle("Ana Müller", 1003)  # Windows: upper-case extensions, and its junk
    copy_pair("tf_keras_bn_cnn", ana, "MODEL.JSON", "MODEL.H5")
    (ana / "Thumbs.db").write_bytes(b"junk")
    (ana / "desktop.ini").write_text("[.ShellClassInfo]\r\n")
    s["Ana Müller"] = [("MODEL", "Keras 2.21.0 (tensorflow)")]
    bob = root / moodle("Bob Ng", 1004)  # the JSON re-saved by Notepad: a byte-order mark and CRLF
    copy_pair("tf_keras_raw_cnn", bob, "cnn.json", "cnn.h5")
    text = (bob / "cnn.json").read_text()
    (bob / "cnn.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(json.loads(text), indent=2).replace("\n", "\r\n")
                                   .encode())
    s["Bob Ng"] = [("cnn", "Keras 2.21.0 (tensorflow)")]
    chloe = root / moodle("Chloé Martin", 1005)  # save_weights('model_weights.h5') beside model.json
    copy_pair("tf_keras_flatten_mlp", chloe, "model.json", "model_weights.h5")
    (chloe / ".DS_Store").write_bytes(b"junk")
    s["Chloé Martin"] = [("model", "Keras 2.21.0 (tensorflow)", "paired model.json with model_weights.h5")]
    (root / moodle("Empty Folder", 1006)).mkdir()
    s["Empty Folder"] = [("-", "no model file")]
    eve = root / moodle("Eve Bomb", 1007)  # 64 MB of zeros in a zip of a few kB
    eve.mkdir()
    with zipfile.ZipFile(eve / "model.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("model.h5", b"\0" * (64 << 20))
    s["Eve Bomb"] = [("model.zip", "a zip bomb?")]
    mallory = root / moodle("Mallory Climb", 1008)  # a member that climbs out of the zip
    mallory.mkdir()
    with zipfile.ZipFile(mallory / "rendu.zip", "w") as z:
        z.writestr("../../outside.txt", b"written outside")
    s["Mallory Climb"] = [("rendu.zip", "would be written outside")]
    greedy = root / moodle("Greedy Dense", 1009)  # a Dense layer of 10^11 weights
    copy_pair("tf_keras_flatten_mlp", greedy, "m.json", "m.h5")
    config = json.loads((greedy / "m.json").read_text())
    next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense")["config"]["units"] = 10 ** 8
    (greedy / "m.json").write_text(json.dumps(config))
    s["Greedy Dense"] = [("m", "over the limit of 50,000,000")]
    zero = root / moodle("Zero Bytes", 1010)  # an upload that did not finish, and a damaged one
    zero.mkdir()
    (zero / "model.keras").write_bytes(b"")
    (zero / "cut.h5").write_bytes((FIXTURES / "tf_keras_full.h5").read_bytes()[:5000])
    (zero / "export" / "variables").mkdir(parents=True)  # a SavedModel folder whose graph was cut to 2 bytes
    (zero / "export" / "saved_model.pb").write_bytes(b"\x08\x01")
    s["Zero Bytes"] = [("cut.h5", "not a readable"), ("export", "SavedModel"), ("model.keras", "empty (0 bytes)")]
    # Another platform's folder name, kept as it is; TensorFlow's own formats from tf.keras 2: model.save("export")
    # (a SavedModel folder) and save_weights("ckpt") (a checkpoint) beside a JSON of another name
    sam = root / "Sam Other Platform"
    shutil.copytree(FIXTURES / "tf_keras_savedmodel", sam / "export")
    shutil.copy(FIXTURES / "tf_keras_ckpt.json", sam / "modele.json")
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(FIXTURES / f"tf_keras_ckpt{suffix}", sam / f"ckpt{suffix}")
    (sam / "checkpoint").write_text('model_checkpoint_path: "ckpt"\nall_model_checkpoint_paths: "ckpt"\n')
    s["Sam Other Platform"] = [
        ("export", "TensorFlow 2.21.0 (SavedModel)" if keras.backend.backend() == "tensorflow" else
         "TensorFlow backend only"),
        ("modele", *(("Keras 2.21.0 (tensorflow)", "paired modele.json with ckpt.index") if TENSORFLOW else
                     ("TensorFlow is not installed",)))]
    return s


@pytest.fixture(scope="module")
def hand_in(tmp_path_factory):
    base = tmp_path_factory.mktemp("desk")
    expected = make_class(base / "submissions")
    return base, expected


def rows_of(csv_path):
    raw = csv_path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # what Excel needs to read UTF-8 on a double-click
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def check_rows(table, expected):
    assert [row["student"] for row in table] == [name for name in sorted(expected, key=str.lower)
                                                 for _ in expected[name]]
    for row in table:
        wanted = expected[row["student"]]
        match = [w for w in wanted if w[0] == row["model"]]
        assert match, (row["model"], wanted)
        path, what, *note = match[0]
        if what.startswith(("Keras", "TensorFlow 2")):  # graded: what wrote it, and an error rate
            assert row["saved by"] == what and row["error rate"].endswith("%"), row
        else:  # refused: why, and no grade
            assert row["saved by"] == "refused" and row["error rate"] == "-" and what in row["notes"], (row, what)
        for text in note:
            assert text in row["notes"]


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_every_student_of_a_platform_download_gets_a_row(hand_in, as_zip, capsys, monkeypatch):
    base, expected = hand_in
    temporary = Path(tempfile.mkdtemp(dir=base))  # the desk's own temporary folders go here, and must go away
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    target = base / "submissions"
    if as_zip:  # the download as the platform hands it over: one zip, the students' folders in it
        target = base / "class download.zip"
        if not target.exists():
            zip_folder(base / "submissions", target)
    before = sorted((p.relative_to(base), p.stat().st_size) for p in base.rglob("*") if temporary not in p.parents)
    grades = base / f"grades-{as_zip}.csv"
    assert evaluate.main([str(target), "--csv", str(grades), "--test-limit", "500"]) == 1
    output = capsys.readouterr()
    assert "Traceback" not in output.out + output.err
    table = rows_of(grades)
    check_rows(table, expected)
    graded = [row for row in table if row["saved by"] != "refused"]
    students, refused_files = {row["student"] for row in graded}, len(table) - len(graded) - 1  # Empty Folder's "-"
    assert (len(graded), len(students)) == ((8, 6) if keras.backend.backend() == "tensorflow" else
                                            (7, 6) if TENSORFLOW else (6, 5))
    assert (f"{len(students)} of 11 students graded ({len(graded)} models); {11 - len(students)} with no graded "
            f"model; {refused_files} of 14 files refused") in output.out
    assert "| Zoé Dupont | TP3/modeles/large | Keras 2.0.8 (theano) |" in output.out
    for name in ("__MACOSX", "._model", "Thumbs.db", "desktop.ini", ".DS_Store"):
        assert name not in output.out + output.err and all(name not in row["model"] for row in table)
    refused = [line for line in output.err.splitlines() if line.startswith("evaluate.py: error:")]
    assert len(refused) == refused_files + 1
    assert all("/tmp" not in line and str(temporary) not in line for line in refused)
    after = sorted((p.relative_to(base), p.stat().st_size) for p in base.rglob("*") if temporary not in p.parents)
    assert after == sorted([*before, (grades.relative_to(base), grades.stat().st_size)])  # nothing else written
    assert not list(temporary.iterdir())  # the unpacked zips removed
    assert not (base.parent / "outside.txt").exists()


def test_a_moodle_folder_gives_the_students_name():
    assert desk.student_name("Zoé Dupont_12345_assignsubmission_file_") == "Zoé Dupont"
    assert desk.student_name("Jean Le Gall_9_assignsubmission_onlinetext_") == "Jean Le Gall"
    assert desk.student_name("groupe 3") == "groupe 3"


def test_the_parameter_count_is_read_from_the_config_before_building():
    config = json.loads((FIXTURES / "tf_keras_flatten_mlp.json").read_text())
    assert model_size.estimate_parameters(config) == 25_450  # what the table says the model has
    config = json.loads((FIXTURES / "keras208_theano_cnn.json").read_text())
    assert model_size.estimate_parameters(config) == 11_738
    with zipfile.ZipFile(FIXTURES / "keras3_model.keras") as z:
        assert model_size.estimate_parameters(json.loads(z.read("config.json"))) == 13_610


def test_a_file_declaring_a_huge_weight_is_refused_before_it_is_read(tmp_path):
    import h5py

    from labtools import errors, saved_models

    path = tmp_path / "huge.h5"
    shutil.copy(FIXTURES / "tf_keras_full.h5", path)
    with h5py.File(path, "a") as f:  # a dataset of 40 GB declared, never written (HDF5 allocates it lazily)
        f.create_dataset("model_weights/dense/dense/kernel:0", shape=(100_000, 100_000), dtype="float32")
    with pytest.raises(errors.PairError, match=r"huge\.h5: it stores 10,000,\d{3},\d{3} weights, over the limit"):
        saved_models.load(path)


def test_a_zip_without_the_utf8_flag_keeps_its_accents():
    """Info-ZIP and macOS wrote UTF-8 names without the flag that says so; Windows wrote its OEM code page."""
    info = zipfile.ZipInfo("Zoé/model.keras".encode("utf-8").decode("cp437"))
    assert info.flag_bits & 0x800 == 0 and desk.member_name(info) == "Zoé/model.keras"
    info = zipfile.ZipInfo("Zoé/model.keras".encode("cp850").decode("cp437"))
    assert desk.member_name(info) == "Zoé/model.keras"


def make_hostile_class(root):
    """A small class of what costs memory: a config asking for 10^11 weights, a zip bomb, a file declaring a kernel of
    1.6 GB (over the total limit), one declaring a kernel of 160 MB (under the total limit: the shape check), and one good model."""
    import h5py

    greedy = root / moodle("Greedy Dense", 1)
    copy_pair("tf_keras_flatten_mlp", greedy, "m.json", "m.h5")
    config = json.loads((greedy / "m.json").read_text())
    next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense")["config"]["units"] = 10 ** 8
    (greedy / "m.json").write_text(json.dumps(config))
    bomb = root / moodle("Eve Bomb", 2)
    bomb.mkdir()
    with zipfile.ZipFile(bomb / "model.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("model.h5", b"\0" * (64 << 20))
    huge = root / moodle("Huge Dataset", 3)
    huge.mkdir()
    for name, shape in [("huge.h5", (400_000_000,)), ("wide.h5", (40_000_000,))]:  # 1.6 GB and 160 MB
        shutil.copy(FIXTURES / "tf_keras_full.h5", huge / name)
        with h5py.File(huge / name, "a") as f:  # declared, never written: the files stay small
            del f["model_weights/dense_6/dense_6/kernel:0"]
            # a fill value other than 0: a read would write every byte (zeros may come from untouched pages)
            f.create_dataset("model_weights/dense_6/dense_6/kernel:0", shape=shape, dtype="float32", fillvalue=1.0)
    good = root / moodle("Good Model", 4)
    good.mkdir()
    shutil.copy(FIXTURES / "keras3_model.keras", good / "model.keras")


PEAK_RSS = """
import atexit, resource, runpy, sys
def peak():
    # this program's own peak: Linux's VmHWM, which exec starts anew. getrusage's ru_maxrss keeps, across exec, the
    # peak of the process that forked it (a whole pytest run: 4.5 GiB), and RUSAGE_CHILDREN counts other tests' too
    try:
        status = open("/proc/self/status").read().split("VmHWM:")[1]
        kilobytes = int(status.split()[0])
    except (OSError, IndexError):
        kilobytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // (1024 if sys.platform == "darwin" else 1)
    print(f"peak RSS: {kilobytes} kB", file=sys.stderr)
atexit.register(peak)
sys.argv = ["evaluate.py", *sys.argv[1:]]
runpy.run_path("evaluate.py", run_name="__main__")
"""


def test_a_hostile_class_stays_within_2_gb(tmp_path):
    """The issue's bound: a class folder peaks at no more than about 2 GB of RSS, whatever one file asks for.
    evaluate.py runs in its own process on a class of hostile files, and that process reports its own peak."""
    pytest.importorskip("resource")  # not on Windows
    from conftest import run_script

    make_hostile_class(tmp_path / "submissions")
    grades = tmp_path / "grades.csv"
    result = run_script("-c", PEAK_RSS, tmp_path / "submissions", "--csv", grades, "--test-limit", "200",
                        env={"MNIST_LABS_CACHE": str(tmp_path / "cache"), "TMPDIR": str(tmp_path)})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    peak = int(re.search(r"peak RSS: (\d+) kB", result.stderr).group(1)) * 1024
    print(f"evaluate.py on the hostile class: peak RSS {peak / 2 ** 20:.0f} MiB")
    assert peak < 2 * 2 ** 30, f"peak RSS {peak / 2 ** 30:.2f} GiB"
    assert "1 of 4 students graded (1 models); 3 with no graded model; 4 of 5 files refused" in result.stdout
    refusals = {row["student"]: row["notes"] for row in rows_of(grades) if row["saved by"] == "refused"}
    assert "over the limit of 50,000,000" in refusals["Greedy Dense"] and "zip bomb" in refusals["Eve Bomb"]
    assert "stored shapes (40000000,)" in refusals["Huge Dataset"], refusals
    assert "huge.h5: it stores 400,0" in result.stderr


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "redirected"])
def test_a_progress_line_per_student_on_a_terminal_only(tmp_path, monkeypatch, capsys, terminal):
    """On a terminal, "[n/N] Name" on stderr as each student's grading starts, in the table's order; redirected
    (a log, a pipe), nothing but the refusals."""
    import sys

    for name, number in [("Zoé Dupont", 3), ("ana Martin", 1), ("Bob Ng", 2)]:
        (tmp_path / "submissions" / moodle(name, number)).mkdir(parents=True)
    shutil.copy(FIXTURES / "keras3_model.keras", tmp_path / "submissions" / moodle("Bob Ng", 2) / "model.keras")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    assert evaluate.main([str(tmp_path / "submissions"), "--test-limit", "200", "--no-report"]) == 1
    err = capsys.readouterr().err
    progress = [line for line in err.splitlines() if re.match(r"\[\d+/\d+\] ", line)]
    assert progress == (["[1/3] ana Martin", "[2/3] Bob Ng", "[3/3] Zoé Dupont"] if terminal else []), err
