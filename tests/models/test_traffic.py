"""Bytes a step moves, from the model's shapes: the paper's towers and the 2014 hybrid."""

from alexnet_dist.models import build_alexnet
from alexnet_dist.models.traffic import hybrid_traffic, tower_traffic


def test_traffic_of_the_full_size_network():
    traffic = tower_traffic(build_alexnet("paper"))
    # Per image: conv3 reads 13x13x128 of the other tower, fc6 6x6x128, fc7 2048, each
    # way, and fc8 reads fc7_b (2048); forward and backward, float32.
    values = 2 * (13 * 13 * 128 + 6 * 6 * 128 + 2048) + 2048
    assert traffic.crosslink_bytes_per_image == 2 * 4 * values
    assert traffic.allreduce_bytes == {"a": 4 * 32_531_112, "b": 4 * 28_434_112}
    assert traffic.data_parallel_allreduce_bytes == 4 * 60_965_224
    assert "60.0 MB per step at 128 images" in traffic.describe(128)


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
