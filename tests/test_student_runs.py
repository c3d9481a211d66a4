"""A student's runs go beside the committed reference, never over it, and their batches follow --seed."""

import shutil
import subprocess

import numpy as np
import pytest
from conftest import ROOT, train_run

import evaluate
import train
import visualize
from labtools import backend, batches, history


def test_train_writes_into_a_folder_git_ignores_and_results_only_when_asked():
    assert train.parse_args(["--model", "large"]).out == history.DEFAULT_OUT
    assert evaluate.make_parser().parse_args([]).paths == [history.DEFAULT_OUT]
    ignored = subprocess.run(["git", "check-ignore", "-q", f"{history.DEFAULT_OUT}/models/large.weights.h5"], cwd=ROOT)
    assert ignored.returncode == 0, f"{history.DEFAULT_OUT}/ is not ignored by git"
    tracked = subprocess.run(["git", "check-ignore", "-q", "results/models/large.weights.h5"], cwd=ROOT)
    assert tracked.returncode == 1 and history.is_reference(ROOT / "results")


def test_evaluate_puts_a_students_run_beside_the_committed_one_and_the_sheet(tiny_run, tmp_path, capsys,
                                                                            monkeypatch):
    runs = tmp_path / history.DEFAULT_OUT
    shutil.copytree(tiny_run[0], runs)
    monkeypatch.chdir(tmp_path)
    assert evaluate.main(["--test-limit", "300"]) == 0
    out = capsys.readouterr().out
    assert "Model error rate : " in out
    committed = history.read_history(ROOT / "results" / "models" / "small")
    line = next(line for line in out.splitlines() if line.startswith("| small |"))
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells[3] == f"{tiny_run[1]['error_rate']:.2f}%"
    # the committed run's number as its history records it, and what differs from this run
    assert cells[4] == f"{committed['test']['error_rate']:.2f}% (10 epochs, 60000 images)"
    assert "| run | epochs | test loss | error rate | this repository's run (results/) |" in out
    assert (runs / "RESULTS.md").is_file() and (runs / "plots" / "small_confusion.png").is_file()


def test_visualize_and_predict_prefer_the_students_own_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert visualize.default_pair("large", "runs/plots") == history.REFERENCE / "models" / "large"
    (tmp_path / "runs" / "models").mkdir(parents=True)
    (tmp_path / "runs" / "models" / "large.json").write_text("{}")
    assert visualize.default_pair("large", "runs/plots") == history.own_or_reference("large") == \
        tmp_path.joinpath("runs", "models", "large").relative_to(tmp_path)
    # the committed figures are drawn from the committed pairs
    assert visualize.default_pair("large", str(ROOT / "results" / "plots")) == history.REFERENCE / "models" / "large"


def test_the_batches_order_follows_the_seed_on_train_pys_path(tmp_path, monkeypatch):
    """What model.fit reads in train.py's flow: other seeds, other orders (a careless seed=7 would pass every other
    test: the initial weights follow the seed anyway); the same seed, the same order."""
    seen = []
    original = batches.shuffled_batches

    def recording(*args, **kwargs):
        first_batches = original(*args, **kwargs)  # the same call again, read here: the labels of its batches
        seen.append(np.concatenate([np.asarray(batch[1]).argmax(axis=1) for batch, _ in zip(first_batches, range(4))]))
        return original(*args, **kwargs)

    monkeypatch.setattr(batches, "shuffled_batches", recording)
    for seed in (7, 8, 7):
        train_run("mlp1", tmp_path, epochs=1, train_limit=400, test_limit=100, batch_size=50, seed=seed)
    assert len(seen) == 3 and len(seen[0]) == 200
    assert not np.array_equal(seen[0], seen[1]), "seeds 7 and 8 read the training images in the same order"
    assert np.array_equal(seen[0], seen[2])


def test_onednn_is_turned_on_only_where_tensorflow_leaves_it_off_and_nobody_chose():
    avx2_laptop = {"sse4_1", "avx", "avx2", "fma"}
    if backend.NAME != "tensorflow":
        assert not backend.onednn_wanted(avx2_laptop, environ={})
        return
    assert backend.onednn_wanted(avx2_laptop, environ={})
    for flag in backend.ONEDNN_BY_DEFAULT:  # TensorFlow turns it on itself there
        assert not backend.onednn_wanted(avx2_laptop | {"avx512f", flag}, environ={})
    assert not backend.onednn_wanted(avx2_laptop, environ={"TF_ENABLE_ONEDNN_OPTS": "0"})  # the user's choice
    assert not backend.onednn_wanted(avx2_laptop, environ={}, system="win32")  # on by default there, or not built
    assert not backend.onednn_wanted({"sse4_1", "avx"}, environ={})  # not measured without AVX2


def test_the_scripts_first_line_says_when_they_turned_onednn_on(monkeypatch):
    import keras  # noqa: F401  (describe reads its version)

    monkeypatch.setattr(backend, "ONEDNN_TURNED_ON", True)
    assert "oneDNN's CPU kernels turned on" in backend.describe("cpu") and "TF_ENABLE_ONEDNN_OPTS=0" in \
        backend.describe("cpu")
    monkeypatch.setattr(backend, "ONEDNN_TURNED_ON", False)
    assert "oneDNN" not in backend.describe("cpu")


def test_readme_tables_come_only_from_the_committed_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a student's runs/ must never reach the tracked READMEs
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(["--readme"])
    assert "python evaluate.py results --readme" in str(exit_info.value.code)
