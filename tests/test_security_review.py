"""Issue 29 (held-out attack review): each broken promise reproduced as the review did it, then fixed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cbir.auth import throttle, users
from cbir.errors import BadArgument, BadImage, LoginRefused
from cbir.images import read_image_file
from cbir.storage import db


@pytest.fixture(autouse=True)
def fresh_throttle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no wrong passwords counted (the throttle lives as long as its process)."""
    monkeypatch.setattr(users, "THROTTLE", throttle.Throttle())


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


def test_a_password_over_the_limit_is_refused_when_set_and_at_login_never_cut(cbir_home: Path) -> None:
    """Item 7: authenticate cut the attempt to 1,024 characters, so "k"*1024 + anything logged in as carol."""
    with db.connect() as conn:
        users.add_user(conn, "carol", "k" * users.MAX_PASSWORD)
        with pytest.raises(BadArgument, match="8 to 1024 characters"):
            users.add_user(conn, "carol2", "k" * (users.MAX_PASSWORD + 1))
        assert [a.name for a in users.list_users(conn)] == ["carol"]
    try:
        for tail in ("ANYTHING", "k"):
            with pytest.raises(LoginRefused, match="^wrong user name or password$"):
                users.authenticate(db.connect, "carol", "k" * users.MAX_PASSWORD + tail, "192.0.2.1")
        assert users.authenticate(db.connect, "carol", "k" * users.MAX_PASSWORD, "192.0.2.2").name == "carol"
    finally:
        with db.connect() as conn:
            users.remove_user(conn, "carol")
