"""The 2014 hybrid over Horovod ranks: groups of ranks as replicas, exchanging activations
through collectives (the same seed giving the same network: test_placement.py)."""

import json
import sys

import pytest

from alexnet_dist.doctor.numerics import load
from tests.helpers import STEPS, assert_same_weights, horovodrun

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]


@pytest.mark.parametrize(
    "ranks, per_group",
    [(2, 2), (4, 2)],
    ids=["one-replica-of-2-ranks", "two-replicas-of-2-ranks"],
)
def test_the_2014_hybrid_over_ranks_matches_one_device(
    single_owt_weights, tmp_path, ranks, per_group
):
    # Horovod ranks as the hybrid's devices (distribute.ranks_per_replica): each rank runs
    # the convolutions on its images and holds half of each fully connected layer; with 4
    # ranks, two such replicas are data-parallel (Horovod process sets). 16 images a step.
    out = tmp_path / "w.npz"
    driver = ["-m", "alexnet_dist.cli.numerics", "horovod", str(STEPS), str(16 // ranks)]
    result = horovodrun(
        [sys.executable, *driver, str(out), f"hybrid{per_group}", "ranks", "placement"], ranks
    )
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-2000:]
    assert_same_weights(load(out), *single_owt_weights, variant="owt")
    for rank in range(ranks):
        held = json.loads((tmp_path / f"w.npz.{rank}.placement.json").read_text())["variables"]
        shard = rank % per_group
        # This rank's shard of each fully connected layer, and no other: half the units.
        assert sorted(p for p in held if p.startswith("fc")) == sorted(
            f"{stage}_{shard}/{w}" for stage in ("fc6", "fc7", "fc8") for w in ("kernel", "bias")
        ), (rank, held)
        assert held[f"fc6_{shard}/kernel"][0] == [32, 256], held  # 256 of 512 units
        assert held["conv1/kernel"][0] == [11, 11, 3, 8]  # the convolutions, whole
