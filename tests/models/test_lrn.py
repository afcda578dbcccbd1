import numpy as np
import pytest
import tensorflow as tf

from alexnet_dist.models import LocalResponseNormalization
from tests.helpers import run_cli


def paper_lrn(a, k=2.0, n=5, alpha=1e-4, beta=0.75):
    """Section 3.3 of the paper, written out with loops over channels."""
    a = a.astype(np.float64)
    channels = a.shape[-1]
    out = np.empty_like(a)
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        out[..., i] = a[..., i] / (k + alpha * np.sum(a[..., lo : hi + 1] ** 2, axis=-1)) ** beta
    return out


def test_matches_the_papers_formula():
    rng = np.random.default_rng(0)
    # ReLU outputs of the size conv1 gives, scaled so the sum of squares matters.
    a = np.maximum(rng.normal(0, 40, size=(2, 7, 7, 48)), 0).astype(np.float32)
    got = np.asarray(LocalResponseNormalization()(a))
    np.testing.assert_allclose(got, paper_lrn(a), rtol=1e-5, atol=1e-6)


def test_matches_tensorflows_op_with_the_papers_arguments():
    a = np.random.default_rng(1).uniform(0, 50, size=(1, 5, 5, 16)).astype(np.float32)
    want = tf.nn.local_response_normalization(a, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)
    np.testing.assert_allclose(LocalResponseNormalization()(a), want, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_computes_in_float32_under_half_precision(dtype):
    # Squares of 300 overflow float16 (max 65504) if computed in half precision.
    a = np.full((1, 2, 2, 8), 300.0, np.float32)
    # As under a mixed-precision policy: the layer's compute dtype is the half type.
    out = LocalResponseNormalization(dtype=f"mixed_{dtype}")(tf.cast(a, dtype))
    assert out.dtype == tf.as_dtype(dtype)
    assert np.all(np.isfinite(np.asarray(tf.cast(out, tf.float32))))
    np.testing.assert_allclose(tf.cast(out, tf.float32), paper_lrn(a), rtol=1e-2)


def test_config_round_trip():
    layer = LocalResponseNormalization(depth_radius=3, bias=1.0, alpha=2e-5, beta=0.5)
    clone = LocalResponseNormalization.from_config(layer.get_config())
    assert (clone.depth_radius, clone.bias, clone.alpha, clone.beta) == (3, 1.0, 2e-5, 0.5)


def test_negative_radius_is_refused():
    with pytest.raises(ValueError, match="depth_radius"):
        LocalResponseNormalization(depth_radius=-1)


def _formula_tf(a, k=2.0, n=5, alpha=1e-4, beta=0.75):
    """The paper's formula in float64 TensorFlow ops, for TensorFlow's autodiff."""
    channels = a.shape[-1]
    outs = []
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        s = tf.reduce_sum(tf.square(a[..., lo : hi + 1]), axis=-1)
        outs.append(a[..., i] / (k + alpha * s) ** beta)
    return tf.stack(outs, axis=-1)


@pytest.mark.parametrize("beta", [0.75, 0.5])
def test_hand_written_gradient_equals_autodiff_of_the_formula(beta):
    rng = np.random.default_rng(2)
    a = np.maximum(rng.normal(0, 60, size=(2, 5, 5, 12)), 0).astype(np.float32)
    weights = rng.normal(size=a.shape).astype(np.float32)  # a loss that mixes every output
    layer = LocalResponseNormalization(beta=beta)
    x = tf.constant(a)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x) * weights)
    got = tape.gradient(loss, x).numpy()
    x64 = tf.constant(a.astype(np.float64))
    with tf.GradientTape() as tape:
        tape.watch(x64)
        loss = tf.reduce_sum(_formula_tf(x64, beta=beta) * weights.astype(np.float64))
    want = tape.gradient(loss, x64).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * np.abs(want).max())
    np.testing.assert_allclose(layer(x), _formula_tf(x64, beta=beta), rtol=1e-5, atol=1e-6)


def test_bfloat16_gradient_is_the_formulas_within_bfloat16_rounding():
    # Under mixed_bfloat16 the layer takes and returns bfloat16 but computes in float32:
    # the gradient differs from float64 autodiff by about the rounding of its input and output.
    rng = np.random.default_rng(3)
    a = np.maximum(rng.normal(0, 60, size=(2, 5, 5, 12)), 0).astype(np.float32)
    a = tf.cast(tf.cast(a, tf.bfloat16), tf.float32).numpy()  # exactly representable
    weights = rng.normal(size=a.shape).astype(np.float32)
    x = tf.cast(a, tf.bfloat16)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = LocalResponseNormalization(dtype="mixed_bfloat16")(x)
        loss = tf.reduce_sum(tf.cast(out, tf.float32) * weights)
    got = tf.cast(tape.gradient(loss, x), tf.float32).numpy()
    x64 = tf.constant(a.astype(np.float64))
    with tf.GradientTape() as tape:
        tape.watch(x64)
        loss = tf.reduce_sum(_formula_tf(x64) * weights.astype(np.float64))
    want = tape.gradient(loss, x64).numpy()
    np.testing.assert_allclose(got, want, rtol=2e-2, atol=2e-2 * np.abs(want).max())


LRN_GRAD_JAX = """
import sys
import jax, numpy as np
from alexnet_dist.models import LocalResponseNormalization
a, w = np.load(sys.argv[1]), np.load(sys.argv[2])
np.save(sys.argv[3], jax.grad(lambda x: (LocalResponseNormalization()(x) * w).sum())(a))
"""


@pytest.mark.slow
def test_lrn_gradient_is_the_same_under_jax(tmp_path):
    import tensorflow as tf

    from alexnet_dist.models import LocalResponseNormalization

    rng = np.random.default_rng(2)
    a = np.maximum(rng.normal(0, 60, size=(2, 5, 5, 12)), 0).astype(np.float32)
    w = rng.normal(size=a.shape).astype(np.float32)
    x = tf.constant(a)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(LocalResponseNormalization()(x) * w)
    want = tape.gradient(loss, x).numpy()
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "w.npy", w)
    result = run_cli(
        ["-c", LRN_GRAD_JAX, *(str(tmp_path / f) for f in ("a.npy", "w.npy", "g.npy"))],
        env={"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"},
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "g.npy"), want, rtol=1e-5, atol=1e-5)
