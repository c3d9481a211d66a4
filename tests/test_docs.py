"""The README's promises: CI runs its test command, and its results table is RESULTS.md's."""

import re

from conftest import ROOT


def readme_commands():
    return re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)


def test_readme_opens_with_the_main_job_then_the_tests():
    main_job, tests = readme_commands()[:2]
    assert "pip install -r requirements.txt" in main_job and "train.py" in main_job and "evaluate.py" in main_job
    assert "pip install -r requirements-dev.txt" in tests and "pytest" in tests


def test_ci_runs_the_readme_test_command():
    assert readme_commands()[1].strip() in (ROOT / ".ci" / "run").read_text()


def test_readme_results_table_is_results_md_table():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- results:start -->\n", 1)[1].split("\n<!-- results:end -->", 1)[0]
    assert table.startswith("| model | sheet | parameters |")
    assert table in (ROOT / "results" / "RESULTS.md").read_text()
