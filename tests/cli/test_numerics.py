"""The numerics driver (python -m alexnet_dist.cli.numerics), run in this process: the chief's
weights in the model's order, and what ran on each device."""

import json

import numpy as np

from alexnet_dist.cli import numerics
from alexnet_dist.doctor.numerics import NUM_WEIGHTS, load
from tests.helpers import PER_REPLICA, STEPS


def test_saves_the_weights_and_the_placement(single_weights, tmp_path):
    out = tmp_path / "w.npz"
    argv = ["numerics", "single", str(STEPS), str(2 * PER_REPLICA), str(out), "placement"]
    assert numerics.main(argv) == 0
    weights = load(out)
    assert len(weights) == NUM_WEIGHTS["paper"]
    for got, want in zip(weights, single_weights[0], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)  # the same run
    ran = json.loads((tmp_path / "w.npz.0.placement.json").read_text())
    assert ran["devices"] is None and any("Conv2D" in op for op in ran["ops"]["CPU:0"])
    assert ran["variables"]["conv1_a/kernel"][0] == [11, 11, 3, 6]
