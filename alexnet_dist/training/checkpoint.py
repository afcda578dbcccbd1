"""Checkpoints of the whole training state, and resume from the newest one in the run directory."""

import logging
import os

import keras
import tensorflow as tf

log = logging.getLogger(__name__)


class Checkpointer:
    """Saves and restores model, optimizer (slots, step count) and epoch.

    Every process restores; only the chief writes (`write=False` elsewhere), so a
    multi-worker job keeps one set of checkpoints in its shared run directory.
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
        # The slots must exist before restore, or their saved values would be dropped.
        optimizer.build(model.trainable_variables)
        self.optimizer = optimizer
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        # Dropout's random state is not among the model's checkpointed weights;
        # without it a resumed run would draw other masks than an uninterrupted one.
        rng = [v for v in model.non_trainable_variables if "seed_generator" in v.path]
        self._checkpoint = tf.train.Checkpoint(
            model=model, optimizer=optimizer, epoch=self.epoch, rng_states=rng
        )
        self._manager = tf.train.CheckpointManager(
            self._checkpoint, directory, max_to_keep=keep, checkpoint_name="ckpt"
        )

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    def restore_latest(self) -> str | None:
        """Restores the newest checkpoint in the directory; returns its path, or None if none."""
        path = self._manager.latest_checkpoint
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
        if not self.write:
            return None
        if self._manager.latest_checkpoint and self._manager.latest_checkpoint.endswith(
            f"-{self.step}"
        ):
            return self._manager.latest_checkpoint  # this step is saved already
        return self._manager.save(checkpoint_number=self.step)

    @property
    def saved(self) -> list[str]:
        return list(self._manager.checkpoints)


def checkpoint_dir(run_dir: str) -> str:
    return os.path.join(run_dir, "checkpoints")
