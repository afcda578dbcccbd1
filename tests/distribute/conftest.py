"""Fixtures for the distribution tests."""

import pytest

from alexnet_dist.doctor.numerics import load
from tests.distribute.numerics import PER_REPLICA, driver, finish


@pytest.fixture(scope="session")
def single_weights(tmp_path_factory):
    """(weights after STEPS steps of one replica with batch 2b, weights at step 0)."""
    folder = tmp_path_factory.mktemp("single")
    finish(driver("single", 2 * PER_REPLICA, folder / "w.npz"))
    finish(driver("single", 2 * PER_REPLICA, folder / "w0.npz", steps=0))
    return load(folder / "w.npz"), load(folder / "w0.npz")


@pytest.fixture(scope="session")
def single_owt_weights(tmp_path_factory):
    """The same for the one-tower network: (weights after STEPS steps, at step 0)."""
    folder = tmp_path_factory.mktemp("single_owt")
    finish(driver("single", 4 * PER_REPLICA, folder / "w.npz", options=["owt"]))
    finish(driver("single", 4 * PER_REPLICA, folder / "w0.npz", steps=0, options=["owt"]))
    return load(folder / "w.npz"), load(folder / "w0.npz")
