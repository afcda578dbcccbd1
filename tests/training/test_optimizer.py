import numpy as np
import pytest

from alexnet_dist.config import OptimConfig
from alexnet_dist.models import build_alexnet
from alexnet_dist.training.optimizer import StepWithWarmup, build_optimizer, build_schedule


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


def test_schedule_round_trips_through_config():
    schedule = StepWithWarmup(0.1, decay_steps=7, factor=0.5, warmup_steps=3)
    clone = StepWithWarmup.from_config(schedule.get_config())
    assert lr_at(clone, 0, 5, 14) == pytest.approx(lr_at(schedule, 0, 5, 14))


def test_optimizer_follows_the_schedule_and_has_its_slots():
    model = build_alexnet("paper", num_classes=3, image_size=67, width=0.125)
    optimizer = build_optimizer(OptimConfig(lr=0.01, momentum=0.9), model, 128, 10)
    assert len(optimizer.variables) > len(model.trainable_variables)  # momenta exist already
    assert float(optimizer.learning_rate) == pytest.approx(0.01)
    assert float(optimizer.momentum) == pytest.approx(0.9)
