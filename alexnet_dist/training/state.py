"""The training state (model, optimizer, schedule, loss scale, checkpointer), built and
restored, and the train and eval steps that advance and measure it.

Everything is created in the runtime's scope, with the model's towers on the
devices the runtime gives each replica; then the newest checkpoint is
restored, Horovod broadcasts rank 0's state, and each replica's dropout state
is offset so that replicas draw their own masks.
"""

import dataclasses
import logging
from collections.abc import Callable

import keras
import tensorflow as tf

from alexnet_dist.config import Config
from alexnet_dist.data import sources
from alexnet_dist.distribute import Runtime, devices
from alexnet_dist.distribute.allreduce_timing import time_all_reduce
from alexnet_dist.models import build_alexnet
from alexnet_dist.models.traffic import hybrid_traffic, tower_traffic
from alexnet_dist.training.checkpoint import Checkpointer, checkpoint_dir
from alexnet_dist.training.checkpoint_twin import one_device_twin
from alexnet_dist.training.loss_scale import LossScale
from alexnet_dist.training.optimizer import LearningRate, build_optimizer, build_schedule
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
    towers = runtime.tower_devices
    with runtime.scope():
        model = build_alexnet(
            cfg.model.variant,
            num_classes=num_classes,
            image_size=cfg.model.image_size,
            width=cfg.model.width,
            dropout=cfg.model.dropout,
            tower_devices=towers,
            init=cfg.model.init,
            rank_group=runtime.rank_group,
        )
        schedule = build_schedule(cfg.optim, global_batch, steps_per_epoch, total_steps)
        fp16 = cfg.precision.policy == "mixed_float16"

        def make_optimizer(m):
            return build_optimizer(cfg.optim, m, schedule, skip_non_finite=fp16)

        optimizer = make_optimizer(model)
        extra = {}  # what else a resumed run must continue from
        if schedule.plateau is not None:
            extra["plateau"] = schedule.plateau
        loss_scale = None
        if fp16:
            loss_scale = extra["loss_scale"] = LossScale(
                cfg.precision.initial_loss_scale, cfg.precision.loss_scale_growth_steps
            )
        checkpointer = Checkpointer(
            checkpoint_dir(run_dir),
            model,
            optimizer,
            cfg.trainer.keep_checkpoints,
            runtime.is_chief,
            twin=one_device_twin(model, optimizer, make_optimizer),
            **extra,
        )
    twin = checkpointer.twin
    if towers or twin:
        _log_traffic(cfg, twin.model if twin else model, towers, global_batch, runtime)
    checkpointer.restore_latest()
    # Same start everywhere: rank 0's initial or restored weights and optimizer state,
    # but not the same dropout masks: each replica draws its own. A model spread over
    # devices or ranks is made the same in its one-device form, which every process holds.
    if twin:
        twin.gather()
    runtime.prepare(
        (twin.variables if twin else model.variables + optimizer.variables)
        + [checkpointer.epoch, checkpointer.evaluated_step]
        + [v for module in extra.values() for v in module.variables],
        twin.rng_states if twin else checkpointer.rng_states,
    )
    if twin:
        twin.scatter()
    # What each step spends summing gradients, next to its time (a collective: not
    # before an elastic run's first synchronisation).
    if runtime.num_replicas > 1 and not runtime.elastic:
        log.info(time_all_reduce(runtime, model.trainable_variables).describe())

    jit_compile = cfg.trainer.jit_compile
    if jit_compile is None:
        jit_compile = devices.xla_by_default(towers) and runtime.rank_group is None
    train_step = make_train_step(
        model, optimizer, runtime, global_batch, cfg.optim.weight_decay,
        jit_compile=jit_compile, stop_flag=stop_flag,
        label_smoothing=cfg.optim.label_smoothing, loss_scale=loss_scale,
        model_input=sources.model_input(cfg),
    )  # fmt: skip
    eval_step = make_eval_step(model, runtime, sources.model_input(cfg))
    return TrainState(
        model, optimizer, schedule, loss_scale, checkpointer, train_step, eval_step,
        steps_per_epoch, total_steps,
    )  # fmt: skip


def _log_traffic(cfg: Config, model, towers, global_batch: int, runtime: Runtime) -> None:
    """What a step moves between a replica's devices (the towers', or the one-device form
    of the 2014 hybrid's, over K devices or K ranks)."""
    compute = keras.mixed_precision.dtype_policy().compute_dtype  # float32, bfloat16, float16
    sizes = {
        "activation_bytes": 4 if compute == "float32" else 2,
        "gradient_bytes": 2 if cfg.distribute.fp16_allreduce else 4,
    }
    if cfg.distribute.owt_hybrid:
        k = len(towers) if towers else runtime.rank_group.size
        per_device = global_batch // runtime.num_replicas // (k if towers else 1)
        log.info("%s", hybrid_traffic(model, devices=k, **sizes).describe(per_device))
        return
    traffic = tower_traffic(model, **sizes)
    replica_batch = global_batch // runtime.num_replicas
    log.info("towers: a on %s, b on %s; %s", *towers, traffic.describe(replica_batch))
