"""`python -m alexnet_dist.cli.data_service`: a dispatcher or a worker (the service serving a
trainer is tests/data/test_service.py, and under Slurm tests/slurm/test_scripts.py)."""

import pytest

from alexnet_dist.cli import data_service


def test_a_worker_needs_its_dispatcher_and_a_role_is_required(capsys):
    with pytest.raises(SystemExit) as exit_info:
        data_service.main(["worker"])
    assert exit_info.value.code == 2
    assert "--dispatcher" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        data_service.main([])
    assert exit_info.value.code == 2
