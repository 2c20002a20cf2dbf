"""Command sensors: run a program each interval (argv, no shell) and parse what it prints.

Why a process group: a command is often a script that starts other programs; killing only the script on
a timeout would leave its children running and holding the output pipe. Each command starts in a new
session (its own process group), and on a timeout, a cancellation or an error the whole group is killed
and the command reaped before :meth:`CommandReader.read` returns, so nothing is left behind. Output is
captured up to :data:`MAX_OUTPUT_BYTES` per stream; the rest is drained and dropped, so a chatty command
costs neither memory nor a blocked pipe.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

from gatewayd.errors import SourceError
from gatewayd.inventory.sources import CommandSource
from gatewayd.sources.pick import number_or_text, pick_path, pick_regex

#: Bytes of stdout (and of stderr) kept per run.
MAX_OUTPUT_BYTES = 64 * 1024


async def _capture(stream: asyncio.StreamReader | None, limit: int) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes of ``stream``, reading on to EOF; and whether more was dropped."""
    if stream is None:
        return b"", False
    kept = bytearray()
    dropped = False
    while chunk := await stream.read(65536):
        room = limit - len(kept)
        if room > 0:
            kept += chunk[:room]
        if len(chunk) > room:
            dropped = True
    return bytes(kept), dropped


def _first_line(data: bytes) -> str:
    for line in data.decode("utf-8", errors="replace").splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


def _kill_group(process: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the group's id is the command's pid (new session)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.kill()
    except ProcessLookupError:
        pass


class CommandReader:
    """Runs ``config.argv`` with ``config.timeout``; stdout is a number, or picked by regex or JSON path."""

    def __init__(self, config: CommandSource) -> None:
        self.config = config
        self.argv = list(config.argv)
        #: Only the program is named in messages: arguments may carry secrets.
        self.name = os.path.basename(self.argv[0])

    async def read(self) -> float | int | str:
        stdout, truncated = await self._run()
        try:
            return number_or_text(self._pick(stdout, truncated), self.config.scale, self.config.offset)
        except SourceError as exc:
            raise SourceError(f"command {self.name}: {exc}") from None

    async def _run(self) -> tuple[str, bool]:
        return await run_argv(self.argv, self.config.timeout, self.name)

    def _pick(self, stdout: str, truncated: bool) -> Any:
        if not stdout.strip():
            raise SourceError("printed nothing")
        if self.config.json_path is not None:
            try:
                document = json.loads(stdout)
            except ValueError as exc:
                more = f" (output cut at {MAX_OUTPUT_BYTES} bytes)" if truncated else ""
                raise SourceError(f"output is not JSON: {exc}{more}") from None
            return pick_path(document, self.config.json_path)
        if self.config.regex is not None:
            return pick_regex(stdout, self.config.regex)
        return stdout

    async def close(self) -> None:
        return None


async def _reap(process: asyncio.subprocess.Process) -> None:
    """Wait for a killed command to be reaped, even when the read itself is being cancelled."""
    waiter = asyncio.ensure_future(process.wait())
    try:
        await asyncio.shield(waiter)
    except asyncio.CancelledError:
        await waiter  # SIGKILL was sent: this is quick; then let the cancellation go on
        raise


async def run_argv(argv: list[str], timeout: float, name: str) -> tuple[str, bool]:
    """Run ``argv`` (no shell) within ``timeout``: its stdout, and whether more was dropped. Any failure
    (not found, timed out, a non-zero exit with its first line of stderr) is a SourceError that names the
    command ``name`` only (arguments may carry secrets). Sensors and actuators run their commands here.
    """
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise SourceError(f"command {name}: {argv[0]!r} not found") from None
    except PermissionError:
        raise SourceError(f"command {name}: {argv[0]!r} is not executable") from None
    except OSError as exc:
        raise SourceError(f"command {name}: cannot start: {exc.strerror or exc}") from None

    async def communicate() -> tuple[tuple[bytes, bool], tuple[bytes, bool], int]:
        out, err = await asyncio.gather(
            _capture(process.stdout, MAX_OUTPUT_BYTES), _capture(process.stderr, MAX_OUTPUT_BYTES)
        )
        return out, err, await process.wait()

    try:  # wait_for, not asyncio.timeout (3.11+): the box runs Python 3.9
        (stdout, truncated), (stderr, _), returncode = await asyncio.wait_for(communicate(), timeout)
    except asyncio.TimeoutError:
        raise SourceError(f"command {name}: timed out after {timeout:g}s (killed)") from None
    finally:
        if process.returncode is None:
            _kill_group(process)
            await _reap(process)
    if returncode != 0:
        message = f"command {name}: {_exit_reason(returncode)}"
        line = _first_line(stderr)
        raise SourceError(f"{message}: {line}" if line else message)
    return stdout.decode("utf-8", errors="replace"), truncated
