"""``gatewayd demo`` as a child process: what the browser tests and scripts/screenshots.py look at.

Started as a user starts it (``python -m gatewayd demo``), on any free port (``--port 0``); where its
console and the daemons' status pages are is read from its first line, as a user reads it. Its output is
read by threads (a pipe that fills would stall it) and kept for a failure's message. Stopped with SIGINT,
as Ctrl-C stops it.
"""

from __future__ import annotations

import collections
import contextlib
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
#: The demo's first line: ``gatewayd demo: console URL  daemon pages: https URL, mqtt URL``.
FIRST_LINE = re.compile(r"gatewayd demo: console (?P<console>\S+)  daemon pages: (?P<pages>.+)")


def answers(url: str) -> bool:
    """Whether an HTTP server answers ``url`` (with any status)."""
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


class DemoFailed(RuntimeError):
    """The demo did not start (or stop) as it should; the message ends with its output."""


class RunningDemo:
    """One ``gatewayd demo`` child: :attr:`console` (its URL) and :attr:`daemons` (label -> page URL)."""

    def __init__(self, *args: str, start_timeout: float = 60.0) -> None:
        self.argv = [sys.executable, "-m", "gatewayd", "demo", "--port", "0", *args]
        self.lines: collections.deque[str] = collections.deque(maxlen=400)
        self.first_line: str | None = None
        self._first = threading.Event()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        if not self._first.wait(start_timeout) or self.first_line is None:
            self.kill()
            raise DemoFailed(f"no first line within {start_timeout:g}s{self.output()}")
        found = FIRST_LINE.fullmatch(self.first_line)
        if found is None:
            self.kill()
            raise DemoFailed(f"the first line does not say where the pages are{self.output()}")
        self.console: str = found.group("console")
        self.daemons: dict[str, str] = dict(page.split(" ", 1) for page in found.group("pages").split(", "))
        # The line comes first; the daemons open their pages once they run: wait for every page.
        deadline = time.monotonic() + start_timeout
        for url in [self.console, *self.daemons.values()]:
            while not answers(url):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.kill()
                    raise DemoFailed(f"{url} did not answer{self.output()}")
                time.sleep(0.1)

    def _read(self, stream: IO[str], stdout: bool) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))
            if stdout and self.first_line is None:
                self.first_line = line.rstrip("\n")
                self._first.set()
        if stdout:
            self._first.set()  # ended without a line: the start fails at once

    def output(self) -> str:
        return "\n--- demo output ---\n" + "\n".join(self.lines)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGINT (Ctrl-C), then its exit status; DemoFailed (after a kill) if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise DemoFailed(f"did not stop within {timeout:g}s of SIGINT{self.output()}") from None
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait(10)


@contextmanager
def running_demo(*args: str) -> Iterator[RunningDemo]:
    """A demo for the block; killed on the way out if the block did not stop it."""
    demo = RunningDemo(*args)
    try:
        yield demo
    finally:
        demo.kill()
