"""tools/bench_lrn.py: the LRN layers' time per precision."""

import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.slow  # the tool in a process of its own


def test_bench_lrn_prints_a_time_per_policy():
    result = run_cli(
        ["tools/bench_lrn.py", "--batch", "1", "--repeats", "1", "--policies", "float32",
         "mixed_bfloat16"],
        timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [row[0] for row in rows] == ["float32", "mixed_bfloat16"]
    assert all(float(row[1]) > 0 and row[2] == "ms" for row in rows), result.stdout
