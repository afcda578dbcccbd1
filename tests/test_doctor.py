"""alexnet-doctor: every check passes on this machine's logical CPUs, and a check that
cannot run is a FAIL row (and exit code 1), not a hang."""

import argparse
import sys

import pytest

from alexnet_dist.doctor import report
from tests.helpers import run_cli

ROWS = (
    "mirrored on all devices = one device",
    "towers on two devices = one device",
    "horovod 2 ranks = one device",
    "mixed_bfloat16 step with XLA is finite",
    "train step, batch 8",
    "input pipeline, batch 32",
)


@pytest.mark.multiprocess
@pytest.mark.slow
def test_every_check_passes_on_logical_cpus(shapes_records):
    records, _ = shapes_records
    result = run_cli(
        ["-m", "alexnet_dist.doctor.report", "--quick", "--records", records, "--timeout", "300"],
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = result.stdout.split("\n\n", 1)[1]
    rows = {line.split("  ")[0]: line for line in table.splitlines()[1:] if "  " in line}
    for name in ROWS:
        assert name in rows, (name, table)
        cells = rows[name].split()
        assert "pass" in cells and "FAIL" not in cells, rows[name]
    for name in ROWS[:3]:  # the numerics: a measured difference, under the tolerance
        difference = float(rows[name].rsplit(" ", 1)[1])
        assert difference < report.TOLERANCE
    assert "2 x CPU (logical)" in rows[ROWS[0]]
    assert "2 ranks x CPU (Gloo)" in rows[ROWS[2]]
    assert "images/s" in rows[ROWS[4]] and "per core" in rows[ROWS[5]]
    # The figures end in a verdict on whether the input keeps up with the step.
    assert "keeps up" in result.stdout or "Input-bound" in result.stdout


def doctor(tmp_path, **kwargs) -> report.Doctor:
    args = argparse.Namespace(records=None, quick=True, timeout=300.0)
    vars(args).update(kwargs)
    return report.Doctor(args, str(tmp_path))


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
    rows = [report.Result("towers", "2 x GPU", "pass", "max relative difference 1.2e-07")]
    text = report.table(rows)
    assert text.splitlines()[0].split() == ["check", "devices", "result", "figure"]
    assert text.splitlines()[1].split()[:4] == ["towers", "2", "x", "GPU"]
    assert report.verdict(3000.0, 1500.0, "GPU").startswith("The input pipeline keeps up")
    assert "2.0x" in report.verdict(3000.0, 1500.0, "GPU")
    assert report.verdict(1000.0, 4000.0, "GPU").startswith("Input-bound")
    assert report.verdict(0.0, 4000.0, "GPU") == ""
