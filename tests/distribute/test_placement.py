"""Where a replica's model lives: the paper's towers on two devices, the 2014 hybrid over
devices or ranks, and the one model builder that starts every layout from the same network.

Two logical CPUs (tests/conftest.py) stand in for a replica's two GPUs. What ran
where is read from the executed, partitioned graphs (distribute/graph_trace.py),
not from the config. The numerics of every layout are in test_strategy.py,
test_horovod.py, test_owt_hybrid.py and test_rank_group.py.
"""

import re
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet_dist.distribute import devices, graph_trace
from alexnet_dist.distribute.one_device import join_split
from alexnet_dist.distribute.placement import ONE_DEVICE, Placement
from alexnet_dist.models.owt_shards import one_device_groups
from alexnet_dist.models.traffic import tower_traffic
from tests.distribute.helpers import BATCH, DEVICES, batch, network, training
from tests.helpers import horovodrun, run_cli

TOWER_OP = re.compile(r"(?:^|/)(?:conv\d|lrn\d|pool\d|fc\d|dropout\d|flatten)_([ab])(?:_\d+)?/")
DEVICE = {"a": "CPU:0", "b": "CPU:1"}


def test_every_tower_op_and_variable_runs_on_its_towers_device():
    model, optimizer, step = training("paper", DEVICES)
    executed = graph_trace.trace(step, batch())

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
    model, _, step = training("paper", DEVICES)
    executed = graph_trace.trace(step, batch())
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


def test_xla_is_on_by_default_only_for_one_gpu_per_replica(monkeypatch):
    assert ONE_DEVICE.xla_by_default is False  # this machine: CPUs, where XLA is slower
    gpus = ("GPU", ["/gpu:0", "/gpu:1"])
    monkeypatch.setattr(devices, "accelerators", lambda: gpus)
    assert ONE_DEVICE.xla_by_default is True
    assert Placement(["/gpu:0", "/gpu:1"]).xla_by_default is False  # XLA compiles one device
    assert Placement(["/gpu:0", "/gpu:1"], owt_hybrid=True).xla_by_default is False


def test_batches_go_to_the_replicas_first_device_or_to_the_host_for_the_hybrid(monkeypatch):
    monkeypatch.setattr(devices, "accelerators", lambda: ("GPU", ["/gpu:0", "/gpu:1"]))
    assert ONE_DEVICE.batch_device == "/gpu:0"
    assert Placement(["/gpu:2", "/gpu:3"]).batch_device == "/gpu:2"
    # The 2014 hybrid splits each batch on the host and sends every device its part.
    assert Placement(["/gpu:2", "/gpu:3"], owt_hybrid=True).batch_device == "/cpu:0"


def test_the_traffic_line_is_the_placements():
    towers = Placement(DEVICES).traffic(network("paper"), 16, 1, 4, 4)
    assert towers.startswith("towers: a on /cpu:0, b on /cpu:1; cross-link traffic")
    hybrid = Placement(DEVICES, owt_hybrid=True).traffic(network("owt"), 16, 1, 4, 4)
    assert hybrid.startswith("one weird trick on 2 devices, 8 images per device")
    assert ONE_DEVICE.traffic(network("paper"), 16, 1, 4, 4) is None


def test_the_hybrid_starts_from_the_one_device_networks_weights():
    keras.utils.set_random_seed(5)
    one = network("owt")
    keras.utils.set_random_seed(5)
    hybrid = network("owt", Placement(DEVICES, owt_hybrid=True))
    got = [join_split(group) for group in one_device_groups(hybrid)]
    assert len(got) == len(one.trainable_variables) == 16
    for g, w in zip(got, one.trainable_variables, strict=True):
        np.testing.assert_array_equal(g, w.numpy())


@pytest.mark.slow
def test_a_towers_run_logs_its_traffic_and_resumes_on_one_device(tmp_path):
    common = ["-m", "alexnet_dist.cli.train", "debug=tiny",
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


# -- the same seed, the same network, in every layout (through alexnet-train) ---------------

SAME_SEED = ["debug=tiny", "model=owt", "model.dropout=0", "trainer.max_steps=4",
             "trainer.checkpoint_every_steps=2", "trainer.log_every_steps=1"]  # fmt: skip


def checkpoint_tensors(path) -> dict:
    """Every tensor of a checkpoint (weights, momenta, step, epoch...) by name."""
    reader = tf.train.load_checkpoint(str(path))
    names = reader.get_variable_to_shape_map()
    return {n: reader.get_tensor(n) for n in names if not n.startswith(("_CHECK", "save_counter"))}


def assert_same_checkpoints(got_run, want_run):
    """Checkpoints 2 and 4 of two runs hold the same tensors, every one within 1e-5."""
    for step in (2, 4):
        got = checkpoint_tensors(got_run / "checkpoints" / f"ckpt-{step}")
        want = checkpoint_tensors(want_run / "checkpoints" / f"ckpt-{step}")
        assert got.keys() == want.keys()
        weights = [n for n in want if "_trainable_variables" in n]
        assert len(weights) == 16 and len(want) > 2 * len(weights)  # weights, momenta, ...
        for name in want:
            scale = max(float(np.linalg.norm(want[name])), 1e-12)
            difference = float(np.linalg.norm(np.asarray(got[name]) - want[name])) / scale
            assert difference < 1e-5, (step, name, difference)


@pytest.fixture(scope="module")
def one_device_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("one_device") / "run"
    result = run_cli(["-m", "alexnet_dist.cli.train", *SAME_SEED, f"hydra.run.dir={run_dir}"])
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.mark.slow
def test_the_hybrid_on_two_devices_trains_as_one_device_from_the_same_seed(
    one_device_run, tmp_path
):
    # Dropout off, 4 steps: every weight and momentum as on one device; then the hybrid's
    # checkpoint resumes on one device.
    run_dir = tmp_path / "run"
    common = ["-m", "alexnet_dist.cli.train", *SAME_SEED, f"hydra.run.dir={run_dir}"]
    hybrid = run_cli(
        [*common, "distribute.owt_hybrid=true", "distribute.devices_per_replica=2",
         "distribute.logical_cpus=2"]
    )  # fmt: skip
    assert hybrid.returncode == 0, hybrid.stderr[-3000:]
    assert "one weird trick on 2 devices, 8 images per device" in hybrid.stdout
    assert_same_checkpoints(run_dir, one_device_run)
    resume = [a if a != "trainer.max_steps=4" else "trainer.max_steps=6" for a in common]
    one = run_cli(resume)
    assert one.returncode == 0, one.stderr[-3000:]
    assert "ckpt-4 (step 4, epoch 0)" in one.stdout and "finished at step 6" in one.stdout


@pytest.mark.slow
@pytest.mark.multiprocess
def test_the_hybrid_over_two_horovod_ranks_trains_as_one_device_from_the_same_seed(
    one_device_run, tmp_path
):
    run_dir = tmp_path / "run"
    result = horovodrun(
        [sys.executable, "-m", "alexnet_dist.cli.train", *SAME_SEED, f"hydra.run.dir={run_dir}",
         "distribute=horovod", "distribute.owt_hybrid=true", "distribute.ranks_per_replica=2"]
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-2000:]
    assert "one weird trick on 2 devices, 8 images per device" in result.stdout
    assert "AlexNet owt: 325,938 parameters" in result.stdout  # the whole network's
    # Its checkpoints are the one-device network's, gathered from both ranks.
    assert_same_checkpoints(run_dir, one_device_run)
