"""The training state (model, optimizer, schedule, loss scale, checkpointer), built and
restored, and the train and eval steps that advance and measure it.

Everything is created in the runtime's scope, the model where the runtime's
placement puts it; then the newest checkpoint is restored, Horovod broadcasts
rank 0's state, and each replica's dropout state is offset so that replicas
draw their own masks.
"""

import dataclasses
import logging
from collections.abc import Callable

import keras
import tensorflow as tf

from alexnet_dist.config import Config
from alexnet_dist.data import sources
from alexnet_dist.distribute.allreduce_timing import time_all_reduce
from alexnet_dist.distribute.placement import build_model, one_device_form
from alexnet_dist.distribute.runtime import Runtime
from alexnet_dist.training.checkpoint import Checkpointer, checkpoint_dir
from alexnet_dist.training.loss_scale import LossScale
from alexnet_dist.training.optimizer import (
    LearningRate,
    build_optimizer,
    build_schedule,
    decays_itself,
)
from alexnet_dist.training.step import make_eval_step, make_train_step

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainState:
    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    schedule: LearningRate
    loss_scale: LossScale | None  # mixed_float16 only
    checkpointer: Checkpointer
    train_step: Callable  # batch -> global sums (training.step.make_train_step)
    eval_step: Callable
    steps_per_epoch: int
    total_steps: int


def build_state(
    cfg: Config,
    runtime: Runtime,
    run_dir: str,
    num_classes: int,
    steps_per_epoch: int,
    total_steps: int,
    stop_flag: tf.Variable | None = None,
) -> TrainState:
    """The state of a run, restored from `run_dir`'s newest checkpoint and the same everywhere,
    and its steps; `stop_flag` is the preemption flag the train step shares between workers."""
    global_batch = cfg.data.global_batch_size
    placement = runtime.placement
    with runtime.scope():
        model = build_model(cfg.model, num_classes, placement)
        schedule = build_schedule(cfg.optim, global_batch, steps_per_epoch, total_steps)
        fp16 = cfg.precision.policy == "mixed_float16"

        def make_optimizer(m):
            return build_optimizer(cfg.optim, m, schedule, skip_non_finite=fp16)

        optimizer = make_optimizer(model)
        form = one_device_form(model, optimizer, make_optimizer)
        extra = {}  # what else a resumed run must continue from
        if schedule.plateau is not None:
            extra["plateau"] = schedule.plateau
        loss_scale = None
        if fp16:
            loss_scale = extra["loss_scale"] = LossScale(
                cfg.precision.initial_loss_scale, cfg.precision.loss_scale_growth_steps
            )
        checkpointer = Checkpointer(
            checkpoint_dir(run_dir), form, cfg.trainer.keep_checkpoints, runtime.is_chief, **extra
        )
    compute = keras.mixed_precision.dtype_policy().compute_dtype  # float32, bfloat16, float16
    traffic = placement.traffic(
        form.model, global_batch, runtime.num_replicas,
        activation_bytes=4 if compute == "float32" else 2,
        gradient_bytes=2 if cfg.distribute.fp16_allreduce else 4,
    )  # fmt: skip
    if traffic:
        log.info("%s", traffic)
    checkpointer.restore_latest()
    # Same start everywhere: rank 0's initial or restored weights and optimizer state,
    # but not the same dropout masks: each replica draws its own. A model spread over
    # devices or ranks is made the same in its one-device form, which every process holds.
    form.gather()
    runtime.prepare(
        form.variables + [checkpointer.epoch, checkpointer.evaluated_step]
        + [v for module in extra.values() for v in module.variables],
        form.rng_states,
    )  # fmt: skip
    form.scatter()
    # What each step spends summing gradients, next to its time (a collective: not
    # before an elastic run's first synchronisation).
    if runtime.num_replicas > 1 and not runtime.elastic:
        log.info(time_all_reduce(runtime, model.trainable_variables).describe())

    jit_compile = cfg.trainer.jit_compile
    if jit_compile is None:
        jit_compile = placement.xla_by_default
    # LARS and LAMB apply the decay themselves: it enters their per-layer rates.
    step_decay = 0.0 if decays_itself(cfg.optim) else cfg.optim.weight_decay
    train_step = make_train_step(
        model, optimizer, runtime, global_batch, step_decay,
        jit_compile=jit_compile, stop_flag=stop_flag,
        label_smoothing=cfg.optim.label_smoothing, loss_scale=loss_scale,
        model_input=sources.model_input(cfg),
    )  # fmt: skip
    eval_step = make_eval_step(model, runtime, sources.model_input(cfg))
    return TrainState(
        model, optimizer, schedule, loss_scale, checkpointer, train_step, eval_step,
        steps_per_epoch, total_steps,
    )  # fmt: skip
