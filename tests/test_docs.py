"""The documents' promises: the READMEs' commands are CI's, every command, flag and link they show exists, and every
generated block is what evaluate.py generates from the committed RESULTS.md."""

import re
import subprocess

import pytest

import models
from conftest import ROOT
from labtools import report

DOCUMENTS = [ROOT / "README.md", ROOT / "README.fr.md", *sorted((ROOT / "docs").glob("*.md"))]
# A script or module and its flags, as the documents show them: `python train.py --model large`, `.venv/bin/python
# ...`, `python -m labtools.bench --epochs 1`
COMMAND = re.compile(r"(?:python3?|\.venv/bin/python|\.venv\\Scripts\\python)(?:\.exe)? +"
                     r"(-m +labtools\.\w+|(?:[\w.]+/)*[\w.]+\.py)([^`\n&|;]*)")
PLACEHOLDERS = {"NAME", "NOM", "N", "DIR", "DOSSIER", "PATH", "S1,S2,...", "B1,B2,..."}


def bash_blocks(path):
    return re.findall(r"```bash\n(.*?)\n```", path.read_text(), re.S)


def test_readme_opens_with_the_main_job_then_the_tests():
    main_job, tests = bash_blocks(ROOT / "README.md")[:2]
    assert "pip install -r requirements.txt" in main_job and "train.py" in main_job and "evaluate.py" in main_job
    assert "pip install -r requirements-dev.txt" in tests and "pytest" in tests


def test_both_readmes_give_the_same_two_commands_and_stay_short():
    assert bash_blocks(ROOT / "README.fr.md")[:2] == bash_blocks(ROOT / "README.md")[:2]
    for readme in ("README.md", "README.fr.md"):
        assert len((ROOT / readme).read_text()) <= 12_500, readme


def test_ci_runs_the_readme_test_command():
    assert bash_blocks(ROOT / "README.md")[1].strip() in (ROOT / ".ci" / "run").read_text()


def parsers():
    import draw
    import evaluate
    import predict
    import train
    import visualize
    from labtools import bench, gpu_check

    return {"train.py": train.make_parser(), "evaluate.py": evaluate.make_parser(), "predict.py": predict.make_parser(),
            "visualize.py": visualize.make_parser(), "draw.py": draw.make_parser(),
            "-m labtools.bench": bench.make_parser(), "-m labtools.gpu_check": gpu_check.make_parser()}


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_command_flag_and_link_exists(document):
    text, options = document.read_text(), {name: parser._option_string_actions for name, parser in parsers().items()}
    commands = COMMAND.findall(text)
    assert commands or document.name in ("data.md", "models.md"), "no command found: is the pattern still right?"
    for script, arguments in commands:
        script = " ".join(script.split())  # "-m  labtools.bench" as "-m labtools.bench"
        module = script.removeprefix("-m ").replace(".", "/") + ".py" if script.startswith("-m ") else script
        assert (ROOT / module).is_file(), f"{document.name}: no {module}"
        words = arguments.split()
        for index, word in enumerate(words):
            flag = word.split("=")[0].rstrip(",.)")
            if flag.startswith("--") and script in options:
                assert flag in options[script], f"{document.name}: {script} has no {flag}"
            if flag == "--model" and script == "train.py" and index + 1 < len(words):
                for name in words[index + 1].strip("`.,)").split(","):
                    assert name in models.MODELS or name in ("all", "ladder") or name in PLACEHOLDERS, name
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if not target.startswith(("http://", "https://", "#")):
            assert (document.parent / target.split("#")[0]).exists(), f"{document.name}: broken link {target}"


def committed(path):
    """A file as committed at HEAD: running the quick start rewrites results/RESULTS.md in the work tree."""
    try:
        return subprocess.run(["git", "show", f"HEAD:{path}"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the committed documents and RESULTS.md cannot be compared")


@pytest.mark.parametrize("document", list(report.GENERATED))
def test_committed_generated_blocks_are_what_evaluate_generates(document):
    text, results_md = committed(document), committed("results/RESULTS.md")
    for marker in report.GENERATED[document]:
        block = text.split(f"<!-- {marker}:start -->\n", 1)[1].split(f"\n<!-- {marker}:end -->", 1)[0]
        assert block == report.generated_block(results_md, document, marker), (document, marker)
