"""The optimizers (SGD with momentum, LARS, LAMB), the linear scaling rule, warmup and the step,
plateau, cosine and polynomial schedules."""

import math

import keras
import tensorflow as tf

from alexnet_dist.config import SCHEDULES, OptimConfig
from alexnet_dist.training.device_update import OnVariableDevice


def scaled_lr(cfg: OptimConfig, global_batch: int) -> float:
    """The linear scaling rule: lr grows with the global batch (0.01 at 128 in the paper)."""
    return cfg.lr * global_batch / cfg.base_batch_size


class Plateau(tf.Module):
    """The paper's rule: divide the rate by 10 when the validation error stops improving.

    The state (current factor, best error, evaluations without improvement, drops
    so far) lives in variables, so it is checkpointed with the model and a resumed
    run continues the same schedule. `update` is a pure function of that state and
    the validation error; the error is summed over all workers before it gets
    here, so every worker takes the same decision at the same evaluation.
    """

    def __init__(self, factor: float, patience: int, max_drops: int, min_delta: float):
        super().__init__(name="plateau")
        self.factor = factor
        self.patience = patience
        self.max_drops = max_drops
        self.min_delta = min_delta
        self.scale = tf.Variable(1.0, trainable=False, name="scale")
        self.best_error = tf.Variable(
            math.inf, dtype=tf.float64, trainable=False, name="best_error"
        )
        self.waited = tf.Variable(0, dtype=tf.int64, trainable=False, name="waited")
        self.drops = tf.Variable(0, dtype=tf.int64, trainable=False, name="drops")

    def update(self, error: float) -> bool:
        """Records one evaluation's error; returns True when it divides the rate."""
        if error < float(self.best_error.numpy()) - self.min_delta:
            self.best_error.assign(error)
            self.waited.assign(0)
            return False
        self.waited.assign_add(1)
        if int(self.waited.numpy()) < self.patience or int(self.drops.numpy()) >= self.max_drops:
            return False
        self.scale.assign(self.scale * self.factor)
        self.drops.assign_add(1)
        self.waited.assign(0)
        # Measure improvement at the new rate from the error reached at the old one.
        return True


class LearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """The learning rate at a step: warmup, then the step, cosine or plateau schedule.

    - step: lr * factor ** (step // decay_steps).
    - cosine: lr * (1 + cos(pi * t)) / 2, t going from 0 after warmup to 1 at total_steps.
    - poly: lr * (1 - t) ** power, t as for cosine (the LARS paper's, with power 2).
    - plateau: lr * plateau.scale, lowered by `Plateau.update` after evaluations.

    The warmup (Goyal et al. 2017) ramps linearly from lr / warmup_steps to lr over
    the first warmup_steps, so that a large global batch does not begin at the
    full scaled rate.
    """

    def __init__(
        self,
        lr: float,
        kind: str = "step",
        decay_steps: int = 1,
        factor: float = 0.1,
        warmup_steps: int = 0,
        total_steps: int = 1,
        plateau: Plateau | None = None,
        power: float = 2.0,
    ):
        if kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {kind!r}; expected one of {SCHEDULES}")
        if kind == "plateau" and plateau is None:
            raise ValueError("the plateau schedule needs its Plateau state")
        self.lr = lr
        self.kind = kind
        self.decay_steps = decay_steps
        self.factor = factor
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.plateau = plateau
        self.power = power

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        if self.kind == "step":
            lr = self.lr * keras.ops.power(self.factor, keras.ops.floor(step / self.decay_steps))
        elif self.kind in ("cosine", "poly"):
            span = max(self.total_steps - self.warmup_steps, 1)
            t = keras.ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
            if self.kind == "cosine":
                lr = self.lr * 0.5 * (1.0 + keras.ops.cos(math.pi * t))
            else:
                lr = self.lr * keras.ops.power(1.0 - t, self.power)
        else:
            lr = self.lr * keras.ops.cast(self.plateau.scale, "float32")
        if self.warmup_steps:
            lr = lr * keras.ops.minimum(1.0, (step + 1.0) / self.warmup_steps)
        return lr

    def get_config(self):
        # The plateau's state is in its variables (checkpointed), not in the config.
        return {
            "lr": self.lr,
            "kind": self.kind,
            "decay_steps": self.decay_steps,
            "factor": self.factor,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "power": self.power,
        }


def build_schedule(
    cfg: OptimConfig, global_batch: int, steps_per_epoch: int, total_steps: int = 1
) -> LearningRate:
    """The schedule of `cfg` in steps, for this global batch, epoch length and run length."""
    plateau = None
    if cfg.schedule == "plateau":
        plateau = Plateau(
            cfg.decay_factor, cfg.plateau_patience, cfg.plateau_max_drops, cfg.plateau_min_delta
        )
    return LearningRate(
        scaled_lr(cfg, global_batch),
        kind=cfg.schedule,
        decay_steps=cfg.decay_every_epochs * steps_per_epoch,
        factor=cfg.decay_factor,
        warmup_steps=round(cfg.warmup_epochs * steps_per_epoch),
        total_steps=total_steps,
        plateau=plateau,
        power=cfg.poly_power,
    )


class SGD(OnVariableDevice, keras.optimizers.SGD):
    """Keras's SGD with momentum, each variable's update one XLA-compiled pass on its device.

    The update is the paper's rule, v <- momentum * v - lr * g, w <- w + v. Keras
    computes it as one TensorFlow op per arithmetic step, each a pass over the
    61 million weights, and assigns copies; compiled, it is one pass that writes
    velocity and weight in place (#11: about 10 % more images/s for the one-tower
    network in mixed_bfloat16 on a CPU, README "Performance"). It runs on the
    variable's device: without a tf.distribute strategy (single, Horovod) an op
    without a device lands on the first one, and with the towers on two devices
    every tower-b gradient and momentum would cross over and back each step.
    """

    skip_non_finite = False

    def momentum_of(self, variable):
        """The momentum slot of `variable` (one of the variables the optimizer was built for)."""
        return self.momentums[self._get_variable_index(variable)]

    def slots_of(self, variable) -> list:
        """The optimizer's state for `variable`: its momentum, if any."""
        return [self.momentum_of(variable)] if self.momentum else []

    def update_step(self, gradient, variable, learning_rate):
        if not self.momentum:
            with tf.device(variable.device):
                return super().update_step(gradient, variable, learning_rate)
        velocity = self.local_copy(self.momentum_of(variable), variable)
        with tf.device(variable.device):
            _momentum_update(
                gradient, variable, velocity, tf.cast(learning_rate, variable.dtype),
                self.momentum, self.skip_non_finite,
            )  # fmt: skip


class SkippingSGD(SGD):
    """SGD with momentum whose update is a no-op for a gradient that is not finite.

    With dynamic loss scaling a step whose gradients overflowed must be skipped:
    weights and momenta untouched. The step makes every gradient non-finite when
    any gradient on any replica is (see training/step.py), so every variable skips
    together. Choosing with `where` instead of a `tf.cond` around `apply_gradients`
    keeps the all-reduce out of a conditional branch, which tf.distribute does
    not allow and which would hang workers that disagreed.
    """

    skip_non_finite = True

    def update_step(self, gradient, variable, learning_rate):
        if self.momentum:
            return super().update_step(gradient, variable, learning_rate)
        with tf.device(variable.device):
            gradient = tf.cast(gradient, variable.dtype)
            finite = tf.reduce_all(tf.math.is_finite(gradient))
            lr = tf.cast(learning_rate, variable.dtype)
            variable.assign_sub(tf.where(finite, gradient * lr, tf.zeros_like(gradient)))


@tf.function(jit_compile=True)
def _momentum_update(gradient, variable, velocity, learning_rate, momentum, skip_non_finite):
    gradient = tf.cast(gradient, variable.dtype)
    new_velocity = velocity * momentum - gradient * learning_rate
    if skip_non_finite:
        finite = tf.reduce_all(tf.math.is_finite(gradient))
        new_velocity = tf.where(finite, new_velocity, velocity)
        variable.assign_add(tf.where(finite, new_velocity, tf.zeros_like(new_velocity)))
    else:
        variable.assign_add(new_velocity)
    velocity.assign(new_velocity)


def decays_itself(cfg: OptimConfig) -> bool:
    """Whether the optimizer of `cfg` applies the weight decay (LARS and LAMB: it enters
    their per-layer rates), so that the train step must not add it to the gradients."""
    return cfg.name in ("lars", "lamb")


def build_optimizer(
    cfg: OptimConfig,
    model: keras.Model,
    schedule: LearningRate | float,
    skip_non_finite: bool = False,
) -> keras.optimizers.Optimizer:
    """The optimizer of `cfg` (SGD with momentum, LARS or LAMB) on `schedule`, its slots
    built for `model`.

    SGD's weight decay is applied by the train step; LARS and LAMB apply their own
    (`decays_itself`). Call this (and build_schedule) in the runtime's scope: the
    slots and the plateau state are created there, next to their variables, and not
    lazily in the first step, where a tf.distribute replica context cannot create
    them. `skip_non_finite` (dynamic loss scaling) leaves weights and slots untouched
    in a step whose gradients are not finite.
    """
    # A model whose layers are split (the 2014 hybrid) says which variables make one layer,
    # and how to sum over the shards other ranks hold: layer-wise norms are over all of them.
    split = {
        "layers": model.layer_shards() if hasattr(model, "layer_shards") else [],
        "sum_over_shards": getattr(model, "sum_over_shards", None),
    }
    if cfg.name == "lars":
        from alexnet_dist.training.lars import LARS

        optimizer = LARS(
            schedule, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
            trust_coefficient=cfg.trust_coefficient, exclude=cfg.exclude_from_adaptation,
            skip_non_finite=skip_non_finite, **split,
        )  # fmt: skip
    elif cfg.name == "lamb":
        from alexnet_dist.training.lamb import Lamb

        optimizer = Lamb(
            schedule, weight_decay=cfg.weight_decay, exclude=cfg.exclude_from_adaptation,
            skip_non_finite=skip_non_finite, beta_1=cfg.beta_1, beta_2=cfg.beta_2,
            epsilon=cfg.epsilon, **split,
        )  # fmt: skip
    else:
        sgd = SkippingSGD if skip_non_finite else SGD
        optimizer = sgd(learning_rate=schedule, momentum=cfg.momentum)
    optimizer.build(model.trainable_variables)
    return optimizer
