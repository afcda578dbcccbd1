"""The doctor's checks: a check that cannot run is a FAIL row, not a hang."""

import argparse
import sys

import pytest

from alexnet_dist.doctor import checks


def doctor(tmp_path, **kwargs) -> checks.Doctor:
    args = argparse.Namespace(records=None, quick=True, timeout=300.0)
    vars(args).update(kwargs)
    return checks.Doctor(args, str(tmp_path))


def test_a_process_that_hangs_fails_within_the_timeout(tmp_path):
    ok, message = doctor(tmp_path, timeout=1.0).run(
        [sys.executable, "-c", "import time; time.sleep(60)"]
    )
    assert not ok
    assert message == "no answer within --timeout=1 s"


@pytest.mark.slow
def test_unreadable_records_fail_the_input_check_naming_the_folder(tmp_path):
    missing = tmp_path / "no-records"
    result, rate = doctor(tmp_path, records=str(missing)).input_rate()
    assert result.status == "FAIL" and rate == 0.0
    assert str(missing) in result.figure


def test_table_and_verdict():
    rows = [checks.Result("towers", "2 x GPU", "pass", "max relative difference 1.2e-07")]
    text = checks.table(rows)
    assert text.splitlines()[0].split() == ["check", "devices", "result", "figure"]
    assert text.splitlines()[1].split()[:4] == ["towers", "2", "x", "GPU"]
    assert checks.verdict(3000.0, 1500.0, "GPU").startswith("The input pipeline keeps up")
    assert "2.0x" in checks.verdict(3000.0, 1500.0, "GPU")
    assert checks.verdict(1000.0, 4000.0, "GPU").startswith("Input-bound")
    assert checks.verdict(0.0, 4000.0, "GPU") == ""
