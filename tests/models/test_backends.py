"""The model code is plain Keras 3: under JAX it builds the same network with the same logits."""

import json

import numpy as np

from alexnet_dist.models import build_alexnet
from tests.helpers import run_cli

JAX_SIDE = """
import json, sys
import keras, numpy as np
from alexnet_dist.models import build_alexnet
assert keras.backend.backend() == "jax", keras.backend.backend()
weights = np.load(sys.argv[1])
model = build_alexnet(**json.loads(sys.argv[2]))
model.set_weights([weights[f"w{i}"] for i in range(len(weights.files))])
np.save(sys.argv[3], keras.ops.convert_to_numpy(model(np.load(sys.argv[4]))))
print(model.count_params())
"""


def test_jax_backend_builds_and_runs_the_same_model(tmp_path):
    kwargs = {"variant": "paper", "num_classes": 7, "image_size": 67, "width": 0.25, "init": "he"}
    model = build_alexnet(**kwargs)
    images = np.random.default_rng(0).normal(0, 1, (3, 67, 67, 3)).astype(np.float32)
    want = np.asarray(model(images))
    np.savez(tmp_path / "w.npz", **{f"w{i}": w for i, w in enumerate(model.get_weights())})
    np.save(tmp_path / "x.npy", images)

    result = run_cli(
        ["-c", JAX_SIDE, str(tmp_path / "w.npz"), json.dumps(kwargs), str(tmp_path / "y.npy"),
         str(tmp_path / "x.npy")],
        env={"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"},
        timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) == model.count_params()
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=1e-4, atol=1e-4)


LRN_GRAD_JAX = """
import sys
import jax, numpy as np
from alexnet_dist.models import LocalResponseNormalization
a, w = np.load(sys.argv[1]), np.load(sys.argv[2])
np.save(sys.argv[3], jax.grad(lambda x: (LocalResponseNormalization()(x) * w).sum())(a))
"""


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
