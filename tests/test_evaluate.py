"""evaluate.py: the sheet's lines and the table, and what it says when there is nothing to evaluate."""

import pytest

import evaluate
from labtools import backend, errors, history, ladder, report, saved_models, scores


def test_evaluate_prints_the_sheet_lines_and_tables_and_writes_the_report(tiny_run, capsys):
    out, result = tiny_run
    assert evaluate.main([str(out), "--test-limit", "300", "--params"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0] == backend.describe()  # the first line names Keras, the backend and the device
    assert f"Model score : {result['test_accuracy'] * 100:.2f}%" in text
    assert f"Model error rate : {result['error_rate']:.2f}%" in text
    assert "| model | saved by | input | parameters | epochs | normalised |" in text
    assert "| small | this project (Keras 3) | (1, 28, 28) | 203,434 | 1 | yes |" in text
    # ARN part 3: the weights per layer
    assert "| model | layers with weights | weights per layer | total |" in text
    assert "| small | 3 | Conv2D 640, Conv2D 18,464, Dense 184,330 | 203,434 |" in text
    results_md = (out / "RESULTS.md").read_text()
    assert "| small | INSAT TP3 | 203,434 | 1 | 200 | adam | yes |" in results_md
    assert "- Trained on: " in results_md and "evaluated on: " in results_md
    trained_with = f"{backend.NAME} {backend.framework_version()}, cpu"
    assert f"| {trained_with} |" in results_md  # the backend that trained it
    assert f"- Trained with (Keras backend, device): {trained_with}: 1 runs" in results_md
    assert f"{backend.NAME} {backend.framework_version()}, Keras 3." in results_md and "- Commit: " in results_md
    for figure in ("history", "confusion", "errors"):
        assert (out / "plots" / f"small_{figure}.png").stat().st_size > 5000
    assert (out / "plots" / "small_errors.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_print_model_error_rate_uses_the_sheet_format(tiny_run, capsys):
    import numpy as np

    model = tiny_run[1]["model"]
    images = np.zeros((4, 1, 28, 28), np.float32)
    labels = np.eye(10, dtype=np.float32)[[0, 1, 2, 3]]
    loss, accuracy = evaluate.print_model_error_rate(model, images, labels)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"Model score : {accuracy * 100:.2f}%", f"Model error rate : {100 - accuracy * 100:.2f}%"]


def test_empty_results_dir_names_the_command(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main([str(tmp_path)])
    assert str(exit_info.value) == (f"evaluate.py: error: no trained model in {tmp_path}; train one first: "
                                    "python train.py --model large")


def test_broken_pair_is_one_line_naming_the_file(tmp_path, tiny_run, capsys):
    out, _ = tiny_run
    broken = tmp_path / "small"
    broken.with_suffix(".json").write_text((out / "models" / "small.json").read_text()[:100])
    (tmp_path / "small.weights.h5").write_bytes((out / "models" / "small.weights.h5").read_bytes())
    assert evaluate.main([str(broken)]) == 1
    errors = capsys.readouterr().err.strip()
    assert errors.count("\n") == 0 and "small.json: not a readable model JSON" in errors


def test_distance_outside_reference():
    assert report.distance_outside(0.85, (0.82, 0.89)) == 0.0
    assert round(report.distance_outside(1.00, (0.82, 0.89)), 2) == 0.11
    assert round(report.distance_outside(2.00, (2.40, 2.40)), 2) == -0.40
    assert report.distance_outside(1.0, None) is None


def test_seed_spread_groups_runs_of_a_model():
    rows = [{"model": "small", "run": "small_seed8", "error_rate": 3.0},
            {"model": "medium", "run": "medium", "error_rate": 1.0},
            {"model": "small", "run": "small", "error_rate": 1.0}]
    groups = report.group_by_model(rows)
    assert list(groups) == ["small", "medium"]  # registry order
    assert [row["run"] for row in groups["small"]] == ["small", "small_seed8"]  # default seed first
    assert report.seed_spread(groups["small"]) == "2.00 ± 1.41% (2 seeds)"
    assert report.seed_spread(groups["medium"]) == "-"


def test_generated_blocks_are_copied_from_the_report(tmp_path):
    results_md = tmp_path / "RESULTS.md"
    results_md.write_text("# Results\n\nintro\n\n"
                      "| model | sheet | error rate | over seeds | reference | difference | train time |\n| --- |\n"
                      "| pooled | beyond the sheets | 1.26% | 1.27 ± 0.03% (3 seeds) | - | - | 393 s |\n\n"
                      "| model | sheet | parameters |\n| --- |\n\n| rung | adds |\n| --- |\n\nGoal: `best` met.\n\n"
                      "## References\n")
    (tmp_path / "docs").mkdir()
    for document in ("README.md", "README.fr.md", "docs/ladder.md"):
        (tmp_path / document).write_text("before\n<!-- results:start -->\nold\n<!-- results:end -->\nafter\n"
                                         "<!-- ladder:start -->\n<!-- ladder:end -->\n"
                                         "<!-- ladder-goal:start -->\nold goal\n<!-- ladder-goal:end -->\n")
    report.update_readme(results_md, tmp_path)
    english = ("| model | sheet | error rate | over seeds | reference | difference | train time |\n| --- |\n"
               "| pooled | beyond the sheets | 1.26% | 1.27 ± 0.03% (3 seeds) | - | - | 393 s |")
    assert (tmp_path / "README.md").read_text() == (
        f"before\n<!-- results:start -->\n{english}\n<!-- results:end -->\nafter\n"
        "<!-- ladder:start -->\n<!-- ladder:end -->\n<!-- ladder-goal:start -->\nold goal\n<!-- ladder-goal:end -->\n")
    french = (tmp_path / "README.fr.md").read_text()
    assert ("| modèle | TP | taux d'erreur | sur les graines | référence | écart | temps d'entraînement |\n"
            "| --- |\n| pooled | au-delà des TP | 1.26% | 1.27 ± 0.03% (3 graines) | - | - | 393 s |") in french
    assert (tmp_path / "docs/ladder.md").read_text() == (
        "before\n<!-- results:start -->\nold\n<!-- results:end -->\nafter\n<!-- ladder:start -->\n| rung | adds |\n"
        "| --- |\n<!-- ladder:end -->\n<!-- ladder-goal:start -->\nGoal: `best` met.\n<!-- ladder-goal:end -->\n")


def test_a_foreign_pair_near_chance_on_pixels_over_255_gets_a_one_line_hint(tmp_path, tiny_run, capsys):
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
    assert evaluate.main([str(tmp_path / "foreign"), str(tiny_run[0]), "--test-limit", "500"]) == 0
    hints = [line for line in capsys.readouterr().err.splitlines() if "near chance" in line]
    assert hints == [f"evaluate.py: {tmp_path / 'foreign'} scores near chance on pixels /255: it may expect raw "
                     "pixels 0..255; try --normalize no"]  # one line, for the foreign pair only
    assert evaluate.main([str(tmp_path / "foreign"), "--test-limit", "500", "--normalize", "no"]) == 0
    assert "near chance" not in capsys.readouterr().err


def test_ladder_table_and_figure(tmp_path):
    """One line per rung, in the ladder's order: mean ± sd over seeds, the gain over the rung before, minutes."""
    import models

    rows = [{"model": name, "run": f"{name}_seed{seed}" if seed != 7 else name, "parameters": 1000 + rung,
             "recipe": models.MODELS[name], "order": list(models.MODELS).index(name), "epochs": 10,
             "config": {"train_seconds": 60.0 * (rung + 1)}, "error_rate": 1.5 - 0.1 * rung + 0.01 * seed}
            for rung, name in enumerate(ladder.LADDER) for seed in (7, 8, 9)]
    assert report.ladder_table(rows[:-3]) is None  # not every rung trained yet
    lines = report.ladder_table(rows).splitlines()
    assert lines[0].startswith("| rung | adds |") and len(lines) == 2 + len(ladder.LADDER)
    assert lines[2].startswith("| small | the sheet's small CNN, pixels /255 | 1,000 | 10 | 1.58 ± 0.01% | 3 | - |")
    assert lines[3].startswith(f"| {ladder.LADDER[1]} | {models.MODELS[ladder.LADDER[1]].description} | 1,001 | 10 | "
                               "1.48 ± 0.01% | 3 | +0.10 points | 2.0 min |")
    last = [row for row in rows if row["model"] == ladder.LADDER[-1]]
    for offset, row in enumerate(last):  # whatever the ladder's length: 0.77, 0.78, 0.79%, 9.0 min a run
        row.update(error_rate=0.77 + 0.01 * offset, config={"train_seconds": 540.0})
    goal = ladder.LADDER_GOAL_ERROR  # whatever the goal: the verdict and the margins around it
    assert report.ladder_goal(last) == (
        f"Goal: `{ladder.LADDER[-1]}` at most {goal:.2f}% error ({100 - goal:.2f}% accuracy) as the mean of its "
        f"seeds, each run trained in under 10 minutes: missed, {0.78 - goal:.3f} points of error above it. Its 3 "
        "runs: 0.780% (99.220% accuracy), the longest 9.0 min.")
    fast_and_good = [{**row, "error_rate": goal - 0.01 + 0.01 * (row["run"] != last[0]["run"])} for row in last]
    assert f": met. Its 3 runs: {goal - 0.00333:.3f}% ({100 - goal + 0.00333:.3f}% accuracy)" in report.ladder_goal(
        fast_and_good)  # goal - 0.01, goal, goal
    at_the_goal = [{**row, "error_rate": 100 - (100 - goal) / 100 * 100} for row in last]  # the goal, give or take
    assert f": met. Its 3 runs: {goal:.3f}% ({100 - goal:.3f}% accuracy)" in report.ladder_goal(at_the_goal)
    just_above = [{**row, "error_rate": goal + 0.01 * (row["run"] == last[0]["run"])} for row in last]  # goal + 0.0033
    assert (f": missed, 0.003 points of error above it. Its 3 runs: {goal + 0.00333:.3f}% "
            f"({100 - goal - 0.00333:.3f}% accuracy)") in report.ladder_goal(just_above)
    slow = [{**row, "config": {"train_seconds": 601.0}} for row in fast_and_good]
    assert ": missed, a run trained 10.0 min. " in report.ladder_goal(slow)
    # an older history without its training time: the goal cannot be shown met, and no time is made up
    untimed = [{**row, "config": {}} if row["run"] == last[0]["run"] else row for row in fast_and_good]
    assert ": not shown, 1 of its runs without a recorded training time. " in report.ladder_goal(untimed)
    assert report.ladder_goal([{**row, "config": {}} for row in fast_and_good]).endswith(
        f"{goal - 0.00333:.3f}% ({100 - goal + 0.00333:.3f}% accuracy), no training time recorded.")
    assert report.ladder_goal(last) in report.ladder_section(rows, report.ladder_table(rows))  # under the table
    report.ladder_figure(rows, tmp_path / "ladder.png")
    assert (tmp_path / "ladder.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    untimed_rung = [{**row, "config": {}} if row["model"] == ladder.LADDER[1] else row for row in rows]
    assert report.ladder_table(untimed_rung).splitlines()[3].endswith("| +0.10 points | - |")  # not "0.0 min"
    report.ladder_figure(untimed_rung, tmp_path / "untimed.png")  # that rung's time bar is left out
    assert (tmp_path / "untimed.png").stat().st_size > 0


def test_a_pair_whose_weights_file_alone_changed_is_evaluated_again(tiny_run, tmp_path, monkeypatch, capsys):
    """The evaluation cache's key covers the weights file: new weights under the same JSON and history (a student
    who trained again and copied only the .h5) are evaluated again, not read from what an earlier run kept."""
    import json
    import shutil

    import persistence

    for path in (tiny_run[0] / "models").glob("small.*"):
        shutil.copy(path, tmp_path / path.name)
    monkeypatch.setenv("MNIST_LABS_CACHE", str(tmp_path / "cache"))

    def score(*flags):
        assert evaluate.main([str(tmp_path / "small"), "--test-limit", "200", *flags]) == 0
        return [line for line in capsys.readouterr().out.splitlines() if line.startswith("Model error rate")]

    before = score()
    assert score() == before  # unchanged: the kept numbers
    model_json = (tmp_path / "small.json").read_text()  # weights of the same JSON, saved anew and copied alone
    retrained = saved_models.model_from_config(json.loads(model_json))
    retrained.set_weights(persistence.load_keras_model(tmp_path / "small").get_weights())
    retrained.layers[-1].kernel.assign(-retrained.layers[-1].kernel)
    retrained.save_weights(tmp_path / "other.weights.h5")
    saved_models.sign(tmp_path / "other.weights.h5", model_json, retrained)
    shutil.copy(tmp_path / "other.weights.h5", tmp_path / "small.weights.h5")
    after = score()
    assert after != before and after == score("--redraw")


@pytest.mark.slow
def test_an_unchanged_pair_is_not_evaluated_or_drawn_again(tiny_run, tmp_path, monkeypatch, capsys):
    """The second run prints the same lines and writes the same RESULTS.md from what the first one kept; a pair
    that changed, a missing figure, or --redraw, is evaluated again."""
    import shutil

    import persistence
    from labtools import plots

    out = tmp_path / "results"
    shutil.copytree(tiny_run[0] / "models", out / "models")
    monkeypatch.setenv("MNIST_LABS_CACHE", str(tmp_path / "cache"))
    assert evaluate.main([str(out), "--test-limit", "200"]) == 0
    first, results_md = capsys.readouterr().out, (out / "RESULTS.md").read_text()
    figure = out / "plots" / "small_confusion.png"
    drawn = figure.stat().st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("evaluated or drawn again")

    monkeypatch.setattr(saved_models, "load", fail)
    monkeypatch.setattr(plots, "plot_confusion_matrix", fail)
    assert evaluate.main([str(out), "--test-limit", "200"]) == 0
    assert capsys.readouterr().out == first and (out / "RESULTS.md").read_text() == results_md
    assert figure.stat().st_mtime_ns == drawn
    monkeypatch.undo()
    monkeypatch.setenv("MNIST_LABS_CACHE", str(tmp_path / "cache"))
    evaluated = []
    original = saved_models.load
    monkeypatch.setattr(saved_models, "load", lambda *a, **k: evaluated.append(a) or original(*a, **k))
    figure.unlink()  # a missing figure: drawn again
    assert evaluate.main([str(out), "--test-limit", "200"]) == 0 and figure.is_file() and len(evaluated) == 1
    assert evaluate.main([str(out), "--test-limit", "100"]) == 0 and len(evaluated) == 2  # other options
    assert evaluate.main([str(out), "--test-limit", "200", "--redraw"]) == 0 and len(evaluated) == 3
    history = out / "models" / "small.history.json"
    history.write_text(history.read_text().replace('"epochs": 1', '"epochs": 1 '))  # the pair's history changed
    assert evaluate.main([str(out), "--test-limit", "200"]) == 0 and len(evaluated) == 4


def test_the_history_figure_names_its_validation_data(tmp_path):
    from labtools import plots

    epochs = [{"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 0.9, "val_accuracy": 0.6}]
    assert plots.plot_history(epochs, tmp_path / "a.png", "small", "test").endswith("the test images, as the sheets do")
    assert "the last 5,000 training images, held out" in plots.plot_history(epochs, tmp_path / "b.png", "sharp",
                                                                            "holdout")
    trained_only = [{"epoch": 1, "loss": 1.0, "accuracy": 0.5}]
    assert "no validation data" in plots.plot_history(trained_only, tmp_path / "c.png", "best", "none")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
