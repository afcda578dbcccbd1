"""SGD with momentum, the linear scaling rule and the step learning-rate schedule."""

import keras

from alexnet_dist.config import OptimConfig


def scaled_lr(cfg: OptimConfig, global_batch: int) -> float:
    """The linear scaling rule: lr grows with the global batch (0.01 at 128 in the paper)."""
    return cfg.lr * global_batch / cfg.base_batch_size


def build_schedule(
    cfg: OptimConfig, global_batch: int, steps_per_epoch: int, epochs: int
) -> keras.optimizers.schedules.LearningRateSchedule:
    """lr * decay_factor ** (epoch // decay_every_epochs), as a function of the step."""
    base = scaled_lr(cfg, global_batch)
    drops = list(range(cfg.decay_every_epochs, epochs, cfg.decay_every_epochs))
    if not drops:
        return keras.optimizers.schedules.PiecewiseConstantDecay(
            [steps_per_epoch * epochs], [base, base]
        )
    boundaries = [e * steps_per_epoch for e in drops]
    values = [base * cfg.decay_factor**i for i in range(len(boundaries) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def build_optimizer(
    cfg: OptimConfig, model: keras.Model, global_batch: int, steps_per_epoch: int, epochs: int
) -> keras.optimizers.Optimizer:
    """SGD with momentum on the schedule, its slots built for `model`.

    Weight decay is applied by the train step. Call this in the runtime's scope:
    the momenta are created here, next to their variables, and not lazily in the
    first step, where a tf.distribute replica context cannot create them.
    """
    schedule = build_schedule(cfg, global_batch, steps_per_epoch, epochs)
    optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=cfg.momentum)
    optimizer.build(model.trainable_variables)
    return optimizer
