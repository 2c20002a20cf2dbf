"""One small JSON record in the state directory: the Thing+ token, the registered ids, poll marks.

Why files like this: a Thing+ password-grant token lives 90 days, and asking for a new one at every
restart of an edge box is wasteful and shows up in the cloud's audit as a login storm; registered ids must
survive restarts so nothing is registered twice. A record may hold a bearer token, so it is created mode
0600 (never wider, whatever the umask) in a 0700 directory, and replaced atomically: a crash or a full disk
mid-write leaves the previous record or no record, never half of one.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from gatewayd.errors import StorageError
from gatewayd.outbox.storagefaults import storage_error

log = structlog.get_logger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700
#: Bytes gathered before each write while a record is streamed out.
_WRITE_BUFFER = 64 * 1024


class StateFile:
    """Load, save and clear one JSON object at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"StateFile({str(self.path)!r})"

    def load(self) -> dict[str, Any] | None:
        """The saved record, or None when there is none or it is unreadable as JSON (logged).

        A corrupt file is not an error worth stopping for: the caller asks the cloud for a new token and
        the next :meth:`save` replaces it. A file that exists but cannot be read at all is a StorageError.
        """
        try:
            raw = self.path.read_bytes()
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read state file {self.path}: {exc.strerror or exc}") from exc
        if stat.S_IMODE(mode) & 0o077:
            log.warning("statefile.too_open", path=str(self.path), mode=oct(stat.S_IMODE(mode)))
        try:
            record = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            log.warning("statefile.corrupt", path=str(self.path), reason=f"not JSON: {exc}")
            return None
        if not isinstance(record, dict):
            log.warning(
                "statefile.corrupt", path=str(self.path), reason=f"not an object: {type(record).__name__}"
            )
            return None
        return record

    def save(self, record: dict[str, Any], *, default: Callable[[Any], Any] | None = None) -> None:
        """Replace the file with ``record`` atomically: temp file (0600), fsync, rename, fsync directory.
        A full disk raises :class:`~gatewayd.errors.DiskFullError` (the caller may wait for room).

        ``default`` turns objects JSON does not know into JSON values, one at a time as they are written:
        a registry of 10,000 sensors is streamed out without a dict per entry and the whole text in memory.
        """
        encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=default)
        directory = self.path.parent
        try:
            directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(
                f"cannot create state directory {directory} for state files", exc, directory
            ) from exc
        tmp = directory / f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)
        except OSError as exc:
            raise storage_error(f"cannot write state file in {directory}", exc, directory) from exc
        try:
            try:
                # The umask can only narrow the mode; fchmod makes it exactly 0600 in every case.
                os.fchmod(fd, FILE_MODE)
                pending: list[str] = []
                size = 0
                for chunk in itertools.chain(encoder.iterencode(record), ["\n"]):
                    pending.append(chunk)
                    size += len(chunk)
                    if size >= _WRITE_BUFFER:
                        _write_all(fd, "".join(pending).encode("utf-8"))
                        pending, size = [], 0
                _write_all(fd, "".join(pending).encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except BaseException as exc:  # no temp file left behind, whatever went wrong
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise storage_error(f"cannot write state file {self.path}", exc, directory) from exc
            raise
        _fsync_dir(directory)

    def clear(self) -> None:
        """Forget the record (a missing file is fine)."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot remove state file {self.path}: {exc.strerror or exc}") from exc
        _fsync_dir(self.path.parent)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable. Some filesystems refuse this: logged, not fatal."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return
    except OSError as exc:
        log.warning("statefile.dir_fsync_failed", path=str(directory), error=str(exc))
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        log.warning("statefile.dir_fsync_failed", path=str(directory), error=str(exc))
    finally:
        os.close(fd)
