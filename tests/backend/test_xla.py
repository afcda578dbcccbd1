"""Functions XLA-compiled on TensorFlow, and traced as plain ops inside `without_xla`."""

import numpy as np
import pytest
import tensorflow as tf

from alexnet_dist.backend import xla


def _must_compile(fn, x) -> bool:
    graph = fn.get_concrete_function(tf.TensorSpec(x.shape, x.dtype)).function_def
    return graph.attr["_XlaMustCompile"].b


def test_compiled_is_the_function_compiled_by_xla():
    def f(x):
        return tf.square(x) + 1.0

    x = tf.constant([1.0, 2.0, 3.0])
    compiled = xla.compiled(f)
    np.testing.assert_allclose(compiled(x).numpy(), f(x).numpy())
    assert _must_compile(compiled, x)


def test_without_xla_turns_it_off_for_what_is_traced_inside_and_back_on_after():
    assert xla.enabled()
    with xla.without_xla():
        assert not xla.enabled()
    assert xla.enabled()
    with pytest.raises(RuntimeError), xla.without_xla():
        raise RuntimeError("an export that failed")
    assert xla.enabled()  # restored on the way out of an error too
