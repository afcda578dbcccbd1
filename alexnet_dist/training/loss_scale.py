"""Dynamic loss scaling for mixed_float16, inside the custom train step.

float16 gradients of a float32 loss underflow to zero; multiplying the loss by a
large scale before the backward pass (and dividing the gradients by it after)
keeps them representable. Too large a scale overflows instead: that step is
skipped and the scale halved. After `growth_steps` finite steps in a row the
scale is doubled again, so it tracks the largest scale that does not overflow.
"""

import tensorflow as tf


class LossScale(tf.Module):
    """The scale and the count of finite steps since it last changed, as checkpointed variables."""

    def __init__(self, initial_scale: float = 2.0**15, growth_steps: int = 2000):
        super().__init__(name="loss_scale")
        self.growth_steps = growth_steps
        self.scale = tf.Variable(initial_scale, dtype=tf.float32, trainable=False, name="scale")
        self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="good_steps")

    def update(self, finite: tf.Tensor) -> None:
        """After a step: halve on overflow (never below 1), double after growth_steps good steps.

        `finite` must be the same on every replica (the step all-reduces it), so
        that every copy of the scale stays equal.
        """
        grow = tf.logical_and(finite, self.good_steps + 1 >= self.growth_steps)
        new_scale = tf.where(
            finite,
            tf.where(grow, self.scale * 2.0, self.scale),
            tf.maximum(self.scale * 0.5, 1.0),
        )
        self.scale.assign(new_scale)
        keep_counting = tf.logical_and(finite, tf.logical_not(grow))
        self.good_steps.assign(tf.where(keep_counting, self.good_steps + 1, 0))
