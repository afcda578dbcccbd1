"""The paper's split as a distribution mode: each replica's towers on two devices.

Two logical CPUs (tests/conftest.py) stand in for a replica's two GPUs. What ran
where is read from the executed, partitioned graphs (distribute/placement.py),
not from the config. The numerics of every layout are in test_numerics.py and
test_horovod.py.
"""

import re

import numpy as np
import pytest
import tensorflow as tf

from alexnet_dist import config
from alexnet_dist.config import ConfigError, DistributeConfig, OptimConfig
from alexnet_dist.distribute import create_runtime, devices, placement
from alexnet_dist.models import build_alexnet
from alexnet_dist.models.traffic import tower_traffic
from alexnet_dist.training.optimizer import build_optimizer
from alexnet_dist.training.step import make_train_step
from tests.helpers import run_cli

IMAGE, CLASSES, BATCH = 67, 5, 8
TOWER_OP = re.compile(r"(?:^|/)(?:conv\d|lrn\d|pool\d|fc\d|dropout\d|flatten)_([ab])(?:_\d+)?/")
DEVICE = {"a": "CPU:0", "b": "CPU:1"}


def _hybrid_step(tower_devices):
    runtime = create_runtime(DistributeConfig(devices_per_replica=2, logical_cpus=2))
    assert runtime.tower_devices == ["/cpu:0", "/cpu:1"]
    model = build_alexnet(
        "paper", CLASSES, IMAGE, width=0.125, dropout=0.0, init="he", tower_devices=tower_devices
    )
    optimizer = build_optimizer(OptimConfig(), model, 0.01)
    step = make_train_step(model, optimizer, runtime, BATCH, weight_decay=5e-4)
    return model, optimizer, step


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(0, 1, (BATCH, IMAGE, IMAGE, 3)).astype(np.float32)
    return tf.constant(images), tf.constant(rng.integers(0, CLASSES, BATCH), tf.int32)


def test_every_tower_op_and_variable_runs_on_its_towers_device():
    model, optimizer, step = _hybrid_step(["/cpu:0", "/cpu:1"])
    executed = placement.trace(step, _batch())

    tower_ops = {"a": 0, "b": 0}
    for name, (op, device) in executed.ops.items():
        match = TOWER_OP.search(name)
        if match is None or op in ("_Send", "_Recv"):
            continue
        tower = match.group(1)
        tower_ops[tower] += 1
        assert device == DEVICE[tower], (name, op, device)
    # Forward and backward: both towers' convolutions and their gradients ran.
    assert min(tower_ops.values()) > 60, tower_ops
    # LRN's forward and backward are one XLA-compiled call each, on the tower's device.
    lrn_calls = [(n, d) for n, (op, d) in executed.ops.items() if op == "PartitionedCall"]
    for tower in "ab":
        mine = [d for n, d in lrn_calls if f"lrn1_{tower}" in n or f"lrn2_{tower}" in n]
        assert mine == [DEVICE[tower]] * 4, lrn_calls
    backward = [n for n, (op, d) in executed.ops.items() if "BackpropFilter" in op and d == "CPU:1"]
    assert len(backward) == 5, backward  # conv1_b ... conv5_b's kernel gradients on tower b

    # Weights and their momenta live where their tower runs (fc8 sits on tower a's device).
    momenta = {v.path.split("/")[-1]: v for v in optimizer.variables if "momentum" in v.path}
    assert len(momenta) == len(model.trainable_variables) == 30
    for v in model.trainable_variables:
        layer = v.path.split("/")[0]
        want = DEVICE["b"] if layer.endswith("_b") else DEVICE["a"]
        slot = momenta[f"{layer}_{v.path.split('/')[-1]}_momentum"]
        assert v.value.handle.device.endswith(want), (v.path, v.value.handle.device)
        assert slot.value.handle.device.endswith(want), (slot.path, slot.value.handle.device)


def test_only_cross_link_maps_and_the_images_cross_between_the_devices():
    model, _, step = _hybrid_step(["/cpu:0", "/cpu:1"])
    executed = placement.trace(step, _batch())
    traffic = tower_traffic(model)

    sent = sum(executed.transfers.values())
    # The cross-link maps (forward) and their gradients (backward), and the images
    # once to tower b's device; beyond that only scalars (learning rate, flags).
    expected = BATCH * (traffic.crosslink_bytes_per_image + traffic.input_bytes_per_image)
    assert expected <= sent < expected + 1024, (sent, expected, executed.transfers)
    assert executed.transfers[("CPU:1", "CPU:0")] < traffic.crosslink_bytes_per_image * BATCH
    # No weight, gradient or momentum crosses: the smallest tower-b kernel is larger
    # than all the scalars together.
    assert not [name for name in executed.unsized if "Variable" in name]


def test_traffic_of_the_full_size_network():
    traffic = tower_traffic(build_alexnet("paper"))
    # Per image: conv3 reads 13x13x128 of the other tower, fc6 6x6x128, fc7 2048, each
    # way, and fc8 reads fc7_b (2048); forward and backward, float32.
    values = 2 * (13 * 13 * 128 + 6 * 6 * 128 + 2048) + 2048
    assert traffic.crosslink_bytes_per_image == 2 * 4 * values
    assert traffic.allreduce_bytes == {"a": 4 * 32_531_112, "b": 4 * 28_434_112}
    assert traffic.data_parallel_allreduce_bytes == 4 * 60_965_224
    assert "60.0 MB per step at 128 images" in traffic.describe(128)


def _train_and_save(tower_devices, path):
    model, optimizer, step = _hybrid_step(tower_devices)
    for seed in range(2):
        step(_batch(seed))
    tf.train.Checkpoint(model=model, optimizer=optimizer).write(str(path))
    return model, optimizer


def _restored(tower_devices, path):
    model = build_alexnet(
        "paper", CLASSES, IMAGE, width=0.125, dropout=0.0, init="he", tower_devices=tower_devices
    )
    optimizer = build_optimizer(OptimConfig(), model, 0.01)
    tf.train.Checkpoint(model=model, optimizer=optimizer).read(str(path)).assert_consumed()
    return model, optimizer


@pytest.mark.parametrize(
    "written_on, read_on",
    [(["/cpu:0", "/cpu:1"], None), (None, ["/cpu:0", "/cpu:1"])],
    ids=["hybrid-to-single", "single-to-hybrid"],
)
def test_checkpoints_are_device_agnostic(tmp_path, written_on, read_on):
    model, optimizer = _train_and_save(written_on, tmp_path / "ckpt")
    restored, restored_optimizer = _restored(read_on, tmp_path / "ckpt")
    for want, got in zip(model.weights, restored.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    if read_on:
        assert restored.get_layer("conv1_b").kernel.value.handle.device.endswith("CPU:1")
    for want, got in zip(optimizer.variables, restored_optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert int(restored_optimizer.iterations.numpy()) == 2


def test_a_device_that_does_not_exist_is_named():
    with pytest.raises(ConfigError, match=r"model.tower_devices: device '/gpu:1' does not exist"):
        create_runtime(DistributeConfig(), ["/cpu:0", "/gpu:1"])
    with pytest.raises(ConfigError, match=r"device '/cpu:2' does not exist"):
        create_runtime(DistributeConfig(), ["/cpu:0", "/cpu:2"])


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


def test_xla_is_on_by_default_only_for_one_gpu_per_replica(monkeypatch):
    assert devices.xla_by_default(None) is False  # this machine: CPUs, where XLA is slower
    gpus = ("GPU", ["/gpu:0", "/gpu:1"])
    monkeypatch.setattr(devices, "accelerators", lambda: gpus)
    assert devices.xla_by_default(None) is True
    assert devices.xla_by_default(["/gpu:0", "/gpu:1"]) is False  # XLA compiles one device


def test_two_devices_per_replica_without_them_is_an_error():
    with pytest.raises(ConfigError, match="needs 2 CPU devices, but it has 1"):
        devices.replica_devices(["/cpu:0"], 0, 1, 2, "CPU")


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
    ],
    ids=["owt", "three", "mirrored", "multiworker", "horovod-tower-devices", "both", "xla"],
)
def test_placements_that_cannot_work_are_config_errors(changes, message):
    cfg = config.Config()
    for key, value in changes.items():
        group, name = key.split(".")
        setattr(getattr(cfg, group), name, value)
    with pytest.raises(ConfigError, match=message):
        config.validate(cfg)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model=owt", "distribute.devices_per_replica=2"], "model.variant='owt' has one tower"),
        (["distribute.devices_per_replica=2"], "needs 2 CPU devices, but it has 1"),
        (["model.tower_devices=[/gpu:0,/gpu:1]"], "device '/gpu:0' does not exist"),
        # The 2014 hybrid (test_owt_hybrid.py): with the paper network, and a batch of 16
        # over 3 devices.
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
        ["-m", "alexnet_dist.train", "debug=tiny", f"data.cache_dir={tmp_path}/cache",
         f"hydra.run.dir={tmp_path}/run", *overrides],
        timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_a_hybrid_run_resumes_on_one_device(tmp_path):
    common = ["-m", "alexnet_dist.train", "debug=tiny", f"data.cache_dir={tmp_path}/cache",
              f"hydra.run.dir={tmp_path}/run", "trainer.log_every_steps=1"]  # fmt: skip
    hybrid = run_cli(
        [*common, "distribute.devices_per_replica=2", "distribute.logical_cpus=2",
         "trainer.max_steps=3"]
    )  # fmt: skip
    assert hybrid.returncode == 0, hybrid.stderr[-3000:]
    assert "towers: a on /cpu:0, b on /cpu:1; cross-link traffic" in hybrid.stdout
    assert "finished at step 3" in hybrid.stdout
    single = run_cli([*common, "trainer.max_steps=5"])
    assert single.returncode == 0, single.stderr[-3000:]
    assert "towers:" not in single.stdout
    assert "step 4/5" in single.stdout and "finished at step 5" in single.stdout
