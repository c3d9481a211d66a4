"""Where a PyTorch training step goes, and what labtools/keras_patches.py's channels_last views change (Keras on
torch, CPU).

    KERAS_BACKEND=torch python experiments/torch_channels_last.py     (from the repository root)

1. Max pooling of the sheet's large CNN's first pooling input (200x24x24x30, 2x2), forward and backward: torch on
   the contiguous NCHW copy Keras makes, and on the permuted view of the NHWC tensor (torch's channels_last kernel).
2. The sheet's large and small CNNs through train.py (3 epochs of 6,000 images, 2,000 test images), with Keras's
   own permute-and-copy and with the views, alternately twice: the fastest epoch after the first, per
   step, and a hash of the trained weights (the same hash: the same numbers).
3. torch's profiler over 10 train_on_batch steps of each (batch 200, with the views): the ops that take the time.
4. With --compile, instead of 1-3: large's train_on_batch on 50 real batches, Keras's own (eager) and with
   jit_compile=True (torch.compile, which fuses the small ops the profile shows), and how long the first,
   compiling, step takes.

Output: results/logs/torch_channels_last.txt, a run's lines added to its end with --append. The committed one:
that command (train.py's "Model score" lines left out), then the same with --compile --append (its first line left
out), then torch_layout.py's runs, which always append; the comment and blank lines by hand.
"""

import hashlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import logs  # noqa: E402
import train  # noqa: E402
from labtools import backend, bench, keras_patches  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from keras.src.backend.torch import nn  # noqa: E402

if backend.NAME != "torch":
    sys.exit("run it with KERAS_BACKEND=torch")
keras_patches.faster_training()  # the views, as train.py switches them on; then train.py leaves each choice below
views, keras_patches.faster_training = nn._transpose_spatial_inputs, lambda: False
keras_own = next(cell.cell_contents for cell in views.__closure__ if callable(cell.cell_contents))
logs.tee("torch_channels_last.txt", append="--append" in sys.argv)
print(backend.describe(), f"{torch.get_num_threads()} threads", flush=True)

if "--compile" in sys.argv:
    import data  # noqa: E402
    import models  # noqa: E402

    (X_train, y_train), _, _ = data.get_data_mnist(normalize=True)
    real = X_train[:10000].transpose(0, 2, 3, 1)
    for jit in (False, True):
        model = models.build_model("large", data_format="channels_last")
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"], jit_compile=jit)
        started = time.perf_counter()
        model.train_on_batch(real[:200], y_train[:200])
        first = time.perf_counter() - started
        started = time.perf_counter()
        for i in range(50):
            model.train_on_batch(real[200 * i:200 * i + 200], y_train[200 * i:200 * i + 200])
        print(f"4. large, jit_compile={jit}: first step {first:.1f} s, then "
              f"{(time.perf_counter() - started) / 50 * 1000:.1f} ms a step (50 real batches)", flush=True)
    sys.exit()


def best_ms(function, repeats=10):
    """labtools.bench's fastest call after a warm-up, in ms (it imports no TensorFlow on this backend)."""
    return 1000 * bench.best_seconds(function, repeats)


x = torch.relu(torch.randn(200, 24, 24, 30, generator=torch.Generator().manual_seed(0))).requires_grad_(True)
g = torch.randn(200, 12, 12, 30, generator=torch.Generator().manual_seed(1))
for label, transpose in (("Keras's copy", keras_own), ("view", views)):
    def forward():
        return F.max_pool2d(transpose(x), 2).permute(0, 2, 3, 1)

    def both():
        x.grad = None
        forward().backward(g)

    print(f"1. max pooling 200x24x24x30, {label}: forward {best_ms(forward):.1f} ms, "
          f"forward and backward {best_ms(both):.1f} ms", flush=True)

for name in ("large", "small"):
    for label, transpose in (("Keras's copy", keras_own), ("views", views)) * 2:
        nn._transpose_spatial_inputs = transpose
        settings = train.settings_for(name, epochs=3, train_limit=6000, test_limit=2000)
        with tempfile.TemporaryDirectory() as out:
            result = train.train_and_evaluate(settings, out=out, verbose=0)
        seconds = [row["seconds"] for row in result["history"]]
        weights = hashlib.sha1(b"".join(np.asarray(w).tobytes() for w in result["model"].get_weights()))
        print(f"2. {name}, {label}: epochs {seconds} s, {1000 * min(seconds[1:]) / settings.batches_per_epoch:.1f} "
              f"ms a step after the first; weights {weights.hexdigest()[:12]}", flush=True)
nn._transpose_spatial_inputs = views

import models  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

rng = np.random.default_rng(0)
images, labels = rng.random((200, 28, 28, 1), dtype=np.float32), keras.utils.to_categorical(rng.integers(0, 10, 200))
for name in ("large", "small"):
    model = models.build_model(name, data_format="channels_last")
    for _ in range(3):
        model.train_on_batch(images, labels)
    step = best_ms(lambda: model.train_on_batch(images, labels))
    with profile(activities=[ProfilerActivity.CPU]) as profiled:
        for _ in range(10):
            model.train_on_batch(images, labels)
    rows = sorted(profiled.key_averages(), key=lambda row: -row.self_cpu_time_total)
    total = sum(row.self_cpu_time_total for row in rows) / 10 / 1000
    print(f"3. {name}: train_on_batch {step:.1f} ms a step (fastest of 10); profiled {total:.1f} ms a step, by op "
          "(self time, ms a step):", flush=True)
    for row in rows[:12]:
        print(f"   {row.key:<45} {row.self_cpu_time_total / 10 / 1000:6.2f}  ({row.count // 10} calls)")
