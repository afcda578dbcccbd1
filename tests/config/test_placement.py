"""Placements that cannot work are config errors, before any work: the paper's towers on two
devices per replica, and the 2014 hybrid over devices or ranks."""

import pytest

from alexnet_dist import config
from alexnet_dist.config import ConfigError
from tests.helpers import run_cli


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"model.variant": "owt", "distribute.devices_per_replica": 2}, "'owt' has one tower"),
        ({"distribute.devices_per_replica": 3}, "must be 1 or 2, got 3"),
        (
            {"distribute.backend": "mirrored", "distribute.devices_per_replica": 2},
            "does not work with distribute=mirrored.*use distribute=horovod",
        ),
        (
            {"distribute.backend": "multiworker", "distribute.devices_per_replica": 2},
            "does not work with distribute=multiworker",
        ),
        (
            {"distribute.backend": "horovod", "model.tower_devices": ["/cpu:0", "/cpu:1"]},
            "with distribute=horovod use distribute.devices_per_replica=2",
        ),
        (
            {"distribute.devices_per_replica": 2, "model.tower_devices": ["/gpu:0", "/gpu:1"]},
            "both place the towers",
        ),
        (
            {"distribute.devices_per_replica": 2, "trainer.jit_compile": True},
            "jit_compile=true compiles a replica's step for one device",
        ),
        # The 2014 hybrid.
        ({"distribute.owt_hybrid": True, "distribute.devices_per_replica": 2},
         "spreads the one-tower network .model=owt.* but model.variant='paper'"),
        ({"model.variant": "owt", "distribute.owt_hybrid": True},
         "set one of them to 2 or more .they are 1 and 1."),
        ({"model.variant": "owt", "distribute.owt_hybrid": True,
          "distribute.devices_per_replica": 3},
         "data.global_batch_size=128 does not split evenly over the 3 devices"),
        ({"model.variant": "owt", "distribute.owt_hybrid": True, "distribute.backend": "mirrored",
          "distribute.devices_per_replica": 2},
         "does not work with distribute=mirrored"),
        ({"model.variant": "owt", "distribute.devices_per_replica": 4},
         "must be 1 or 2, got 4 .more devices per replica: distribute.owt_hybrid=true"),
        ({"model.variant": "owt", "distribute.owt_hybrid": True,
          "distribute.devices_per_replica": 2, "trainer.jit_compile": True},
         "jit_compile=true compiles a replica's step for one device"),
        ({"model.variant": "owt", "distribute.owt_hybrid": True,
          "distribute.ranks_per_replica": 2},
         "groups Horovod ranks; it needs distribute=horovod, not single"),
        ({"model.variant": "owt", "distribute.backend": "horovod",
          "distribute.ranks_per_replica": 2},
         "the 2014 hybrid over Horovod ranks"),
        ({"model.variant": "owt", "distribute.backend": "horovod", "distribute.owt_hybrid": True,
          "distribute.ranks_per_replica": 2, "distribute.devices_per_replica": 2},
         "over distribute.devices_per_replica=2 devices of one process or over "
         "distribute.ranks_per_replica=2 ranks: set one"),
        ({"model.variant": "owt", "distribute.backend": "horovod", "distribute.owt_hybrid": True,
          "distribute.ranks_per_replica": 2, "distribute.elastic": True},
         "does not work with distribute.elastic=true"),
    ],
    ids=["owt", "three", "mirrored", "multiworker", "horovod-tower-devices", "both", "xla",
         "hybrid-paper", "hybrid-one-device", "hybrid-indivisible-batch", "hybrid-mirrored",
         "hybrid-without-switch", "hybrid-xla", "hybrid-ranks-without-horovod",
         "hybrid-ranks-without-switch", "hybrid-devices-and-ranks", "hybrid-elastic"],
)  # fmt: skip
def test_placements_that_cannot_work_are_config_errors(changes, message):
    cfg = config.Config()
    for key, value in changes.items():
        group, name = key.split(".")
        setattr(getattr(cfg, group), name, value)
    with pytest.raises(ConfigError, match=message):
        config.validate(cfg)


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model=owt", "distribute.devices_per_replica=2"], "model.variant='owt' has one tower"),
        (["distribute.devices_per_replica=2"], "needs 2 CPU devices, but it has 1"),
        (["model.tower_devices=[/gpu:0,/gpu:1]"], "device '/gpu:0' does not exist"),
        # The 2014 hybrid: with the paper network, and a batch of 16 over 3 devices.
        (["distribute.owt_hybrid=true", "distribute.devices_per_replica=2"],
         "but model.variant='paper'"),
        (["model=owt", "distribute.owt_hybrid=true", "distribute.devices_per_replica=3",
          "distribute.logical_cpus=3"],
         "data.global_batch_size=16 does not split evenly over the 3 devices"),
    ],
    ids=["owt", "too-few-devices", "missing-gpu", "hybrid-paper", "hybrid-indivisible-batch"],
)  # fmt: skip
def test_bad_placement_fails_before_any_work(tmp_path, overrides, message):
    # The cache folder stays empty: an error that came after data preparation would
    # have rendered the dataset into it first.
    result = run_cli(
        ["-m", "alexnet_dist.cli.train", "debug=tiny", f"data.cache_dir={tmp_path}/cache",
         f"hydra.run.dir={tmp_path}/run", *overrides],
        timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "cache").exists()
