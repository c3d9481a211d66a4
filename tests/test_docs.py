"""The README's promises: CI runs its test command, and its results table is RESULTS.md's."""

import re
import subprocess

import pytest

from conftest import ROOT


def readme_commands():
    return re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)


def test_readme_opens_with_the_main_job_then_the_tests():
    main_job, tests = readme_commands()[:2]
    assert "pip install -r requirements.txt" in main_job and "train.py" in main_job and "evaluate.py" in main_job
    assert "pip install -r requirements-dev.txt" in tests and "pytest" in tests


def test_ci_runs_the_readme_test_command():
    assert readme_commands()[1].strip() in (ROOT / ".ci" / "run").read_text()


def committed(path):
    """A file as committed at HEAD: running the quick start rewrites results/RESULTS.md in the work tree."""
    try:
        return subprocess.run(["git", "show", f"HEAD:{path}"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the committed README and RESULTS.md cannot be compared")


def test_committed_readme_blocks_are_results_md_blocks():
    readme, report = committed("README.md"), committed("results/RESULTS.md")
    for marker, start in (("results", "| model | sheet | parameters |"), ("ladder", "| rung | adds |"),
                          ("ladder-goal", "Goal: `best` at most 0.40% error")):
        block = readme.split(f"<!-- {marker}:start -->\n", 1)[1].split(f"\n<!-- {marker}:end -->", 1)[0]
        assert block.startswith(start) and block in report, marker
