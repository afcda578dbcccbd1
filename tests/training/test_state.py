"""The training state built where the runtime's placement puts the model, and restored from
the run directory's newest checkpoint."""

import logging

import pytest

from alexnet_dist.config import Config
from alexnet_dist.distribute.backends import create_runtime
from alexnet_dist.training.run_dir import load_config
from alexnet_dist.training.state import build_state

pytestmark = pytest.mark.slow  # the session's tiny run


def test_the_state_resumes_from_the_newest_checkpoint(tiny_run_copy):
    cfg = load_config(str(tiny_run_copy))
    state = build_state(cfg, create_runtime(cfg.distribute), str(tiny_run_copy), 10, 10, 30)
    assert state.checkpointer.step == 20 and int(state.checkpointer.epoch.numpy()) == 2
    assert int(state.optimizer.iterations.numpy()) == 20
    assert (state.steps_per_epoch, state.total_steps) == (10, 30)
    assert state.loss_scale is None and state.schedule.plateau is None  # fp32, step schedule


def test_a_model_over_two_devices_logs_its_traffic_and_starts_at_step_zero(tmp_path, caplog):
    cfg = Config()
    cfg.model.width, cfg.model.image_size = 0.125, 67
    cfg.distribute.devices_per_replica, cfg.distribute.logical_cpus = 2, 2
    cfg.precision.policy = "mixed_float16"
    with caplog.at_level(logging.INFO, logger="alexnet_dist"):
        state = build_state(cfg, create_runtime(cfg.distribute), str(tmp_path), 10, 5, 5)
    assert state.checkpointer.step == 0 and state.loss_scale is not None
    assert "towers: a on /cpu:0, b on /cpu:1; cross-link traffic" in caplog.text
    assert state.model.get_layer("conv1_b").kernel.value.handle.device.endswith("CPU:1")
