"""Speed of training and inference, measured against this machine's own float32 matmul peak.

    python bench.py                 # writes results/BENCH.md (about 20 minutes on 2 cores)
    python bench.py --models small --epochs 1 --out /tmp/bench.md

Each row trains through train.py's own path (train_and_evaluate, the sheet's
recipe, full 60,000-image epochs unless --train-limit says otherwise), then
times inference on the 10,000 test images. Training FLOPs per image come from
the layer shapes: forward, weight gradients, and input gradients for every
layer with weights but the first (nothing upstream needs them).
"""

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

import cli  # first of the project's modules: it loads TensorFlow with its native start-up lines filtered
import data
import history
import models
import train  # bench.py times train.py's own path: train_and_evaluate

DEFAULT_MODELS = ["small", "medium", "large", "large_original", "arn_cnn", "mlp1"]


def layer_macs(layer):
    """Multiply-accumulates of one forward pass of one image through a Conv2D or Dense layer (else 0)."""
    from keras import layers

    if isinstance(layer, layers.Conv2D):
        output = layer.output.shape  # (None, ...) in either layout
        spatial = np.prod(output[2:] if layer.data_format == "channels_first" else output[1:-1])
        input_channels = layer.kernel.shape[2]
        return int(spatial) * layer.filters * int(np.prod(layer.kernel_size)) * input_channels
    if isinstance(layer, layers.Dense):
        return int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
    return 0


def training_flops_per_image(model):
    """FLOPs (2 per multiply-accumulate) of one training step per image, from the layer shapes."""
    flops, first = 0, True
    for layer in model.layers:
        macs = layer_macs(layer)
        if macs:
            flops += 2 * macs * (2 if first else 3)  # forward + weight gradients (+ input gradients)
            first = False
    return flops


def recipe_training_flops(name):
    """training_flops_per_image of a registry model (the count is the same in either layout)."""
    return training_flops_per_image(models.build_model(name, data_format="channels_last"))


def inference_flops_per_image(model):
    return 2 * sum(layer_macs(layer) for layer in model.layers)


def matmul_peak_gflops(size=4096, repeats=5):
    """Best float32 GFLOP/s of a size x size matmul with TensorFlow, this process's threads."""
    import tensorflow as tf

    a = tf.random.uniform((size, size), seed=1)
    b = tf.random.uniform((size, size), seed=2)
    tf.linalg.matmul(a, b).numpy()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        tf.linalg.matmul(a, b).numpy()
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def inference_images_per_second(filename, recipe, data_format):
    """Test-set images per second for a saved (float32) pair computed in data_format (best of 3)."""
    import persistence

    model = models.relayout(persistence.load_keras_model(filename), data_format)
    _, (X_test, _), _ = data.get_data_mnist(recipe.normalize)
    x_test = data.prepare_inputs(X_test, recipe.input_kind, data_format, **recipe.input_options)
    model.predict(x_test[:1000], batch_size=1000, verbose=0)  # warm-up: trace the function
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        model.predict(x_test, batch_size=1000, verbose=0)
        best = min(best, time.perf_counter() - started)
    return len(x_test) / best


def bench_row(name, data_format, precision, epochs, train_limit, peak, workdir, slice_size=None, steps_per_call=None,
              inference=True):
    """One row: train through train.py's own path, then time inference of the saved pair.

    slice_size: as train.py's --slice-size (None: whole batches); steps_per_call: at most this many batches per
    compiled call (None: train.py's own).
    """
    recipe = models.MODELS[name]
    result = train.train_and_evaluate(name, out=workdir, epochs=epochs, data_format=data_format, precision=precision,
                                      train_limit=train_limit, slice_size=slice_size,
                                      steps_per_call=steps_per_call or train.STEPS_PER_CALL, verbose=0)
    config = result["config"]
    seconds = [row["seconds"] for row in result["history"]]
    epoch_seconds = min(seconds)  # the least disturbed epoch; all of them are in the history
    images = train_limit or 60000
    flops = recipe_training_flops(name)
    achieved = flops * images / epoch_seconds / 1e9
    return {
        "model": name, "layout": data_format or "-", "precision": precision, "epoch_seconds": epoch_seconds,
        "slice_size": config["slice_size"], "steps_per_call": config["steps_per_call"],
        "all_epochs": seconds, "train_images_per_second": images / epoch_seconds,
        "inference_images_per_second": (inference_images_per_second(result["filename"], recipe, data_format)
                                        if inference else None),
        "mflop_per_image": flops / 1e6, "gflops": achieved, "peak_fraction": achieved / peak,
        "error_rate": result["error_rate"],
    }


# What else was tried, through train.py's path (label, model, precision, slice size, batches per compiled call).
TRIED = [
    ("small, 1 batch per call", "small", "fp32", None, 1),
    ("medium, 1 batch per call", "medium", "fp32", None, 1),
    ("small, slices of 20 (`--slice-size 20`)", "small", "fp32", 20, None),
    ("small, slices of 50", "small", "fp32", 50, None),
    ("medium, slices of 50", "medium", "fp32", 50, None),
    ("small bf16, slices of 50", "small", "bf16", 50, None),
]


# Settings that TensorFlow reads once, at start-up: each of these rows is a fresh `python train.py` process.
ENVIRONMENTS = [
    ("small, oneDNN off (`TF_ENABLE_ONEDNN_OPTS=0`)", {"TF_ENABLE_ONEDNN_OPTS": "0"}),
    ("small, one inter-op thread (`TF_NUM_INTEROP_THREADS=1`)", {"TF_NUM_INTEROP_THREADS": "1"}),
]


def environment_row(label, environment, peak, epochs, train_limit, workdir):
    out = Path(workdir) / "environment"
    command = [sys.executable, "train.py", "--model", "small", "--epochs", str(epochs), "--out", str(out), "--quiet"]
    subprocess.run(command + (["--train-limit", str(train_limit)] if train_limit else []), check=True,
                   cwd=Path(__file__).parent, env={**os.environ, **environment}, capture_output=True)
    seconds = min(row["seconds"] for row in history.read_history(out / "models" / "small")["epochs"])
    flops = recipe_training_flops("small")
    return label, seconds, flops * (train_limit or 60000) / seconds / 1e9 / peak


def try_options(peak, epochs, train_limit, workdir):
    """The TRIED and ENVIRONMENTS rows, then XLA on the small CNN (fp32, channels_last, validation included)."""
    rows = []
    for label, name, precision, slice_size, steps_per_call in TRIED:
        row = bench_row(name, "channels_last", precision, epochs, train_limit, peak, workdir, slice_size=slice_size,
                        steps_per_call=steps_per_call, inference=False)
        rows.append((label, row["epoch_seconds"], row["peak_fraction"]))
        print(f"tried {label}: {row['epoch_seconds']:.1f} s/epoch", flush=True)
    for label, environment in ENVIRONMENTS:
        rows.append(environment_row(label, environment, peak, epochs, train_limit, workdir))
        print(f"tried {label}: {rows[-1][1]:.1f} s/epoch", flush=True)
    return rows + [xla_row(peak, train_limit)]


def xla_row(peak, train_limit):
    """XLA (jit_compile) needs op determinism off, which Keras checks: the sheet's run would not repeat."""
    import keras
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    (X_train, y_train), (X_test, y_test), _ = data.get_data_mnist(True)
    images = train_limit or len(X_train)
    x = data.prepare_inputs(X_train[:images], "image", "channels_last")
    x_test = data.prepare_inputs(X_test, "image", "channels_last")
    flops = recipe_training_flops("small")
    steps = -(-images // 200)
    keras.utils.set_random_seed(7)
    tf_config.disable_op_determinism()
    try:
        model = models.build_model("small", data_format="channels_last")
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"], jit_compile=True)
        batches = train.epoch_batches(x, y_train[:images], 200, 7, 0, 2)
        times = []
        callback = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: times.append(time.perf_counter()),
                                                  on_epoch_end=lambda epoch, logs: times.append(time.perf_counter()))
        model.fit(batches, steps_per_epoch=steps, epochs=2, shuffle=False, validation_data=(x_test, y_test),
                  validation_batch_size=200, callbacks=[callback], verbose=0)
    finally:
        tf.config.experimental.enable_op_determinism()
    seconds = times[3] - times[2]  # the second epoch: compilation is done
    return ("small, jit_compile=True (XLA), whole batches; op determinism off", seconds,
            flops * images / seconds / 1e9 / peak)


def convolution_kernels(peak, repeats=20):
    """GFLOP/s of the small CNN's 64->32 3x3 convolution (93% of its training FLOPs) alone, as TensorFlow runs it
    (oneDNN on x86), for a batch of 200 and a slice of 20: the ceiling for any training loop around it."""
    import tensorflow as tf

    rows = []
    for batch in (200, 20):
        inputs = tf.random.stateless_uniform((batch, 26, 26, 64), seed=(1, 2))
        kernel = tf.random.stateless_uniform((3, 3, 64, 32), seed=(3, 4))
        gradient = tf.random.stateless_uniform((batch, 24, 24, 32), seed=(5, 6))
        kernels = {
            # Default arguments bind this batch's tensors (the functions run inside the loop anyway).
            "forward": tf.function(lambda inputs=inputs, kernel=kernel: tf.nn.conv2d(inputs, kernel, 1, "VALID")),
            "weight gradients": tf.function(lambda inputs=inputs, gradient=gradient: tf.raw_ops.Conv2DBackpropFilter(
                input=inputs, filter_sizes=[3, 3, 64, 32], out_backprop=gradient, strides=[1, 1, 1, 1],
                padding="VALID")),
            "input gradients": tf.function(lambda batch=batch, kernel=kernel, gradient=gradient:
                                           tf.raw_ops.Conv2DBackpropInput(
                input_sizes=[batch, 26, 26, 64], filter=kernel, out_backprop=gradient, strides=[1, 1, 1, 1],
                padding="VALID")),
        }
        flops = 2 * batch * 24 * 24 * 32 * 64 * 9
        for label, kernel_function in kernels.items():
            kernel_function().numpy()  # trace
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                for _ in range(repeats):
                    result = kernel_function()
                result.numpy()
                best = min(best, (time.perf_counter() - started) / repeats)
            rows.append((label, batch, best * 1000, flops / best / 1e9 / peak))
    return rows


TARGETS = [  # (what, model, layout, precision, seconds per epoch at most)
    ("small CNN, fp32", "small", "channels_last", "fp32", 16.0),
    ("medium CNN, fp32", "medium", "channels_last", "fp32", 4.0),
    ("large CNN, fp32", "large", "channels_last", "fp32", 4.0),
    ("small CNN, bf16", "small", "channels_last", "bf16", 6.0),
]


def whole_run_seconds(log=Path("results/logs/train_all.txt")):
    """The wall time that `python train.py --model all` printed in its committed log, or None."""
    try:
        line = next(line for line in log.read_text().splitlines() if line.startswith("Trained "))
        return float(line.split(" in ")[1].split(" s")[0])
    except (OSError, StopIteration, IndexError, ValueError):
        return None


def evaluate_seconds(results="results"):
    """Wall times of `python evaluate.py ... --no-report` (start-up included): every saved pair, and one pair per
    model (the seed-7 runs). Returns [(what, pairs, seconds)], empty without pairs."""
    directory = Path(results) / "models"
    everything = sorted(directory.glob("*.weights.h5"))
    one_per_model = [directory / name for name in models.MODELS if (directory / f"{name}.weights.h5").is_file()]
    timings = []
    for what, paths, count in (("every saved pair", [results], len(everything)),
                               ("one pair per model (seed 7)", one_per_model, len(one_per_model))):
        if count:
            started = time.perf_counter()
            subprocess.run([sys.executable, "evaluate.py", *map(str, paths), "--no-report"],
                           cwd=Path(__file__).parent, capture_output=True, check=True)
            timings.append((what, count, time.perf_counter() - started))
    return timings


def hog_seconds():
    """Seconds for HOG features (8 orientations, 4 px/cell) of all 70,000 images: the faster of two computations
    with an empty cache, then from the cache."""
    (X_train, _), (X_test, _), _ = data.get_data_mnist(True)
    images = np.concatenate([X_train, X_test])
    computed = []
    for _ in range(2):
        with tempfile.TemporaryDirectory() as cache, mock.patch.dict(os.environ, {"MNIST_LABS_CACHE": cache}):
            started = time.perf_counter()
            data.hog_features(images, orientations=8, pixels_per_cell=4)
            computed.append(time.perf_counter() - started)
            started = time.perf_counter()
            data.hog_features(images, orientations=8, pixels_per_cell=4)
            cached = time.perf_counter() - started
    return min(computed), cached


def target_lines(rows, hog, sliced, evaluations=()):
    lines = ["| target | measured | met |", "|---|---|---|"]
    if hog is not None:
        computed, cached = hog
        lines.append(f"| HOG features of 70,000 images, first time: at most 20 s | {computed:.1f} s "
                     f"({data.worker_count()} processes); from the cache {cached:.2f} s | "
                     f"{'yes' if computed <= 20 else 'no'} |")
    for what, name, layout, precision, limit in [] if sliced else TARGETS:  # targets are for full epochs
        row = next((r for r in rows if (r["model"], r["layout"], r["precision"]) == (name, layout, precision)), None)
        if row is not None:
            lines.append(f"| {what}: at most {limit:.0f} s/epoch | {row['epoch_seconds']:.1f} s/epoch | "
                         f"{'yes' if row['epoch_seconds'] <= limit else 'no'} |")
            if name == "small" and precision == "fp32":  # the same target as a fraction of this run's peak
                lines.append(f"| small CNN, fp32: at least 80% of the float32 peak | "
                             f"{row['peak_fraction'] * 100:.0f}% | {'yes' if row['peak_fraction'] >= 0.8 else 'no'} |")
    whole = whole_run_seconds()
    if whole is not None:
        lines.append(f"| `train.py --model all`, one seed: at most 10 min | {whole / 60:.1f} min "
                     f"(results/logs/train_all.txt) | {'yes' if whole <= 600 else 'no'} |")
    for what, pairs, seconds in evaluations:
        lines.append(f"| evaluate saved models: at most 10 s | {seconds:.1f} s for {what} ({pairs}), start-up "
                     f"included | {'yes' if seconds <= 10 else 'no'} |")
    return lines


def cpu_generation():
    """", x86 family F model M" from /proc/cpuinfo, else "": a cloud VM that reports one model name ("AMD EPYC")
    may run on hosts of different CPU generations, whose float32 peaks can differ twofold."""
    fields = history.cpu_fields()
    if "cpu family" not in fields or "model" not in fields:
        return ""
    return f", x86 family {fields['cpu family']} model {fields['model']}"


def machine_lines(peak):
    import keras
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    return [
        f"- Machine: {history.machine_description()}{cpu_generation()}; GPU: {', '.join(gpus) or 'none'}",
        f"- float32 matmul peak measured in this run (4096x4096, TensorFlow): {peak:.0f} GFLOP/s",
        f"- Versions: Python {platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}",
        f"- Commit: {commit}; command: `python {' '.join(sys.argv)}`",
    ]


def main(argv=None):
    parser = cli.OneLineErrorParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated registry names")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per row; the fastest epoch is reported")
    parser.add_argument("--train-limit", type=int, metavar="N", help="train on the first N images only")
    parser.add_argument("--no-extras", action="store_true",
                        help="skip the channels_first and bf16 rows, the options tried, the convolution kernels, "
                             "and the HOG and evaluate.py timings")
    parser.add_argument("--out", default="results/BENCH.md", help="the markdown report")
    args = parser.parse_args(argv)
    names = args.models.split(",")
    for name in names:
        if name not in models.MODELS or models.MODELS[name].input_kind == "xray":
            parser.error(f"argument --models: {name!r} is not an MNIST recipe")
    return cli.main("bench.py", lambda args: run(args, names), args)


def run(args, names):
    train.configure_device("auto")
    peak = matmul_peak_gflops()
    print(f"float32 matmul peak: {peak:.0f} GFLOP/s", flush=True)
    plan = [(name, "channels_last" if models.MODELS[name].data_format else None, "fp32") for name in names]
    if not args.no_extras:
        plan += [("small", "channels_first", "fp32")]  # the sheet's own layout
        plan += [(name, layout, "bf16") for name, layout, _ in plan if name in ("small", "medium", "large")
                 and layout != "channels_first"]
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name, data_format, precision in plan:
            row = bench_row(name, data_format, precision, args.epochs, args.train_limit, peak, workdir)
            rows.append(row)
            print(f"{name:15s} {row['layout']:15s} {precision}: {row['epoch_seconds']:6.1f} s/epoch "
                  f"({row['peak_fraction'] * 100:.0f}% of peak), inference {row['inference_images_per_second']:,.0f} "
                  f"img/s", flush=True)
        extras = [] if args.no_extras else try_options(peak, args.epochs, args.train_limit, workdir)
    kernels = [] if args.no_extras else convolution_kernels(peak)
    hog = None if args.no_extras else hog_seconds()
    evaluations = [] if args.no_extras else evaluate_seconds()
    write_report(args, rows, extras, peak, hog, kernels, evaluations)
    print(f"Wrote {args.out}")
    return 0


def write_report(args, rows, extras, peak, hog=None, kernels=(), evaluations=()):
    images = args.train_limit or 60000
    lines = [
        "# Benchmark", "",
        f"Written by `python bench.py`. Training: the fastest of {args.epochs} epochs of {images:,} images through "
        "train.py's own path and defaults (validation on the test set included, as in the sheet); *slices*: "
        "images per gradient slice (train.py's `--slice-size`; - = whole batches); *per call*: batches per "
        "compiled Keras call (`train.STEPS_PER_CALL` at most, never across an epoch). Inference: the saved float32 "
        "pair in the row's layout on the 10,000 test images, batch 1000, best of 3. *% of peak*: achieved "
        "training GFLOP/s over the float32 matmul peak measured in the same run.", "",
        "| model | layout | precision | slices | per call | s/epoch | all epochs (s) | train img/s | "
        "inference img/s | train MFLOP/img | GFLOP/s | % of peak | error rate |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['layout']} | {row['precision']} | {row['slice_size'] or '-'} | "
            f"{row['steps_per_call']} | {row['epoch_seconds']:.1f} | "
            f"{', '.join(f'{s:.1f}' for s in row['all_epochs'])} | {row['train_images_per_second']:,.0f} | "
            f"{row['inference_images_per_second']:,.0f} | {row['mflop_per_image']:.1f} | {row['gflops']:.0f} | "
            f"{row['peak_fraction'] * 100:.0f}% | {row['error_rate']:.2f}% |")
    if extras:
        lines += ["", "## Also tried", "",
                  "Same path and measure (channels_last, validation included), with options that train.py does not "
                  "use by default:", "",
                  "| option | s/epoch | % of peak |", "|---|---|---|"]
        lines += [f"| {label} | {seconds:.1f} | {fraction * 100:.0f}% |" for label, seconds, fraction in extras]
    if kernels:
        lines += ["", "## The convolution alone", "",
                  "The small CNN's 64-to-32-channel 3x3 convolution carries 93% of its training FLOPs. Timed alone "
                  "(TensorFlow's oneDNN kernels, best of 3 x 20 calls), it bounds what any training loop can reach "
                  "on this machine:", "",
                  "| kernel | images | ms | % of peak |", "|---|---|---|---|"]
        lines += [f"| {label} | {batch} | {ms:.2f} | {fraction * 100:.0f}% |" for label, batch, ms, fraction in kernels]
    lines += ["", "## Targets", "", *target_lines(rows, hog, args.train_limit is not None, evaluations), "",
              "## Machine", "", *machine_lines(peak), ""]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
