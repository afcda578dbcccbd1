import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet_dist.config import OptimConfig
from alexnet_dist.models import build_alexnet
from alexnet_dist.training.optimizer import (
    SGD,
    LearningRate,
    Plateau,
    SkippingSGD,
    build_optimizer,
    build_schedule,
)


def lr_at(schedule, *steps):
    return [float(schedule(s)) for s in steps]


def test_linear_scaling_and_step_decay():
    cfg = OptimConfig(lr=0.01, base_batch_size=128, decay_every_epochs=2, decay_factor=0.1)
    schedule = build_schedule(cfg, global_batch=512, steps_per_epoch=10)
    # 0.01 x 512 / 128 = 0.04, divided by 10 every 20 steps.
    np.testing.assert_allclose(lr_at(schedule, 0, 19, 20, 39, 40), [0.04, 0.04, 0.004, 0.004, 4e-4])


def test_warmup_ramps_linearly_to_the_scaled_rate():
    cfg = OptimConfig(lr=0.01, base_batch_size=128, warmup_epochs=0.5, decay_every_epochs=30)
    schedule = build_schedule(cfg, global_batch=256, steps_per_epoch=20)  # 10 warmup steps
    np.testing.assert_allclose(lr_at(schedule, 0, 4, 9, 10, 100), [0.002, 0.01, 0.02, 0.02, 0.02])


@pytest.mark.parametrize("kind", ["step", "cosine"])
def test_schedule_round_trips_through_config(kind):
    schedule = LearningRate(0.1, kind, decay_steps=7, factor=0.5, warmup_steps=3, total_steps=20)
    clone = LearningRate.from_config(schedule.get_config())
    assert lr_at(clone, 0, 5, 14) == pytest.approx(lr_at(schedule, 0, 5, 14))


def test_cosine_falls_from_the_scaled_rate_to_zero_after_warmup():
    cfg = OptimConfig(lr=0.01, schedule="cosine", warmup_epochs=1)
    schedule = build_schedule(cfg, global_batch=128, steps_per_epoch=10, total_steps=110)
    np.testing.assert_allclose(
        lr_at(schedule, 0, 9, 10, 60, 110, 200), [0.001, 0.01, 0.01, 0.005, 0.0, 0.0], atol=1e-9
    )


def test_plateau_rule_on_a_scripted_validation_curve():
    # Errors per epoch: improving, then stuck (drop), improving again at the new rate,
    # stuck twice more (drops 2 and 3), then stuck again: no fourth drop.
    plateau = Plateau(factor=0.1, patience=1, max_drops=3, min_delta=0.0)
    schedule = LearningRate(0.01, "plateau", plateau=plateau)
    curve = [0.9, 0.7, 0.6, 0.6, 0.5, 0.45, 0.46, 0.47, 0.44, 0.44, 0.44]
    drops = [plateau.update(e) for e in curve]
    assert [i for i, d in enumerate(drops) if d] == [3, 6, 7]
    assert float(schedule(0)) == pytest.approx(1e-5)  # 0.01 / 10**3
    assert int(plateau.drops.numpy()) == 3 and float(plateau.best_error.numpy()) == 0.44


def test_plateau_patience_and_min_delta():
    plateau = Plateau(factor=0.5, patience=2, max_drops=3, min_delta=0.01)
    # 0.795 is not 0.01 better than 0.8: no improvement; the second such evaluation drops.
    assert [plateau.update(e) for e in [0.8, 0.795, 0.79, 0.7]] == [False, False, True, False]
    assert float(plateau.scale.numpy()) == 0.5


def test_plateau_state_is_checkpointed(tmp_path):
    plateau = Plateau(factor=0.1, patience=1, max_drops=3, min_delta=0.0)
    for error in [0.5, 0.6]:
        plateau.update(error)
    path = tf.train.Checkpoint(plateau=plateau).save(str(tmp_path / "ckpt"))
    restored = Plateau(factor=0.1, patience=1, max_drops=3, min_delta=0.0)
    tf.train.Checkpoint(plateau=restored).restore(path).assert_consumed()
    assert float(restored.scale.numpy()) == pytest.approx(0.1)
    assert float(restored.best_error.numpy()) == 0.5 and int(restored.drops.numpy()) == 1


@pytest.mark.parametrize("momentum", [0.9, 0.0])
def test_skipping_sgd_leaves_weights_and_momenta_alone_on_non_finite_gradients(momentum):
    w = keras.Variable(np.ones(3, np.float32))
    sgd = SkippingSGD(learning_rate=0.1, momentum=momentum)
    sgd.build([w])
    reference = keras.optimizers.SGD(learning_rate=0.1, momentum=momentum)
    r = keras.Variable(np.ones(3, np.float32))
    reference.build([r])
    sgd.apply_gradients([(tf.constant([1.0, 2.0, 3.0]), w)])
    reference.apply_gradients([(tf.constant([1.0, 2.0, 3.0]), r)])
    np.testing.assert_allclose(w.numpy(), r.numpy())  # finite: plain SGD
    before = [v.numpy().copy() for v in sgd.variables if v.shape == (3,)] + [w.numpy().copy()]
    sgd.apply_gradients([(tf.constant([np.nan, 1.0, 1.0]), w)])
    after = [v.numpy() for v in sgd.variables if v.shape == (3,)] + [w.numpy()]
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("optimizer", [SGD, SkippingSGD])
def test_compiled_update_is_kerass_sgd_with_momentum(optimizer):
    # The update is one XLA-compiled function per variable: v <- 0.9 v - lr g, w <- w + v.
    rng = np.random.default_rng(0)
    w, r = (keras.Variable(np.ones((4, 3), np.float32)) for _ in range(2))
    ours = optimizer(learning_rate=0.1, momentum=0.9)
    reference = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    ours.build([w])
    reference.build([r])
    step = tf.function(lambda g: ours.apply_gradients([(g, w)]))
    for _ in range(3):
        g = tf.constant(rng.normal(size=(4, 3)).astype(np.float32))
        step(g)
        reference.apply_gradients([(g, r)])
    np.testing.assert_allclose(w.numpy(), r.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.momentums[0].numpy(), reference.momentums[0].numpy(), rtol=1e-6)


def test_optimizer_follows_the_schedule_and_has_its_slots():
    model = build_alexnet("paper", num_classes=3, image_size=67, width=0.125)
    optimizer = build_optimizer(OptimConfig(lr=0.01, momentum=0.9), model, 0.01)
    assert len(optimizer.variables) > len(model.trainable_variables)  # momenta exist already
    assert float(optimizer.learning_rate) == pytest.approx(0.01)
    assert float(optimizer.momentum) == pytest.approx(0.9)
