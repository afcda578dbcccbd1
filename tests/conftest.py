"""Shared fixtures. Two logical CPU devices stand in for two GPUs in placement tests.

What many tests need is made once per session, in a folder that every process of the
session shares (ALEXNET_TEST_CACHE; with pytest-xdist, every worker): the rendered
datasets (the small `shapes_records`, and debug=tiny's, which every `alexnet-train
debug=tiny` of the session finds in the cache that ALEXNET_CACHE names), one trained
tiny run and its export. The first worker to need one makes it; the others wait for
it and read it.
"""

import fcntl
import glob
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import csv  # noqa: E402

import numpy as np  # noqa: E402
import scipy.io  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from tests.helpers import (  # noqa: E402
    DEVKIT_IDS,
    PER_REPLICA,
    TINY_RUN,
    WNIDS,
    other_machine_link,
    run_cli,
    write_image,
)

# Must run before TensorFlow initialises its devices, hence at import time.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)


def pytest_configure(config):
    # debug=tiny's data.cache_dir is ${oc.env:ALEXNET_CACHE,...}: every tiny run of the
    # session, in this process or any it starts (horovodrun, Slurm jobs), shares one cache
    # and renders the dataset once (a file lock makes concurrent first runs wait).
    if not os.environ.get("ALEXNET_TEST_CACHE"):
        os.environ["ALEXNET_TEST_CACHE"] = tempfile.mkdtemp(prefix="alexnet-test-cache-")
        config.add_cleanup(lambda: shutil.rmtree(os.environ.pop("ALEXNET_TEST_CACHE"), True))
    os.environ["ALEXNET_CACHE"] = os.environ["ALEXNET_TEST_CACHE"]


def _made_once(name: str, make) -> Path:
    """The session's folder `name`, filled by make(folder) once for all the session's workers."""
    folder = Path(os.environ["ALEXNET_TEST_CACHE"]) / name
    with open(f"{folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker making it: wait for it
        if not (folder / ".made").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            (folder / ".made").touch()
    return folder


@pytest.fixture(scope="session")
def tiny_cache() -> str:
    """The session's dataset cache, where debug=tiny runs find their data."""
    return os.environ["ALEXNET_CACHE"]


@pytest.fixture(scope="session")
def mirrored_runtime():
    """MirroredStrategy over the two logical CPUs: one for every test of the session, since
    strategies made in one process number their collectives alike, and clash."""
    from alexnet_dist.config import DistributeConfig
    from alexnet_dist.distribute.backends import create_runtime

    return create_runtime(DistributeConfig(backend="mirrored", logical_cpus=2))


@pytest.fixture(scope="session")
def shapes_records():
    """A small built-in dataset (120 train and 30 val images in 4 shards each): (its records,
    the cache it was rendered into)."""
    from alexnet_dist.data import shapes

    spec = shapes.ShapesSpec(image_size=72, train_per_class=12, val_per_class=3)
    cache = _made_once("shapes_records", lambda folder: shapes.prepare(str(folder), spec, 2))
    return shapes.prepare(str(cache), spec), cache


@pytest.fixture(scope="session")
def tiny_run(tiny_cache):
    """One run of `alexnet-train debug=tiny` with dropout off (two epochs of 10 steps,
    evaluated at steps 10 and 20, checkpoints every 5, a profile of steps 3-4), for the
    tests that read what a run leaves and the runs of other layouts held against it:
    (run directory, its stdout, the rendered dataset's folder)."""

    def train(folder):
        result = run_cli(
            ["-m", "alexnet_dist.cli.train", *TINY_RUN, f"hydra.run.dir={folder / 'run'}",
             "trainer.profile_steps=[3,4]"],
            timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-4000:]
        (folder / "stdout.txt").write_text(result.stdout)

    folder = _made_once("tiny_run", train)
    from alexnet_dist.data import shapes

    dataset = shapes.ShapesSpec(image_size=72, train_per_class=16, val_per_class=4).dirname()
    return folder / "run", (folder / "stdout.txt").read_text(), os.path.join(tiny_cache, dataset)


@pytest.fixture(scope="session")
def exported(tiny_run):
    """The tiny run's last checkpoint exported by `alexnet-export`: (its folder, a validation
    image of the run's dataset, what the command printed)."""
    run_dir, _, dataset = tiny_run

    def export(folder):
        result = run_cli(["-m", "alexnet_dist.cli.export", str(run_dir), str(folder / "alexnet"),
                          "--checkpoint", "latest"])  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        (folder / "stdout.txt").write_text(result.stdout)

    folder = _made_once("exported", export)
    image = sorted(glob.glob(f"{dataset}/jpeg/val/circle/*.jpg"))[0]
    return folder / "alexnet", image, (folder / "stdout.txt").read_text()


@pytest.fixture
def tiny_run_copy(tiny_run, tmp_path):
    """A copy of the tiny run's directory, for a test that damages or extends it."""
    copy = tmp_path / "run"
    shutil.copytree(tiny_run[0], copy)
    return copy


@pytest.fixture
def other_machine():
    """Another machine on the network, as a veth-joined network namespace (root): its
    namespace file and this machine's address on the link (tests/helpers.py)."""
    with other_machine_link() as machine:
        yield machine


@pytest.fixture
def tree(tmp_path):
    """3 classes x 5 JPEGs, each image a distinct colour."""
    root = tmp_path / "images"
    for c, name in enumerate(["n01", "n02", "n03"]):
        for i in range(5):
            write_image(str(root / name / f"img_{i}.JPEG"), (40 * c, 30 * i, 200))
    return root


@pytest.fixture
def imagenet(tmp_path):
    """A miniature ILSVRC-2012: train/<wnid>/*.JPEG, flat val/, devkit, Kaggle CSV."""
    rng = np.random.default_rng(0)
    root = tmp_path / "ILSVRC2012"
    for c, wnid in enumerate(WNIDS):
        for i in range(4):
            path = root / "train" / wnid / f"{wnid}_{i}.JPEG"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 255, (30 + 4 * i, 40, 3), dtype=np.uint8)
            pixels[..., c] = 250  # a colour per class
            Image.fromarray(pixels).save(path, quality=95)
    truth = []
    (root / "val").mkdir()
    for n in range(1, 7):
        wnid = WNIDS[n % 3]
        pixels = np.full((36, 48, 3), 20, np.uint8)
        pixels[..., n % 3] = 250
        Image.fromarray(pixels).save(root / "val" / f"ILSVRC2012_val_{n:08d}.JPEG")
        truth.append(wnid)
    devkit = root / "ILSVRC2012_devkit_t12" / "data"
    devkit.mkdir(parents=True)
    (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text(
        "".join(f"{DEVKIT_IDS[w]}\n" for w in truth)
    )
    synsets = np.zeros(4, dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")])
    for i, wnid in enumerate(WNIDS):
        synsets[i] = (DEVKIT_IDS[wnid], wnid, 0)
    synsets[3] = (1001, "n00001740", 3)  # an inner node of the hierarchy: not a class
    scipy.io.savemat(devkit / "meta.mat", {"synsets": synsets})
    with open(root / "LOC_val_solution.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ImageId", "PredictionString"])
        for n, wnid in enumerate(truth, 1):
            writer.writerow([f"ILSVRC2012_val_{n:08d}", f"{wnid} 1 2 30 40 {wnid} 5 5 9 9"])
    return root, truth


@pytest.fixture(scope="session")
def single_weights():
    """(weights after STEPS steps of one replica with batch 2b, weights at step 0): the
    reference every distributed layout of the paper network is held against."""
    from tests.distribute.helpers import numerics_run

    return numerics_run("single", 2 * PER_REPLICA), numerics_run("single", 2 * PER_REPLICA, 0)


@pytest.fixture(scope="session")
def single_owt_weights():
    """The same for the one-tower network: (weights after STEPS steps, at step 0)."""
    from tests.distribute.helpers import numerics_run

    return (
        numerics_run("single", 4 * PER_REPLICA, variant="owt"),
        numerics_run("single", 4 * PER_REPLICA, 0, variant="owt"),
    )
