"""The outer training loop: data, model and optimizer, steps, evaluation, checkpoints, summaries."""

import dataclasses
import logging
import math
import time

import keras
import tensorflow as tf

from alexnet_dist.config import Config
from alexnet_dist.data import sources
from alexnet_dist.data.schema import DataError
from alexnet_dist.distribute.backends import create_runtime
from alexnet_dist.distribute.runtime import Runtime
from alexnet_dist.training.checkpoint import Checkpointer, best_checkpoint
from alexnet_dist.training.evaluation import evaluate
from alexnet_dist.training.preemption import EXIT_PREEMPTED, PreemptionFlag
from alexnet_dist.training.run_dir import write_run_info
from alexnet_dist.training.state import TrainState, build_state
from alexnet_dist.training.summaries import Meter, Summaries, conv1_filters, input_grid

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; nothing was saved after it."""


def train(cfg: Config, run_dir: str) -> dict:
    """Trains AlexNet as `cfg` says, resuming from the newest checkpoint in `run_dir`.

    Returns:
        {"step", "epoch", "val": {loss, top1, top5}, "run_dir", "is_chief", "checkpoints",
        "tensorboard", "preempted"}. "preempted" is the signal's name when SIGTERM or
        SIGUSR1 stopped the run after saving a checkpoint, else None.

    Raises:
        NonFiniteLossError: the loss became NaN or infinite (the newest checkpoint
            is the last one written before).
    """
    previous_policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(cfg.precision.policy)
    try:
        with PreemptionFlag() as preemption:
            return _train(cfg, run_dir, preemption)
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)


def _train(cfg: Config, run_dir: str, preemption: PreemptionFlag) -> dict:
    if cfg.trainer.deterministic_ops:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(cfg.trainer.seed)
    runtime = create_runtime(cfg.distribute, cfg.model.tower_devices)
    preemption.install()
    global_batch = cfg.data.global_batch_size
    source = sources.create(cfg.data)
    if runtime.is_chief:  # for alexnet-eval and alexnet-export
        write_run_info(run_dir, cfg, source.labels)
    parts = runtime.input_pipelines
    source.check_workers(cfg.data.train_split, parts)  # before any worker waits
    steps_per_epoch = source.steps_per_epoch(cfg.data.train_split, global_batch, parts)
    total_steps = steps_per_epoch * cfg.trainer.epochs
    if cfg.trainer.max_steps:
        total_steps = min(total_steps, cfg.trainer.max_steps)
    state = build_state(
        cfg, runtime, run_dir, len(source.labels), steps_per_epoch, total_steps, preemption.flag
    )
    return runtime.run(lambda: _epochs(cfg, run_dir, runtime, source, state, preemption))


def _epochs(cfg, run_dir, runtime: Runtime, source, state: TrainState, preemption) -> dict:
    """The epochs from the state's step on; run again from a commit by elastic Horovod
    after the workers changed, so everything that depends on them is made here."""
    logging.getLogger("alexnet_dist").setLevel(
        logging.INFO if runtime.is_chief else logging.WARNING
    )
    model, optimizer, schedule = state.model, state.optimizer, state.schedule
    loss_scale, checkpointer = state.loss_scale, state.checkpointer
    train_step, eval_step = state.train_step, state.eval_step
    checkpointer.set_write(runtime.is_chief)
    steps_per_epoch, total_steps = state.steps_per_epoch, state.total_steps
    global_batch = cfg.data.global_batch_size
    replica_batch = runtime.per_replica_batch(global_batch, "data.global_batch_size")
    eval_batch = runtime.per_replica_batch(cfg.data.eval_batch_size, "data.eval_batch_size")
    source.check_workers(cfg.data.val_split, runtime.num_workers)
    val_spec = sources.input_spec(cfg, False, eval_batch)
    val_batches = runtime.distribute_dataset(
        lambda ctx: source.dataset(val_spec, input_context=ctx)
    )
    summaries = Summaries(run_dir, write=runtime.is_chief)
    summaries.hparams(dataclasses.asdict(cfg), [("val", "top1"), ("val", "top5"), ("val", "loss")])
    profile = cfg.trainer.profile_steps if runtime.is_chief else None

    log.info(
        "AlexNet %s: %s parameters, %d classes, input %dx%d; %d training images of %s, "
        "global batch %d (%d per replica x %d replicas), %d steps per epoch, %d steps in all",
        cfg.model.variant + ("-BN" if cfg.model.batch_norm else ""), f"{model.count_params():,}",
        len(source.labels), cfg.model.image_size,
        cfg.model.image_size, source.num_examples(cfg.data.train_split), source.description,
        global_batch, replica_batch, runtime.num_replicas, steps_per_epoch, total_steps,
    )  # fmt: skip
    step = checkpointer.step
    val: dict[str, float] = {}

    def evaluate_epoch() -> dict[str, float]:
        metrics = evaluate(cfg, eval_step, source, val_batches)
        summaries.scalars("val", step, metrics)
        log.info(
            "epoch %d/%d validation: loss %.4f  top-1 %.4f  top-5 %.4f",
            math.ceil(step / steps_per_epoch), cfg.trainer.epochs, metrics["loss"],
            metrics["top1"], metrics["top5"],
        )  # fmt: skip
        _after_evaluation(metrics, step, steps_per_epoch, schedule, checkpointer)
        summaries.image("val", step, "conv1_filters", conv1_filters(model), _FILTERS_TEXT)
        checkpointer.evaluated_step.assign(step)
        return metrics

    at_epoch_end = step > 0 and (step % steps_per_epoch == 0 or step == total_steps)
    if at_epoch_end and int(checkpointer.evaluated_step.numpy()) != step:
        # Preempted between the epoch's last step and its evaluation, or elastic Horovod
        # stopped there: evaluate, and save what the epoch's end saves.
        val = evaluate_epoch()
        if step % cfg.trainer.checkpoint_every_steps == 0:
            checkpointer.save(step // steps_per_epoch)
    # One input for all the epochs left (`pipeline.training_epochs` says why).
    spec = sources.input_spec(cfg, True, replica_batch, run_dir)
    epochs = range(step // steps_per_epoch, -(-total_steps // steps_per_epoch))
    skip = step - epochs.start * steps_per_epoch
    iterator = iter(runtime.distribute_dataset(
        lambda ctx: source.training_input(spec, epochs, steps_per_epoch, skip, ctx)
    )) if epochs else None  # fmt: skip
    while step < total_steps:
        epoch = step // steps_per_epoch
        epoch_end = min((epoch + 1) * steps_per_epoch, total_steps)
        meter = Meter()
        first = True
        while True:
            waited = time.perf_counter()
            with source.reading(cfg.data.train_split):
                batch = next(iterator, None)
            if batch is None:  # a source that holds fewer images than it said
                raise DataError(
                    f"the training input of epoch {epoch + 1} ended after step {step}, "
                    f"before the epoch's last step {epoch_end} ({source.description})"
                )
            waited = time.perf_counter() - waited
            if first:  # what the network sees, after augmentation
                grid = input_grid(runtime.first_replica(batch)[0])
                summaries.image("train", step + 1, "augmented_inputs", grid, _INPUTS_TEXT)
                first = False
            preemption.sync()
            if profile and step + 1 == profile[0]:
                tf.profiler.experimental.start(summaries.logdir)
            sums = train_step(batch)
            step += 1
            if profile and step == profile[1]:
                tf.profiler.experimental.stop()
                log.info("profile of steps %d-%d written to %s", *profile, summaries.logdir)
            stop = float(sums.pop("stop")) > 0
            _check_finite(sums, step, checkpointer)
            meter.add(sums, data_wait=waited)
            if step % cfg.trainer.log_every_steps == 0 or step == epoch_end:
                _report(summaries, meter, optimizer, loss_scale, epoch, step, total_steps,
                        cfg.trainer.epochs)  # fmt: skip
            if stop:
                path = checkpointer.save(step // steps_per_epoch)
                log.warning(
                    "%s received: stopped at step %d after saving %s; exiting with code %d "
                    "so that the job is requeued (a rerun in this run directory resumes)",
                    preemption.signal or "preemption signal", step, path, EXIT_PREEMPTED,
                )  # fmt: skip
                checkpointer.close()
                summaries.close()
                return _result(step, steps_per_epoch, val, run_dir, runtime, checkpointer,
                               summaries, preempted=preemption.signal or "SIGTERM")  # fmt: skip
            if step < epoch_end and step % cfg.trainer.checkpoint_every_steps == 0:
                checkpointer.save(step // steps_per_epoch)
            # Last: elastic Horovod may stop here for a rank that joined, and the step is
            # then already reported and saved.
            runtime.step_done(step)
            if step >= epoch_end:
                break
        if step % steps_per_epoch == 0 or step == total_steps:
            val = evaluate_epoch()
        # After the evaluation, so that the checkpoint holds its plateau and best-so-far state.
        if step % cfg.trainer.checkpoint_every_steps == 0:
            checkpointer.save(step // steps_per_epoch)
    if not val:  # resumed at the end: still report where the model stands
        val = evaluate(cfg, eval_step, source, val_batches)
    checkpointer.save(step // steps_per_epoch)
    checkpointer.close()
    summaries.close()
    return _result(step, steps_per_epoch, val, run_dir, runtime, checkpointer, summaries)


def _check_finite(sums: dict, step: int, checkpointer: Checkpointer) -> None:
    """Stops the run, before anything is saved, at a non-finite loss or gradient."""
    loss = float(sums["loss_sum"])
    bad_grads = float(sums.pop("nonfinite", 0.0)) > 0
    if math.isfinite(loss) and not bad_grads:
        return
    what = f"loss is {loss}" if not math.isfinite(loss) else "gradients are not finite"
    raise NonFiniteLossError(
        f"the training {what} at step {step}; stopping without saving. "
        f"The newest checkpoint in {checkpointer.directory} is from before it "
        "(lower optim.lr, or check the input data)"
    )


def _result(step, steps_per_epoch, val, run_dir, runtime, checkpointer, summaries, preempted=None):
    return {
        "step": step,
        "epoch": step // steps_per_epoch,
        "val": val,
        "run_dir": run_dir,
        "is_chief": runtime.is_chief,
        "checkpoints": checkpointer.saved,
        "best": best_checkpoint(run_dir) if runtime.is_chief else None,
        "tensorboard": summaries.logdir,
        "preempted": preempted,
    }


_INPUTS_TEXT = "The first training images of the epoch after crop, flip and lighting noise."
_FILTERS_TEXT = (
    "conv1 kernels, each scaled to [0, 1]; two towers: tower a above tower b "
    "(the paper's Figure 3)."
)


def _after_evaluation(val, step, steps_per_epoch, schedule, checkpointer) -> None:
    """The plateau rule and the best checkpoint; the same decision on every worker.

    `val` is summed over all workers, so each reaches the same verdict without
    exchanging another message.
    """
    epoch = step // steps_per_epoch
    if schedule.plateau is not None and schedule.plateau.update(1.0 - val["top1"]):
        # A warning, so that every worker's log records the same decision.
        log.warning(
            "validation top-1 error %.4f has not improved on %.4f: learning rate divided by "
            "%g at step %d (drop %d of at most %d)",
            1.0 - val["top1"], float(schedule.plateau.best_error.numpy()),
            1 / schedule.plateau.factor, step, int(schedule.plateau.drops.numpy()),
            schedule.plateau.max_drops,
        )  # fmt: skip
    path = checkpointer.save_if_best(epoch, val)
    if path:
        log.info("best validation top-1 so far (%.4f): kept as %s", val["top1"], path)


def _report(summaries, meter, optimizer, loss_scale, epoch, step, total_steps, epochs):
    values = meter.result()
    values["lr"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    extra = ""
    if loss_scale is not None:
        values["loss_scale"] = float(loss_scale.scale.numpy())
        values["skipped_steps"] = meter.sums.get("skipped", 0.0)
        extra = f"  loss scale {values['loss_scale']:g} ({values['skipped_steps']:g} skipped)"
    summaries.scalars("train", step, values)
    log.info(
        "epoch %d/%d step %d/%d  loss %.4f  top-1 %.4f  top-5 %.4f  lr %.4g  %.1f img/s%s",
        epoch + 1, epochs, step, total_steps, values["loss"], values["top1"], values["top5"],
        values["lr"], values["images_per_sec"], extra,
    )  # fmt: skip
    meter.reset()


__all__ = ["train"]
