"""One exception tree for gatewayd, split by what the caller must do about it.

    GatewaydError
    ├── ConfigError            bad inventory or usage: exit 2 with located messages
    ├── StorageError           the state directory or outbox cannot be used
    │   ├── StateDirLockedError    another gatewayd holds the state directory's lock
    │   └── DiskFullError      no room left: wait for it (samples wait in memory), never give up
    ├── SourceError            one read of one sensor failed: that sensor reports 'err', the rest go on
    ├── ActuatorError          a command to an actuator failed: it reports 'err', the cloud gets an error
    └── CloudError             anything a cloud call can end in (carries cloud, operation)
        ├── TransientError     retry with backoff: 5xx, 429, timeouts, connection errors
        │   ├── RateLimitedError   429, with the server's Retry-After when it gave one
        │   └── DeferredError      not sent at all: the cloud's Retry-After has not run out yet
        ├── AuthError          token missing/expired/refused: refresh once, then retry
        ├── PermanentError     the request itself is wrong (4xx, business codes): never retry
        │   ├── AlreadyExistsError  409 CONFLICT on registration: the object is already there
        │   └── InvalidSeriesError  a series body refused before sending (also a ValueError)
        └── TamperedError      a signed response whose signature does not verify

aiohttp's exceptions are mapped to this tree in exactly one place: ``gatewayd.clouds.http``.
"""

from __future__ import annotations

from dataclasses import dataclass


class GatewaydError(Exception):
    """Root of every error gatewayd raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One located problem in an inventory: ``FILE:LINE:COL: path.to.key: message``."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(GatewaydError):
    """The inventory or the command line is wrong. Holds every problem found, not only the first."""

    def __init__(self, problems: list[ConfigProblem] | str) -> None:
        if isinstance(problems, str):
            problems = [ConfigProblem(file="", line=None, column=None, path="", message=problems)]
        self.problems = problems
        super().__init__("\n".join(str(p).lstrip(": ") for p in problems))


class StorageError(GatewaydError):
    """The state directory, token file or outbox database cannot be read or written."""


class StateDirLockedError(StorageError):
    """Another process (a running daemon) holds the state directory's lock: one daemon per directory."""

    def __init__(self, state_dir: object, pid: int | None) -> None:
        self.state_dir = str(state_dir)
        self.pid = pid
        holder = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(f"the daemon ({holder}) is running on state_dir {self.state_dir}; stop it first")


class DiskFullError(StorageError):
    """The filesystem (or the quota) is full: a condition that passes, not a damaged file. The outbox is
    kept, sampling goes on into a bounded memory buffer, and writing is retried until there is room."""


class SourceError(GatewaydError):
    """A sensor source could not produce a value this time (file missing, timeout, bad output...)."""


class ActuatorError(GatewaydError):
    """An actuator's target did not do what the command asked (write refused, command failed, timeout...)."""


class CloudError(GatewaydError):
    """A call to Thing+, RCMS or loctube failed.

    ``code`` and ``message`` are the cloud's own (e.g. ``SCHEMA_VALIDATE``, ``40002``) when it gave them.
    """

    def __init__(
        self,
        message: str,
        *,
        cloud: str = "",
        operation: str = "",
        status: int | None = None,
        code: str | int | None = None,
    ) -> None:
        self.cloud = cloud
        self.operation = operation
        self.status = status
        self.code = code
        self.message = message
        super().__init__(message)

    @property
    def kind(self) -> str:
        """Short label for metrics and logs: transient, rate_limited, deferred, auth, permanent, tampered."""
        return _KIND_BY_CLASS.get(type(self), "error")

    def __str__(self) -> str:
        parts = [p for p in (self.cloud, self.operation) if p]
        head = " ".join(parts)
        detail = []
        if self.status is not None:
            detail.append(f"HTTP {self.status}")
        if self.code not in (None, ""):
            detail.append(f"code {self.code}")
        tail = f" ({', '.join(detail)})" if detail else ""
        return f"{head}: {self.message}{tail}" if head else f"{self.message}{tail}"

    def log_fields(self) -> dict[str, object]:
        """What a log line says of the failure (as key-values)."""
        return {"error": self.message, "code": self.code, "status": self.status, "kind": self.kind}

    def to_dict(self) -> dict[str, object]:
        """What the one-shot CLI commands print on failure."""
        return {
            "error": self.kind,
            "cloud": self.cloud,
            "operation": self.operation,
            "status": self.status,
            "code": self.code,
            "message": self.message,
        }


class TransientError(CloudError):
    """Worth retrying later: the cloud or the path to it is unwell right now.

    ``retry_after`` is the server's Retry-After in seconds (429, 503), when it said one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class RateLimitedError(TransientError):
    """HTTP 429. ``retry_after`` is the server's wish in seconds, when it said one."""


class DeferredError(TransientError):
    """The call was not sent: the cloud asked (Retry-After) not to be called before ``retry_after``
    seconds from now. Fails at once, so that the caller's other work goes on."""


class AuthError(CloudError):
    """The credentials or token were refused; a fresh token may fix it, once."""


class PermanentError(CloudError):
    """The request is wrong in a way retrying cannot fix; dead-letter it and say why."""


class AlreadyExistsError(PermanentError):
    """409 CONFLICT for a reqId that exists: for registration this means success."""


class InvalidSeriesError(PermanentError, ValueError):
    """A series body that must not be sent (a time in seconds, a number as value, ...): refused before any
    request, as the cloud would refuse it. Also a ValueError: the caller passed bad points."""


class TamperedError(CloudError):
    """A response's signature does not verify: its content must not be trusted."""


_KIND_BY_CLASS: dict[type[CloudError], str] = {
    CloudError: "error",
    TransientError: "transient",
    RateLimitedError: "rate_limited",
    DeferredError: "deferred",
    AuthError: "auth",
    PermanentError: "permanent",
    AlreadyExistsError: "conflict",
    InvalidSeriesError: "permanent",
    TamperedError: "tampered",
}
