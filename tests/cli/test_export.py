"""`alexnet-export`: a run's checkpoint as a SavedModel, nothing overwritten."""

import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.slow  # commands in processes of their own, on the session's tiny run


def test_export_writes_the_saved_model_and_says_which_checkpoint(exported):
    folder, _, out = exported
    assert f"({1} crop(s)) to {folder}" in out and "ckpt-20" in out
    assert (folder / "saved_model.pb").exists()


def test_export_keeps_an_existing_folder_and_names_it(tiny_run, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep")
    out = run_cli(["-m", "alexnet_dist.cli.export", str(tiny_run[0]), str(taken)])
    assert out.returncode == 1 and f"{taken} exists" in out.stderr
    assert (taken / "mine.txt").read_text() == "keep"
