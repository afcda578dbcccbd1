"""SGD with momentum, the linear scaling rule, linear warmup and the step schedule."""

import keras

from alexnet_dist.config import OptimConfig


def scaled_lr(cfg: OptimConfig, global_batch: int) -> float:
    """The linear scaling rule: lr grows with the global batch (0.01 at 128 in the paper)."""
    return cfg.lr * global_batch / cfg.base_batch_size


@keras.saving.register_keras_serializable(package="alexnet_dist")
class StepWithWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """lr * factor ** (step // decay_steps), ramped up linearly over the first warmup_steps.

    The warmup (Goyal et al. 2017) starts at lr / warmup_steps, so that a large
    global batch does not begin with the full scaled rate.
    """

    def __init__(self, lr: float, decay_steps: int, factor: float, warmup_steps: int = 0):
        self.lr = lr
        self.decay_steps = decay_steps
        self.factor = factor
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        drops = keras.ops.floor(step / self.decay_steps)
        lr = self.lr * keras.ops.power(self.factor, drops)
        if self.warmup_steps:
            lr = lr * keras.ops.minimum(1.0, (step + 1.0) / self.warmup_steps)
        return lr

    def get_config(self):
        return {
            "lr": self.lr,
            "decay_steps": self.decay_steps,
            "factor": self.factor,
            "warmup_steps": self.warmup_steps,
        }


def build_schedule(cfg: OptimConfig, global_batch: int, steps_per_epoch: int) -> StepWithWarmup:
    """The schedule of `cfg` in steps, for this global batch and epoch length."""
    return StepWithWarmup(
        scaled_lr(cfg, global_batch),
        decay_steps=cfg.decay_every_epochs * steps_per_epoch,
        factor=cfg.decay_factor,
        warmup_steps=round(cfg.warmup_epochs * steps_per_epoch),
    )


def build_optimizer(
    cfg: OptimConfig, model: keras.Model, global_batch: int, steps_per_epoch: int
) -> keras.optimizers.Optimizer:
    """SGD with momentum on the schedule, its slots built for `model`.

    Weight decay is applied by the train step. Call this in the runtime's scope:
    the momenta are created here, next to their variables, and not lazily in the
    first step, where a tf.distribute replica context cannot create them.
    """
    schedule = build_schedule(cfg, global_batch, steps_per_epoch)
    optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=cfg.momentum)
    optimizer.build(model.trainable_variables)
    return optimizer
