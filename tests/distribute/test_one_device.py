"""Every layout's checkpoints are the one-device network's: the towers' as they are, the
2014 hybrid's through its twin (one interface, `OneDeviceForm`, for both)."""

import numpy as np
import pytest
import tensorflow as tf

from alexnet_dist.config import OptimConfig
from alexnet_dist.distribute.one_device import OneDeviceTwin, assign_split, join_split
from alexnet_dist.distribute.owt_hybrid import HybridOWT
from alexnet_dist.distribute.placement import Placement, one_device_form
from alexnet_dist.models.owt_shards import one_device_groups
from alexnet_dist.training.checkpoint import Checkpointer
from alexnet_dist.training.optimizer import build_optimizer
from tests.distribute.helpers import DEVICES, batch, network, training


def _train_and_save(tower_devices, path):
    model, optimizer, step = training("paper", tower_devices)
    for seed in range(2):
        step(batch(seed))
    tf.train.Checkpoint(model=model, optimizer=optimizer).write(str(path))
    return model, optimizer


def _restored(tower_devices, path):
    model = network("paper", Placement(tower_devices))
    optimizer = build_optimizer(OptimConfig(), model, 0.01)
    tf.train.Checkpoint(model=model, optimizer=optimizer).read(str(path)).assert_consumed()
    return model, optimizer


@pytest.mark.parametrize(
    "written_on, read_on",
    [(DEVICES, None), (None, DEVICES)],
    ids=["towers-to-single", "single-to-towers"],
)
def test_the_towers_are_their_own_one_device_form(tmp_path, written_on, read_on):
    model, optimizer = _train_and_save(written_on, tmp_path / "ckpt")
    form = one_device_form(model, optimizer, lambda m: build_optimizer(OptimConfig(), m, 0.01))
    assert form.model is model and form.optimizer is optimizer
    restored, restored_optimizer = _restored(read_on, tmp_path / "ckpt")
    for want, got in zip(model.weights, restored.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    if read_on:
        assert restored.get_layer("conv1_b").kernel.value.handle.device.endswith("CPU:1")
    for want, got in zip(optimizer.variables, restored_optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert int(restored_optimizer.iterations.numpy()) == 2


@pytest.mark.parametrize("written_on", ["hybrid", "one device"])
def test_checkpoints_move_between_the_hybrid_and_one_device(tmp_path, written_on):
    # Through the trainer's Checkpointer: the hybrid saves and restores in the
    # one-device form, so either run resumes the other's weights and momenta exactly.
    def checkpointer(devices):
        model, optimizer, step = training("owt", devices)
        form = one_device_form(model, optimizer, lambda m: build_optimizer(OptimConfig(), m, 0.01))
        assert isinstance(form, OneDeviceTwin) == bool(devices)
        return model, optimizer, step, Checkpointer(str(tmp_path), form, 3)

    def state(model, optimizer):
        """Weights and momenta in the one-device network's order, and the step."""
        groups = (
            one_device_groups(model)
            if isinstance(model, HybridOWT)
            else [[v] for v in model.trainable_variables]
        )
        slots = [[optimizer.momentum_of(v) for v in g] for g in groups]
        return [join_split(g) for g in groups + slots], int(optimizer.iterations.numpy())

    hybrid = written_on == "hybrid"
    model, optimizer, step, saver = checkpointer(DEVICES if hybrid else None)
    for seed in range(2):
        step(batch(seed))
    saver.save(epoch=1)
    want, iterations = state(model, optimizer)

    model, optimizer, step, reader = checkpointer(None if hybrid else DEVICES)
    assert reader.restore_latest().endswith("ckpt-2")
    got, restored_iterations = state(model, optimizer)
    assert restored_iterations == iterations == 2
    assert len(got) == len(want) == 32
    for w, g in zip(want, got, strict=True):
        np.testing.assert_array_equal(g, w)
    step(batch(2))  # and it trains on from there


def test_a_value_that_does_not_split_into_the_shards_is_refused():
    model = network("owt", Placement(DEVICES, owt_hybrid=True))
    fc6 = one_device_groups(model)[10]  # fc6's kernel, in two shards of units
    whole = join_split(fc6)
    with pytest.raises(ValueError, match="does not split into"):
        assign_split(fc6, whole[:, :-1])
    assign_split(fc6, whole * 2)
    np.testing.assert_array_equal(join_split(fc6), whole * 2)
