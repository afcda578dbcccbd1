"""Krizhevsky's 2014 hybrid: the one-tower network on K devices, convolutions data-parallel,
fully connected layers split by units.

Logical CPUs stand in for the K GPUs: two in this process (tests/conftest.py), four
in a process of their own. What ran where and what crossed between the devices is
read from the executed graphs (distribute/graph_trace.py).
"""

import re
from collections import Counter

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet_dist.data import augment
from alexnet_dist.distribute import graph_trace
from alexnet_dist.distribute.one_device import join_split
from alexnet_dist.distribute.placement import Placement
from alexnet_dist.doctor.numerics import load
from alexnet_dist.models.owt_shards import one_device_groups
from alexnet_dist.models.traffic import hybrid_traffic
from tests.distribute.helpers import BATCH, DEVICES, IMAGE, batch, network, training
from tests.helpers import PER_REPLICA, assert_same_weights, driver, finish_driver

SHARD_OP = re.compile(r"(?:^|/)fc[678]_(\d)(?:_\d+)?/")
HYBRID = Placement(DEVICES, owt_hybrid=True)


@pytest.mark.multiprocess
@pytest.mark.parametrize("k", [2, 4])
def test_k_devices_train_as_one_device_on_the_samebatch(single_owt_weights, tmp_path, k):
    # One replica whose 16 images are split over k devices in the convolutions and
    # whole in the fully connected layers; 3 steps with weight decay, dropout off.
    out = tmp_path / "w.npz"
    finish_driver(driver("single", 4 * PER_REPLICA, out, options=[f"hybrid{k}"]))
    assert_same_weights(load(out), *single_owt_weights, variant="owt")


def test_fully_connected_shards_their_momenta_and_their_work_stay_on_their_device():
    model, optimizer, step = training("owt", DEVICES)
    executed = graph_trace.trace(step, batch())

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
        slot = optimizer.momentum_of(v)
        assert v.value.handle.device.endswith(want), (v.path, v.value.handle.device)
        assert slot.value.handle.device.endswith(want), (slot.path, slot.value.handle.device)


def test_what_crosses_between_the_devices_is_what_the_traffic_model_counts():
    # Activations and their gradients, the second device's uint8 images from the host,
    # and the conv weights to it and their gradients back; beyond that only scalars.
    # No fully connected weight, gradient or momentum crosses.
    model, _, step = training("owt", DEVICES, model_input=augment.model_input)
    executed = graph_trace.trace(step, batch(uint8=True))
    traffic = hybrid_traffic(model)
    images = (BATCH // 2) * (IMAGE * IMAGE * 3 + 1 + 3 * 4)  # pixels, mirror, lighting
    conv = traffic.allreduced_bytes
    expected = BATCH * traffic.exchanged_bytes_per_image + images + 2 * conv
    sent = sum(executed.transfers.values())
    assert expected <= sent < expected + 256, (sent, expected, executed.transfers)
    assert not [name for name in executed.unsized if "Variable" in name]


def test_units_and_batches_split_as_evenly_as_they_go():
    model = network("owt", HYBRID)
    assert [s.units for s in model.shards("fc8")] == [3, 2]
    # An evaluation's last batch need not divide: 3 images over 2 devices.
    images = tf.random.normal((3, IMAGE, IMAGE, 3))
    twin = network("owt")
    twin.set_weights([join_split(g) for g in one_device_groups(model)])
    np.testing.assert_allclose(model(images).numpy(), twin(images).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_the_pipelines_uint8_batches_give_the_one_device_networks_logits(policy):
    # Each device converts its own part (mirror, lighting, normalisation) in float32, as
    # the one-device step converts the whole batch, whatever the compute dtype.
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        model, twin = network("owt", HYBRID), network("owt")
        twin.set_weights([join_split(g) for g in one_device_groups(model)])
        inputs, _ = batch(uint8=True)
        got = model(inputs, model_input=augment.model_input).numpy()
        want = twin(augment.model_input(inputs)).numpy()
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert got.dtype == want.dtype == np.float32
    tolerance = 1e-5 if policy == "float32" else 2e-2  # bf16 rounds each layer to 8 bits
    np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance * np.abs(want).max())
