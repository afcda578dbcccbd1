"""AlexNet-BN (model=paper_bn): batch normalisation after every convolution of each tower and no
LRN; its statistics over the global batch when synchronised, on every backend; and a run of it
that trains, exports and serves like the others."""

import json
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet_dist.distribute import cluster, launcher
from alexnet_dist.doctor.numerics import load, relative_differences
from alexnet_dist.models import build_alexnet
from alexnet_dist.models.batch_norm import ReplicaBatchNorm
from alexnet_dist.models.lrn import LocalResponseNormalization
from tests.distribute.helpers import numerics_run
from tests.helpers import (
    PER_REPLICA,
    STEPS,
    assert_same_weights,
    driver,
    finish_driver,
    horovodrun,
    run_cli,
)

CONVS = ("conv1", "conv2", "conv3", "conv4", "conv5")
PAPER_CONV_FILTERS = 96 + 256 + 384 + 384 + 256


def test_every_convolution_of_each_tower_is_normalised_before_its_relu_and_lrn_is_gone():
    model = build_alexnet("paper", 1000, batch_norm=True)
    plain = build_alexnet("paper", 1000)
    layers = {layer.name: layer for layer in model.layers}
    assert not [x for x in model.layers if isinstance(x, LocalResponseNormalization)]
    for tower in ("a", "b"):
        for stage in CONVS:
            conv, bn = layers[f"{stage}_{tower}"], layers[f"bn{stage[4]}_{tower}"]
            assert isinstance(bn, ReplicaBatchNorm) and bn.gamma.shape == (conv.filters,)
            assert not conv.use_bias and conv.activation is keras.activations.linear
    # The paper's 60,965,224 weights, less the conv biases, plus each channel's gamma and beta.
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert trainable == 60_965_224 - PAPER_CONV_FILTERS + 2 * PAPER_CONV_FILTERS
    assert plain.count_params() == 60_965_224


def test_each_tower_normalises_its_own_maps():
    # One training step with momentum 0: each tower's moving mean is its own conv1's batch mean.
    model = build_alexnet("paper", 5, image_size=67, width=0.125, batch_norm=True, init="he")
    images = tf.random.stateless_normal([4, 67, 67, 3], seed=[3, 4])
    for tower in ("a", "b"):
        getattr(model, f"bn1_{tower}").momentum = 0.0
    model(images, training=True)
    means = {}
    for tower in ("a", "b"):
        maps = getattr(model, f"conv1_{tower}")(images)
        means[tower] = getattr(model, f"bn1_{tower}").moving_mean.numpy()
        np.testing.assert_allclose(means[tower], np.mean(maps, axis=(0, 1, 2)), atol=1e-5)
    assert not np.allclose(means["a"], means["b"])


def test_summed_moments_are_the_moments_of_the_whole_batch():
    # replica_sum over one replica: the layer's own sums give the moments Keras computes.
    x = tf.random.stateless_normal([6, 5, 5, 4], seed=[1, 2]) * 3.0 + 1.0
    ours = ReplicaBatchNorm(replica_sum=lambda s: s, momentum=0.0)
    theirs = keras.layers.BatchNormalization(momentum=0.0)
    np.testing.assert_allclose(ours(x, training=True), theirs(x, training=True), atol=1e-5)
    np.testing.assert_allclose(ours.moving_variance.numpy(), theirs.moving_variance.numpy(),
                               rtol=1e-5)  # fmt: skip
    # Two replicas holding the same images: the sums double, the moments do not change.
    doubled = ReplicaBatchNorm(replica_sum=lambda s: 2.0 * s, momentum=0.0)
    np.testing.assert_allclose(doubled(x, training=True), theirs(x, training=True), atol=1e-5)


@pytest.fixture(scope="module")
def single_bn():
    """(AlexNet-BN's weights after STEPS steps of one replica with batch 2b, at step 0)."""
    return (numerics_run("single", 2 * PER_REPLICA, batch_norm="sync"),
            numerics_run("single", 2 * PER_REPLICA, 0, batch_norm="sync"))  # fmt: skip


@pytest.mark.multiprocess
@pytest.mark.slow
def test_synchronised_statistics_over_two_mirrored_replicas_are_one_devices(single_bn, tmp_path):
    # Each replica normalises with the moments of both replicas' images: one device's step.
    finish_driver(driver("mirrored", PER_REPLICA, tmp_path / "w.npz", options=["bn"]))
    assert_same_weights(load(tmp_path / "w.npz"), *single_bn, variant="paper_bn")
    # The control: each replica's own statistics train another network.
    finish_driver(driver("mirrored", PER_REPLICA, tmp_path / "local.npz", options=["bn_local"]))
    assert max(relative_differences(load(tmp_path / "local.npz"), single_bn[0])) > 1e-3


@pytest.mark.multiprocess
@pytest.mark.slow
def test_synchronised_statistics_over_two_horovod_ranks_are_one_devices(single_bn, tmp_path):
    out = tmp_path / "w.npz"
    run = ["-m", "alexnet_dist.cli.numerics", "horovod", str(STEPS), str(PER_REPLICA)]
    result = horovodrun([sys.executable, *run, str(out), "bn"])
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-2000:]
    assert_same_weights(load(out), *single_bn, variant="paper_bn")


@pytest.mark.multiprocess
@pytest.mark.slow
def test_synchronised_statistics_over_two_multiworker_workers_are_one_devices(single_bn, tmp_path):
    workers = [f"localhost:{p}" for p in launcher.free_ports(2)]
    procs = [
        driver("multiworker", PER_REPLICA, tmp_path / "w.npz", options=["bn"],
               env={"TF_CONFIG": json.dumps(cluster.tf_config(workers, i))})
        for i in range(2)
    ]  # fmt: skip
    try:
        for p in procs:
            finish_driver(p)
    finally:
        for p in procs:
            p.kill()
    assert_same_weights(load(tmp_path / "w.npz"), *single_bn, variant="paper_bn")


@pytest.mark.slow
def test_a_paper_bn_run_trains_exports_and_serves_its_own_probabilities(tmp_path, tiny_cache):
    run_dir, export = tmp_path / "run", tmp_path / "export"
    trained = run_cli(["-m", "alexnet_dist.cli.train", "debug=tiny", "model=paper_bn",
                       "trainer.max_steps=6", f"hydra.run.dir={run_dir}"])  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "AlexNet paper-BN:" in trained.stdout + trained.stderr
    exported = run_cli(["-m", "alexnet_dist.cli.export", str(run_dir), str(export),
                        "--checkpoint", "latest"])  # fmt: skip
    assert exported.returncode == 0, exported.stderr[-3000:]
    from alexnet_dist.training.run_dir import find_checkpoint, load_config, load_model

    cfg = load_config(str(run_dir))
    model = load_model(cfg, find_checkpoint(str(run_dir), "latest"), 10)
    assert any(isinstance(x, ReplicaBatchNorm) for x in model.layers)
    # The moving statistics, not the batch's: one image gives the same answer alone or
    # with others.
    image = tf.io.encode_jpeg(tf.cast(tf.random.uniform([80, 90, 3], 0, 255), tf.uint8))
    serve = tf.saved_model.load(str(export)).signatures["serving_default"]
    alone = serve(image_bytes=tf.stack([image]))["probabilities"].numpy()[0]
    other = tf.io.encode_jpeg(tf.zeros([70, 70, 3], tf.uint8))
    paired = serve(image_bytes=tf.stack([image, other]))["probabilities"].numpy()[0]
    np.testing.assert_allclose(alone, paired, rtol=1e-5, atol=1e-7)
    assert alone.shape == (10,) and abs(alone.sum() - 1.0) < 1e-5
