"""StateFile: 0600 file in a 0700 dir, atomic replace, tolerant of corrupt files, clear errors."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gatewayd.errors import DiskFullError, StorageError
from gatewayd.statefile import StateFile
from tests.conftest import SmallDisk

RECORD = {"access_token": "tok-1", "token_type": "Bearer", "obtained_at": 1700000000.5}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_missing_file_loads_none(tmp_path: Path) -> None:
    assert StateFile(tmp_path / "token.json").load() is None


def test_save_then_load_round_trips(tmp_path: Path) -> None:
    store = StateFile(tmp_path / "token.json")
    store.save(RECORD)
    assert store.load() == RECORD
    assert StateFile(tmp_path / "token.json").load() == RECORD  # a fresh instance (a restart) sees it


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_file_is_0600_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        store = StateFile(tmp_path / "token.json")
        store.save(RECORD)
        assert _mode(store.path) == 0o600
        store.save({**RECORD, "access_token": "tok-2"})  # replacing keeps the mode
        assert _mode(store.path) == 0o600
    finally:
        os.umask(old)


def test_creates_missing_parent_dir_0700(tmp_path: Path) -> None:
    store = StateFile(tmp_path / "state" / "token.json")
    old = os.umask(0)
    try:
        store.save(RECORD)
    finally:
        os.umask(old)
    assert _mode(tmp_path / "state") == 0o700
    assert store.load() == RECORD


def test_replace_overwrites_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = StateFile(tmp_path / "token.json")
    store.save(RECORD)
    store.save({**RECORD, "access_token": "tok-2"})
    assert store.load() == {**RECORD, "access_token": "tok-2"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["token.json"]


@pytest.mark.parametrize("failing", ["fsync", "replace", "write"])
def test_failed_write_keeps_previous_record_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    store = StateFile(tmp_path / "token.json")
    store.save(RECORD)
    before = store.path.read_bytes()

    real_write = os.write

    def half_write(fd: int, data: bytes | memoryview) -> int:
        real_write(fd, bytes(data)[: len(data) // 2])  # a partial write, then the disk fills up
        raise OSError(28, "No space left on device")

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(5, "Input/output error")

    if failing == "write":
        monkeypatch.setattr(os, "write", half_write)
    else:
        monkeypatch.setattr(os, failing, broken)

    with pytest.raises(StorageError, match=r"cannot write state file .*token\.json"):
        store.save({**RECORD, "access_token": "tok-2"})
    monkeypatch.undo()

    assert store.path.read_bytes() == before  # the old record, whole
    assert store.load() == RECORD
    assert _leftovers(tmp_path) == []


def test_a_full_disk_is_a_disk_full_error_and_the_old_record_stays(small_disk: SmallDisk) -> None:
    """Told apart from other failures, so that a caller can wait for room (the registry's saver does)."""
    store = StateFile(small_disk.path / "state" / "registry.json")
    store.save(RECORD)
    small_disk.fill()
    with pytest.raises(DiskFullError, match=r"cannot write state file .*registry\.json: No space left"):
        store.save({**RECORD, "padding": "x" * 8192})
    assert store.load() == RECORD and _leftovers(store.path.parent) == []
    small_disk.unfill()
    store.save({**RECORD, "padding": "x"})
    assert store.load() == {**RECORD, "padding": "x"}


def test_unwritable_location_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    store = StateFile(blocker / "token.json")
    with pytest.raises(StorageError, match="cannot create state directory"):
        store.save(RECORD)


def test_open_failure_is_a_storage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(StorageError, match="Permission denied"):
        StateFile(tmp_path / "token.json").save(RECORD)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"access_token": "tok', "not JSON"),
        (b"\xff\xfe garbage", "not JSON"),
        (b"", "not JSON"),
        (b'["a", "list"]', "not an object"),
    ],
)
def test_corrupt_file_loads_none_and_is_logged(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "token.json"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with capture_logs() as logs:
        assert StateFile(path).load() is None
    corrupt = [e for e in logs if e["event"] == "statefile.corrupt"]
    assert len(corrupt) == 1
    assert corrupt[0]["path"] == str(path)
    assert reason in corrupt[0]["reason"]


def test_corrupt_file_is_replaced_by_next_save(tmp_path: Path) -> None:
    store = StateFile(tmp_path / "token.json")
    store.path.write_text("{{{")
    store.save(RECORD)
    assert json.loads(store.path.read_text()) == RECORD


def test_too_open_file_is_loaded_with_a_warning(tmp_path: Path) -> None:
    store = StateFile(tmp_path / "token.json")
    store.save(RECORD)
    os.chmod(store.path, 0o644)
    with capture_logs() as logs:
        assert store.load() == RECORD
    assert [e["event"] for e in logs] == ["statefile.too_open"]


def test_unreadable_path_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "token.json").mkdir()  # a directory where the file should be
    with pytest.raises(StorageError, match="cannot read state file"):
        StateFile(tmp_path / "token.json").load()


def test_clear(tmp_path: Path) -> None:
    store = StateFile(tmp_path / "token.json")
    store.clear()  # nothing there: fine
    store.save(RECORD)
    store.clear()
    assert not store.path.exists()
    assert store.load() is None


def test_log_events_never_hold_the_record(tmp_path: Path) -> None:
    store = StateFile(tmp_path / "token.json")
    with capture_logs() as logs:
        store.save({**RECORD, "access_token": "very-secret-token"})
        os.chmod(store.path, 0o640)
        store.load()
    assert logs  # the too-open warning at least
    assert "very-secret-token" not in repr(logs)
