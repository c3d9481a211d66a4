"""The small CNN's second convolution (200 images of 26x26x64 -> 24x24x32, 3x3) under JAX on the CPU: the forward
pass, the gradient for its input (dx) and for its weights (dw), each jitted, the mean of five calls after one.

    XLA_FLAGS= python results/logs/jax_cpu_convolutions.py
    XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= python results/logs/jax_cpu_convolutions.py

(run with the jax of requirements-jax.txt; backend.py sets the second flag whenever Keras runs on JAX)
"""
import os
import time

import jax
import numpy as np

x = jax.numpy.asarray(np.random.default_rng(0).random((200, 26, 26, 64), dtype=np.float32))
w = jax.numpy.asarray(np.random.default_rng(1).random((3, 3, 64, 32), dtype=np.float32))
g = jax.numpy.ones((200, 24, 24, 32), "float32")


def conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def milliseconds(function, *arguments):
    function = jax.jit(function)
    function(*arguments).block_until_ready()
    started = time.perf_counter()
    for _ in range(5):
        function(*arguments).block_until_ready()
    return (time.perf_counter() - started) / 5 * 1000


print(f"jax {jax.__version__}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}: "
      f"forward {milliseconds(conv, x, w):.0f} ms, "
      f"dx {milliseconds(lambda x, w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)[0], x, w, g):.0f} ms, "
      f"dw {milliseconds(lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0], x, w, g):.0f} ms")
