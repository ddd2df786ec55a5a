"""Issue 29 (held-out attack review): each broken promise reproduced as the review did it, then fixed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cbir.errors import BadImage
from cbir.images import read_image_file


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_folder_as_a_query_path_says_so_in_one_line_and_leaves_no_descriptor_open(tmp_path: Path) -> None:
    """Item 1: `open(fd)` sat outside the try, so each folder query raised IsADirectoryError and leaked its fd."""
    (tmp_path / "elephant").mkdir()
    before = open_fds()
    for folder in [tmp_path, tmp_path / "elephant"] * 100:
        with pytest.raises(BadImage, match="^is a folder, not an image$"):
            read_image_file(folder)
    assert open_fds() == before
