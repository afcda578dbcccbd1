"""`launch/multiworker.sh` (python -m alexnet_dist.cli.multiworker): its arguments (the
workers it starts: tests/distribute/test_launcher.py)."""

import pytest

from alexnet_dist.cli import multiworker


def test_at_least_one_worker(capsys):
    with pytest.raises(SystemExit) as exit_info:
        multiworker.main(["-n", "0", "--run-dir", "runs/x"])
    assert exit_info.value.code == 2
    assert "--num-workers must be >= 1, got 0" in capsys.readouterr().err
