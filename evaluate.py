"""Evaluate saved models on the MNIST test set, as the INSAT sheet does (print_model_error_rate, part 4.c).

    python evaluate.py                  # your runs: every pair train.py saved under runs/models/
    python evaluate.py results          # the committed reference runs (their RESULTS.md, figures in results/plots/)
    python evaluate.py results/models/large other_dir/
    python evaluate.py students/ --csv grades.csv   # a teacher's folder of models saved by any Keras

For each model: the sheet's two lines (Model score, Model error rate), then one table of all of them beside the
error rate that the sheet or its tutorial reports (your runs: also beside this repository's run of the same name).
A model is a json + h5 pair (this project's, or Keras 2's), a Keras 3 .keras archive or a full-model .h5 file;
its inputs are shaped to what it takes and, where nothing recorded how it was trained, its pixel scale is chosen
from the data (labtools/grading.py). For a results directory
(train.py's, with a models/ folder) it also writes, beside models/:
    RESULTS.md   one row per model (mean and sd over seeds), machine, versions
    plots/       per run: history, confusion matrix, misclassified test images
"""

if __name__ == "__main__":  # run as a script: Keras's backend loaded first, its start-up lines filtered out
    from labtools import console

    console.start("evaluate.py")

import sys
from pathlib import Path

import data
import models
from labtools import backend, console, desk, grading, history, model_size, report
from labtools.errors import PROJECT_ERRORS, UsageError


def print_model_error_rate(model, X_test, y_test):
    """The sheet's function; also returns (test loss, test accuracy)."""
    # Final evaluation of the model
    scores = model.evaluate(X_test, y_test, verbose=0)
    print("Model score : %.2f%%" % (scores[1] * 100))
    print("Model error rate : %.2f%%" % (100 - scores[1] * 100))
    return float(scores[0]), float(scores[1])


def make_parser():
    """The command line's parser (the docs test reads its flags)."""
    parser = console.HelpParser(description="Evaluate saved json + h5 pairs on the test set and write RESULTS.md "
                                            "and figures.")
    parser.add_argument("paths", nargs="*", default=[history.DEFAULT_OUT], metavar="PATH",
                        help="results directories, folders of saved models (and their subfolders), pairs (name "
                             "without extension, or any of its files), .keras archives, full-model .h5 files")
    parser.add_argument("--normalize", choices=["auto", "yes", "no"], default="auto",
                        help="pixels /255 (yes) or 0..255 (no); auto: what the model was trained with (its history "
                             "or recipe), else the one its outputs on 5,000 test images point to (docs/usage.md)")
    parser.add_argument("--csv", metavar="FILE", help="also write the printed table to FILE as CSV (a spreadsheet)")
    parser.add_argument("--data-dir", metavar="DIR", help="chest X-ray tree for pneumonia pairs "
                                                           "(default: the one it was trained on)")
    parser.add_argument("--params", action="store_true",
                        help="also print each model's trainable weights per layer (ARN sheet part 3)")
    parser.add_argument("--no-report", action="store_true", help="print only: no RESULTS.md, no figures")
    parser.add_argument("--readme", action="store_true",
                        help="also copy RESULTS.md's tables into README.md, README.fr.md and docs/ladder.md "
                             "(for maintainers)")
    parser.add_argument("--test-limit", type=int, metavar="N", help="evaluate on the first N test images only")
    parser.add_argument("--max-params", type=int, default=model_size.MAX_PARAMETERS, metavar="N",
                        help="refuse a model file that asks for more weights than N, before building or reading it")
    parser.add_argument("--redraw", action="store_true",
                        help="evaluate every pair and draw every figure again, also those unchanged since the last "
                             "run (their numbers are kept in the project's cache otherwise)")
    return parser


def run(args):
    print(backend.describe(), flush=True)
    if args.readme and not (len(args.paths) == 1 and history.is_reference(args.paths[0])):  # never a student's runs
        raise UsageError("--readme copies the committed runs' tables into the READMEs: python evaluate.py results "
                         "--readme")
    model_size.MAX_PARAMETERS = args.max_params
    normalize = {"auto": None, "yes": True, "no": False}[args.normalize]
    if desk.is_hand_in(args.paths):  # a class's hand-in (a folder of students' folders, or the platform's zip)
        test_sets = grading.TestSets(data.get_data_mnist, data.prepare_inputs, args.test_limit)
        return desk.run(args, test_sets, models.MODELS, normalize)
    pairs = grading.find_pairs(args.paths)
    if not pairs:
        raise UsageError(f"no trained model in {', '.join(args.paths)}; train one first: python train.py --model large")
    # A single results directory (train.py's: models/ inside) gets its report and figures; a folder of models
    # from elsewhere (a teacher's) and loose files are only printed: nothing is written among them.
    report_dir = None
    if not args.no_report and len(args.paths) == 1 and (Path(args.paths[0]) / "models").is_dir():
        report_dir = Path(args.paths[0])
    test_sets = grading.TestSets(data.get_data_mnist, data.prepare_inputs, args.test_limit)
    cache = grading.EvaluationCache(ignore=args.redraw)
    rows, failures = [], 0
    for filename in pairs:
        try:
            rows.append(grading.evaluate_pair(filename, test_sets, models.MODELS, normalize, args.data_dir,
                                              report_dir / "plots" if report_dir else None, cache,
                                              grading.display_name(filename, args.paths)))
        except PROJECT_ERRORS as error:  # one bad file does not stop the others, and keeps its row in the table
            print(f"evaluate.py: error: {error}", file=sys.stderr, flush=True)
            rows.append({"run": grading.display_name(filename, args.paths), "file": str(filename),
                         "refused": str(error)})
            failures += 1
    cache.save()
    if args.csv:
        report.write_csv(rows, args.csv)
    evaluated = [row for row in rows if not row.get("refused")]
    print()
    # your own runs (train.py's default folder): each beside this repository's run and the sheet's figure
    mine = report_dir is not None and history.is_own_runs(report_dir)
    print(report.beside_reference(rows) if mine else report.results_table(rows))
    if failures:
        print(f"\n{failures} of {len(rows)} files refused: why is in the lines above" +
              (f" and in {args.csv}" if args.csv else ""))
    if args.params and evaluated:
        print()
        print(report.parameters_table(evaluated))
    if report_dir is not None and evaluated:
        report.write_all(evaluated, report_dir, readme=args.readme)
        print(f"\nWrote {report_dir / 'RESULTS.md'} and figures in {report_dir / 'plots'}/")
    return 1 if failures else 0


def main(argv=None):
    return console.run("evaluate.py", run, make_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
