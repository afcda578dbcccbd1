"""Which devices each replica of a host takes."""

import pytest

from alexnet_dist.config import ConfigError
from alexnet_dist.distribute import devices


def test_a_host_gets_whole_pairs_of_devices():
    gpus = [f"/gpu:{i}" for i in range(8)]
    # horovodrun -np 4 on an 8-GPU node: rank r owns GPUs 2r and 2r+1.
    assert [devices.replica_devices(gpus, r, 4, 2, "GPU") for r in range(4)] == [
        ["/gpu:0", "/gpu:1"], ["/gpu:2", "/gpu:3"], ["/gpu:4", "/gpu:5"], ["/gpu:6", "/gpu:7"],
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="5 replica.*needs 10 GPU devices, but it has 8"):
        devices.replica_devices(gpus, 0, 5, 2, "GPU")
    with pytest.raises(ConfigError, match="has 7 GPU devices, which do not split into groups of 2"):
        devices.rank_devices(gpus[:7], 0, 3, 2)
    # What each Horovod rank takes: its pair of the host's GPUs, or the pair the
    # scheduler bound to it, or (one device per replica) its own GPU.
    assert devices.rank_devices(gpus, 3, 4, 2) == ["/gpu:6", "/gpu:7"]
    assert devices.rank_devices(gpus[:2], 3, 4, 2) == ["/gpu:0", "/gpu:1"]
    assert devices.rank_devices(gpus, 5, 8, 1) == ["/gpu:5"]
    with pytest.raises(ConfigError, match="8 replica.*needs 16 GPU devices, but it has 8"):
        devices.rank_devices(gpus, 0, 8, 2)


def test_two_devices_per_replica_without_them_is_an_error():
    with pytest.raises(ConfigError, match="needs 2 CPU devices, but it has 1"):
        devices.replica_devices(["/cpu:0"], 0, 1, 2, "CPU")
