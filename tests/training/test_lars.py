"""LARS (training/lars.py) against a float64 NumPy reference of its equations, the polynomial
schedule, LARS on every layout against one device (2 Horovod ranks, 2 MultiWorkerMirroredStrategy
workers, the towers), and LARS and LAMB (training/lamb.py, tests/training/test_lamb.py) on the
2014 hybrid over 2 devices and over 2 ranks (its fully connected layers split into shards, each
one layer)."""

import json
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from omegaconf import OmegaConf

from alexnet_dist import config
from alexnet_dist.config import ConfigError, OptimConfig
from alexnet_dist.distribute import cluster, launcher
from alexnet_dist.doctor.numerics import load
from alexnet_dist.training.lamb import Lamb
from alexnet_dist.training.lars import LARS
from alexnet_dist.training.optimizer import LearningRate, build_optimizer, decays_itself
from tests.distribute.helpers import numerics_run
from tests.helpers import (
    PER_REPLICA,
    STEPS,
    assert_same_weights,
    compose_cfg,
    driver,
    finish_driver,
    horovodrun,
)

MOMENTUM, DECAY, ETA, LR = 0.9, 5e-3, 0.02, 0.5


def _variables():
    """A layer's kernel and bias, and a kernel that starts at zero (||w|| = 0)."""
    rng = np.random.default_rng(0)
    values = {
        "dense_kernel": rng.normal(0, 0.3, (6, 4)),
        "dense_bias": rng.normal(0, 0.1, (4,)),
        "zero_kernel": np.zeros((3, 5)),
    }
    return values, [keras.Variable(v.astype(np.float32), name=k) for k, v in values.items()]


def _gradients(step: int) -> dict:
    rng = np.random.default_rng(100 + step)
    return {
        "dense_kernel": rng.normal(0, 1.0, (6, 4)),
        "dense_bias": rng.normal(0, 1.0, (4,)),
        # No gradient at the first step: both norms 0, then a zero-norm weight.
        "zero_kernel": rng.normal(0, 1.0, (3, 5)) * (step > 0),
    }


def _reference(values: dict, steps: int) -> dict:
    """The issue's equations in float64: lambda = eta ||w|| / (||g|| + beta ||w||) (1 if a
    norm is 0), v <- m v + gamma lambda (g + beta w), w <- w - v; biases neither adapted
    nor decayed."""
    w = {k: v.astype(np.float64) for k, v in values.items()}
    v = {k: np.zeros_like(x) for k, x in w.items()}
    for step in range(steps):
        for name, g in _gradients(step).items():
            excluded = name.endswith("bias")
            beta = 0.0 if excluded else DECAY
            w_norm, g_norm = np.linalg.norm(w[name]), np.linalg.norm(g)
            rate = 1.0
            if not excluded and w_norm > 0 and g_norm > 0:
                rate = ETA * w_norm / (g_norm + beta * w_norm)
            v[name] = MOMENTUM * v[name] + LR * rate * (g + beta * w[name])
            w[name] = w[name] - v[name]
    return w


def _apply(optimizer, variables, steps):
    optimizer.build(variables)
    for step in range(steps):
        grads = _gradients(step)
        optimizer.apply_gradients([(tf.constant(grads[v.path], tf.float32), v) for v in variables])


def test_lars_follows_its_equations_over_several_steps():
    values, variables = _variables()
    lars = LARS(LR, momentum=MOMENTUM, weight_decay=DECAY, trust_coefficient=ETA)
    _apply(lars, variables, 4)
    want = _reference(values, 4)
    for v in variables:
        np.testing.assert_allclose(v.numpy(), want[v.path], rtol=2e-5, atol=1e-7)
        assert not np.allclose(v.numpy(), values[v.path])  # every variable moved
    assert [lars.excluded(v) for v in variables] == [False, True, False]


def test_lars_adapts_each_layer_to_its_own_norms():
    # Scaling a layer's gradient leaves its step unchanged without decay (lambda * g has
    # the norm eta ||w||): the point of LARS. Plain momentum SGD would take 10 times the step.
    steps = []
    for scale in (1.0, 10.0):
        w = keras.Variable(np.ones((4, 4), np.float32), name="k_kernel")
        lars = LARS(1.0, momentum=0.0, weight_decay=0.0, trust_coefficient=0.1)
        lars.build([w])
        lars.apply_gradients([(tf.fill([4, 4], scale), w)])
        steps.append(1.0 - w.numpy())
    np.testing.assert_allclose(steps[0], steps[1], rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(steps[0]), 0.1 * 4.0, rtol=1e-6)


def test_lars_skips_a_variable_whose_gradient_is_not_finite():
    values, variables = _variables()
    lars = LARS(LR, momentum=MOMENTUM, weight_decay=DECAY, trust_coefficient=ETA,
                skip_non_finite=True)  # fmt: skip
    _apply(lars, variables, 2)
    before = [v.numpy().copy() for v in variables] + [s.numpy().copy() for s in lars.velocities]
    lars.apply_gradients([(tf.fill(v.shape, np.nan), v) for v in variables])
    after = [v.numpy() for v in variables] + [s.numpy() for s in lars.velocities]
    for b, a in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


def test_poly_schedule_warms_up_then_falls_to_zero_with_power_two():
    schedule = LearningRate(1.0, kind="poly", warmup_steps=10, total_steps=110, power=2.0)
    assert float(schedule(0)) == pytest.approx(0.1)  # (0 + 1) / 10 of the rate
    assert float(schedule(9)) == pytest.approx(1.0)
    assert float(schedule(60)) == pytest.approx((1 - 50 / 100) ** 2)
    assert float(schedule(110)) == pytest.approx(0.0)


def test_optimizers_are_chosen_by_config():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    for name, kind in (("sgd", keras.optimizers.SGD), ("lars", LARS), ("lamb", Lamb)):
        cfg = OptimConfig(name=name)
        assert isinstance(build_optimizer(cfg, model, 0.1), kind)
        assert decays_itself(cfg) == (name != "sgd")
    lars = _validated(["debug=tiny", "optim=lars"])
    assert lars.optim.name == "lars" and lars.optim.schedule == "poly"
    hybrid = ["debug=tiny", "model=owt", "distribute.owt_hybrid=true",
              "distribute.devices_per_replica=2", "distribute.logical_cpus=2"]  # fmt: skip
    for name in ("lars", "lamb"):
        assert _validated([*hybrid, f"optim={name}"]).optim.name == name
    with pytest.raises(ConfigError, match="optim.name must be one of"):
        _validated(["debug=tiny", "optim.name=adam"])


def _validated(overrides):
    return config.validate(OmegaConf.to_object(compose_cfg(overrides)))


@pytest.fixture(scope="module")
def single_lars():
    """(weights after STEPS LARS steps of one replica with batch 2b, weights at step 0)."""
    return (numerics_run("single", 2 * PER_REPLICA, optim="lars"),
            numerics_run("single", 2 * PER_REPLICA, 0, optim="lars"))  # fmt: skip


def test_lars_with_the_towers_on_two_devices_matches_one_device(single_lars):
    # Each tower's layers are layers of their own: their norms are taken where they live.
    got = numerics_run("single", 2 * PER_REPLICA, towers=True, optim="lars")
    assert_same_weights(got, *single_lars)


@pytest.mark.multiprocess
@pytest.mark.slow
def test_lars_over_two_horovod_ranks_matches_one_device(single_lars, tmp_path):
    # The norms are of the summed gradient, the same on every rank.
    out = tmp_path / "w.npz"
    run = ["-m", "alexnet_dist.cli.numerics", "horovod", str(STEPS), str(PER_REPLICA)]
    result = horovodrun([sys.executable, *run, str(out), "lars"])
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-2000:]
    assert_same_weights(load(out), *single_lars)


@pytest.mark.multiprocess
@pytest.mark.slow
def test_lars_over_two_multiworker_workers_matches_one_device(single_lars, tmp_path):
    workers = [f"localhost:{p}" for p in launcher.free_ports(2)]
    procs = [
        driver("multiworker", PER_REPLICA, tmp_path / "w.npz", options=["lars"],
               env={"TF_CONFIG": json.dumps(cluster.tf_config(workers, i))})
        for i in range(2)
    ]  # fmt: skip
    try:
        for p in procs:
            finish_driver(p)
    finally:
        for p in procs:
            p.kill()
    assert_same_weights(load(tmp_path / "w.npz"), *single_lars)


@pytest.fixture(scope="module", params=["lars", "lamb"])
def single_owt(request):
    """(optimizer, its weights after STEPS steps of the one-tower network on one device with
    the hybrid tests' batch of 16, the weights at step 0)."""
    optim = request.param
    return (optim, numerics_run("single", 4 * PER_REPLICA, variant="owt", optim=optim),
            numerics_run("single", 4 * PER_REPLICA, 0, variant="owt", optim=optim))  # fmt: skip


@pytest.mark.multiprocess
def test_the_2014_hybrid_over_two_devices_matches_one_device(single_owt, tmp_path):
    # Each fully connected layer is two shards, one per device; its norms are over both.
    optim, *expected = single_owt
    out = tmp_path / "w.npz"
    finish_driver(driver("single", 4 * PER_REPLICA, out, options=["hybrid2", optim]))
    assert_same_weights(load(out), *expected, variant="owt")


@pytest.mark.multiprocess
@pytest.mark.slow
def test_the_2014_hybrid_over_two_ranks_matches_one_device(single_owt, tmp_path):
    # Each rank holds one shard of each fully connected layer: the squared norms are
    # all-reduced within the group.
    optim, *expected = single_owt
    out = tmp_path / "w.npz"
    run = ["-m", "alexnet_dist.cli.numerics", "horovod", str(STEPS), str(2 * PER_REPLICA)]
    result = horovodrun([sys.executable, *run, str(out), "hybrid2", "ranks", optim])
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-2000:]
    assert_same_weights(load(out), *expected, variant="owt")


def test_a_split_layer_without_its_other_shards_norms_would_differ(single_owt):
    # The checks above can fail: an optimizer that took each shard as a layer of its own
    # (norms per shard) does not train as one device.
    from alexnet_dist.doctor import numerics
    from alexnet_dist.models import owt_shards

    optim, expected, _ = single_owt
    saved = owt_shards.SplitOWT.layer_shards
    owt_shards.SplitOWT.layer_shards = lambda self: []
    try:
        got = numerics.run(numerics.config("single", hybrid=2), STEPS, 4 * PER_REPLICA,
                           variant="owt", optim=optim)  # fmt: skip
    finally:
        owt_shards.SplitOWT.layer_shards = saved
    worst = max(numerics.relative_differences(got, expected))
    assert worst > 1e-3, worst
