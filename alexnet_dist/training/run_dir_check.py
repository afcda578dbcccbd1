"""Before any work: the run directory must be writable, or the error names it.

A run writes its config, log, checkpoints and TensorBoard events under
hydra.run.dir. On a read-only mount, a full quota or a directory of another
user, Hydra's first write failed with a traceback, and a run that got past it
would fail at its first checkpoint. `WritableRunDir` (a Hydra callback, set in
conf/config.yaml) tries a write there before Hydra's first one.
"""

import os
import tempfile

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

CHECKPOINTS = "checkpoints"


def unwritable(directory: str) -> str | None:
    """Why files cannot be created in `directory` (or where it would be created), or None.

    Probes the directory and its checkpoints/ folder if they exist; otherwise the
    nearest existing parent, where the directory would be made.
    """
    path = os.path.abspath(directory)
    probes = [path, os.path.join(path, CHECKPOINTS)]
    probes = [p for p in probes if os.path.isdir(p)]
    if not probes:
        parent = path
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            return f"{parent} is a file, not a directory"
        probes = [parent]
    for probe in probes:
        try:
            fd, name = tempfile.mkstemp(prefix=".write-test-", dir=probe)
        except OSError as e:
            return f"cannot create files in {probe}: {e.strerror}"
        os.close(fd)
        os.unlink(name)
    return None


class WritableRunDir(Callback):
    """Stops with an error naming the run (or sweep) directory if it is not writable."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        _check(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        _check(config.hydra.sweep.dir, "hydra.sweep.dir")


def _check(directory: str, key: str) -> None:
    reason = unwritable(directory)
    if reason:
        raise SystemExit(
            f"alexnet-train: error: the run directory {os.path.abspath(directory)} ({key}) is "
            f"not writable: {reason}; point {key} at a writable directory"
        )
