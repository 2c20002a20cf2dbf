"""Reading a small file the inventory names (a ``${file:...}`` secret, a ``ca_file``), never blocking.

Why its own module: these files are read while an inventory loads, by ``gatewayd check``, at start-up
and on SIGHUP. A plain ``open().read()`` waits forever on a FIFO without a writer, and reads a device or a
huge file without bound. Here the file is opened with ``O_NONBLOCK`` (opening a FIFO never waits),
checked with ``fstat`` on that same descriptor (nothing can swap the file between check and read), and
read up to a cap. Whatever is wrong comes back as a ``ValueError`` whose message completes "file X ...",
for the caller to turn into a located problem.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl  # imported when a CA bundle is loaded: loading an inventory needs no TLS

#: Open flags: never wait on open (FIFOs, serial devices), never become a controlling terminal.
_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words an operator recognises."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_regular_file(path: str | Path, limit: int) -> bytes:
    """The content of the regular file ``path``, at most ``limit`` bytes; ValueError otherwise.

    The message says what is wrong: "does not exist", "is a FIFO (named pipe), not a regular file",
    "is larger than 65536 bytes", "cannot be read: Permission denied".
    """
    try:
        fd = os.open(path, _FLAGS)
    except FileNotFoundError:
        raise ValueError("does not exist") from None
    except OSError as exc:
        raise ValueError(f"cannot be opened: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"is {file_kind(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise ValueError(f"is larger than {limit} bytes ({info.st_size} bytes)")
        chunks: list[bytes] = []
        total = 0
        while total <= limit:  # the file may grow after fstat: one byte past the cap tells
            chunk = os.read(fd, limit + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise ValueError(f"is larger than {limit} bytes")
        return b"".join(chunks)
    except OSError as exc:
        raise ValueError(f"cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


#: A CA bundle: the whole system bundle of a distribution is about 220 KB.
MAX_CA_FILE_BYTES = 4 * 1024 * 1024


def load_ca_bundle(path: str | Path) -> ssl.SSLContext:
    """A client TLS context trusting exactly the PEM certificates in ``path``; ValueError otherwise.

    The one loader for ``ca_file``: ``gatewayd check`` (and every inventory load) and the HTTP clients
    use it, so what ``check`` accepts is what ``run`` can use.
    """
    import ssl

    data = read_regular_file(path, MAX_CA_FILE_BYTES)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("is not a PEM file (it is not ASCII text)") from None
    if not text.strip():  # (an empty cadata would load the system's certificates instead)
        raise ValueError("holds no PEM certificate")
    try:
        context = ssl.create_default_context(cadata=text)
    except ssl.SSLError as exc:
        reason = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", str(exc.args[1] if len(exc.args) > 1 else exc))
        raise ValueError(f"does not load as PEM certificates: {reason}") from None
    if not context.cert_store_stats()["x509"]:
        raise ValueError("holds no PEM certificate")
    return context
