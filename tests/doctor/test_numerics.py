"""The numerics driver's parts: the backend's configuration on this machine, the same global
batches for every backend, and the comparison of weights."""

import numpy as np
import pytest

from alexnet_dist.doctor import numerics


def test_logical_cpus_stand_in_for_the_gpus_this_machine_lacks():
    assert numerics.config("single").logical_cpus is None
    assert numerics.config("mirrored").logical_cpus == 2
    towers = numerics.config("single", towers=True)
    assert (towers.devices_per_replica, towers.logical_cpus) == (2, 2)
    hybrid = numerics.config("single", hybrid=4)
    assert (hybrid.owt_hybrid, hybrid.devices_per_replica, hybrid.logical_cpus) == (True, 4, 4)
    ranks = numerics.config("horovod", hybrid=2, over_ranks=True)
    assert (ranks.ranks_per_replica, ranks.devices_per_replica, ranks.logical_cpus) == (2, 1, None)


def test_every_backend_sees_the_same_global_batches():
    a_images, a_labels = numerics.global_batches(2, 8)
    b_images, b_labels = numerics.global_batches(2, 8)
    np.testing.assert_array_equal(a_images, b_images)
    np.testing.assert_array_equal(a_labels, b_labels)
    assert a_images.shape == (2, 8, numerics.IMAGE, numerics.IMAGE, 3)


def test_weights_saved_and_compared_in_the_models_order(tmp_path):
    weights = [np.full((2, 2), float(i)) for i in range(12)]
    np.savez(tmp_path / "w.npz", *weights)
    loaded = numerics.load(tmp_path / "w.npz")  # arr_10 after arr_9, not after arr_1
    assert [float(w[0, 0]) for w in loaded] == list(range(12))
    got = [w * (1 + 1e-3) for w in loaded[1:]]
    assert max(numerics.relative_differences(got, loaded[1:])) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="different shapes"):
        numerics.relative_differences(loaded[:2], loaded[:3])
