"""Seconds per step of the sheet's `large` (or another recipe) through train.py on the current Keras backend, and
why JAX was slow there.

    KERAS_BACKEND=jax python experiments/large_step_by_backend.py [MODEL] [--append]   (repository root; any backend)

Trains MODEL (default large) 3 epochs on 6,000 images (2,000 test images) and prints the fastest epoch after the
first, per step; on JAX it also times max pooling's forward and gradient on large's first pooling input: XLA's
reduce_window (whose gradient is a select_and_scatter), the same maxima from four strided slices, and
labtools/keras_patches.py's window max (what train.py uses on JAX since it was added).

Output: results/logs/large_step_by_backend.txt, a run's lines added to its end with --append. The committed one:
three sessions of runs with --append, one backend after the other in the order of its lines (in the last two, large
on each backend, then small); by hand, its comment and blank lines, train.py's test lines left out, and in the last
session only the "ms a step" lines kept.
"""

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from labtools import backend  # noqa: E402
import logs  # noqa: E402
import train  # noqa: E402

arguments = [argument for argument in sys.argv[1:] if argument != "--append"]
name = arguments[0] if arguments else "large"
settings = train.settings_for(name, epochs=3, train_limit=6000, test_limit=2000)
logs.tee("large_step_by_backend.txt", append="--append" in sys.argv)
with tempfile.TemporaryDirectory() as out:
    result = train.train_and_evaluate(settings, out=out, verbose=0)
seconds = [row["seconds"] for row in result["history"]]
print(f"{backend.describe()}: {name}, epochs {seconds} s, "
      f"{1000 * min(seconds[1:]) / settings.batches_per_epoch:.1f} ms a step after the first epoch", flush=True)

if backend.NAME == "jax" and name == "large":
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax import lax

    def best_ms(function, *arguments):
        function = jax.jit(function)
        jax.block_until_ready(function(*arguments))
        times = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(10):
                outcome = function(*arguments)
            jax.block_until_ready(outcome)
            times.append((time.perf_counter() - started) / 10)
        return 1000 * min(times)

    def reduce_window(x):
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

    def slices(x):
        top = jnp.maximum(x[:, 0::2, 0::2], x[:, 0::2, 1::2])
        return jnp.maximum(top, jnp.maximum(x[:, 1::2, 0::2], x[:, 1::2, 1::2]))

    rng = np.random.default_rng(0)
    x = jnp.maximum(jnp.asarray(rng.standard_normal((200, 24, 24, 30), dtype=np.float32)), 0)
    upstream = jnp.asarray(rng.standard_normal((200, 12, 12, 30), dtype=np.float32))
    from keras.src.backend.jax import nn

    def window_max(x):
        return nn.max_pool(x, 2, 2, "valid", "channels_last")

    for label, pool in (("reduce_window (Keras's)", reduce_window), ("four strided slices", slices),
                        ("the window max of labtools/keras_patches.py", window_max)):
        forward = best_ms(pool, x)
        gradient = best_ms(lambda x: jax.vjp(pool, x)[1](upstream)[0], x)
        print(f"  max pooling 200x24x24x30, {label}: forward {forward:.1f} ms, gradient {gradient:.1f} ms", flush=True)
