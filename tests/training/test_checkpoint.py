"""Checkpoints: the last K, the best, atomic writes, and resume from the newest readable one."""

import glob
import json
import os

import pytest
import tensorflow as tf

from tests.helpers import TINY_RUN, run_cli

pytestmark = pytest.mark.slow  # the session's tiny run, resumed in processes of their own


def test_a_run_keeps_its_last_checkpoints_and_the_best(tiny_run):
    run_dir, _, _ = tiny_run
    ckpts = sorted(glob.glob(str(run_dir / "checkpoints" / "ckpt-*.index")))
    assert [os.path.basename(c) for c in ckpts] == [
        "ckpt-10.index",
        "ckpt-15.index",
        "ckpt-20.index",
    ]
    reader = tf.train.load_checkpoint(str(run_dir / "checkpoints" / "ckpt-20"))
    names = reader.get_variable_to_shape_map()
    assert "model/conv1_a/_kernel/.ATTRIBUTES/VARIABLE_VALUE" in names
    assert any("optimizer" in n and "iteration" in n for n in names)
    assert reader.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE") == 2
    best = json.loads((run_dir / "checkpoints" / "best" / "best.json").read_text())
    assert best["step"] in (10, 20)
    assert os.path.exists(run_dir / "checkpoints" / "best" / (best["path"] + ".index"))


def test_unreadable_newest_checkpoint_falls_back_to_the_one_before(tiny_run_copy):
    run_dir = tiny_run_copy  # ckpt-10, ckpt-15, ckpt-20
    ckpts = run_dir / "checkpoints"
    (data,) = glob.glob(str(ckpts / "ckpt-20.data-*"))
    with open(data, "r+b") as f:  # a truncated copy
        f.truncate(os.path.getsize(data) // 2)

    result = run_cli(
        ["-m", "alexnet_dist.cli.train", *TINY_RUN, f"hydra.run.dir={run_dir}", "trainer.epochs=3"]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert f"checkpoint {ckpts}/ckpt-20 is unreadable" in out
    assert f"resumed from {ckpts}/ckpt-15" in out
    assert "finished at step 30" in result.stdout
    assert (ckpts / "unreadable" / "ckpt-20.index").exists()  # set aside, not deleted
    assert os.path.getsize(ckpts / "unreadable" / os.path.basename(data)) > 0
    assert tf.train.latest_checkpoint(str(ckpts)).endswith("ckpt-30")
    reader = tf.train.load_checkpoint(str(ckpts / "ckpt-20"))  # written again, readable
    assert reader.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE") == 2


def test_no_readable_checkpoint_is_an_error_naming_them(tiny_run_copy):
    run_dir = tiny_run_copy
    for data in glob.glob(str(run_dir / "checkpoints" / "ckpt-*.data-*")):
        with open(data, "r+b") as f:
            f.truncate(10)
    result = run_cli(["-m", "alexnet_dist.cli.train", *TINY_RUN, f"hydra.run.dir={run_dir}"])
    assert result.returncode == 1
    tried = "tried ckpt-20, ckpt-15, ckpt-10;"
    assert f"no checkpoint in {run_dir}/checkpoints can be restored ({tried}" in result.stderr
    for step in (10, 15, 20):  # nothing deleted
        assert (run_dir / "checkpoints" / f"ckpt-{step}.index").exists()
