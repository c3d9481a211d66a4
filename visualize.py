"""See inside the CNNs: the first convolution's filters, every convolution's feature maps, and where a model looks.

    python visualize.py                              # the sheets' CNNs and the ladder's best: yours, else results'
    python visualize.py --out results/plots          # the committed figures, from results/models/ (maintainers)
    python visualize.py results/models/large         # one pair, or any model evaluate.py reads (any Keras)
    python visualize.py results/models/pneumonia --data-dir DIR     # the chest X-ray CNN, on your copy of the data
    python visualize.py students/alice_cnn --out figures/

Three figures per model, in --out: NAME_filters.png, NAME_feature_maps.png (for chosen test images: by default the
first of each class) and NAME_attribution.png: where the model looks, for one right and one wrong test image of
each class (radiographs: three of each), by integrated gradients, the method that passed the deletion check on
every model; Grad-CAM did not (docs/inside.md). The maps explain the class the model chose.
"""

if __name__ == "__main__":  # run as a script: Keras's backend loaded first, its start-up lines filtered out
    from labtools import console

    console.start("visualize.py")

import sys
from pathlib import Path

import numpy as np

import data
import models
from labtools import backend, console, grading, history, inside, report, saved_models, xrays
from labtools.errors import PROJECT_ERRORS, PairError, UsageError

DEFAULT_MODELS = ["small", "medium", "large", "large_original", "arn_cnn", "best", "pneumonia"]
XRAY_EXAMPLES = 3  # radiographs per class, right and wrong


def make_parser():
    parser = console.HelpParser(description="Draw the filters, feature maps and attribution maps of saved CNNs.")
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="saved models, as evaluate.py takes them (default: the seed-7 pairs of "
                             f"{', '.join(DEFAULT_MODELS)}: your own run of each in {history.DEFAULT_OUT}/models, "
                             "else the committed one in results/models; with --out results/plots, results/'s)")
    parser.add_argument("--out", default=f"{history.DEFAULT_OUT}/plots", metavar="DIR",
                        help="where the figures go (git ignores the default)")
    parser.add_argument("--images", metavar="I,J,...",
                        help="test images for the feature maps, by index (default: the first of each class)")
    parser.add_argument("--data-dir", metavar="DIR", help="chest X-ray tree for pneumonia models "
                                                           "(default: the one it was trained on)")
    parser.add_argument("--normalize", choices=["auto", "yes", "no"], default="auto",
                        help="pixels /255 (yes) or 0..255 (no); auto: as evaluate.py decides")
    parser.add_argument("--test-limit", type=int, metavar="N",
                        help="look for the examples among the first N MNIST test images only (quicker)")
    return parser


def first_of_each_class(labels):
    return [int(np.flatnonzero(labels == label)[0]) for label in np.unique(labels)]


def chosen_images(args, labels):
    if not args.images:
        return first_of_each_class(labels)
    try:
        indices = [int(index) for index in args.images.split(",")]
    except ValueError:
        raise UsageError(f"--images {args.images}: give test image indices, such as 0,1,2") from None
    if not indices or min(indices) < 0 or max(indices) >= len(labels):
        raise UsageError(f"--images {args.images}: indices go from 0 to {len(labels) - 1}")
    return indices


def test_images(filename, recipe, model, run_history, trained_normalize, args, test_sets):
    """(model inputs, images to show (N, H, W), labels, class names, credit line or None) of the test set the
    model was made for: MNIST's, on the pixel scale --normalize gives or it was trained on (else one chosen from
    the data, as evaluate.py chooses), or its chest X-ray tree's."""
    if recipe is not None and recipe.input_kind == "xray":
        found = xrays.test_tree(args.data_dir, run_history)
        if found is None:
            raise UsageError(f"{filename}: a chest X-ray model, and its test images are not here; {xrays.XRAY_DATA}")
        images, labels, _, stored_as = test_sets.xray_test_images(found)
        return (images, images[..., 0], labels[:, 0].astype(int), list(xrays.XRAY_CLASSES),
                report.xray_source(stored_as, short=True))
    normalize = {"auto": trained_normalize, "yes": True, "no": False}[args.normalize]
    inputs, labels, images, _, _ = grading.mnist_inputs(filename, model, recipe, normalize, test_sets)
    return inputs, images[:, 0], labels.argmax(axis=1), [str(digit) for digit in range(10)], None


def draw(filename, args, test_sets, run):
    """The three figures of one saved model, named for run; returns their paths."""
    if Path(run).suffix in (saved_models.KERAS_SUFFIX, *saved_models.HDF5_SUFFIXES):  # a single-file model
        run = Path(run).stem
    run_history = history.read_history(filename) or {}
    saved, recipe, trained_normalize = grading.load_run(filename, models.MODELS, run_history)
    model = grading.channels_last(saved.model, recipe)
    try:
        probe = inside.Probe(model)
    except ValueError as error:
        raise PairError(f"{filename}: {error}") from None
    inputs, images, labels, class_names, credit = test_images(filename, recipe, model, run_history, trained_normalize,
                                                              args, test_sets)
    size = images.shape[1:3]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{run}_{kind}.png" for kind in ("filters", "feature_maps", "attribution")]

    shown = chosen_images(args, labels)  # a bad --images before any figure is written
    kernels = probe.first_filters()
    inside.plot_filters(kernels, paths[0], f"{run}: the first convolution's {kernels.shape[-1]} filters, "
                                           f"{kernels.shape[0]} x {kernels.shape[1]}")

    maps = probe.feature_maps(inputs[shown])
    names = [f"convolution {number} ({name})" for number, (name, _) in enumerate(maps, start=1)]
    inside.plot_feature_maps(images[shown], [(name, found) for name, (_, found) in zip(names, maps)],
                             [f"test {index}: {class_names[labels[index]]}" for index in shown], paths[1],
                             f"{run}: every convolution's feature maps (after its activation), test images", credit)

    probabilities = inside.probabilities(model, inputs)
    predictions = probabilities.argmax(axis=1)
    per_class = 1 if credit is None else XRAY_EXAMPLES
    rows, row_names = [], []
    for kind in ("right", "wrong"):
        for number in range(per_class):
            row = []
            for label in range(len(class_names)):
                found = np.flatnonzero((labels == label) & ((predictions == labels) == (kind == "right")))
                row.append(int(found[number]) if number < len(found) else None)
            rows.append(row)
            row_names.append(kind if per_class == 1 else f"{kind} {number + 1}")
    chosen = sorted({index for row in rows for index in row if index is not None})
    attributions, _ = probe.integrated_gradients(inputs[chosen], predictions[chosen])
    found_maps = dict(zip(chosen, inside.pixel_maps(attributions, size)))
    panels = [[None if index is None else
               (images[index], found_maps[index],
                (f"true {class_names[labels[index]]}, called " if credit is None else "called ")
                + f"{class_names[predictions[index]]}\np={probabilities[index, predictions[index]]:.2f}, test {index}",
                predictions[index] != labels[index]) for index in row] for row in rows]
    if credit is not None:  # radiographs: a row per class, its right ones, then its wrong ones
        panels, row_names = [list(column) for column in zip(*panels)], [f"true {name}" for name in class_names]
    inside.plot_attributions(panels, row_names, paths[2],
                             f"{run}: where it looks, by integrated gradients (red: for the class it chose, blue: "
                             "against);\nthe first test images it gets right and wrong (red titles) of each class",
                             credit, box=inside.CHEST_BOX if credit is not None else None)
    for path in paths:
        print(f"   wrote {path}")
    return paths


def default_pair(name, out):
    """The pair drawn by default: results/'s when the figures go to results/plots (the committed figures are of the
    committed pairs), else your own run's if there is one, else the committed one."""
    if history.is_reference(Path(out).parent):
        return history.REFERENCE / "models" / name
    return history.own_or_reference(name) or history.REFERENCE / "models" / name


def run(args):
    print(backend.describe(), flush=True)
    default = not args.paths
    paths = args.paths or [str(default_pair(name, args.out)) for name in DEFAULT_MODELS]
    pairs = grading.find_pairs([path for path in paths if not default or Path(path).with_suffix(".json").is_file()])
    if not pairs:
        raise UsageError(f"no trained model in {', '.join(paths)}; train one first: python train.py --model large")
    if args.test_limit is not None and args.test_limit < 1:
        raise UsageError(f"--test-limit {args.test_limit}: give a number of test images, 1 or more")
    test_sets = grading.TestSets(data.get_data_mnist, data.prepare_inputs, args.test_limit)
    failures = 0
    for filename in pairs:
        print(f"== {filename}", flush=True)
        try:
            # a teacher's folder: alice/model and bob/model are drawn as alice_model and bob_model
            draw(filename, args, test_sets, grading.display_name(filename, paths).replace("/", "_"))
        except PROJECT_ERRORS as error:  # one model that cannot be drawn does not stop the others
            print(f"visualize.py: {'skipped' if default else 'error'}: {error}", file=sys.stderr, flush=True)
            failures += not default
    return 1 if failures else 0


def main(argv=None):
    return console.run("visualize.py", run, make_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
