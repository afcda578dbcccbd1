"""The factory of distribution backends."""

import pytest

from alexnet_dist.config import ConfigError, DistributeConfig
from alexnet_dist.distribute.backends import create_runtime


def test_a_device_that_does_not_exist_is_named():
    with pytest.raises(ConfigError, match=r"model.tower_devices: device '/gpu:1' does not exist"):
        create_runtime(DistributeConfig(), ["/cpu:0", "/gpu:1"])
    with pytest.raises(ConfigError, match=r"device '/cpu:2' does not exist"):
        create_runtime(DistributeConfig(), ["/cpu:0", "/cpu:2"])
