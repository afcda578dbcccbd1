"""`alexnet-train`: the Hydra entry point, as a user runs it."""

import json

import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.slow  # the command in a process of its own


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "data.global_batch_size=0",
            "alexnet-train: config error: data.global_batch_size must be positive, got 0",
        ),
        ("data.batchsize=3", "Key 'batchsize' not in 'DataConfig'"),
        ("model.width=wide", "model.width"),
    ],
)
def test_entry_point_rejects_bad_config_before_any_work(tmp_path, override, message):
    result = run_cli(
        ["-m", "alexnet_dist.cli.train", override, f"hydra.run.dir={tmp_path}/run",
         f"data.cache_dir={tmp_path}/cache"],
        timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert not (tmp_path / "cache").exists()  # failed before generating any data
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_missing_records_directory_is_named(tmp_path):
    result = run_cli(
        ["-m", "alexnet_dist.cli.train", "debug=tiny", "data=tfrecord", f"data.dir={tmp_path}/nope",
         "data.resize_size=72", f"hydra.run.dir={tmp_path}/run"],
        timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert f"data.dir='{tmp_path}/nope' does not exist" in result.stderr


def test_a_run_prints_its_progress_and_where_its_results_are(tiny_run):
    run_dir, out, _ = tiny_run
    assert f"run directory  {run_dir}" in out
    assert f"tensorboard --logdir {run_dir}/tensorboard" in out
    assert "finished at step 20" in out
    assert "img/s" in out  # console progress
    assert (run_dir / ".hydra" / "config.yaml").exists()
    result = json.loads((run_dir / "result.json").read_text())  # for sweeps and scripts
    assert result["step"] == 20 and set(result["val"]) == {"loss", "top1", "top5"}
