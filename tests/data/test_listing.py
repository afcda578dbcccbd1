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
