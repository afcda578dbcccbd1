import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet_dist.models import build_alexnet
from tests.helpers import run_cli

# shared/REFERENCE.md section 1 (per layer, both towers together).
PAPER_LAYER_PARAMS = {
    "conv1": 34_944,
    "conv2": 307_456,
    "conv3": 885_120,
    "conv4": 663_936,
    "conv5": 442_624,
    "fc6": 37_752_832,
    "fc7": 16_781_312,
    "fc8": 4_097_000,
}
PAPER_SHAPES = {  # per tower, at 227x227 input
    "conv1": (55, 55, 48),
    "pool1": (27, 27, 48),
    "conv2": (27, 27, 128),
    "pool2": (13, 13, 128),
    "conv3": (13, 13, 192),
    "conv4": (13, 13, 192),
    "conv5": (13, 13, 128),
    "pool5": (6, 6, 128),
    "fc6": (2048,),
    "fc7": (2048,),
}


@pytest.fixture(scope="module")
def paper():
    return build_alexnet("paper")


def test_paper_has_the_papers_parameter_count(paper):
    assert paper.count_params() == 60_965_224
    per_layer = {}
    for layer in paper.layers:
        per_layer[layer.name.split("_")[0]] = per_layer.get(layer.name.split("_")[0], 0) + (
            layer.count_params()
        )
    assert {k: v for k, v in per_layer.items() if v} == PAPER_LAYER_PARAMS


def test_paper_feature_maps_have_the_papers_sizes(paper):
    ends = paper.endpoints(np.zeros((1, 227, 227, 3), np.float32))
    for stage, shape in PAPER_SHAPES.items():
        for tower in "ab":
            assert tuple(ends[f"{stage}_{tower}"].shape[1:]) == shape, f"{stage}_{tower}"
    assert tuple(ends["logits"].shape) == (1, 1000)


def test_paper_initialisation(paper):
    for layer in paper.layers:
        if not layer.weights:
            continue
        kernel, bias = (np.asarray(w) for w in layer.weights)
        assert abs(kernel.std() - 0.01) < 0.001, layer.name
        assert abs(kernel.mean()) < 0.001, layer.name
        want_bias = (
            1.0 if layer.name.split("_")[0] in ("conv2", "conv4", "conv5", "fc6", "fc7") else 0.0
        )
        assert np.all(bias == want_bias), layer.name


def test_no_grouped_convolutions(paper):
    convs = [layer for layer in paper.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 10
    assert all(layer.groups == 1 for layer in convs)


def test_owt_has_the_one_weird_trick_parameter_count():
    model = build_alexnet("owt")
    assert model.count_params() == 61_100_840
    assert model.output_shape == (None, 1000)
    assert not any("lrn" in layer.name for layer in model.layers)


def test_tower_wiring():
    """Only conv3 and the FC layers see the other tower's maps."""
    model = build_alexnet("paper", num_classes=10, image_size=67, width=0.25, dropout=0.0)
    images = np.random.default_rng(0).normal(0, 50, (2, 67, 67, 3)).astype(np.float32)
    before = model.endpoints(images)
    # Change only tower b's maps before conv2: its conv1 kernel.
    kernel = model.get_layer("conv1_b").kernel
    kernel.assign(kernel * 3.0 + 0.01)
    after = model.endpoints(images)
    np.testing.assert_array_equal(before["conv2_a"], after["conv2_a"])
    assert not np.allclose(before["conv2_b"], after["conv2_b"])
    for crosslinked in ("conv3_a", "conv3_b", "fc6_a", "logits"):
        assert not np.allclose(before[crosslinked], after[crosslinked]), crosslinked


def test_width_and_image_size_scale_the_same_network():
    model = build_alexnet("paper", num_classes=10, image_size=99, width=0.5)
    ends = model.endpoints(np.zeros((1, 99, 99, 3), np.float32))
    assert tuple(ends["conv1_a"].shape) == (1, 23, 23, 24)
    assert tuple(ends["pool5_a"].shape) == (1, 2, 2, 64)
    assert tuple(ends["fc7_b"].shape) == (1, 1024)
    assert tuple(ends["logits"].shape) == (1, 10)


def test_he_init_has_zero_biases():
    model = build_alexnet("paper", num_classes=10, image_size=67, width=0.25, init="he")
    conv4 = model.get_layer("conv4_a")
    assert np.all(np.asarray(conv4.bias) == 0)
    fan_in = 3 * 3 * conv4.kernel.shape[2]
    assert abs(np.asarray(conv4.kernel).std() - np.sqrt(2 / fan_in)) < 0.3 * np.sqrt(2 / fan_in)


def test_towers_are_placed_on_their_devices():
    devices = ["/cpu:0", "/cpu:1"]  # two logical CPUs (conftest) standing in for two GPUs
    model = build_alexnet(
        "paper", num_classes=10, image_size=67, width=0.125, tower_devices=devices
    )
    for tower, device in zip("ab", ("CPU:0", "CPU:1"), strict=True):
        for stage in ("conv1", "conv3", "fc7"):
            variable = model.get_layer(f"{stage}_{tower}").kernel
            assert variable.value.device.endswith(device), (stage, tower, variable.value.device)

    graph = (
        tf.function(lambda x: model(x, training=True))
        .get_concrete_function(tf.TensorSpec((2, 67, 67, 3), tf.float32))
        .graph
    )
    convs = {op.name: op.device for op in graph.get_operations() if op.type == "Conv2D"}
    assert len(convs) == 10
    for name, device in convs.items():
        tower_b = re.search(r"/conv\d_b(_\d+)?/", name) is not None
        assert device.endswith("CPU:1" if tower_b else "CPU:0"), (name, device)
    out = model(np.zeros((2, 67, 67, 3), np.float32))
    assert tuple(out.shape) == (2, 10)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"variant": "vgg"}, "unknown AlexNet variant 'vgg'"),
        ({"image_size": 63}, "image_size=63 is too small.*at least 67"),
        ({"width": 0}, "width must be > 0"),
        ({"num_classes": 0}, "num_classes"),
        ({"dropout": 1.0}, "dropout"),
        ({"tower_devices": ["/gpu:0"]}, "has two towers, so give two device names"),
        ({"init": "xavier"}, "unknown init 'xavier'"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_alexnet(**{"num_classes": 10, "width": 0.125, "image_size": 67, **kwargs})


JAX_SIDE = """
import json, sys
import keras, numpy as np
from alexnet_dist.models import build_alexnet
assert keras.backend.backend() == "jax", keras.backend.backend()
for variant, kwargs in json.loads(sys.argv[2]).items():
    weights = np.load(f"{sys.argv[1]}/{variant}.npz")
    model = build_alexnet(**kwargs)
    model.set_weights([weights[f"w{i}"] for i in range(len(weights.files))])
    logits = model(np.load(f"{sys.argv[1]}/x.npy"))
    np.save(f"{sys.argv[1]}/{variant}.npy", keras.ops.convert_to_numpy(logits))
    print(variant, model.count_params())
"""


@pytest.mark.slow
def test_jax_backend_builds_and_runs_the_same_networks(tmp_path):
    # Both variants, in one process under KERAS_BACKEND=jax: the same weights give the
    # same logits as under TensorFlow.
    networks = {
        variant: {"variant": variant, "num_classes": 7, "image_size": 67, "width": 0.25,
                  "init": "he"}
        for variant in ("paper", "owt")
    }  # fmt: skip
    images = np.random.default_rng(0).normal(0, 1, (3, 67, 67, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", images)
    models = {}
    for variant, kwargs in networks.items():
        models[variant] = build_alexnet(**kwargs)
        weights = {f"w{i}": w for i, w in enumerate(models[variant].get_weights())}
        np.savez(tmp_path / f"{variant}.npz", **weights)

    result = run_cli(
        ["-c", JAX_SIDE, str(tmp_path), json.dumps(networks)],
        env={"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"},
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    counts = dict(line.split() for line in result.stdout.splitlines() if line.split()[0] in models)
    for variant, model in models.items():
        assert int(counts[variant]) == model.count_params()
        want = np.asarray(model(images))
        np.testing.assert_allclose(np.load(tmp_path / f"{variant}.npy"), want, rtol=1e-4, atol=1e-4)
