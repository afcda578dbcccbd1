"""alexnet-doctor: every check passes on this machine's logical CPUs, and a check that
cannot run is a FAIL row (and exit code 1), not a hang."""

import pytest

from alexnet_dist.doctor.checks import TOLERANCE
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
        ["-m", "alexnet_dist.cli.doctor", "--quick", "--records", records, "--timeout", "300"],
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
        assert difference < TOLERANCE
    assert "2 x CPU (logical)" in rows[ROWS[0]]
    assert "2 ranks x CPU (Gloo)" in rows[ROWS[2]]
    assert "images/s" in rows[ROWS[4]] and "per core" in rows[ROWS[5]]
    # The figures end in a verdict on whether the input keeps up with the step.
    assert "keeps up" in result.stdout or "Input-bound" in result.stdout
