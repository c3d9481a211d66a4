"""How faithful are the attribution maps that visualize.py draws? The deletion check, on digits and chest X-rays,
and where the pneumonia CNNs look: inside the chest or outside it.

    python experiments/attribution.py [--digits 500] [--data-dir DIR]

Per model (the seed-7 pairs of the sheets' CNNs and the ladder's best; with --data-dir, the three committed
pneumonia pairs and the X-ray ladder's best rung, `augmented`, trained here for --rung-seeds as
experiments/xray_ladder.py trains it): the first --digits test digits (all 624 test radiographs), each explained for
the class the model chose, by integrated gradients and by Grad-CAM (labtools/inside.py). The deletion check sets
each image's pixels to black in the map's order, in 50 steps of 2% of the pixels (radiographs: 25 of 4%), and
records the probability of that class; its area (AUC, lower is better) is compared with the same deletion in random order, in order of the
pixel's brightness, and in the order of the maps of the same architecture with its weights re-drawn at random
(Adebayo et al. 2018), image by image. A map passes where its mean AUC is at most 80% of random order's and the 95%
bootstrap interval of the per-image difference lies above 0; it is specific to the trained model where it also
beats the randomised model's maps so. For the radiographs, also the share of each map's positive attribution that
falls outside the chest box (labtools/inside.CHEST_BOX), for right and wrong predictions.

Writes results/logs/attribution.txt (what it prints) and attribution.json, and the figures
results/plots/attribution_deletion.png and, with --data-dir, pneumonia_outside_chest.png. --tables prints the
tables of docs/inside.md from attribution.json and draws the figures again, without computing (added to the end of
attribution.txt).
"""

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

from labtools import console  # noqa: E402

if __name__ == "__main__":  # run as a script: the Keras backend loaded first, its start-up lines filtered out
    console.start("experiments/attribution.py")

import data  # noqa: E402
import logs  # noqa: E402
import models  # noqa: E402
import numpy as np  # noqa: E402
from labtools import backend, files, grading, history, inside, plots, report, xrays  # noqa: E402

MNIST_MODELS = ["small", "medium", "large", "large_original", "arn_cnn", "best"]
XRAY_PAIRS = ["pneumonia", "pneumonia_seed8", "pneumonia_seed9"]
FRACTIONS = np.linspace(0, 1, 51)  # digits: 2% of the pixels a step
XRAY_FRACTIONS = np.linspace(0, 1, 26)  # radiographs: 4% a step (each step predicts 624 images at 128 x 128, 6 times)
MARGIN = 0.8  # a map passes at a mean AUC of at most 80% of its control's
RANDOM_WEIGHTS_SEED, ORDER_SEED, BOOTSTRAP = 0, 0, 2000
ORDERS = ["integrated gradients", "Grad-CAM", "random order", "brightness", "integrated gradients, random weights",
          "Grad-CAM, random weights"]


def interval(differences, seed=0):
    """The 95% bootstrap interval of the mean of per-image differences."""
    rng = np.random.default_rng(seed)
    means = differences[rng.integers(0, len(differences), (BOOTSTRAP, len(differences)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def verdict(areas, method, control):
    mean, reference = areas[method].mean(), areas[control].mean()
    low, high = interval(areas[control] - areas[method])
    return {"ratio": float(mean / reference), "difference_interval": [low, high],
            "passes": bool(mean <= MARGIN * reference and low > 0)}


def check(name, model, inputs, images, labels, fractions=FRACTIONS):
    """The deletion check of one model on inputs (N, H, W, 1), as the module docstring says; returns a record."""
    size = images.shape[1:3]
    started = time.perf_counter()
    probe = inside.Probe(model)
    found = inside.probabilities(model, inputs)
    classes = found.argmax(axis=1)
    attributions, gaps = probe.integrated_gradients(inputs, classes)
    maps = {"integrated gradients": inside.pixel_maps(attributions, size),
            "Grad-CAM": probe.gradcam(inputs, classes, size)}
    twin = inside.Probe(inside.randomized_copy(model, RANDOM_WEIGHTS_SEED))
    maps["integrated gradients, random weights"] = inside.pixel_maps(twin.integrated_gradients(inputs, classes)[0], size)
    maps["Grad-CAM, random weights"] = twin.gradcam(inputs, classes, size)
    orders = {method: inside.deletion_orders(found_maps, ORDER_SEED) for method, found_maps in maps.items()}
    orders["random order"] = inside.random_orders(len(inputs), size[0] * size[1], ORDER_SEED)
    orders["brightness"] = inside.deletion_orders(images, ORDER_SEED)
    curves = {method: inside.deletion_curves(model, inputs, classes, orders[method], fractions) for method in ORDERS}
    areas = {method: inside.area(curve, fractions) for method, curve in curves.items()}
    record = {"model": name, "images": len(inputs), "accuracy": float(np.mean(classes == labels)),
              "ig_completeness_gap_median": float(np.median(gaps)), "ig_completeness_gap_max": float(gaps.max()),
              "fractions": fractions.round(4).tolist(),
              "auc": {method: float(values.mean()) for method, values in areas.items()},
              "curves": {method: curve.mean(axis=0).round(5).tolist() for method, curve in curves.items()},
              "rank_correlation_with_random_weights": {
                  method: float(np.nanmean(inside.rank_correlation(maps[method], maps[f"{method}, random weights"])))
                  for method in ("integrated gradients", "Grad-CAM")}}
    for method in ("integrated gradients", "Grad-CAM"):
        record[method] = {control: verdict(areas, method, control)
                          for control in ("random order", "brightness", f"{method}, random weights")}
    record["seconds"] = round(time.perf_counter() - started, 1)
    return record, maps, classes


def print_record(record):
    auc = record["auc"]
    print(f"{record['model']}: {record['images']} images, accuracy {record['accuracy']:.4f}; deletion AUC (mean): "
          + ", ".join(f"{method} {auc[method]:.3f}" for method in ORDERS))
    for method in ("integrated gradients", "Grad-CAM"):
        parts = []
        for control, found in record[method].items():
            low, high = found["difference_interval"]
            parts.append(f"vs {control}: {found['ratio']:.2f} of its AUC, difference [{low:.3f}, {high:.3f}] "
                         f"{'PASS' if found['passes'] else 'fail'}")
        print(f"   {method}: " + "; ".join(parts) + f"; rank correlation with the random-weights maps "
              f"{record['rank_correlation_with_random_weights'][method]:.2f}")
    print(f"   integrated gradients' completeness gap: median {record['ig_completeness_gap_median']:.4f}, largest "
          f"{record['ig_completeness_gap_max']:.4f}; {record['seconds']:.0f} s", flush=True)


def mean_share(shares):
    """The mean of the shares that exist (a map with no positive value has none), or None."""
    shares = shares[~np.isnan(shares)]
    return float(shares.mean()) if len(shares) else None


def percent(value):
    return "-" if value is None else f"{value:.1%}"


def brightness_outside(images):
    """The mean share of the radiographs' own brightness outside the chest box, the level of a map that follows
    the image rather than the model (integrated gradients carry a pixel's value as a factor), and a line saying so."""
    share = float(np.mean(inside.outside_share(images[..., 0])))
    return share, (f"the radiographs' brightness outside the chest box: {share:.1%} on average (a uniform map: "
                   f"{1 - inside.box_area():.0%})")


def outside(name, maps, classes, labels):
    """The share of positive attribution outside the chest box, per method, for right and wrong predictions;
    "empty": the maps with no positive value (Grad-CAM's relu can leave none)."""
    right = classes == labels
    record = {}
    for method in ("integrated gradients", "Grad-CAM"):
        shares = inside.outside_share(maps[method])
        record[method] = {"right": mean_share(shares[right]), "wrong": mean_share(shares[~right]),
                          "right_count": int(right.sum()), "wrong_count": int((~right).sum()),
                          "normal_called_pneumonia": mean_share(shares[(labels == 0) & ~right]),
                          "pneumonia_called_normal": mean_share(shares[(labels == 1) & ~right]),
                          "empty": int(np.isnan(shares).sum()), "shares": shares.round(4).tolist()}
    print(f"   outside the chest box ({1 - inside.box_area():.0%} of the image): " + "; ".join(
        f"{method}: right {percent(found['right'])} ({found['right_count']}), wrong {percent(found['wrong'])} "
        f"({found['wrong_count']}: NORMAL called PNEUMONIA {percent(found['normal_called_pneumonia'])}, PNEUMONIA "
        f"called NORMAL {percent(found['pneumonia_called_normal'])}); {found['empty']} maps with nothing positive"
        for method, found in record.items()), flush=True)
    return record


def xray_rung(seed, data_dir, splits, files_by_split):
    """The X-ray ladder's `augmented` rung, seed `seed`, trained as experiments/xray_ladder.py trains it (its
    weights kept in the project's cache: a second run does not train again)."""
    import xray_ladder

    model = xray_ladder.build(augment=True)
    kept = files.cache_dir() / "attribution" / f"xray_augmented_seed{seed}.weights.h5"
    if kept.is_file():
        model.load_weights(kept)
        return model, "weights kept in the cache from an earlier run"
    (x_all, y_all) = splits["train"]
    y_all = y_all[:, 0]
    held = xray_ladder.holdout_mask([path for path, _ in files_by_split["train"]], y_all)
    test = splits["test"][0], splits["test"][1][:, 0]
    started = time.perf_counter()
    *_, trained = xray_ladder.train_run(seed, xray_ladder.EPOCHS, True, True, (x_all[~held], y_all[~held]),
                                        (x_all[held], y_all[held]), test)
    kept.parent.mkdir(parents=True, exist_ok=True)
    trained.save_weights(kept)
    return trained, f"trained here in {time.perf_counter() - started:.0f} s"


def figure_deletion(records, path):
    shown = ["integrated gradients", "Grad-CAM", "random order", "brightness", "integrated gradients, random weights"]
    styles = {"integrated gradients": ("-", "#d62728"), "Grad-CAM": ("-", "#1f77b4"), "random order": (":", "gray"),
              "brightness": ("--", "#2ca02c"), "integrated gradients, random weights": ("-.", "#ff7f0e")}
    columns = 5
    rows = -(-len(records) // columns)
    figure, axes = plots.subplots(rows, columns, figsize=(3.1 * columns, 2.7 * rows + 0.7), squeeze=False)
    for axis in axes.ravel()[len(records):]:
        axis.axis("off")
    for axis, record in zip(axes.ravel(), records):
        for method in shown:
            style, colour = styles[method]
            axis.plot(np.array(record["fractions"]) * 100, record["curves"][method], style, color=colour,
                      label=f"{method} ({record['auc'][method]:.2f})")
        axis.set_title(f"{record['model']} ({record['images']} images)", fontsize=8)
        axis.set_xlabel("pixels set to black (%)", fontsize=7)
        axis.set_ylabel("probability of the class", fontsize=7)
        axis.tick_params(labelsize=6)
        axis.set_ylim(-0.02, 1.02)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=5.5, loc="upper right")
    figure.suptitle("Deletion check: the most attributed pixels set to black first (legend: area under the curve, "
                    "lower is more faithful)", fontsize=9)
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    plots._credit(figure, "experiments/attribution.py; chest X-rays: Kermany et al. 2018, CC BY 4.0")
    figure.savefig(path, dpi=110)


def short_name(model):
    return model.replace("pneumonia_seed", "seed ").replace("pneumonia", "seed 7").replace(" rung seed ", " ")


def figure_outside(records, path, brightness=None):
    """Boxes of the outside-the-box shares, right and wrong, per model and method; brightness: the radiographs'
    own mean share (brightness_outside), drawn as a line."""
    figure, axes = plots.subplots(1, 2, figsize=(11, 4))
    for axis, method in zip(axes, ("integrated gradients", "Grad-CAM")):
        data_, names = [], []
        for record in records:
            shares = np.array(record["outside"][method]["shares"], dtype=float)
            right = np.array(record["right"], dtype=bool)
            data_ += [shares[right & ~np.isnan(shares)], shares[~right & ~np.isnan(shares)]]
            names += [f"{short_name(record['model'])}\nright", "wrong"]
        axis.boxplot(data_, showfliers=False)
        axis.set_xticks(range(1, len(names) + 1), names, fontsize=6)
        axis.axhline(1 - inside.box_area(), color="gray", linestyle=":", label="share of the image outside the box")
        if brightness is not None:
            axis.axhline(brightness, color="#2ca02c", linestyle="--",
                         label="share of the radiographs' brightness outside it")
        axis.set_ylabel("positive attribution outside the chest box", fontsize=8)
        axis.set_ylim(0, 1)
        axis.set_title(method, fontsize=9)
        axis.legend(fontsize=7)
        axis.grid(alpha=0.3, axis="y")
    figure.suptitle("Where the pneumonia CNNs look: the share of each map's positive attribution outside the chest box, "
                    "right and wrong predictions\n(624 test radiographs; seed 7, 8, 9: the committed pneumonia pairs; "
                    "augmented 7: the X-ray ladder's best rung, seed 7)", fontsize=9)
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    plots._credit(figure, "experiments/attribution.py; chest X-rays: Kermany et al. 2018, CC BY 4.0")
    figure.savefig(path, dpi=110)


def tables(found):
    """The Markdown tables of docs/inside.md, from attribution.json's records."""
    def mark(record, method):
        return " / ".join("yes" if record[method][control]["passes"] else "**no**"
                          for control in ("random order", "brightness", f"{method}, random weights"))

    lines = ["| model | images | accuracy | AUC: integrated gradients | Grad-CAM | random order | brightness | "
             "IG, random weights | Grad-CAM, random weights | IG passes (random / brightness / random weights) | "
             "Grad-CAM passes |", "|" + " --- |" * 11]
    for record in found["mnist"] + found["xrays"]:
        auc = record["auc"]
        lines.append(f"| {record['model']} | {record['images']} | {100 * record['accuracy']:.2f}% | "
                     + " | ".join(f"{auc[method]:.3f}" for method in ORDERS)
                     + f" | {mark(record, 'integrated gradients')} | {mark(record, 'Grad-CAM')} |")
    if found["xrays"]:
        lines += ["", "| model | right / wrong | IG outside the box: right | wrong | NORMAL called PNEUMONIA | "
                      "PNEUMONIA called NORMAL | IG maps over half outside | Grad-CAM outside: right | wrong | Grad-CAM maps "
                  "with nothing positive |", "|" + " --- |" * 10]
        for record in found["xrays"]:
            ig, cam = record["outside"]["integrated gradients"], record["outside"]["Grad-CAM"]
            shares = np.array(ig["shares"], dtype=float)
            over_half = f"{int(np.sum(shares > 0.5))} of {len(shares)}"
            lines.append(f"| {record['model']} | {ig['right_count']} / {ig['wrong_count']} | "
                         + " | ".join(percent(value) for value in (ig["right"], ig["wrong"],
                                                                   ig["normal_called_pneumonia"],
                                                                   ig["pneumonia_called_normal"]))
                         + f" | {over_half} | {percent(cam['right'])} | {percent(cam['wrong'])} | {cam['empty']} |")
    return "\n".join(lines)


def main():
    parser = console.HelpParser(description="The deletion check of the attribution maps (see this script's docstring).")
    parser.add_argument("--digits", type=int, default=500, help="MNIST test digits per model")
    parser.add_argument("--data-dir", metavar="DIR", help="the chest X-ray tree (without it: digits only)")
    parser.add_argument("--models", default=",".join(MNIST_MODELS), help="the MNIST pairs (seed 7) to check")
    parser.add_argument("--rung-seeds", default="7", help="the seeds of the X-ray ladder's augmented rung")
    parser.add_argument("--tables", action="store_true",
                        help="print docs/inside.md's tables from attribution.json and redraw the figures, without "
                             "computing the maps (added to the end of attribution.txt); with --data-dir, also the "
                             "radiographs' brightness outside the chest box")
    args = parser.parse_args()
    if args.tables:
        found = json.loads((logs.LOGS / "attribution.json").read_text())
        with logs.tee("attribution.txt", append=True):
            print(f"\n$ python experiments/attribution.py --tables" + (f" --data-dir {args.data_dir}" if args.data_dir
                                                                       else "") + f"\n{tables(found)}")
            brightness = None
            if args.data_dir:
                brightness, line = brightness_outside(xrays.load_xrays(args.data_dir, splits=("test",))["test"][0])
                print(line)
        draw(found["mnist"], found["xrays"], brightness)
        return
    if args.data_dir:
        try:
            xrays.xray_files(args.data_dir)
        except ValueError as error:
            sys.exit(f"attribution.py: error: {error}")
    logs.tee("attribution.txt")
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {backend.describe()}; "
          f"{history.machine_description()}; commit {history.commit_description()}; machine shared with other work")
    print(f"$ python experiments/attribution.py --digits {args.digits}"
          + (f" --models {args.models}" if args.models != parser.get_default("models") else "")
          + (f" --data-dir {args.data_dir} --rung-seeds {args.rung_seeds}" if args.data_dir else ""), flush=True)
    records, xray_records = [], []
    test_sets = grading.TestSets(data.get_data_mnist, data.prepare_inputs)
    for name in args.models.split(","):
        filename = ROOT / "results" / "models" / name
        saved, recipe, normalize = grading.load_run(filename, models.MODELS)
        model = grading.channels_last(saved.model, recipe)
        inputs, labels, images = test_sets.get(normalize, "image", "channels_last")
        record, _, _ = check(name, model, inputs[:args.digits], images[:args.digits, 0],
                             labels[:args.digits].argmax(axis=1))
        print_record(record)
        records.append(record)
    if args.data_dir:
        import xray_ladder

        files_by_split, _ = xrays.xray_files(args.data_dir)
        splits = xrays.load_xrays(args.data_dir, splits=("train", "test"))
        inputs, labels = splits["test"][0], splits["test"][1][:, 0].astype(int)
        credit = report.xray_source(xrays.test_images_stored_as(args.data_dir), short=True)
        print(f"chest X-rays: {len(labels)} test radiographs ({credit}); chest box {inside.CHEST_BOX} (x from, x to, "
              f"y from, y to, fractions of the side); {brightness_outside(inputs)[1]}", flush=True)
        candidates = [(name, None) for name in XRAY_PAIRS] + [(f"augmented rung seed {seed}", int(seed))
                                                             for seed in args.rung_seeds.split(",")]
        for name, seed in candidates:
            if seed is None:
                saved, recipe, _ = grading.load_run(ROOT / "results" / "models" / name, models.MODELS)
                model = saved.model
            else:
                model, how = xray_rung(seed, args.data_dir, splits, files_by_split)
                print(f"{name}: {how}", flush=True)
            record, maps, classes = check(name, model, inputs, inputs[..., 0], labels, XRAY_FRACTIONS)
            print_record(record)
            record["outside"] = outside(name, maps, classes, labels)
            record["right"] = (classes == labels).tolist()
            xray_records.append(record)
    out = logs.LOGS / "attribution.json"
    out.write_text(json.dumps({"machine": history.machine_description(), "versions": backend.versions(),
                               "chest_box": inside.CHEST_BOX,
                               "mnist": records, "xrays": xray_records}) + "\n")
    print(f"\n{tables({'mnist': records, 'xrays': xray_records})}")
    brightness = brightness_outside(inputs)[0] if xray_records else None
    print(f"\nWrote results/logs/attribution.json, {', '.join(draw(records, xray_records, brightness))}")


def draw(records, xray_records, brightness=None):
    """The figures; returns their paths."""
    written = ["results/plots/attribution_deletion.png"]
    figure_deletion(records + xray_records, ROOT / written[0])
    if xray_records:
        written.append("results/plots/pneumonia_outside_chest.png")
        figure_outside(xray_records, ROOT / written[1], brightness)
    return written


if __name__ == "__main__":
    with console.native_log_filter():
        main()
