"""AtomicWriter: a payload appears through a ``..data`` symlink to a
timestamped directory swapped in one rename; user-visible names are links
into ``..data``; an unchanged payload changes nothing; removed keys vanish."""

from __future__ import annotations

import os

import pytest

from agent.pods.atomic_writer import DATA_DIR, AtomicWriter, FileProjection, PayloadError


def timestamped_dirs(target) -> list[str]:
    return sorted(e for e in os.listdir(target) if e.startswith("..") and e not in (DATA_DIR,))


def test_a_payload_is_published_through_the_data_link(tmp_path):
    target = tmp_path / "vol"
    assert AtomicWriter(str(target)).write({"a.txt": FileProjection(b"A"), "dir/b.txt": FileProjection(b"B")})
    assert (target / "a.txt").read_text() == "A"
    assert (target / "dir" / "b.txt").read_text() == "B"
    assert os.readlink(target / "a.txt") == "..data/a.txt"
    assert os.readlink(target / "dir") == "..data/dir"
    [stamped] = timestamped_dirs(target)
    assert os.readlink(target / DATA_DIR) == stamped
    assert stamped.startswith("..20")


def test_file_modes_are_applied(tmp_path):
    AtomicWriter(str(tmp_path)).write({"key": FileProjection(b"k", mode=0o400), "pub": FileProjection(b"p")})
    assert os.stat(tmp_path / "key").st_mode & 0o777 == 0o400
    assert os.stat(tmp_path / "pub").st_mode & 0o777 == 0o644


def test_an_unchanged_payload_changes_nothing(tmp_path):
    writer = AtomicWriter(str(tmp_path))
    writer.write({"a": FileProjection(b"1")})
    before = os.readlink(tmp_path / DATA_DIR)
    assert writer.write({"a": FileProjection(b"1")}) is False
    assert os.readlink(tmp_path / DATA_DIR) == before


def test_an_update_swaps_the_directory_and_removes_the_old_one(tmp_path):
    writer = AtomicWriter(str(tmp_path))
    writer.write({"a": FileProjection(b"1"), "gone": FileProjection(b"x")})
    old = os.readlink(tmp_path / DATA_DIR)
    assert writer.write({"a": FileProjection(b"2"), "new": FileProjection(b"n")})
    assert (tmp_path / "a").read_text() == "2"
    assert (tmp_path / "new").read_text() == "n"
    assert not os.path.lexists(tmp_path / "gone")
    assert os.readlink(tmp_path / DATA_DIR) != old
    assert timestamped_dirs(tmp_path) == [os.readlink(tmp_path / DATA_DIR)]


def test_a_mode_change_alone_is_an_update(tmp_path):
    writer = AtomicWriter(str(tmp_path))
    writer.write({"a": FileProjection(b"1", 0o644)})
    assert writer.write({"a": FileProjection(b"1", 0o600)})
    assert os.stat(tmp_path / "a").st_mode & 0o777 == 0o600


def test_an_empty_payload_empties_the_directory(tmp_path):
    writer = AtomicWriter(str(tmp_path))
    writer.write({"a": FileProjection(b"1")})
    writer.write({})
    assert [e for e in os.listdir(tmp_path) if not e.startswith("..")] == []


def test_files_the_user_put_beside_the_payload_are_left_alone(tmp_path):
    (tmp_path / "mine").write_text("keep")
    AtomicWriter(str(tmp_path)).write({"a": FileProjection(b"1")})
    assert (tmp_path / "mine").read_text() == "keep"


@pytest.mark.parametrize("path", ["/etc/passwd", "../escape", "a/../../b", "..hidden", "a//b", ""])
def test_paths_that_could_escape_or_collide_are_refused(tmp_path, path):
    with pytest.raises(PayloadError):
        AtomicWriter(str(tmp_path)).write({path: FileProjection(b"x")})
