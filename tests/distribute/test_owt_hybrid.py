"""Krizhevsky's 2014 hybrid: the one-tower network on K devices, convolutions data-parallel,
fully connected layers split by units.

Logical CPUs stand in for the K GPUs: two in this process (tests/conftest.py), four
in a process of their own. What ran where and what crossed between the devices is
read from the executed graphs (distribute/placement.py).
"""

import json
import os
import re
import subprocess
import sys
from collections import Counter

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet_dist import config
from alexnet_dist.config import ConfigError, DistributeConfig, OptimConfig
from alexnet_dist.data import augment
from alexnet_dist.distribute import create_runtime, placement
from alexnet_dist.doctor.numerics import load
from alexnet_dist.models import build_alexnet
from alexnet_dist.models.owt_hybrid import HybridOWT, gather, one_device_groups, shard_sizes
from alexnet_dist.models.traffic import hybrid_traffic
from alexnet_dist.training.checkpoint import Checkpointer
from alexnet_dist.training.checkpoint_twin import one_device_twin
from alexnet_dist.training.optimizer import build_optimizer
from alexnet_dist.training.step import make_train_step
from tests.distribute.numerics import PER_REPLICA, assert_same_weights, driver, finish
from tests.distribute.test_horovod import HOROVODRUN
from tests.helpers import REPO, run_cli

IMAGE, CLASSES, BATCH = 67, 5, 8
DEVICES = ["/cpu:0", "/cpu:1"]
SHARD_OP = re.compile(r"(?:^|/)fc[678]_(\d)(?:_\d+)?/")


def _network(devices=None):
    return build_alexnet(
        "owt", CLASSES, IMAGE, width=0.125, dropout=0.0, init="he", tower_devices=devices
    )


def _training(devices=None, model_input=None):
    """(model, optimizer, train step) of one replica, the model on `devices` (None: one)."""
    runtime = create_runtime(
        DistributeConfig(devices_per_replica=2, owt_hybrid=True, logical_cpus=2)
        if devices
        else DistributeConfig()
    )
    model = _network(devices)
    optimizer = build_optimizer(OptimConfig(), model, 0.01)
    step = make_train_step(model, optimizer, runtime, BATCH, 5e-4, model_input=model_input)
    return model, optimizer, step


def _batch(seed=0, uint8=False):
    rng = np.random.default_rng(seed)
    labels = tf.constant(rng.integers(0, CLASSES, BATCH), tf.int32)
    if not uint8:
        return tf.constant(rng.normal(0, 1, (BATCH, IMAGE, IMAGE, 3)).astype(np.float32)), labels
    inputs = {
        "pixels": tf.constant(rng.integers(0, 256, (BATCH, IMAGE, IMAGE, 3)).astype(np.uint8)),
        "mirror": tf.constant(rng.random(BATCH) < 0.5),
        "lighting": tf.constant(rng.normal(0, 5, (BATCH, 3)).astype(np.float32)),
    }
    return inputs, labels


@pytest.mark.multiprocess
@pytest.mark.parametrize("k", [2, 4])
def test_k_devices_train_as_one_device_on_the_same_batch(single_owt_weights, tmp_path, k):
    # One replica whose 16 images are split over k devices in the convolutions and
    # whole in the fully connected layers; 3 steps with weight decay, dropout off.
    out = tmp_path / "w.npz"
    finish(driver("single", 4 * PER_REPLICA, out, options=[f"hybrid{k}"]))
    assert_same_weights(load(out), *single_owt_weights, variant="owt")


def test_fully_connected_shards_their_momenta_and_their_work_stay_on_their_device():
    model, optimizer, step = _training(DEVICES)
    executed = placement.trace(step, _batch())

    shard_ops = {"0": 0, "1": 0}
    for name, (op, device) in executed.ops.items():
        match = SHARD_OP.search(name)
        if match is None or op in ("_Send", "_Recv"):
            continue
        shard_ops[match.group(1)] += 1
        assert device == f"CPU:{match.group(1)}", (name, op, device)
    # Each device: fc6, fc7 and fc8's forward (one fused MatMul each) and backward (two
    # MatMuls each) for its shard; the convolutions forward and backward for its images;
    # the momentum updates of its own variables.
    for k in "01":
        backward = [n for n in executed.ops if re.search(rf"fc[678]_{k}_\d+/MatMul_grad/", n)]
        assert len(backward) == 6, (k, backward, shard_ops)
        ran = {op for op, d in executed.ops.values() if d == f"CPU:{k}"}
        for kind in ("Conv2D", "Conv2DBackpropFilter", "Conv2DBackpropInput"):  # oneDNN's too
            assert len([op for op in ran if re.search(rf"{kind}(WithBias)?$", op)]), (k, ran)
    # One compiled momentum update per variable, on its device: the convolutions' 10 and
    # the shard's 6 on the first device, the other shard's 6 on the second.
    updates = Counter(d for n, (op, d) in executed.ops.items() if op == "StatefulPartitionedCall")
    assert updates == {"CPU:0": 10 + 6, "CPU:1": 6}, updates

    assert len(optimizer.momentums) == len(model.trainable_variables) == 10 + 3 * 2 * 2
    for v in model.trainable_variables:
        layer = v.path.split("/")[0]
        # fc6_1's weights on /cpu:1; the convolutions' one copy on the first device.
        want = f"CPU:{layer[-1]}" if layer.startswith("fc") else "CPU:0"
        slot = optimizer.momentums[optimizer._get_variable_index(v)]
        assert v.value.handle.device.endswith(want), (v.path, v.value.handle.device)
        assert slot.value.handle.device.endswith(want), (slot.path, slot.value.handle.device)


def test_what_crosses_between_the_devices_is_what_the_traffic_model_counts():
    # Activations and their gradients, the second device's uint8 images from the host,
    # and the conv weights to it and their gradients back; beyond that only scalars.
    # No fully connected weight, gradient or momentum crosses.
    model, _, step = _training(DEVICES, model_input=augment.model_input)
    executed = placement.trace(step, _batch(uint8=True))
    traffic = hybrid_traffic(model)
    images = (BATCH // 2) * (IMAGE * IMAGE * 3 + 1 + 3 * 4)  # pixels, mirror, lighting
    conv = traffic.allreduced_bytes
    expected = BATCH * traffic.exchanged_bytes_per_image + images + 2 * conv
    sent = sum(executed.transfers.values())
    assert expected <= sent < expected + 256, (sent, expected, executed.transfers)
    assert not [name for name in executed.unsized if "Variable" in name]


def test_traffic_of_the_full_size_network_on_eight_devices():
    traffic = hybrid_traffic(build_alexnet("owt"), devices=8)
    # Per image, forward and backward, float32: its 6x6x256 pooled features to 7 other
    # devices, each device's 512 fc6 and 512 fc7 units to 7 others, and the logits of
    # devices 1-7 (875 of 1000 classes) to the first.
    assert traffic.exchanged_bytes_per_image == 2 * 4 * (7 * (9216 + 4096 + 4096) + 875)
    assert traffic.allreduced_bytes == 4 * 2_469_696  # the convolutions (shared/REFERENCE.md)
    assert traffic.data_parallel_allreduced_bytes == 4 * 61_100_840
    described = traffic.describe(128)
    assert "exchanged 1005.4 MB per step (125.7 MB per device)" in described
    assert "conv gradients all-reduced 9.9 MB (17.3 MB sent per device in a ring)" in described
    assert "would all-reduce 244.4 MB (427.7 MB sent per device)" in described


def test_units_and_batches_split_as_evenly_as_they_go():
    assert shard_sizes(4096, 8) == [512] * 8
    assert shard_sizes(10, 4) == [3, 3, 2, 2]
    model = _network(DEVICES)
    assert [s.units for s in model.shards("fc8")] == [3, 2]
    # An evaluation's last batch need not divide: 3 images over 2 devices.
    images = tf.random.normal((3, IMAGE, IMAGE, 3))
    twin = _network()
    twin.set_weights([gather(g) for g in one_device_groups(model)])
    np.testing.assert_allclose(model(images).numpy(), twin(images).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_the_pipelines_uint8_batches_give_the_one_device_networks_logits(policy):
    # Each device converts its own part (mirror, lighting, normalisation) in float32, as
    # the one-device step converts the whole batch, whatever the compute dtype.
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        model, twin = _network(DEVICES), _network()
        twin.set_weights([gather(g) for g in one_device_groups(model)])
        inputs, _ = _batch(uint8=True)
        got = model(inputs, model_input=augment.model_input).numpy()
        want = twin(augment.model_input(inputs)).numpy()
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert got.dtype == want.dtype == np.float32
    tolerance = 1e-5 if policy == "float32" else 2e-2  # bf16 rounds each layer to 8 bits
    np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance * np.abs(want).max())


@pytest.mark.parametrize("written_on", ["hybrid", "one device"])
def test_checkpoints_move_between_the_hybrid_and_one_device(tmp_path, written_on):
    # Through the trainer's Checkpointer: the hybrid saves and restores in the
    # one-device form, so either run resumes the other's weights and momenta exactly.
    def checkpointer(devices):
        model, optimizer, step = _training(devices)
        twin = one_device_twin(model, optimizer, lambda m: build_optimizer(OptimConfig(), m, 0.01))
        assert (twin is not None) == bool(devices)
        return model, optimizer, step, Checkpointer(str(tmp_path), model, optimizer, 3, twin=twin)

    def state(model, optimizer):
        """Weights and momenta in the one-device network's order, and the step."""
        groups = (
            one_device_groups(model)
            if isinstance(model, HybridOWT)
            else [[v] for v in model.trainable_variables]
        )
        slots = [[optimizer.momentums[optimizer._get_variable_index(v)] for v in g]
                 for g in groups]  # fmt: skip
        return [gather(g) for g in groups + slots], int(optimizer.iterations.numpy())

    hybrid = written_on == "hybrid"
    model, optimizer, step, saver = checkpointer(DEVICES if hybrid else None)
    for seed in range(2):
        step(_batch(seed))
    saver.save(epoch=1)
    want, iterations = state(model, optimizer)

    model, optimizer, step, reader = checkpointer(None if hybrid else DEVICES)
    assert reader.restore_latest().endswith("ckpt-2")
    got, restored_iterations = state(model, optimizer)
    assert restored_iterations == iterations == 2
    assert len(got) == len(want) == 32
    for w, g in zip(want, got, strict=True):
        np.testing.assert_array_equal(g, w)
    step(_batch(2))  # and it trains on from there


@pytest.mark.parametrize(
    "changes, message",
    [
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
    ids=["paper", "one-device", "indivisible-batch", "mirrored", "without-switch", "xla",
         "ranks-without-horovod", "ranks-without-switch", "devices-and-ranks", "elastic"],
)  # fmt: skip
def test_hybrids_that_cannot_work_are_config_errors(changes, message):
    cfg = config.Config()
    for key, value in changes.items():
        group, name = key.split(".")
        setattr(getattr(cfg, group), name, value)
    with pytest.raises(ConfigError, match=message):
        config.validate(cfg)


@pytest.mark.slow
def test_the_trainer_runs_the_hybrid_and_a_one_device_run_resumes_it(tmp_path):
    common = ["-m", "alexnet_dist.train", "debug=tiny", "model=owt",
              f"data.cache_dir={tmp_path}/cache", f"hydra.run.dir={tmp_path}/run"]  # fmt: skip
    hybrid = run_cli(
        [*common, "distribute.owt_hybrid=true", "distribute.devices_per_replica=2",
         "distribute.logical_cpus=2", "trainer.epochs=1"]
    )  # fmt: skip
    assert hybrid.returncode == 0, hybrid.stderr[-3000:]
    log = (tmp_path / "run" / "train.log").read_text()
    assert "one weird trick on 2 devices, 8 images per device" in log
    one = run_cli([*common, "trainer.epochs=2"])
    assert one.returncode == 0, one.stderr[-3000:]
    log = (tmp_path / "run" / "train.log").read_text()
    assert "resumed from" in log and "ckpt-10 (step 10, epoch 1)" in log
    assert "finished at step 20" in one.stdout


def test_the_step_benchmark_runs_the_hybrid_on_the_pipelines_uint8_batches():
    # The benchmark feeds uint8 pixels, mirror flags and float lighting, as the input
    # pipeline does; bfloat16 included (Keras would cast the lighting to it).
    result = run_cli(
        ["-m", "alexnet_dist.bench_step", "--variant", "owt", "--owt-hybrid",
         "--devices-per-replica", "2", "--width", "0.125", "--image-size", "67", "--batch", "4",
         "--steps", "2", "--policies", "float32", "mixed_bfloat16", "--xla", "off", "--json"],
        timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    figures = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [f["policy"] for f in figures] == ["float32", "mixed_bfloat16"]
    for figure in figures:
        assert figure["images_per_sec"] > 0 and np.isfinite(figure["loss"]), figure


@pytest.mark.slow
@pytest.mark.multiprocess
def test_the_trainer_runs_the_hybrid_over_horovod_ranks_and_one_device_resumes_it(tmp_path):
    common = ["debug=tiny", "model=owt", f"data.cache_dir={tmp_path}/cache",
              f"hydra.run.dir={tmp_path}/run"]  # fmt: skip
    hybrid = subprocess.run(
        [HOROVODRUN, "--gloo", "-np", "2", "-H", "localhost:2", sys.executable, "-m",
         "alexnet_dist.train", *common, "distribute=horovod", "distribute.owt_hybrid=true",
         "distribute.ranks_per_replica=2", "trainer.epochs=1"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    assert hybrid.returncode == 0, hybrid.stderr[-3000:] + hybrid.stdout[-2000:]
    log = (tmp_path / "run" / "train.log").read_text()
    assert "one weird trick on 2 devices, 8 images per device" in log
    assert "AlexNet owt: 325,938 parameters" in log  # the whole network's, not a rank's
    one = run_cli(["-m", "alexnet_dist.train", *common, "trainer.epochs=2"])
    assert one.returncode == 0, one.stderr[-3000:]
    assert "ckpt-10 (step 10, epoch 1)" in (tmp_path / "run" / "train.log").read_text()
    assert "finished at step 20" in one.stdout
