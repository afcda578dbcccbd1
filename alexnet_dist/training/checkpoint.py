"""Checkpoints of the whole training state: the last K, the best by validation top-1, and resume.

Writes are atomic through TensorFlow's protocol: a checkpoint's files are written
under temporary names and renamed, and only then does the `checkpoint` state
file (itself replaced atomically) name it. A crash mid-write leaves the previous
checkpoint as the newest; a failed write (a full disk, a lost mount) removes
its partial files and stops the run with a CheckpointError that names the
directory and the checkpoint it can resume from. If the newest is unreadable
anyway (a truncated copy, a bad disk), resume moves it into `unreadable/` and
falls back to the one before.
"""

import contextlib
import glob
import json
import logging
import os
import shutil
import tempfile

import tensorflow as tf

from alexnet_dist.distribute.one_device import OneDeviceForm

log = logging.getLogger(__name__)

BEST_NAME = "best"


class CheckpointError(RuntimeError):
    """No checkpoint in the run directory can be restored; the message names them."""


class Checkpointer:
    """Saves and restores model, optimizer (slots, step count), epoch and extra state,
    in the model's one-device form (distribute/one_device.py), whatever its layout.

    Every process restores from `directory`. Every process also saves, since with
    tf.distribute saving may take part in collectives, but only the chief saves
    into `directory`: the others (`write=False`) save into a scratch folder that
    they delete, so a multi-worker job keeps one set of checkpoints in its shared
    run directory.

    `directory` keeps the newest `keep` checkpoints (ckpt-<step>) and, in
    `directory/best/`, the one with the best validation top-1 so far, with its
    metrics in best.json.
    """

    def __init__(
        self,
        directory: str,
        form: OneDeviceForm,
        keep: int,
        write: bool = True,
        **state: tf.Module,
    ):
        """`form`: the model and optimizer in the form they are saved in; `state`: further
        trackables to checkpoint (the plateau schedule, the loss scale)."""
        self.directory = directory
        self.keep = keep
        # The optimizer comes built (its slots exist), so restore fills them.
        self.form = form
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        # The step of the last evaluation: a run stopped between an epoch's last step
        # and its evaluation evaluates first when it resumes (the plateau rule needs it).
        self.evaluated_step = tf.Variable(-1, dtype=tf.int64, trainable=False, name="evaluated")
        # Restore must match the core state exactly (a different model is an error);
        # the rest may be missing from a checkpoint, e.g. when a run switches to the
        # plateau schedule or to mixed_float16 on resume: it then starts fresh.
        # Dropout's random state is not among the model's checkpointed weights;
        # without it a resumed run would draw other masks than an uninterrupted one.
        self._core = {
            "model": form.model,
            "optimizer": form.optimizer,
            "epoch": self.epoch,
            "rng_states": form.rng_states,
        }
        self._optional = {"evaluated_step": self.evaluated_step, **state}
        self._checkpoint = tf.train.Checkpoint(**self._core, **self._optional)
        self._scratch = None
        self.set_write(write)
        self.best_top1 = self._read_best().get("top1", -1.0)

    def set_write(self, write: bool) -> None:
        """Whether this process saves into `directory`: the chief's role, which moves
        when elastic Horovod loses rank 0."""
        if getattr(self, "write", None) == write:
            return
        self.close()
        self.write = write
        self._scratch = None if write else tempfile.mkdtemp(prefix="alexnet-ckpt-")
        root = self.directory if write else self._scratch
        self._manager = self._make_manager(root, self.keep, "ckpt")
        self._best = self._make_manager(os.path.join(root, BEST_NAME), 1, BEST_NAME)

    def _make_manager(self, directory: str, keep: int, name: str):
        return tf.train.CheckpointManager(
            self._checkpoint, directory, max_to_keep=keep if self.write else 1, checkpoint_name=name
        )

    @property
    def step(self) -> int:
        return int(self.form.iterations.numpy())

    def _candidates(self) -> list[str]:
        state = tf.train.get_checkpoint_state(self.directory)
        return list(reversed(state.all_model_checkpoint_paths)) if state else []

    def restore_latest(self) -> str | None:
        """Restores the newest readable checkpoint in the directory; returns its path, or None.

        Raises:
            CheckpointError: there are checkpoints and none of them can be read.
        """
        candidates = self._candidates()
        unreadable, reasons = [], []
        for path in candidates:
            path = path if os.path.isabs(path) else os.path.join(self.directory, path)
            try:
                self._restore(path)
            # Readers fail in many ways on a damaged file (OpError, IndexError, ...);
            # a mismatch with the model (AssertionError) is reported the same way.
            except Exception as e:  # noqa: BLE001
                reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200]}"
                reasons.append(reason)
                log.warning("checkpoint %s is unreadable (%s); trying the one before", path, reason)
                unreadable.append(path)
                continue
            self.form.scatter()
            if unreadable:
                self._set_aside(unreadable, path)
                log.warning(
                    "resumed from %s, an earlier checkpoint than the newest; the unreadable "
                    "one(s) were moved to %s", path, os.path.join(self.directory, "unreadable"),
                )  # fmt: skip
            epoch = int(self.epoch.numpy())
            log.info("resumed from %s (step %d, epoch %d)", path, self.step, epoch)
            return path
        if unreadable:
            raise CheckpointError(
                f"no checkpoint in {self.directory} can be restored (tried "
                f"{', '.join(os.path.basename(p) for p in unreadable)}; the newest: "
                f"{reasons[0]}); move them away to start over, or point hydra.run.dir at a "
                "new directory"
            )
        return None

    def _restore(self, path: str) -> None:
        tf.train.Checkpoint(**self._core).restore(path).assert_existing_objects_matched()
        saved = {
            name.split("/")[0]
            for name in tf.train.load_checkpoint(path).get_variable_to_shape_map()
        }
        for name, trackable in self._optional.items():
            if name in saved:
                tf.train.Checkpoint(**{name: trackable}).restore(path).expect_partial()
            else:
                log.info("%s has no %s state; it starts afresh", path, name)

    def _set_aside(self, unreadable: list[str], restored: str) -> None:
        """Moves unreadable checkpoints out of the manager's way, keeping their files."""
        if not self.write:
            return
        aside = os.path.join(self.directory, "unreadable")
        os.makedirs(aside, exist_ok=True)
        for prefix in unreadable:
            for f in glob.glob(glob.escape(prefix) + ".*"):
                shutil.move(f, os.path.join(aside, os.path.basename(f)))
        remaining = [p for p in reversed(self._candidates()) if p not in unreadable]
        tf.compat.v1.train.update_checkpoint_state(
            self.directory, restored, all_model_checkpoint_paths=remaining
        )
        self._manager = self._make_manager(self.directory, self.keep, "ckpt")

    def save(self, epoch: int) -> str | None:
        """Saves a checkpoint numbered by the global step (chief only); returns its path.

        Args:
            epoch: completed epochs at this step.
        """
        self.epoch.assign(epoch)
        latest = self._manager.latest_checkpoint
        if latest and latest.endswith(f"-{self.step}"):
            return latest if self.write else None  # this step is saved already
        self.form.gather()
        with self._writing(f"ckpt-{self.step}", self._manager.directory):
            path = self._manager.save(checkpoint_number=self.step)
        return path if self.write else None

    def save_if_best(self, epoch: int, metrics: dict[str, float]) -> str | None:
        """Keeps this state as `best/` if its validation top-1 beats every earlier one.

        Every worker calls it with the same all-reduced metrics, so all take the
        same branch (saving may be collective). Returns the path when saved.
        """
        if metrics["top1"] <= self.best_top1:
            return None
        self.best_top1 = metrics["top1"]
        self.epoch.assign(epoch)
        self.form.gather()
        with self._writing(f"best-{self.step}", self._best.directory):
            path = self._best.save(checkpoint_number=self.step)
            if not self.write:
                return None
            info = {"path": os.path.basename(path), "step": self.step, "epoch": epoch, **metrics}
            target = os.path.join(self.directory, BEST_NAME, "best.json")
            with open(target + ".tmp", "w") as f:
                json.dump(info, f, indent=1)
            os.replace(target + ".tmp", target)
        return path

    @contextlib.contextmanager
    def _writing(self, name: str, directory: str):
        """Turns a failed checkpoint write into a CheckpointError, leaving no partial files."""
        try:
            yield
        except (tf.errors.OpError, OSError) as e:
            for partial in glob.glob(os.path.join(glob.escape(directory), "*_temp")):
                shutil.rmtree(partial, ignore_errors=True)  # TensorFlow's unfinished write
            reason = e.message if isinstance(e, tf.errors.OpError) else str(e)
            reason = reason.split("}}")[-1].split("[Op:")[0].strip()
            latest = self._manager.latest_checkpoint
            raise CheckpointError(
                f"writing checkpoint {name} in {directory} failed: {reason}. The newest "
                f"complete checkpoint is {latest or 'none (nothing saved yet)'}; make room or "
                "fix the directory, then run again in this run directory to resume from it"
            ) from None

    def _read_best(self) -> dict:
        try:
            with open(os.path.join(self.directory, BEST_NAME, "best.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    @property
    def saved(self) -> list[str]:
        return list(self._manager.checkpoints) if self.write else []

    def close(self) -> None:
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


def checkpoint_dir(run_dir: str) -> str:
    return os.path.join(run_dir, "checkpoints")


def best_checkpoint(run_dir_or_checkpoints: str) -> str | None:
    """The best checkpoint's path prefix under a run (or its checkpoints) directory, if any."""
    for directory in (run_dir_or_checkpoints, checkpoint_dir(run_dir_or_checkpoints)):
        path = tf.train.latest_checkpoint(os.path.join(directory, BEST_NAME))
        if path:
            return path
    return None
