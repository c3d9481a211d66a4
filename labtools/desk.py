"""A class's hand-in as a course platform gives it: every student found, every model they handed in.

"Download all submissions" on Moodle gives a zip (or, unpacked, a folder) of one folder per student, named
`First Last_12345_assignsubmission_file_`, holding what that student uploaded as they uploaded it: a results tree
two folders down, a zip of their own folder, files that Windows named `MODEL.JSON`, a pair whose weights have
another name. find_class walks all of it, at any depth, opening zips where they lie (into a temporary folder that
the caller removes; nothing is written among the students' files), and returns one Student per student folder with
the models found in it, or why none was.
"""

import dataclasses
import sys
import re
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from labtools import grading, report, tf_formats
from labtools.errors import PairError, short_error

# Files a platform or an operating system adds, skipped without a word
JUNK_NAMES = {"__macosx", ".ds_store", "thumbs.db", "desktop.ini", "__pycache__", ".ipynb_checkpoints"}
# Moodle's "download all submissions": "First Last_12345_assignsubmission_file_" (or _onlinetext_)
MOODLE_FOLDER = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assign(?:submission|feedback)_[a-z]+_?$")

# Limits on what a zip may unpack to: a lab's hand-in is a few MB; a zip bomb is refused before it is written
ZIP_MAX_TOTAL_BYTES = 2 * 1024 ** 3
ZIP_MAX_MEMBERS = 20_000
ZIP_MAX_RATIO = 200  # uncompressed / compressed for a member over 1 MB (model files compress 1.1-5 x)
ZIP_MAX_DEPTH = 4  # zips inside zips

JSON, KERAS, HDF5, CHECKPOINT = ".json", ".keras", (".h5", ".hdf5"), ".index"


@dataclasses.dataclass
class HandIn:
    """One model (or one file that is not a usable model) that a student handed in: where it lies inside the
    hand-in ("TP3/modeles/large"), the files that hold it, a note on how they were paired, or why it was refused."""

    inside: str
    files: tuple = ()
    note: str = ""
    refused: str = ""
    folder: Path = None  # where its files lie (a zip's: in the temporary folder), shown as shown_folder
    shown_folder: str = ""

    def named(self, message):
        """message with the files' folder named as the hand-in shows it."""
        if self.folder is None:
            return message
        return message.replace(f"{self.folder}/", f"{self.shown_folder}/" if self.shown_folder else "")


@dataclasses.dataclass
class Student:
    name: str  # as the platform names them ("Zoé Dupont"), or the folder's name as it is
    folder: str
    hand_ins: list


def student_name(folder_name):
    """The student's name in a platform's folder name: Moodle's "First Last_12345_assignsubmission_file_" gives
    "First Last"; any other name is kept as it is."""
    match = MOODLE_FOLDER.match(folder_name)
    return match["name"] if match else folder_name


def is_junk(path):
    name = path.name.lower()
    return name in JUNK_NAMES or name.startswith("._") or name.startswith(".")


def find_class(root, workdir):
    """[Student]: each folder of root (a folder, or a .zip unpacked into workdir) is a student's; files lying in
    root itself are listed under the student "-". A zip or a folder holding only one folder (the download's own
    top folder) is looked into first."""
    root = Path(root)
    if root.is_file():
        root = unpack(root, Path(workdir) / "class", depth=0, shown=root.name)
    while True:
        entries = [p for p in root.iterdir() if not is_junk(p)]
        folders = [p for p in entries if p.is_dir()]
        if len(entries) == 1 and folders and not looks_like_student(folders[0]) and \
                not tf_formats.is_saved_model(folders[0]):
            root = folders[0]
            continue
        break
    students = []
    loose = [p for p in sorted(entries) if p.is_file()]
    if loose:
        students.append(Student("-", "", find_models_in_files(root, loose, "", Path(workdir))))
        # a folder of models: its SavedModel folders are models of its own, not students
        for folder in [p for p in folders if tf_formats.is_saved_model(p) and not looks_like_student(p)]:
            students[0].hand_ins.extend(find_models(folder, "", Path(workdir)))
            folders.remove(folder)
    for folder in sorted(folders, key=lambda p: p.name.lower()):
        hand_ins = find_models(folder, "", Path(workdir))
        if hand_ins or not students or looks_like_student(folder):
            students.append(Student(student_name(folder.name), folder.name,
                                    hand_ins or [HandIn("", refused="no model file")]))
        # else: beside loose models (a folder of models, not a platform's download), a folder of other files
    return students


def looks_like_student(folder):
    return bool(MOODLE_FOLDER.match(folder.name))


def find_models(folder, shown, workdir, depth=0):
    """[HandIn] in folder and below, as `shown/...` (the path inside the student's hand-in)."""
    if tf_formats.is_saved_model(folder):
        return [HandIn(shown or folder.name, tf_formats.saved_model_files(folder), folder=folder.parent,
                       shown_folder=shown.rpartition("/")[0])]
    entries = sorted((p for p in folder.iterdir() if not is_junk(p)), key=lambda p: p.name.lower())
    found = find_models_in_files(folder, [p for p in entries if p.is_file() or not p.exists()], shown, workdir, depth)
    for sub in entries:
        if sub.is_dir() and not sub.is_symlink():
            found.extend(find_models(sub, join(shown, sub.name), workdir, depth))
    return found


def join(shown, name):
    return f"{shown}/{name}" if shown else name


def find_models_in_files(folder, paths, shown, workdir, depth=0):
    """The models among one folder's files, by their extensions in any letter case: name.json with
    name.weights.h5, name.h5 or name.hdf5; else the folder's one JSON with its one weights file under another name
    (noted); .keras archives; .h5 files that are no pair's weights; TensorFlow checkpoints; zips, opened."""
    by_lower = {p.name.lower(): p for p in paths if not p.is_symlink()}
    jsons = sorted(n for n in by_lower if n.endswith(JSON) and not n.endswith(".history.json"))
    checkpoints = sorted(n for n in by_lower if n.endswith(CHECKPOINT) and
                         any(other.startswith(n[: -len(CHECKPOINT)] + ".data-") for other in by_lower))
    hdf5 = sorted(n for n in by_lower if n.endswith(HDF5)) + checkpoints
    found, used = [], set()
    for name in jsons:
        stem = name[: -len(JSON)]
        weights = next((w for w in (stem + ".weights.h5", stem + ".h5", stem + ".hdf5", stem + CHECKPOINT)
                        if w in by_lower), None)
        if weights and weights not in used:
            used.update((name, weights))
            found.append(HandIn(join(shown, by_lower[name].name[: -len(JSON)]), (by_lower[name], by_lower[weights])))
    lone_jsons = [n for n in jsons if n not in used]
    lone_weights = [n for n in hdf5 if n not in used]
    if len(lone_jsons) == 1 and len(lone_weights) == 1:
        json_path, weights_path = by_lower[lone_jsons[0]], by_lower[lone_weights[0]]
        found.append(HandIn(join(shown, json_path.name[: -len(JSON)]), (json_path, weights_path),
                            note=f"paired {json_path.name} with {weights_path.name}, the folder's one weights file"))
        lone_jsons, lone_weights = [], []
    for name in lone_jsons:
        path = by_lower[name]
        found.append(HandIn(join(shown, path.name), refused=f"{path.name}: no weights beside it (name.weights.h5 or "
                                                              "name.h5); hand in the weights file too"))
    for name in lone_weights:
        path = by_lower[name]
        if name.endswith(CHECKPOINT):
            found.append(HandIn(join(shown, path.name[: -len(CHECKPOINT)]), refused=(
                f"{path.name[: -len(CHECKPOINT)]}.index + .data-*: a TensorFlow checkpoint, weights without their "
                "model; hand in the model's JSON beside it (model.to_json()), or, in the student's TensorFlow, "
                "load it into the model and save that with model.save(\"model.keras\")")))
        else:
            found.append(HandIn(join(shown, path.name), (path,)))
    for name in sorted(n for n in by_lower if n.endswith(KERAS)):
        found.append(HandIn(join(shown, by_lower[name].name), (by_lower[name],)))
    for name in sorted(n for n in by_lower if n.endswith(".zip")):
        path = by_lower[name]
        inside = join(shown, path.name)
        try:
            opened = unpack(path, Path(tempfile.mkdtemp(dir=workdir, prefix="zip")) / "z", depth + 1, inside)
        except PairError as error:
            found.append(HandIn(inside, refused=str(error)))
            continue
        found.extend(find_models(opened, inside, workdir, depth + 1))
    for hand_in in found:
        if hand_in.folder is None:
            hand_in.folder, hand_in.shown_folder = folder, shown
    return found


def member_name(member):
    """A zip member's name as its writer meant it: without the UTF-8 flag, Python reads the bytes as cp437, but
    Info-ZIP, macOS and most platforms wrote UTF-8 there ("Zoé" came out "Zo├⌐"); Windows' own zips wrote the OEM
    code page (cp850 in France, of which cp437's accents are a subset)."""
    if member.flag_bits & 0x800:
        return member.filename
    raw = member.filename.encode("cp437")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp850")


def unpack(path, destination, depth, shown):
    """Unpack the zip `path` into destination (new) and return it; a PairError in one line, naming the zip as the
    hand-in shows it, for a zip that is damaged, a bomb (ZIP_MAX_*), or has a member that climbs out of it."""
    if depth > ZIP_MAX_DEPTH:
        raise PairError(f"{shown}: zips nested more than {ZIP_MAX_DEPTH} deep; not opened")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise PairError(f"{shown}: not a readable zip ({error}); ask for it again") from None
    with archive:
        members = archive.infolist()
        for member in members:
            member.filename = member_name(member)
        if len(members) > ZIP_MAX_MEMBERS:
            raise PairError(f"{shown}: {len(members):,} files in one zip, over {ZIP_MAX_MEMBERS:,}; not opened")
        total = 0
        for member in members:
            name = member.filename.replace("\\", "/")  # zips made on Windows
            parts = PurePosixPath(name).parts
            if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts:
                raise PairError(f"{shown}: its member {member.filename!r} would be written outside the zip's "
                                "folder; not opened")
            total += member.file_size
            if member.file_size > 2 ** 20 and member.file_size > ZIP_MAX_RATIO * max(member.compress_size, 1):
                raise PairError(f"{shown}: {member.filename} unpacks to {member.file_size:,} bytes from "
                                f"{member.compress_size:,} (a zip bomb?); not opened")
            if total > ZIP_MAX_TOTAL_BYTES:
                raise PairError(f"{shown}: unpacks to over {ZIP_MAX_TOTAL_BYTES // 1024 ** 3} GiB; not opened")
        destination.mkdir(parents=True)
        for member in members:
            name = member.filename.replace("\\", "/")
            if stat.S_ISLNK(member.external_attr >> 16):
                continue  # a link could point anywhere: not followed
            target = destination.joinpath(*PurePosixPath(name).parts)
            if name.endswith("/"):
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(member) as source, open(target, "wb") as out:
                    written = 0
                    while chunk := source.read(1 << 20):
                        written += len(chunk)
                        if written > member.file_size:  # a header that lies about the size
                            raise PairError(f"{shown}: {member.filename} is larger than its zip entry says; "
                                            "not opened")
                        out.write(chunk)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as error:
                raise PairError(f"{shown}: damaged ({member.filename}: {error}); ask for it again") from None
    return destination


def is_hand_in(paths):
    """Whether evaluate.py's paths are a class's hand-in: one zip, or one folder with folders in it that is not
    train.py's results directory (models/ inside) nor a SavedModel."""
    if len(paths) != 1:
        return False
    path = Path(paths[0])
    if path.is_file():
        return path.suffix.lower() == ".zip"
    if not path.is_dir() or (path / "models").is_dir() or tf_formats.is_saved_model(path):
        return False
    return any(p.is_dir() and not is_junk(p) for p in path.iterdir())


def model_name(hand_in):
    """The name grading.evaluate_pair knows a hand-in's model by: a pair's JSON without .json, a SavedModel's
    folder, a single file as it is."""
    first = hand_in.files[0]
    if first.name == tf_formats.SAVED_MODEL_FILE:
        return first.parent
    return first.with_name(first.name[: -len(JSON)]) if len(hand_in.files) == 2 else first


def grade(path, evaluate_one, progress=None):
    """(rows, students): every student of the hand-in at path, each model they handed in evaluated by
    evaluate_one(hand_in, run) (grading.evaluate_pair's row); a file that fails, whatever it raises, is that row's
    reason and the next one is graded. progress(text): a line per student (a terminal's)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="mnist-labs-desk-") as workdir:
        students = find_class(path, workdir)
        for number, student in enumerate(students, 1):
            if progress:
                progress(f"[{number}/{len(students)}] {student.name}")
            for hand_in in student.hand_ins:
                row = {"run": hand_in.inside or "-", "file": join(student.folder, hand_in.inside)}
                if not hand_in.refused:
                    try:
                        row = {**evaluate_one(hand_in, f"{student.name}: {hand_in.inside}"), **row}
                    except MemoryError:
                        hand_in.refused = (f"{hand_in.inside}: needs more memory than this machine has; refused "
                                           "(the other students are graded)")
                    except Exception as error:  # noqa: BLE001  a student's file, whatever it raises, costs its row
                        hand_in.refused = short_error(hand_in.named(str(error))) or type(error).__name__
                        if not isinstance(error, PairError):
                            hand_in.refused = f"{hand_in.inside}: {type(error).__name__}: {hand_in.refused}"
                if hand_in.refused:
                    row["refused"] = hand_in.refused
                notes = [hand_in.note] if hand_in.note else []
                rows.append({**row, "student": student.name, "desk_notes": notes})
    return rows, students

def run(args, test_sets, recipes, normalize):
    """evaluate.py on a class's hand-in (is_hand_in): one block of rows per student, the table, the CSV, the
    closing line; the exit status is 1 when a student has no graded model or a file was refused."""
    cache = grading.EvaluationCache(ignore=args.redraw)

    def evaluate_one(hand_in, run):
        name = model_name(hand_in)
        row = grading.evaluate_pair(name, test_sets, recipes, normalize, args.data_dir, None, cache, run,
                                    files=hand_in.files)
        return {**row, "file": str(name if name.is_dir() else hand_in.files[0])}

    def progress(line):
        if sys.stderr.isatty():
            print(line, file=sys.stderr, flush=True)

    rows, students = grade(args.paths[0], evaluate_one, progress)
    cache.save()
    for row in rows:
        if row.get("refused"):
            print(f"evaluate.py: error: {row['student']}: {row['refused']}", file=sys.stderr, flush=True)
        row["notes_extra"] = row.pop("desk_notes")
    if args.csv:
        report.write_csv(rows, args.csv)
    print()
    print(report.results_table(rows))
    refused = sum(1 for row in rows if row.get("refused") and row["run"] != "-")  # "-": a folder with no file
    graded = {row["student"] for row in rows if not row.get("refused")}
    models = sum(1 for row in rows if not row.get("refused"))
    line = (f"\n{len(graded)} of {len(students)} students graded ({models} models); "
            f"{len(students) - len(graded)} with no graded model; {refused} of {models + refused} files refused")
    print(line + (": why is in the lines above" + (f" and in {args.csv}" if args.csv else "") if refused else ""))
    if args.params and models:
        print()
        print(report.parameters_table([row for row in rows if not row.get("refused")]))
    return 1 if refused or len(graded) < len(students) else 0
