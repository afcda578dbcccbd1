"""The one-tower network's fully connected layers in shards: sizes, names, and which shards
make each variable of the one-device network."""

import keras

from alexnet_dist.models import build_alexnet
from alexnet_dist.models.owt_shards import SplitOWT, one_device_groups, shard_sizes


def test_units_split_as_evenly_as_they_go():
    assert shard_sizes(4096, 8) == [512] * 8
    assert shard_sizes(10, 4) == [3, 3, 2, 2]
    assert sum(shard_sizes(1000, 3)) == 1000


def test_shards_make_the_one_device_networks_variables_in_its_order():
    # Two of three shards held, as a placement of the hybrid holds them; plain Keras.
    split = SplitOWT(10, 67, 0.125, 0.0, "he", shards=3, held=[0, 2])
    features = split.features(keras.ops.zeros((1, 67, 67, 3)), training=False)
    inputs = {"fc6": features.shape[-1], "fc7": split.widths["fc6"], "fc8": split.widths["fc7"]}
    for stage in ("fc6", "fc7", "fc8"):
        layers = split.shards(stage)
        assert [layer.name for layer in layers] == [f"{stage}_0", f"{stage}_2"]
        for layer in layers:
            layer.build((None, inputs[stage]))
    assert [layer.units for layer in split.shards("fc8")] == [4, 3]  # of 4, 3, 3
    one = build_alexnet("owt", 10, 67, width=0.125, init="he")
    groups = one_device_groups(split)
    assert len(groups) == len(one.trainable_variables) == 16
    for group, variable in zip(groups, one.trainable_variables, strict=True):
        assert all(v.shape[:-1] == variable.shape[:-1] for v in group)
        if len(group) == 1:  # a convolution's, whole
            assert group[0].shape == variable.shape
        else:  # shards 0 and 2 of a fully connected layer's units
            sizes = shard_sizes(variable.shape[-1], 3)
            assert [v.shape[-1] for v in group] == [sizes[0], sizes[2]]
