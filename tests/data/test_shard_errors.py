"""Shards that are missing, damaged or hold a label outside the label map: errors that name them."""

import os

import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.slow  # runs in processes of their own


@pytest.mark.parametrize("damage, reason", [("truncate", "truncated"), ("flip", "corrupted")])
def test_damaged_shard_is_named(tmp_path, shapes_records, damage, reason):
    import shutil

    records, _ = shapes_records
    copy = tmp_path / "records"
    shutil.copytree(records, copy)
    damaged = copy / "train-00002-of-00004.tfrecord"
    size = os.path.getsize(damaged)
    with open(damaged, "r+b") as f:
        if damage == "truncate":
            f.truncate(size // 2)
        else:  # one flipped byte inside a record: its checksum no longer matches
            f.seek(size // 3)
            byte = f.read(1)
            f.seek(size // 3)
            f.write(bytes([byte[0] ^ 0xFF]))
    result = run_cli(
        ["-m", "alexnet_dist.cli.train", "debug=tiny", "data=tfrecord", f"data.dir={copy}",
         "data.resize_size=72", f"hydra.run.dir={tmp_path}/run"],
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"alexnet-train: error: shard {damaged} is damaged ({reason} record at" in (
        result.stderr
    )
