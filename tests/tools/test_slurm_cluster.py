"""tools/slurm_cluster.sh as root: it starts munged and slurmctld only in a state directory
that no one else could have prepared, and never with a munge key it did not make.

Whoever places a munge key where the script picks it up can forge credentials and run
jobs as root on the test cluster. Each case is refused before any daemon starts.
"""

import os
import subprocess

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.security

SCRIPT = os.path.join(REPO, "tools", "slurm_cluster.sh")
NOBODY = 65534


def _start(state_dir, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SLURM_TEST_DIR": str(state_dir), "SLURM_TEST_PORT": "16917",
           "XDG_CACHE_HOME": str(tmp_path / "cache")}  # fmt: skip
    return subprocess.run(["bash", SCRIPT, "start"], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def _daemons_of(state_dir) -> str:
    found = subprocess.run(["pgrep", "-af", str(state_dir)], capture_output=True, text=True)
    return found.stdout


def test_a_symlink_is_refused_and_nothing_is_written_through_it(tmp_path):
    target = tmp_path / "target"
    target.mkdir(mode=0o711)
    link = tmp_path / "state"
    link.symlink_to(target)
    done = _start(link, tmp_path)
    assert done.returncode == 2
    assert f"{link} is a symlink" in done.stderr
    assert list(target.iterdir()) == []
    assert _daemons_of(target) == ""


def test_a_directory_of_another_user_is_refused(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o711)
    os.chown(state, NOBODY, NOBODY)
    done = _start(state, tmp_path)
    assert done.returncode == 2
    assert f"{state} belongs to uid {NOBODY}, not to you" in done.stderr
    assert list(state.iterdir()) == []


@pytest.mark.parametrize("mode", [0o777, 0o755, 0o730])
def test_a_directory_others_may_read_or_write_is_refused(tmp_path, mode):
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(mode)
    done = _start(state, tmp_path)
    assert done.returncode == 2
    assert f"{state} is open to others (mode {mode:o})" in done.stderr
    assert list(state.iterdir()) == []


@pytest.mark.parametrize("planted", ["symlink", "foreign"])
def test_a_munge_key_put_there_in_advance_is_not_used(tmp_path, planted):
    state = tmp_path / "state"
    state.mkdir(mode=0o711)
    attackers = tmp_path / "attackers.key"
    attackers.write_bytes(b"k" * 1024)
    key = state / "munge.key"
    if planted == "symlink":
        key.symlink_to(attackers)
    else:
        key.write_bytes(b"k" * 1024)
        os.chown(key, NOBODY, NOBODY)
    done = _start(state, tmp_path)
    assert done.returncode == 2
    assert f"{key} is not a key this script made" in done.stderr
    assert _daemons_of(state) == ""
    assert attackers.read_bytes() == b"k" * 1024
