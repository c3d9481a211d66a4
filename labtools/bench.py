"""Speed of training against this machine's own peak, and where one training step of the small CNN spends it.

    python -m labtools.bench            # results/BENCH.md (about 20 minutes on 2 AVX2 cores)
    python -m labtools.bench --compare TF_ENABLE_ONEDNN_OPTS=1   # and a setting's effect on the small CNN (+10 min)
    python -m labtools.bench --backends tensorflow,jax,torch     # and every sheet model's epoch on each backend
    python -m labtools.bench --backends tensorflow,jax=.venv-jax/bin/python,torch=.venv-torch/bin/python
    python -m labtools.bench --models small --epochs 1 --train-limit 2000 --out /tmp/bench.md

The peak is TensorFlow's own 4096x4096 matmul (--peak-size), float32 and bfloat16, measured in this process, with
the kernels TensorFlow uses here (oneDNN or Eigen). Each row is a run of `python train.py` (the sheet's recipe,
validation included) in a fresh process, right after; it divides the run's training GFLOP/s (FLOPs from the layer
shapes of the pair it saves) by the peak of its own precision. The profile splits one training step (batch 200) of
the small CNN (its committed pair's architecture, compiled as the sheet compiles it) into TensorFlow's ops as its
profiler recorded them, each with its FLOPs and its fraction of the peak. Options tried and dropped in earlier runs
(XLA, slices, thread counts) are in results/logs/, not here.
"""

if __name__ == "__main__":  # run as a script: TensorFlow loaded first, its start-up lines filtered out
    from labtools import console

    console.start("labtools.bench")

import collections
import functools
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from labtools import backend, batches, console, history, ladder, layout, mnist_file, runs, saved_models
from labtools.errors import UsageError
from labtools.report import markdown_table

if backend.NAME == "tensorflow":  # the peak and the profile are TensorFlow's; --backends times the others
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = ["small", "medium", "large", "arn_cnn", "mlp1"]
# the MNIST models of the two sheets, as models.MODELS lists them (a test checks)
SHEET_MODELS = ["small_unnormalized", "small", "medium", "large", "large_original", "mlp1", "mlp2", "mlp3",
                "hog_mlp1", "hog_mlp2", "arn_cnn"]
MNIST_MODELS = SHEET_MODELS + ladder.LADDER[1:]  # what train.py trains without a data set of your own
DTYPES = ("fp32", "bf16")
TARGET = 0.60  # of the peak of the row's own precision, for the small CNN


def best_seconds(function, repeats=5):
    """The fastest of `repeats` calls of function() (after one warm-up call): the least disturbed one."""
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def native_bfloat16():
    """Whether this machine computes bfloat16 in hardware: a GPU, or a CPU with AVX-512 BF16 or AMX. Elsewhere
    TensorFlow emulates it, ten times slower than float32 (an AVX2 CPU: results/BENCH.md's bf16 profile)."""
    flags = set(history.cpu_fields().get("flags", "").split())
    return bool(tf.config.list_physical_devices("GPU")) or bool(flags & {"avx512_bf16", "amx_bf16"})


def matmul_peak(precision, size=4096):
    """GFLOP/s of TensorFlow's size x size matmul in this precision, this process's threads."""
    dtype = {"fp32": tf.float32, "bf16": tf.bfloat16}[precision]
    a = tf.cast(tf.random.stateless_uniform((size, size), seed=(1, 2)), dtype)
    b = tf.cast(tf.random.stateless_uniform((size, size), seed=(3, 4)), dtype)
    return 2 * size**3 / best_seconds(lambda: tf.linalg.matmul(a, b).numpy()) / 1e9


def layer_macs(layer):
    """Multiply-accumulates of one image's forward pass through a Conv2D or Dense layer (else 0)."""
    if isinstance(layer, keras.layers.Conv2D):
        output = layer.output.shape  # (None, ...) in either layout
        spatial = np.prod(output[2:] if layer.data_format == "channels_first" else output[1:-1])
        return int(spatial) * layer.filters * int(np.prod(layer.kernel_size)) * layer.kernel.shape[2]
    if isinstance(layer, keras.layers.Dense):
        return int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
    return 0


def training_flops_per_image(model):
    """FLOPs (2 per multiply-accumulate) of one training step per image: forward and weight gradients for every
    layer with weights, input gradients for all but the first (nothing upstream needs them)."""
    weighted = [layer for layer in model.layers if layer_macs(layer)]
    return sum(2 * layer_macs(layer) * (2 if index == 0 else 3) for index, layer in enumerate(weighted))


def saved_architecture(pair, precision="fp32", names=()):
    """The model of a saved pair's JSON (no weights), in channels_last, its layers in the precision's dtype policy,
    its Conv2D and Dense layers renamed after `names` in order."""
    config = json.loads(saved_models.pair_paths(pair)[0].read_text())
    renamed = iter(names)
    for layer in config["config"]["layers"]:
        layer["config"].pop("dtype", None)  # the global policy below, as a model built under it
        if layer["class_name"] in ("Conv2D", "Dense"):
            layer["config"]["name"] = next(renamed, layer["config"]["name"])
    keras.mixed_precision.set_global_policy(runs.PRECISIONS[precision])
    try:
        return layout.channels_last_copy(saved_models.model_from_config(config))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def bench_row(name, precision, epochs, train_limit, peaks, workdir):
    """One row: a run of train.py; its fastest epoch against the peak of its precision."""
    run = train_py(name, epochs, train_limit, workdir, os.environ, precision=precision)
    seconds = [row["seconds"] for row in run["epochs"]]
    epoch_seconds = min(seconds)  # all of them are in the history
    images = run["config"]["train_images"]
    flops = training_flops_per_image(saved_architecture(Path(workdir) / "models" / name))
    gflops = flops * images / epoch_seconds / 1e9
    return {"model": name, "precision": precision, "epoch_seconds": epoch_seconds, "all_epochs": seconds,
            "images_per_second": images / epoch_seconds, "mflop_per_image": flops / 1e6, "gflops": gflops,
            "peak_fraction": gflops / peaks[precision], "error_rate": run["test"]["error_rate"]}


# ----------------------------------------------------------------------------
# One training step of the small CNN, op by op, from TensorFlow's profiler

# The small CNN's Conv2D and Dense layers, under names the profile can find in its op names.
PROFILED_LAYERS = ("conv1", "conv2", "dense")
PART_OF_OP = [  # (pattern on "op name:op type", what it is); the first that matches wins. Keras may suffix a
    # layer's name scope (conv1_1); oneDNN renames op types (_MklNativeConv2DBackpropFilterWithBias)
    (r"gradient_tape/.*/(conv\d)(?:_\d+)?/.*BackpropFilter", r"\1 weight gradients"),
    (r"gradient_tape/.*/(conv\d)(?:_\d+)?/.*BackpropInput", r"\1 input gradients"),
    (r"gradient_tape/.*/(conv\d|dense)(?:_\d+)?/.*(ReluGrad|BiasAddGrad|Relu)", r"\1 relu and bias gradients"),
    (r"gradient_tape/.*/dense(?:_\d+)?/.*MatMul", r"dense weight and input gradients"),
    (r"/(conv\d)(?:_\d+)?/.*Conv2D", r"\1 forward (with bias and relu)"),
    (r"/dense(?:_\d+)?/.*MatMul", r"dense forward"),
    (r"/(adam|SGD|rmsprop)(?:_\d+)?/", r"optimizer update (\1)"),
    (r":Cast$", r"float32 <-> bfloat16 casts"),
    (r":Transpose$", r"layout transposes"),
    (r"Iterator|GatherV2|tf_data", r"input batches (tf.data)"),
    (r".", r"loss, metrics and other small ops"),
]
BETWEEN_OPS = "between ops: Python, Keras's step, TensorFlow's executor"


SMALL_PAIR = ROOT / "results" / "models" / "small"  # the small CNN's architecture, as the sheet writes it


def profiled_model(precision):
    """The small CNN (channels_last) with its layers named conv1, conv2, dense, compiled as the sheet compiles it."""
    model = saved_architecture(SMALL_PAIR, precision, PROFILED_LAYERS)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def step_profile(precision, steps=20, batch_size=200):
    """[(part, ms per step, GFLOP per step)] of the small CNN's training step, and the step's measured ms.

    Each instant of the profiled steps is shared among the ops running then (two run side by side at times),
    so the parts add up to the profiled time; time with no op running is BETWEEN_OPS.
    """
    keras.utils.set_random_seed(7)
    (images, labels), _ = mnist_file.load(ROOT / "datasets" / "mnist.npz")
    x = images[: steps * batch_size, :, :, None].astype("float32") / 255  # get_data_mnist's, in channels_last
    y = np.eye(10, dtype="float32")[labels[: len(x)]]
    model = profiled_model(precision)
    model.steps_per_execution = 1  # one step per call, as the profile's unit
    # each fit reads the batches from the start
    training_batches = batches.training_data((x, y), batch_size,
                                             lambda: (batches.epoch_order(len(x), 7, epoch) for epoch in range(2)))

    ends = []  # the time at the end of each step of the last fit
    step_clock = keras.callbacks.LambdaCallback(on_train_begin=lambda logs: ends.clear(),
                                                on_train_batch_end=lambda batch, logs: ends.append(time.perf_counter()))

    def fit(count):
        model.fit(training_batches, steps_per_epoch=count, epochs=1, verbose=0, shuffle=False,
                  callbacks=[step_clock])

    fit(steps)  # warm-up: tracing
    fit(2 * steps)
    # a step's time without what each fit call costs once (start, iterator): the median interval between two
    # steps' ends, robust to the moments another process takes the shared cores
    measured_ms = float(np.median(np.diff(ends))) * 1000
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        fit(steps)
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        space.ParseFromString(Path(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0]).read_bytes())
    ops = []  # (start, end in picoseconds, part)
    plane = next(plane for plane in space.planes if plane.name == "/host:CPU")
    for line in plane.lines:
        for event in line.events:
            name = plane.event_metadata[event.metadata_id].name
            if line.name.startswith("tf_Compute") and re.fullmatch(r"[^:]+:\w+", name):  # "op name:op type"
                start = line.timestamp_ns * 1000 + event.offset_ps
                ops.append((start, start + event.duration_ps, part_of(name)))
    ops.sort()
    parts, running, index = collections.Counter(), [], 0
    points = sorted({point for start, end, _ in ops for point in (start, end)})
    for begin, end in zip(points, points[1:]):  # a sweep over the profile's segments
        while index < len(ops) and ops[index][0] <= begin:
            running.append(ops[index])
            index += 1
        running = [op for op in running if op[1] >= end]
        for _, _, part in running or [(0, 0, BETWEEN_OPS)]:
            parts[part] += (end - begin) / max(len(running), 1) / 1e9 / steps  # ms per step
    return [(part, ms, part_flops(part, batch_size)) for part, ms in parts.most_common()], measured_ms


@functools.lru_cache(maxsize=None)
def part_of(op):
    return next(re.sub(r".*" + pattern + r".*", label, op) for pattern, label in PART_OF_OP if re.search(pattern, op))


@functools.lru_cache(maxsize=1)
def profiled_macs():
    """{profiled layer: multiply-accumulates per image}, from the layers' shapes."""
    return {layer.name: layer_macs(layer) for layer in profiled_model("fp32").layers if layer.name in PROFILED_LAYERS}


def part_flops(part, batch_size):
    """GFLOP per step of a profile part (0 for the parts whose arithmetic is negligible)."""
    layer, _, kind = part.partition(" ")
    if layer not in PROFILED_LAYERS or kind.startswith("relu"):
        return 0.0
    count = 2 if kind.startswith("weight and input") else 1
    return count * 2 * profiled_macs()[layer] * batch_size / 1e9


# ----------------------------------------------------------------------------
# The same epoch with and without an environment setting, in fresh processes (TensorFlow reads them at start)


def environment_with(setting, enabled=True):
    """This process's environment with NAME=VALUE set, or with NAME removed."""
    key, value = setting.split("=", 1)
    return {**{k: v for k, v in os.environ.items() if k != key}, **({key: value} if enabled else {})}


def peaks_with(setting):
    """{precision: GFLOP/s} of the matmul peak in a fresh process with the setting: the kernels it selects."""
    code = "import json; from labtools import bench; print(json.dumps({p: bench.matmul_peak(p) for p in bench.DTYPES}))"
    result = subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT,
                            env=environment_with(setting), capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def train_py(name, epochs, train_limit, out, environment, python=None, precision="fp32"):
    """The history (config, epochs, test) of recipe `name` trained by train.py in a fresh process of `python` (this
    one by default) with `environment`, its pair and history written under out; a failed run is a UsageError
    with train.py's own one-line error."""
    command = [python or sys.executable, "train.py", "--model", name, "--epochs", str(epochs), "--quiet",
               "--precision", precision, "--out", str(out)]
    command += ["--train-limit", str(train_limit)] if train_limit else []
    result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or [f"exit {result.returncode}"]
        raise UsageError(f"{' '.join(command[1:])}: {lines[-1]}")
    return history.read_history(Path(out) / "models" / name)


def train_py_epochs(name, epochs, train_limit, out, environment, python=None):
    """[seconds per epoch] of train_py's run."""
    return [row["seconds"] for row in train_py(name, epochs, train_limit, out, environment, python)["epochs"]]


def small_epochs(environments, repeats=3, epochs=1, train_limit=None):
    """{label: [seconds per epoch]} of the small CNN through train.py in a fresh process per run, under each of
    `environments` ({label: environment}) in turn, `repeats` times: alternating, so that the shared machine's
    slow minutes fall on all of them alike."""
    timings = {label: [] for label in environments}
    with tempfile.TemporaryDirectory() as out:
        for _ in range(repeats):
            for label, environment in environments.items():
                timings[label].append(min(train_py_epochs("small", epochs, train_limit, out, environment)))
    return timings


@functools.lru_cache(maxsize=None)  # asked when the arguments are checked, and again for the report
def backend_version(name, python=None):
    """The version of a backend's framework, from a fresh process of `python` (None where it is not installed)."""
    code = f"import importlib.metadata as m; print(m.version({name!r}))"
    result = subprocess.run([python or sys.executable, "-c", code], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def shown_python(python):
    """An interpreter as the report names it: relative to the repository when it lives there (.venv/bin/python),
    so that a committed report does not carry this machine's paths."""
    path = Path(python).absolute()
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else python


def parse_backends(text):
    """{backend: Python interpreter} from "tensorflow,jax=PATH,...": each backend in this Python unless a path
    to another one (a virtual environment with that backend's requirements) is given."""
    chosen = {}
    for item in text.split(","):
        name, _, python = item.strip().partition("=")
        chosen[name] = python or sys.executable
    return chosen


def backend_epochs(interpreters, names, epochs, train_limit=None):
    """{(model, backend): [seconds per epoch]} through train.py, a fresh process per run, each model on every
    backend before the next model (the shared machine's slow minutes fall on all backends alike)."""
    timings = {}
    with tempfile.TemporaryDirectory() as out:
        for name in names:
            for label, python in interpreters.items():
                timings[name, label] = train_py_epochs(name, epochs, train_limit, out,
                                                       {**os.environ, "KERAS_BACKEND": label}, python)
                print(f"{name} on {label}: {min(timings[name, label]):.1f} s/epoch", flush=True)
    return timings


# ----------------------------------------------------------------------------
# The report


def make_parser():
    """The command line's parser (the docs test reads its flags)."""
    parser = console.HelpParser(prog="python -m labtools.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated registry names")
    parser.add_argument("--bf16-models", default="small,medium,large",
                        help="the models also timed in bfloat16, where the machine computes it in hardware")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per row; the fastest is reported")
    parser.add_argument("--train-limit", type=int, metavar="N", help="train on the first N images only")
    parser.add_argument("--profile-steps", type=int, default=20, help="training steps the profile averages; 0: none")
    parser.add_argument("--peak-size", type=int, default=4096, metavar="N",
                        help="the peak's N x N matmul (smaller: quicker, further below the peak)")
    parser.add_argument("--compare", action="append", default=[], metavar="NAME=VALUE",
                        help="also time the small CNN's epoch with and without this environment setting, "
                             "in fresh processes, three times each (e.g. TF_ENABLE_ONEDNN_OPTS=1); repeatable")
    parser.add_argument("--backends", metavar="B1,B2=PYTHON,...",
                        help="also time each of --backend-models through train.py on these Keras backends "
                             "(tensorflow, jax, torch), in fresh processes: each in this Python, or in the one "
                             "given after =")
    parser.add_argument("--backend-models", default=",".join(SHEET_MODELS),
                        help="the models --backends times (default: every MNIST model of the two sheets)")
    parser.add_argument("--out", default="results/BENCH.md", help="the markdown report")
    return parser


def parse_args(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    for name in args.models.split(",") + args.bf16_models.split(","):
        if name and name not in MNIST_MODELS:
            parser.error(f"argument --models: {name!r} is not an MNIST recipe")
    for setting in args.compare:
        if "=" not in setting:
            parser.error(f"argument --compare: {setting!r} is not NAME=VALUE")
    for name, python in parse_backends(args.backends).items() if args.backends else ():
        if name not in backend.BACKENDS:
            parser.error(f"argument --backends: {name!r} is not a Keras backend (tensorflow, jax, torch)")
        if python != sys.executable and not Path(python).is_file():
            parser.error(f"argument --backends: {name}={python}: no such Python; give the path of a virtual "
                         "environment's python")
        if backend_version(name, python) is None:
            parser.error(f"argument --backends: {name} is not installed in {python} "
                         f"({backend.INSTALL.get(name)}), or give {name}=PYTHON of an environment that has it")
    for name in args.backend_models.split(","):
        if name not in MNIST_MODELS:
            parser.error(f"argument --backend-models: {name!r} is not an MNIST recipe")
    return args


def run(args):
    backend.resolve_device("auto")
    peaks = {precision: matmul_peak(precision, args.peak_size) for precision in DTYPES}
    print("matmul peaks: " + ", ".join(f"{p} {g:.0f} GFLOP/s" for p, g in peaks.items()), flush=True)
    plan = [(name, "fp32") for name in args.models.split(",")]
    if native_bfloat16():  # else a bf16 epoch of the small CNN takes a quarter of an hour: the profile says why
        plan += [(name, "bf16") for name in args.bf16_models.split(",") if name]
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name, precision in plan:
            rows.append(bench_row(name, precision, args.epochs, args.train_limit, peaks, workdir))
            print(f"{name} {precision}: {rows[-1]['epoch_seconds']:.1f} s/epoch, "
                  f"{rows[-1]['peak_fraction']:.0%} of the {precision} peak", flush=True)
    profiles = {}
    for precision in DTYPES if args.profile_steps else ():
        # emulated bfloat16 (see native_bfloat16) takes ten times longer per step: fewer steps
        steps = args.profile_steps if precision == "fp32" or native_bfloat16() else max(2, args.profile_steps // 4)
        profiles[precision] = (*step_profile(precision, steps), steps)
    comparisons = {setting: (small_epochs({False: environment_with(setting, False), True: environment_with(setting)},
                                          train_limit=args.train_limit), peaks_with(setting))
                   for setting in args.compare}
    interpreters = parse_backends(args.backends) if args.backends else {}
    backends = (interpreters, backend_epochs(interpreters, args.backend_models.split(","), args.epochs,
                                                 args.train_limit)
                if interpreters else {})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report(args, peaks, rows, profiles, comparisons, backends))
    print(f"Wrote {args.out}")
    return 0


def report(args, peaks, rows, profiles, comparisons, backends):
    """BENCH.md: the peaks, the models' epochs, the profiles, the comparisons, the targets and the machine."""
    small_gflop = training_flops_per_image(saved_architecture(SMALL_PAIR)) / 1e9 * (args.train_limit or 60000)

    def rate(gflop, ms, peak):  # GFLOP/s and fraction of the peak, or dashes for the parts without arithmetic
        return [f"{gflop / ms * 1000:.0f}", f"{gflop / ms * 1000 / peak:.0%}"] if gflop else ["-", "-"]

    def epoch_row(label, seconds, peak):
        return [label, ", ".join(f"{s:.1f}" for s in seconds), f"{min(seconds):.1f}",
                f"{small_gflop / min(seconds):.0f}", f"{small_gflop / min(seconds) / peak:.0%}"]

    lines = ["# Benchmark", "", f"Written by `python -m labtools.bench {' '.join(sys.argv[1:])}` (see "
             "labtools/bench.py's docstring for what each number is).", "",
             f"## Peaks: TensorFlow's own {args.peak_size}x{args.peak_size} matmul, this run", "",
             markdown_table(["precision", "GFLOP/s"], [[p, f"{g:.0f}"] for p, g in peaks.items()]), "",
             f"## Training through train.py, the fastest of {args.epochs} epochs", "",
             "An epoch's time is train.py's: it includes the pass over the 10,000 validation images; GFLOP/s counts "
             "the training FLOPs only (forward and both backward passes, from the layer shapes).", ""]
    if not native_bfloat16():
        lines += ["No bf16 rows: this machine has no bfloat16 arithmetic (no GPU, no AVX-512 BF16 or AMX), so "
                  "TensorFlow emulates it, about ten times slower than float32 (the bf16 profile below).", ""]
    lines.append(markdown_table(
        ["model", "precision", "s/epoch", "all epochs (s)", "train img/s", "MFLOP/img", "GFLOP/s", "% of its peak",
         "error rate"],
        [[r["model"], r["precision"], f"{r['epoch_seconds']:.1f}", ", ".join(f"{s:.1f}" for s in r["all_epochs"]),
          f"{r['images_per_second']:,.0f}", f"{r['mflop_per_image']:.1f}", f"{r['gflops']:.0f}",
          f"{r['peak_fraction']:.0%}", f"{r['error_rate']:.2f}%"] for r in rows]))
    for precision, (parts, measured_ms, steps) in profiles.items():
        profiled_ms, total_gflop = sum(ms for _, ms, _ in parts), sum(gflop for _, _, gflop in parts)
        table = [[part, f"{ms:.1f}", f"{ms / profiled_ms:.0%}", f"{gflop:.2f}", *rate(gflop, ms, peaks[precision])]
                 for part, ms, gflop in parts]
        table += [["**profiled step, sum of the parts**", f"{profiled_ms:.1f}", "100%", f"{total_gflop:.2f}",
                   *rate(total_gflop, profiled_ms, peaks[precision])],
                  [f"measured step without the profiler (median of {2 * steps - 1} steps)", f"{measured_ms:.1f}", "",
                   "", *rate(total_gflop, measured_ms, peaks[precision])]]
        lines += ["", f"## One training step of the small CNN, batch 200, {precision}: where the time goes", "",
                  f"TensorFlow's profiler over {steps} steps (one per call), per step; two ops that run "
                  "side by side share their time, so the parts add up to the profiled step.", "",
                  markdown_table(["part", "ms", "% of the step", "GFLOP", "GFLOP/s", "% of the peak"], table)]
    for setting, (timings, setting_peaks) in comparisons.items():
        lines += ["", f"## The small CNN's epoch with and without `{setting}` (fresh processes, alternating)", "",
                  f"The fp32 matmul peak with `{setting}`, in a fresh process: {setting_peaks['fp32']:.0f} GFLOP/s "
                  f"(bf16: {setting_peaks['bf16']:.0f}); each row's fraction is of the peak of its own kernels.", "",
                  markdown_table(["", "seconds per epoch, each run", "fastest", "GFLOP/s", "% of its fp32 peak"],
                                 [epoch_row("without", timings[False], peaks["fp32"]),
                                  epoch_row(f"with `{setting}`", timings[True], setting_peaks["fp32"])])]
    interpreters, timings = backends
    if timings:
        names = list(dict.fromkeys(name for name, _ in timings))
        labels = list(interpreters)
        versions = {label: backend_version(label, python) for label, python in interpreters.items()}
        reference = "tensorflow" if "tensorflow" in labels else None
        table = []
        for name in names:
            fastest = {label: min(timings[name, label]) for label in labels}
            table.append([name] + [f"{fastest[label]:.1f}" + (f" ({fastest[label] / fastest[reference]:.2f}x)"
                                                               if reference and label != reference else "")
                                   for label in labels])
        lines += ["", f"## Every sheet model's epoch on each Keras backend, the fastest of {args.epochs}", "",
                  "Seconds per epoch through the same train.py, recipe and batches (KERAS_BACKEND set per process, "
                  "each model on every backend before the next model; the first epoch holds JAX's compilation)"
                  + (", and in brackets the backend's time over TensorFlow's" if reference else "") + ". "
                  "Interpreters: " + ", ".join(f"{label} {versions[label]} in `{shown_python(python)}`"
                                               for label, python in interpreters.items()) + ".", "",
                  markdown_table(["model"] + labels, table)]
    targets = []
    for precision in DTYPES:
        target = f"small CNN, {precision}: at least {TARGET:.0%} of the {precision} peak"
        for row in rows:
            if row["model"] == "small" and row["precision"] == precision and args.train_limit is None:
                targets.append([f"{target}, through train.py (validation included)", f"{row['peak_fraction']:.0%}",
                                "yes" if row["peak_fraction"] >= TARGET else "no"])
        if precision in profiles:
            parts, measured_ms, _ = profiles[precision]
            fraction = sum(gflop for _, _, gflop in parts) / measured_ms * 1000 / peaks[precision]
            targets.append([f"{target}, one training step (measured, above)", f"{fraction:.0%}",
                            "yes" if fraction >= TARGET else "no"])
    for setting, (timings, setting_peaks) in comparisons.items():
        if args.train_limit is None:
            fraction = small_gflop / min(timings[True]) / setting_peaks["fp32"]
            targets.append([f"small CNN, fp32: at least {TARGET:.0%} of the fp32 peak with `{setting}`, through "
                            "train.py with it", f"{fraction:.0%}", "yes" if fraction >= TARGET else "no"])
    lines += ["", "## Targets", "", markdown_table(["target", "measured", "met"], targets),
              "", "## Machine", "", f"- {history.machine_description()}{cpu_generation()}; GPU: "
              f"{', '.join(d.name for d in tf.config.list_physical_devices('GPU')) or 'none'}; TensorFlow's oneDNN: "
              f"{os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'its default')}",
              "- Versions: " + ", ".join(f"{k} {v}" for k, v in backend.versions().items()),
              f"- Commit: {history.commit_description()}", ""]
    return "\n".join(lines)


def cpu_generation():
    """", x86 family F model M": one cloud VM type ("AMD EPYC") runs on hosts whose peaks differ up to fivefold."""
    fields = history.cpu_fields()
    return f", x86 family {fields['cpu family']} model {fields['model']}" if "cpu family" in fields else ""


def main(argv=None):
    if backend.NAME != "tensorflow":
        sys.exit(f"labtools.bench: error: KERAS_BACKEND={backend.NAME}: it measures TensorFlow's kernels against "
                 "their own peak; run it on the tensorflow backend (--backends times the others in their own "
                 "processes)")
    return console.run("labtools.bench", run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
