"""labtools/keras_patches.py's max pooling on JAX (a reshape and a max, for windows that do not overlap) against
Keras's own (XLA's reduce_window): the same outputs and gradients, ties included; the same weights after training;
the time of a training step.

    KERAS_BACKEND=jax python experiments/jax_window_pooling.py     (from the repository root)

1. Outputs and gradients of both, bit for bit, on relu'd random maps (many ties at 0 and at whole numbers), for
   the poolings the project's models use and for the ones it leaves to Keras.
2. large, large_original and sharp: one epoch of 2,000 images with each, from the same seed: the weights.
3. A training step (model.train_on_batch, 20 batches after 3 warm-up ones) of large and small with each, three
   times in turn in this process.

Output: results/logs/jax_window_pooling.txt, overwritten; the committed one is that command's, its first line (the
command, the machine and what else ran on it) by hand.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import data  # noqa: E402
import logs  # noqa: E402
import models  # noqa: E402
from labtools import backend, keras_patches, layout  # noqa: E402

if backend.NAME != "jax":
    sys.exit("run it with KERAS_BACKEND=jax")
keras_patches.faster_training()  # the window max pooling, as train.py switches it on

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras.src.backend.jax import nn  # noqa: E402

WINDOW = nn.max_pool
KERAS = next(cell.cell_contents for cell in WINDOW.__closure__
             if callable(cell.cell_contents) and cell.cell_contents.__name__ == "max_pool")
logs.tee("jax_window_pooling.txt")
print(backend.describe(), "| jax", jax.__version__)

rng = np.random.default_rng(0)
for shape, pool, strides, padding, data_format in [
        ((200, 24, 24, 30), 2, 2, "valid", "channels_last"),  # large's first pooling
        ((3, 25, 23, 4), (2, 2), (2, 2), "valid", "channels_last"), ((2, 4, 12, 12), 2, 2, "valid", "channels_first"),
        ((2, 12, 12, 3), 3, 3, "same", "channels_last"), ((2, 13, 12, 3), 2, 2, "same", "channels_last"),
        ((2, 12, 12, 3), 3, 1, "valid", "channels_last")]:
    x = np.maximum(rng.normal(size=shape).astype(np.float32), 0)
    x[..., 0] = np.round(x[..., 0])
    x = jnp.asarray(x)
    upstream = None
    outputs, gradients = [], []
    for pooling in (KERAS, WINDOW):
        y, pullback = jax.vjp(lambda v: pooling(v, pool, strides, padding, data_format), x)
        if upstream is None:
            upstream = jnp.asarray(rng.normal(size=y.shape).astype(np.float32))
        outputs.append(y)
        gradients.append(pullback(upstream)[0])
    print(f"1. {shape} pool {pool} strides {strides} {padding} {data_format}: outputs equal "
          f"{bool((outputs[0] == outputs[1]).all())}, gradients equal {bool((gradients[0] == gradients[1]).all())}, "
          f"{int((x == 0).sum())} zeros")

(X, y), _, _ = data.get_data_mnist(True)
for name in ["large", "large_original", "sharp"]:
    recipe = models.MODELS[name]
    inputs = data.prepare_inputs(X[:2000], recipe.input_kind, "channels_last", **recipe.input_options)
    weights = []
    for pooling in (KERAS, WINDOW):
        nn.max_pool = pooling
        keras.utils.set_random_seed(7)
        model = layout.channels_last_copy(models.build_model(name))
        recipe.compile(model)
        model.fit(inputs, y[:2000], batch_size=recipe.batch_size, epochs=1, verbose=0, shuffle=False)
        weights.append(model.get_weights())
    print(f"2. {name}: weights after one epoch of 2,000 images bit for bit equal: "
          f"{all(np.array_equal(a, b) for a, b in zip(*weights))}")


def step_ms(name, pooling):
    nn.max_pool = pooling
    recipe = models.MODELS[name]
    inputs = data.prepare_inputs(X[:4600], recipe.input_kind, "channels_last", **recipe.input_options)
    keras.utils.set_random_seed(7)
    model = layout.channels_last_copy(models.build_model(name))
    recipe.compile(model)
    batch = recipe.batch_size
    for start in range(0, 3 * batch, batch):
        model.train_on_batch(inputs[start:start + batch], y[start:start + batch])
    begin = time.perf_counter()
    for start in range(3 * batch, 23 * batch, batch):
        model.train_on_batch(inputs[start:start + batch], y[start:start + batch])
    return (time.perf_counter() - begin) / 20 * 1000


for name in ["large", "small"]:
    for _ in range(3):
        print(f"3. {name}: a step with Keras's pooling {step_ms(name, KERAS):.1f} ms, "
              f"with labtools' {step_ms(name, WINDOW):.1f} ms", flush=True)
nn.max_pool = WINDOW
