"""Atomic writes: the target is replaced whole, or not at all."""
import pytest

from seqicl.atomic import atomic_write, atomic_write_text


def test_replaces_the_target_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "out" / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"]


def test_a_failed_write_keeps_the_previous_version(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")

    def broken(f):
        f.write(b"half")
        raise OSError("disk full")
    with pytest.raises(OSError):
        atomic_write(target, broken)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
