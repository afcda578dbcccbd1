"""SIGKILL (a node lost, the OOM killer) at seeded steps and in the middle of a checkpoint write.

Behaviour: the process dies at once; nothing is written after the kill, and a
checkpoint being written is left as TensorFlow's unfinished `*_temp` folder,
which no resume reads. Detection: immediate (the process is gone; a scheduler
or the launcher sees its exit). Lost: the steps since the newest checkpoint, at
most trainer.checkpoint_every_steps (a step's progress line comes before its
checkpoint). With trainer.deterministic_ops=true
the resumed run ends with exactly the weights of a run that was never killed.
"""

import os
import random
import re
import signal
import threading

import numpy as np
import pytest
import tensorflow as tf

from tests.faults.conftest import train
from tests.helpers import finish

pytestmark = [pytest.mark.faults, pytest.mark.fault_kill, pytest.mark.slow]

EVERY = 3  # trainer.checkpoint_every_steps
STEPS = 14  # debug=tiny: 10 steps per epoch, so the run crosses an epoch end and its evaluation
RUN = ["trainer.deterministic_ops=true", f"trainer.checkpoint_every_steps={EVERY}",
       f"trainer.max_steps={STEPS}"]  # fmt: skip


def newest_checkpoint(run_dir) -> int:
    """The step of the newest checkpoint the state file names (what a resume restores)."""
    path = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    return int(path.rsplit("-", 1)[1]) if path else 0


def kill_at_step(proc, step: int) -> int:
    """SIGKILLs once the progress line of `step` is out; returns the last step it printed."""
    last = 0
    for line in proc.stdout:
        found = re.search(r" step (\d+)/", line)
        if found:
            last = int(found.group(1))
            if last >= step:
                os.killpg(proc.pid, signal.SIGKILL)
                break
    finish(proc)
    return last


def kill_during_checkpoint_write(proc, checkpoints) -> str:
    """SIGKILLs as soon as a checkpoint write has begun (its `*_temp` folder exists)."""
    drained = threading.Thread(target=proc.communicate, daemon=True)  # keep the pipes empty
    drained.start()
    while proc.poll() is None:
        names = os.listdir(checkpoints) if checkpoints.exists() else []
        writing = [name for name in names if name.endswith("_temp")]
        if writing:
            os.killpg(proc.pid, signal.SIGKILL)
            drained.join(60)
            return writing[0]
    raise AssertionError(f"the run ended (code {proc.returncode}) before a checkpoint write")


def resumed_from(out: str) -> int:
    return int(re.search(r"resumed from \S+ckpt-(\d+) \(step", out).group(1))


def test_sigkill_at_seeded_steps_and_mid_checkpoint_then_resume_bit_identical(tmp_path):
    straight = train(tmp_path / "straight", *RUN)  # never killed, alongside

    run_dir = tmp_path / "killed"
    first, second = sorted(random.Random(2026).sample(range(2, STEPS - 3), 2))
    second = max(second, first + 2)
    killed_at = kill_at_step(train(run_dir, *RUN), first)
    newest = newest_checkpoint(run_dir)
    assert killed_at - newest <= EVERY, (killed_at, newest)  # lost: at most EVERY steps

    proc = train(run_dir, *RUN)
    killed_at = kill_at_step(proc, second)
    assert killed_at - newest_checkpoint(run_dir) <= EVERY

    # The third kill lands inside a checkpoint write: the unfinished one is never read.
    partial = kill_during_checkpoint_write(train(run_dir, *RUN), run_dir / "checkpoints")
    newest = newest_checkpoint(run_dir)
    assert int(re.fullmatch(r"ckpt-(\d+)_temp", partial).group(1)) > newest

    code, out, err = finish(train(run_dir, *RUN))
    assert code == 0, err[-3000:]
    assert resumed_from(out) == newest
    assert f"finished at step {STEPS}" in out

    code, out, err = finish(straight)
    assert code == 0, err[-3000:]
    a = tf.train.load_checkpoint(str(run_dir / "checkpoints" / f"ckpt-{STEPS}"))
    b = tf.train.load_checkpoint(str(tmp_path / "straight" / "checkpoints" / f"ckpt-{STEPS}"))
    names = sorted(n for n in b.get_variable_to_shape_map() if not n.startswith("save_counter"))
    assert (
        sorted(n for n in a.get_variable_to_shape_map() if not n.startswith("save_counter"))
        == names
    )
    for name in names:
        if name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH"):
            continue
        assert np.array_equal(a.get_tensor(name), b.get_tensor(name)), name  # bit-identical
