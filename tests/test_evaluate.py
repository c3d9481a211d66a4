"""evaluate.py: the sheet's lines and the table, and what it says when there is nothing to evaluate."""

import backend
import evaluate
import metrics
from conftest import last_line, run_script


def test_evaluates_a_trained_pair(tiny_run, capsys):
    out, result = tiny_run
    assert evaluate.main([str(out), "--test-limit", "300"]) == 0
    text = capsys.readouterr().out
    assert f"Model score : {result['test_accuracy'] * 100:.2f}%" in text
    assert f"Model error rate : {result['error_rate']:.2f}%" in text
    assert "| model | parameters | epochs | normalised |" in text
    assert "| small | 203,434 | 1 | yes |" in text


def test_print_model_error_rate_uses_the_sheet_format(tiny_run, capsys):
    import numpy as np

    model = tiny_run[1]["model"]
    images = np.zeros((4, 1, 28, 28), np.float32)
    labels = np.eye(10, dtype=np.float32)[[0, 1, 2, 3]]
    loss, accuracy = metrics.print_model_error_rate(model, images, labels)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"Model score : {accuracy * 100:.2f}%", f"Model error rate : {100 - accuracy * 100:.2f}%"]


def test_empty_results_dir_names_the_command(tmp_path):
    result = run_script("evaluate.py", tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "python train.py --model large" in last_line(result.stderr)


def test_broken_pair_is_one_line_naming_the_file(tmp_path, tiny_run):
    out, _ = tiny_run
    broken = tmp_path / "small"
    broken.with_suffix(".json").write_text((out / "models" / "small.json").read_text()[:100])
    (tmp_path / "small.weights.h5").write_bytes((out / "models" / "small.weights.h5").read_bytes())
    result = run_script("evaluate.py", broken)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "small.json: not a readable model JSON" in result.stderr


def test_distance_outside_reference():
    assert evaluate.distance_outside(0.85, (0.82, 0.89)) == 0.0
    assert round(evaluate.distance_outside(1.00, (0.82, 0.89)), 2) == 0.11
    assert round(evaluate.distance_outside(2.00, (2.40, 2.40)), 2) == -0.40
    assert evaluate.distance_outside(1.0, None) is None


def test_report_and_figures_for_a_results_dir(tiny_run, capsys):
    out, _ = tiny_run
    assert evaluate.main([str(out), "--test-limit", "300"]) == 0
    report = (out / "RESULTS.md").read_text()
    assert "| small | INSAT TP3 | 203,434 | 1 | 200 | adam | yes |" in report
    assert "- Trained on: " in report and "evaluated on: " in report
    assert f"| {backend.NAME} {backend.framework_version()}, cpu |" in report  # the backend that trained it
    trained_with = f"{backend.NAME} {backend.framework_version()}, cpu"
    assert f"- Trained with (Keras backend, device): {trained_with}: 1 runs" in report
    assert f"{backend.NAME} {backend.framework_version()}, Keras 3." in report and "- Commit: " in report
    for figure in ("history", "confusion", "errors"):
        assert (out / "plots" / f"small_{figure}.png").stat().st_size > 5000
    assert (out / "plots" / "small_errors.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_seed_spread_groups_runs_of_a_model():
    rows = [{"model": "small", "run": "small_seed8", "error_rate": 3.0},
            {"model": "medium", "run": "medium", "error_rate": 1.0},
            {"model": "small", "run": "small", "error_rate": 1.0}]
    groups = evaluate.group_by_model(rows)
    assert list(groups) == ["small", "medium"]  # registry order
    assert [row["run"] for row in groups["small"]] == ["small", "small_seed8"]  # default seed first
    assert evaluate.seed_spread(groups["small"]) == "2.00 ± 1.41% (2 seeds)"
    assert evaluate.seed_spread(groups["medium"]) == "-"


def test_readme_table_is_copied_from_the_report(tmp_path):
    report = tmp_path / "RESULTS.md"
    report.write_text("# Results\n\nintro\n\n| model | x |\n| --- | --- |\n| small | 1 |\n\nGoal: `best` met.\n\n"
                      "## References\n")
    readme = tmp_path / "README.md"
    readme.write_text("before\n<!-- results:start -->\nold\n<!-- results:end -->\nafter\n"
                      "<!-- ladder-goal:start -->\nold goal\n<!-- ladder-goal:end -->\n")
    evaluate.update_readme(report, readme)
    assert readme.read_text() == ("before\n<!-- results:start -->\n| model | x |\n| --- | --- |\n| small | 1 |\n"
                                  "<!-- results:end -->\nafter\n"
                                  "<!-- ladder-goal:start -->\nGoal: `best` met.\n<!-- ladder-goal:end -->\n")


def test_a_foreign_pair_near_chance_on_pixels_over_255_gets_a_one_line_hint(tmp_path, tiny_run):
    """Like the 2019 tutorial's no_preparation_small_model_cnn (trained on pixels 0..255, 89.72% error on /255):
    a pair without our history, here one that always answers 1, scores near chance; evaluate.py names the flag."""
    import numpy as np

    import models
    import persistence

    foreign = models.build_model("small")
    foreign.name = "no_preparation_small_model_cnn"  # no recipe of ours: evaluate.py cannot know its scaling
    kernel, bias = foreign.layers[-1].get_weights()
    foreign.layers[-1].set_weights([np.zeros_like(kernel), np.eye(10, dtype=np.float32)[1]])
    persistence.save_keras_model(foreign, tmp_path / "foreign")
    result = run_script("evaluate.py", tmp_path / "foreign", tiny_run[0], "--test-limit", "500")
    assert result.returncode == 0, result.stderr
    hints = [line for line in result.stderr.splitlines() if "near chance" in line]
    assert hints == [f"evaluate.py: {tmp_path / 'foreign'} scores near chance on pixels /255: it may expect raw "
                     "pixels 0..255; try --normalize no"]  # one line, for the foreign pair only
    raw = run_script("evaluate.py", tmp_path / "foreign", "--test-limit", "500", "--normalize", "no")
    assert raw.returncode == 0 and "near chance" not in raw.stderr


def test_ladder_table_and_figure(tmp_path):
    """One line per rung, in the ladder's order: mean ± sd over seeds, the gain over the rung before, minutes."""
    import models

    rows = [{"model": name, "run": f"{name}_seed{seed}" if seed != 7 else name, "parameters": 1000 + rung,
             "epochs": 10, "config": {"train_seconds": 60.0 * (rung + 1)}, "error_rate": 1.5 - 0.1 * rung + 0.01 * seed}
            for rung, name in enumerate(models.LADDER) for seed in (7, 8, 9)]
    assert evaluate.ladder_table(rows[:-3]) is None  # not every rung trained yet
    lines = evaluate.ladder_table(rows).splitlines()
    assert lines[0].startswith("| rung | adds |") and len(lines) == 2 + len(models.LADDER)
    assert lines[2].startswith("| small | the sheet's small CNN, pixels /255 | 1,000 | 10 | 1.58 ± 0.01% | 3 | - |")
    assert lines[3].startswith(f"| {models.LADDER[1]} | {models.MODELS[models.LADDER[1]].description} | 1,001 | 10 | "
                               "1.48 ± 0.01% | 3 | +0.10 points | 2.0 min |")
    last = [row for row in rows if row["model"] == models.LADDER[-1]]
    for offset, row in enumerate(last):  # whatever the ladder's length: 0.77, 0.78, 0.79%, 9.0 min a run
        row.update(error_rate=0.77 + 0.01 * offset, config={"train_seconds": 540.0})
    assert evaluate.ladder_goal(last) == (
        f"Goal: `{models.LADDER[-1]}` at most 0.40% error (99.60% accuracy) as the mean of its seeds, each run trained "
        "in under 10 minutes: missed, 0.380 points of error above it. Its 3 runs: 0.780% (99.220% accuracy), the "
        "longest 9.0 min.")
    fast_and_good = [{**row, "error_rate": 0.39 + 0.01 * (row["run"] != last[0]["run"])} for row in last]
    assert ": met. Its 3 runs: 0.397% (99.603% accuracy)" in evaluate.ladder_goal(fast_and_good)  # 0.39, 0.40, 0.40
    at_the_goal = [{**row, "error_rate": 100 - 0.996 * 100} for row in last]  # 0.40000000000000568 each
    assert ": met. Its 3 runs: 0.400% (99.600% accuracy)" in evaluate.ladder_goal(at_the_goal)
    just_above = [{**row, "error_rate": 0.40 + 0.01 * (row["run"] == last[0]["run"])} for row in last]  # 0.403
    assert ": missed, 0.003 points of error above it. Its 3 runs: 0.403% (99.597% accuracy)" in evaluate.ladder_goal(
        just_above)
    slow = [{**row, "config": {"train_seconds": 601.0}} for row in fast_and_good]
    assert ": missed, a run trained 10.0 min. " in evaluate.ladder_goal(slow)
    # an older history without its training time: the goal cannot be shown met, and no time is made up
    untimed = [{**row, "config": {}} if row["run"] == last[0]["run"] else row for row in fast_and_good]
    assert ": not shown, 1 of its runs without a recorded training time. " in evaluate.ladder_goal(untimed)
    assert evaluate.ladder_goal([{**row, "config": {}} for row in fast_and_good]).endswith(
        "0.397% (99.603% accuracy), no training time recorded.")
    assert evaluate.ladder_goal(last) in evaluate.ladder_section(rows)  # under the table in RESULTS.md
    evaluate.ladder_figure(rows, tmp_path / "ladder.png")
    assert (tmp_path / "ladder.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    untimed_rung = [{**row, "config": {}} if row["model"] == models.LADDER[1] else row for row in rows]
    assert evaluate.ladder_table(untimed_rung).splitlines()[3].endswith("| +0.10 points | - |")  # not "0.0 min"
    evaluate.ladder_figure(untimed_rung, tmp_path / "untimed.png")  # that rung's time bar is left out
    assert (tmp_path / "untimed.png").stat().st_size > 0


def test_an_unchanged_pair_is_not_evaluated_or_drawn_again(tiny_run, tmp_path, monkeypatch, capsys):
    """The second run prints the same lines and writes the same RESULTS.md from what the first one kept; a pair
    that changed, a missing figure, or --redraw, is evaluated again."""
    import shutil

    import persistence
    import plots

    out = tmp_path / "results"
    shutil.copytree(tiny_run[0] / "models", out / "models")
    monkeypatch.setenv("MNIST_LABS_CACHE", str(tmp_path / "cache"))
    assert evaluate.main([str(out), "--test-limit", "200"]) == 0
    first, report = capsys.readouterr().out, (out / "RESULTS.md").read_text()
    figure = out / "plots" / "small_confusion.png"
    drawn = figure.stat().st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("evaluated or drawn again")

    monkeypatch.setattr(persistence, "load_keras_model", fail)
    monkeypatch.setattr(plots, "plot_confusion_matrix", fail)
    assert evaluate.main([str(out), "--test-limit", "200"]) == 0
    assert capsys.readouterr().out == first and (out / "RESULTS.md").read_text() == report
    assert figure.stat().st_mtime_ns == drawn
    monkeypatch.undo()
    monkeypatch.setenv("MNIST_LABS_CACHE", str(tmp_path / "cache"))
    evaluated = []
    original = persistence.load_keras_model
    monkeypatch.setattr(persistence, "load_keras_model", lambda *a, **k: evaluated.append(a) or original(*a, **k))
    figure.unlink()  # a missing figure: drawn again
    assert evaluate.main([str(out), "--test-limit", "200"]) == 0 and figure.is_file() and len(evaluated) == 1
    assert evaluate.main([str(out), "--test-limit", "100"]) == 0 and len(evaluated) == 2  # other options
    assert evaluate.main([str(out), "--test-limit", "200", "--redraw"]) == 0 and len(evaluated) == 3
    history = out / "models" / "small.history.json"
    history.write_text(history.read_text().replace('"epochs": 1', '"epochs": 1 '))  # the pair's history changed
    assert evaluate.main([str(out), "--test-limit", "200"]) == 0 and len(evaluated) == 4
