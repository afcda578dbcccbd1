"""What alexnet-convert converts: the files of a split and their classes."""

import pytest

from alexnet_dist.data.converter import convert_tree
from alexnet_dist.data.schema import ConversionError


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p / "missing", "does not exist"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "has no class folders"),
        (lambda p: (p / "e" / "n01").mkdir(parents=True) or p / "e", "no image files"),
    ],
)
def test_missing_or_empty_input_is_named(tmp_path, make, match):
    src = make(tmp_path)
    with pytest.raises(ConversionError, match=match) as info:
        convert_tree(str(src), str(tmp_path / "out"), "train", 1)
    assert str(src) in str(info.value)


@pytest.mark.security
@pytest.mark.parametrize("name", ["cat\nfish", "tab\tcat", "bell\x07", " dog", "dog "])
def test_a_class_name_that_labels_txt_cannot_hold_is_refused(tmp_path, name):
    """A newline in a class folder's name would shift every label after it in labels.txt;
    leading or trailing whitespace would be stripped by its readers."""
    for cls in ("ant", name):
        (tmp_path / "in" / cls).mkdir(parents=True)
        (tmp_path / "in" / cls / "a.jpg").write_bytes(b"not read")
    with pytest.raises(ConversionError, match="the class name") as info:
        convert_tree(str(tmp_path / "in"), str(tmp_path / "out"), "train", 1)
    assert repr(name) in str(info.value) and str(tmp_path / "in" / name) in str(info.value)
    assert not (tmp_path / "out").exists()
