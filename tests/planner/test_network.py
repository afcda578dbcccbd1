"""planner/network.py: a step's bytes, from the network alexnet-train builds."""

import numpy as np
import pytest

from alexnet_dist.config import ModelConfig
from alexnet_dist.distribute.placement import build_model
from alexnet_dist.models.traffic import hybrid_traffic
from alexnet_dist.planner.network import network_bytes


def test_the_paper_network_s_gradients_and_towers():
    net = network_bytes("paper", 1.0, 227, 1000)
    assert net.parameters == 60_965_224  # the paper's network, exactly
    assert net.gradient_bytes == 4 * 60_965_224
    assert sum(net.tower_gradient_bytes) == net.gradient_bytes  # each weight in one tower
    assert net.tower_gradient_bytes[0] > net.tower_gradient_bytes[1]  # fc8 is tower a's
    assert net.crosslink_bytes_per_image > 0
    half = network_bytes("paper", 1.0, 227, 1000, precision="mixed_bfloat16",
                         fp16_allreduce=True)  # fmt: skip
    assert half.gradient_bytes == net.gradient_bytes // 2
    assert half.crosslink_bytes_per_image == net.crosslink_bytes_per_image // 2


def test_the_one_tower_network_s_bytes_match_the_built_model_and_traffic():
    net = network_bytes("owt", 0.25, 67, 10)
    model = build_model(ModelConfig(variant="owt", width=0.25, image_size=67, dropout=0.0), 10)
    weights = {v.path.split("/")[0]: int(np.prod(v.shape)) for v in model.trainable_variables}
    assert net.parameters == sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    conv = sum(int(np.prod(v.shape)) for v in model.trainable_variables
               if v.path.startswith("conv"))  # fmt: skip
    assert net.conv_gradient_bytes == 4 * conv and "fc6" in weights
    for k in (2, 4):
        want = hybrid_traffic(model, devices=k).exchanged_bytes_per_image
        assert net.hybrid_exchange_bytes_per_image(k) == want
    assert net.tower_gradient_bytes == (0, 0) and net.crosslink_bytes_per_image == 0


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision"):
        network_bytes("owt", 0.25, 67, 10, precision="fp8")
