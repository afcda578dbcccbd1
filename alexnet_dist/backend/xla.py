"""Functions compiled by XLA on TensorFlow, as they are elsewhere: models/ stays plain Keras.

models/lrn.py's kernels are a few elementwise passes each; XLA fuses them into one
or two loops. On TensorFlow that takes `tf.function(jit_compile=True)`; under
JAX the step's jit compiles them anyway, and PyTorch runs them as they are.
`without_xla` turns it off for what is traced inside it: TF Serving runs without
XLA unless started with --xla_cpu_compilation_enabled, and fails the first
request of a model that needs it, so alexnet-export traces in there.
"""

import contextlib

import keras

_STATE = {"on": True}


def enabled() -> bool:
    """Whether functions compiled from now on are XLA-compiled (outside `without_xla`)."""
    return _STATE["on"] and keras.backend.backend() == "tensorflow"


def compiled(fn):
    """`fn` as one XLA-compiled function on TensorFlow (under a jit-compiled step, inlined)."""
    import tensorflow as tf  # only on the TensorFlow backend

    return tf.function(fn, jit_compile=True, reduce_retracing=False)


@contextlib.contextmanager
def without_xla():
    """Functions traced inside this context are plain TensorFlow ops, not XLA-compiled."""
    previous, _STATE["on"] = _STATE["on"], False
    try:
        yield
    finally:
        _STATE["on"] = previous
