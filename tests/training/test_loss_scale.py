"""Dynamic loss scaling for mixed_float16."""

import tensorflow as tf

from alexnet_dist.training.loss_scale import LossScale


def test_loss_scale_doubles_after_growth_steps_and_never_drops_below_one():
    scale = LossScale(4.0, growth_steps=3)
    history = []
    for finite in [True, True, True, True, False, False, False, False, True]:
        scale.update(tf.constant(finite))
        history.append(float(scale.scale.numpy()))
    assert history == [4.0, 4.0, 8.0, 8.0, 4.0, 2.0, 1.0, 1.0, 1.0]
