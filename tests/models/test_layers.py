"""What the AlexNet variants share: widths, sizes, the paper's initialisation."""

import keras
import pytest

from alexnet_dist.models import layers


def test_widths_scale_and_never_vanish():
    assert layers.scaled(96, 1.0) == 96 and layers.scaled(96, 0.125) == 12
    assert layers.scaled(5, 0.01) == 1


@pytest.mark.parametrize(
    "size, variant, poolings, want",
    [(227, "paper", 3, 6), (227, "paper", 2, 13), (224, "owt", 3, 6), (67, "paper", 3, 1),
     (10, "paper", 3, 0)],
)  # fmt: skip
def test_pooled_size_follows_conv1_and_the_overlapping_poolings(size, variant, poolings, want):
    assert layers.pooled_size(size, variant, poolings) == want


def test_the_papers_init_and_he_init():
    paper = layers.initializers("conv2_b", "paper")
    assert isinstance(paper["kernel_initializer"], keras.initializers.RandomNormal)
    assert paper["kernel_initializer"].stddev == layers.PAPER_KERNEL_STD == 0.01
    assert paper["bias_initializer"] == "ones"  # conv2, conv4, conv5, fc6, fc7
    assert layers.initializers("conv3_a", "paper")["bias_initializer"] == "zeros"
    assert layers.initializers("fc6_3", "paper")["bias_initializer"] == "ones"  # a shard of fc6
    assert layers.initializers("fc8", "he") == {
        "kernel_initializer": "he_normal",
        "bias_initializer": "zeros",
    }
