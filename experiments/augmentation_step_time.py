"""The ladder's augmentation: its share of a training step of `sharp` (batch 200) on each Keras backend.

    KERAS_BACKEND=jax python experiments/augmentation_step_time.py
    KERAS_BACKEND=torch python experiments/augmentation_step_time.py --append
    KERAS_BACKEND=tensorflow python experiments/augmentation_step_time.py --append

Output: results/logs/augmentation_step_time.txt, a run's lines added to its end with --append. The committed one:
its three comment lines by hand, then those runs one after the other, the jax one twice (Python 3.11: jax 0.10.2;
Python 3.12: jax 0.12.0.1).

Three variants of `sharp`, the same layers after the augmentation: its augmentation as Keras's RandomRotation,
RandomTranslation and RandomZoom (nearest pixel), built as Keras builds them (marked unfit for XLA: on JAX the
model's training step is then not compiled); as ladder.NearestAugmentation (the same images, one lookup, compiled
with the rest); and no augmentation. The fastest of three 20-step epochs after a compiling one, each variant twice,
interleaved.
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import data  # noqa: E402
import keras  # noqa: E402
import logs  # noqa: E402
import models  # noqa: E402
from labtools import backend, history  # noqa: E402

STEPS = 20
(X, y), _, _ = data.get_data_mnist(True)
x, y = data.prepare_inputs(X[: 200 * STEPS], "image", "channels_last"), y[: 200 * STEPS]


def variant(kind):
    keras.utils.set_random_seed(7)
    model = models.build_model("sharp")
    options = {"fill_mode": "constant", "interpolation": "nearest"}
    head = {"Keras's three layers": [keras.layers.RandomRotation(10 / 360, **options),
                                     keras.layers.RandomTranslation(0.1, 0.1, **options),
                                     keras.layers.RandomZoom(0.1, **options)],
            "NearestAugmentation": [model.layers[0]], "no augmentation": []}[kind]
    other = keras.Sequential([keras.Input((28, 28, 1)), *head, *model.layers[1:]])
    return models.MODELS["sharp"].compile(other, total_steps=1000)


def step_ms(model):
    model.fit(x[:400], y[:400], batch_size=200, epochs=1, verbose=0)  # compiles
    fastest = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        model.fit(x, y, batch_size=200, epochs=1, verbose=0, shuffle=False)
        fastest = min(fastest, time.perf_counter() - started)
    return fastest / STEPS * 1000


logs.tee("augmentation_step_time.txt", append="--append" in sys.argv)
print(f"{backend.describe()}; {history.machine_description()}")
times = {kind: [] for kind in ("Keras's three layers", "NearestAugmentation", "no augmentation")}
for _ in range(2):
    for kind in times:
        times[kind].append(step_ms(variant(kind)))
base = min(times["no augmentation"])
for kind, values in times.items():
    fastest = min(values)
    print(f"  {kind:21s} {', '.join(f'{v:.0f}' for v in values)} ms a step; the augmentation's share of the fastest: "
          f"{fastest - base:+.0f} ms, {(fastest - base) / fastest:.0%}")
