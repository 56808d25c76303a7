"""The areas list of a force folder, read once per content: a changed, broken or removed file is read again."""

from __future__ import annotations

import os

import pytest

from etl.core.validation import FileFailure
from etl.loading import reference
from etl.loading.reference import read_areas


def _write(root, text: str) -> None:
    (root / "reference").mkdir(parents=True, exist_ok=True)
    (root / "reference" / "areas.csv").write_text(text)


def test_same_file_is_read_once_and_a_change_is_seen_at_once(tmp_path, monkeypatch):
    _write(tmp_path, "force_id,npu\nf,N1\nf,N2\n")
    reads = []
    real = reference.read_file
    monkeypatch.setattr(reference, "read_file", lambda *a: reads.append(a[0]) or real(*a))
    assert read_areas(tmp_path) == {"f": ["N1", "N2"]}
    assert read_areas(tmp_path) == {"f": ["N1", "N2"]}
    assert len(reads) == 1
    path = tmp_path / "reference" / "areas.csv"
    st = path.stat()
    _write(tmp_path, "force_id,npu\nf,N1\nf,N3\n")  # same size, and the old times put back: the content decides
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert read_areas(tmp_path) == {"f": ["N1", "N3"]}
    assert len(reads) == 2


def test_a_returned_list_changed_by_a_caller_does_not_change_the_next_read(tmp_path):
    _write(tmp_path, "force_id,npu\nf,N1\n")
    first = read_areas(tmp_path)
    assert first is not None
    first["g"] = ["X"]
    assert read_areas(tmp_path) == {"f": ["N1"]}


def test_a_broken_file_fails_every_time_and_a_removed_one_is_none(tmp_path):
    _write(tmp_path, "force_id,area\nf,N1\n")
    for _ in range(2):
        with pytest.raises(FileFailure) as info:
            read_areas(tmp_path)
        assert info.value.rule == "columns_present"
    _write(tmp_path, "force_id,npu\nf,N1\n")
    assert read_areas(tmp_path) == {"f": ["N1"]}
    (tmp_path / "reference" / "areas.csv").unlink()
    assert read_areas(tmp_path) is None
