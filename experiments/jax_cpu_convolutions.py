"""The small CNN's second convolution (200 images of 26x26x64 -> 24x24x32, 3x3) under JAX on the CPU: the forward
pass, the gradient for its input (dx) and for its weights (dw), each jitted, the mean of five calls after one.

    XLA_FLAGS= python experiments/jax_cpu_convolutions.py
    XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= python experiments/jax_cpu_convolutions.py --append

(run with the jax of requirements-jax.txt; labtools/backend.py's training_environment sets the second flag for
the scripts on JAX)

With --rewrites it also times two rewrites of the same convolution as matrix products, which XLA would hand to
its dot kernels instead of its convolution kernels: im2col (the nine shifted slices side by side, one matmul
with the 576x32 kernel) and shifted (nine matmuls, one per tap, summed); and TensorFlow's own numbers for this
convolution come from the same script with --tensorflow (run with the TensorFlow of requirements.txt).

Output: results/logs/jax_cpu_convolutions.txt, a run's lines added to its end with --append. The committed one,
its comment lines by hand: the first command above under jax 0.10.2 (Python 3.11), then with --append under jax
0.12.0.1 (Python 3.12), then the second command under each; then, on another machine and each with --append, the
second command with --rewrites, once more without, and `python experiments/jax_cpu_convolutions.py --tensorflow`.
"""
import os
import sys
import time

import numpy as np

import logs

if "--tensorflow" in sys.argv:
    import tensorflow as tf
else:
    import jax
logs.tee("jax_cpu_convolutions.txt", append="--append" in sys.argv)  # once the import worked: the right venv

if "--tensorflow" in sys.argv:  # the same convolution, forward and both gradients, in TensorFlow (oneDNN here)
    x = tf.constant(np.random.default_rng(0).random((200, 26, 26, 64), dtype=np.float32))
    w = tf.constant(np.random.default_rng(1).random((3, 3, 64, 32), dtype=np.float32))

    def gradients(x, w):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = tf.nn.conv2d(x, w, 1, "VALID")
        return tape.gradient(y, [x, w])

    def tf_milliseconds(function):
        function = tf.function(function)
        tf.nest.map_structure(lambda t: t.numpy(), function(x, w))
        started = time.perf_counter()
        for _ in range(5):
            tf.nest.map_structure(lambda t: t.numpy(), function(x, w))
        return (time.perf_counter() - started) / 5 * 1000

    print(f"tensorflow {tf.__version__}: forward {tf_milliseconds(lambda x, w: tf.nn.conv2d(x, w, 1, 'VALID')):.0f} "
          f"ms, forward and both gradients {tf_milliseconds(gradients):.0f} ms")
    sys.exit()

x = jax.numpy.asarray(np.random.default_rng(0).random((200, 26, 26, 64), dtype=np.float32))
w = jax.numpy.asarray(np.random.default_rng(1).random((3, 3, 64, 32), dtype=np.float32))
g = jax.numpy.ones((200, 24, 24, 32), "float32")


def conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def im2col(x, w):
    kh, kw, c, f = w.shape
    h, v = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    columns = jax.numpy.concatenate([x[:, i:i + h, j:j + v, :] for i in range(kh) for j in range(kw)], axis=-1)
    return jax.numpy.dot(columns, w.reshape(kh * kw * c, f))


def shifted(x, w):
    kh, kw, c, f = w.shape
    h, v = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    return sum(jax.numpy.dot(x[:, i:i + h, j:j + v, :], w[i, j]) for i in range(kh) for j in range(kw))


def milliseconds(function, *arguments):
    function = jax.jit(function)
    function(*arguments).block_until_ready()
    started = time.perf_counter()
    for _ in range(5):
        function(*arguments).block_until_ready()
    return (time.perf_counter() - started) / 5 * 1000


variants = [("lax.conv", conv)] + ([("im2col", im2col), ("shifted", shifted)] if "--rewrites" in sys.argv else [])
for name, function in variants:
    print(f"jax {jax.__version__}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, {name}: "
          f"forward {milliseconds(function, x, w):.0f} ms, "
          f"dx {milliseconds(lambda x, w, g: jax.vjp(lambda x: function(x, w), x)[1](g)[0], x, w, g):.0f} ms, "
          f"dw {milliseconds(lambda x, w, g: jax.vjp(lambda w: function(x, w), w)[1](g)[0], x, w, g):.0f} ms",
          flush=True)
