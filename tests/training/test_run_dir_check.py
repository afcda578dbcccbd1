"""The run directory's write probe (the read-only mounts are in tests/faults/test_disk.py)."""

from alexnet_dist.training.run_dir_check import unwritable


def test_a_new_run_directory_under_a_writable_parent_is_fine(tmp_path):
    assert unwritable(tmp_path / "runs" / "a" / "b") is None
    assert not (tmp_path / "runs").exists()  # probing creates nothing
    assert list(tmp_path.iterdir()) == []


def test_a_file_in_the_way_is_named(tmp_path):
    (tmp_path / "runs").write_text("not a directory")
    assert unwritable(tmp_path / "runs" / "a") == f"{tmp_path}/runs is a file, not a directory"
