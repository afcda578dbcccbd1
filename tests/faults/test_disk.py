"""The checkpoint disk fills up; the run directory is not writable."""

import os
import re
import shutil
import subprocess

import pytest
import tensorflow as tf

from tests.faults.conftest import assert_readable, tmpfs, train
from tests.helpers import finish, run_cli

pytestmark = [pytest.mark.faults]


def _size_kb(files) -> int:
    return sum(f.stat().st_size for f in files) // 1024


@pytest.mark.fault_disk_full
@pytest.mark.slow
def test_disk_full_while_writing_a_checkpoint_stops_and_the_previous_one_resumes(tmp_path):
    # Fault: the disk of the checkpoints fills up mid-run. Behaviour: the write fails at
    # once (ENOSPC); the run stops with an error naming the directory and the newest
    # complete checkpoint, and removes its partial files. Lost: the steps since that
    # checkpoint. A rerun with space resumes from it.
    run_dir = tmp_path / "run"
    code, _, err = finish(train(run_dir, "trainer.max_steps=2"))
    assert code == 0, err[-3000:]
    saved = run_dir / "checkpoints"
    kept = tmp_path / "kept"
    shutil.move(saved, kept)
    # Room for what is there (ckpt-2 and best/best-2) and half a checkpoint more: the
    # checkpoint at step 4 cannot fit.
    one = _size_kb(kept.glob("ckpt-2.*"))
    with tmpfs(saved, _size_kb(kept.rglob("*.*")) + one // 2 + 64):
        shutil.copytree(kept, saved, dirs_exist_ok=True)
        code, out, err = finish(
            train(run_dir, "trainer.max_steps=6", "trainer.checkpoint_every_steps=2")
        )
        assert code == 1, out[-2000:] + err[-3000:]
        assert re.search(
            rf"alexnet-train: writing checkpoint ckpt-4 in {saved} failed: .*No space left on "
            rf"device\. The newest complete checkpoint is {saved}/ckpt-2; make room",
            err,
        ), err[-3000:]
        assert not [n for n in os.listdir(saved) if n.endswith("_temp")]  # no partial files
        assert tf.train.latest_checkpoint(str(saved)) == f"{saved}/ckpt-2"
        assert_readable(f"{saved}/ckpt-2")
        subprocess.run(["mount", "-o", "remount,size=65536k", str(saved)], check=True)  # space
        code, out, err = finish(
            train(run_dir, "trainer.max_steps=6", "trainer.checkpoint_every_steps=2")
        )
        assert code == 0, err[-3000:]
        assert f"resumed from {saved}/ckpt-2 (step 2" in out
        assert "finished at step 6" in out


@pytest.mark.fault_unwritable
def test_read_only_run_directory_is_named_before_any_work(tmp_path):
    # Fault: hydra.run.dir is on a read-only file system (or not the user's). Behaviour:
    # an error naming it before Hydra writes and before TensorFlow loads. Lost: nothing.
    with tmpfs(tmp_path / "ro", 1024, "ro"):
        result = run_cli(
            ["-m", "alexnet_dist.cli.train", "debug=tiny", f"hydra.run.dir={tmp_path}/ro/run"],
            timeout=120,
        )
    assert result.returncode == 1
    assert (
        f"alexnet-train: error: the run directory {tmp_path}/ro/run (hydra.run.dir) is not "
        f"writable: cannot create files in {tmp_path}/ro: Read-only file system" in result.stderr
    ), result.stderr[-2000:]
    assert "Traceback" not in result.stderr


@pytest.mark.fault_unwritable
def test_read_only_checkpoints_of_an_existing_run_are_named(tmp_path):
    # Resuming a run whose checkpoints/ became read-only: named before any training.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with tmpfs(run_dir / "checkpoints", 1024, "ro"):
        result = run_cli(
            ["-m", "alexnet_dist.cli.train", "debug=tiny", f"hydra.run.dir={run_dir}"], timeout=120
        )
    assert result.returncode == 1
    assert (
        f"is not writable: cannot create files in {run_dir}/checkpoints: Read-only file system"
        in result.stderr
    ), result.stderr[-2000:]
