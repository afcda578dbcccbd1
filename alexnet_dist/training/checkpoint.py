"""Checkpoints of the whole training state, and resume from the newest one in the run directory."""

import logging
import os
import shutil
import tempfile

import keras
import tensorflow as tf

log = logging.getLogger(__name__)


class Checkpointer:
    """Saves and restores model, optimizer (slots, step count) and epoch.

    Every process restores from `directory`. Every process also saves, since with
    tf.distribute saving may take part in collectives, but only the chief saves
    into `directory`: the others (`write=False`) save into a scratch folder that
    they delete, so a multi-worker job keeps one set of checkpoints in its shared
    run directory.
    """

    def __init__(
        self,
        directory: str,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        keep: int,
        write: bool = True,
    ):
        self.directory = directory
        self.write = write
        # The optimizer comes built (its slots exist), so restore fills them.
        self.optimizer = optimizer
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        # Dropout's random state is not among the model's checkpointed weights;
        # without it a resumed run would draw other masks than an uninterrupted one.
        rng = [v for v in model.non_trainable_variables if "seed_generator" in v.path]
        self._checkpoint = tf.train.Checkpoint(
            model=model, optimizer=optimizer, epoch=self.epoch, rng_states=rng
        )
        self._scratch = None if write else tempfile.mkdtemp(prefix="alexnet-ckpt-")
        self._manager = tf.train.CheckpointManager(
            self._checkpoint,
            directory if write else self._scratch,
            max_to_keep=keep if write else 1,
            checkpoint_name="ckpt",
        )

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    def restore_latest(self) -> str | None:
        """Restores the newest checkpoint in the directory; returns its path, or None if none."""
        path = tf.train.latest_checkpoint(self.directory)
        if path is None:
            return None
        self._checkpoint.restore(path).assert_existing_objects_matched()
        log.info("resumed from %s (step %d, epoch %d)", path, self.step, int(self.epoch.numpy()))
        return path

    def save(self, epoch: int) -> str | None:
        """Saves a checkpoint numbered by the global step (chief only); returns its path.

        Args:
            epoch: completed epochs at this step.
        """
        self.epoch.assign(epoch)
        if self._manager.latest_checkpoint and self._manager.latest_checkpoint.endswith(
            f"-{self.step}"
        ):
            return self._manager.latest_checkpoint  # this step is saved already
        path = self._manager.save(checkpoint_number=self.step)
        return path if self.write else None

    @property
    def saved(self) -> list[str]:
        return list(self._manager.checkpoints) if self.write else []

    def close(self) -> None:
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)


def checkpoint_dir(run_dir: str) -> str:
    return os.path.join(run_dir, "checkpoints")
