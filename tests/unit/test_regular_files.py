"""Files an inventory names (``${file:...}`` secrets, ``ca_file``): regular files up to a cap, never a block.

Each refusal is a located problem. A FIFO is opened without a writer, which would block a plain
``open()`` forever: the parse runs in a worker thread with a deadline so that a regression fails the test
instead of hanging the suite.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gatewayd.inventory.config import load_inventory, parse_inventory
from gatewayd.inventory.yamlsource import MAX_FILE_REF_BYTES
from gatewayd.regularfile import MAX_CA_FILE_BYTES, load_ca_bundle, read_regular_file
from tests.conftest import TEST_CA_PEM, VALID
from tests.unit.test_config import problems_of


def in_thread(call: Callable[[], Any], within_s: float = 10.0) -> Any:
    """``call()`` in a daemon-less worker; a call still blocked after ``within_s`` fails the test."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(call).result(timeout=within_s)
    except concurrent.futures.TimeoutError:
        pytest.fail(f"still blocked after {within_s:g}s")
    finally:
        pool.shutdown(wait=False)


def password_from(path: Path | str) -> str:
    return VALID.replace("password: hunter2-password", f"password: ${{file:{path}}}")


def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


# --------------------------------------------------------------------------------------------- ${file:}


def test_a_file_of_exactly_the_cap_is_read(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_bytes(b"x" * MAX_FILE_REF_BYTES)
    inventory = parse_inventory(password_from(path), env={})
    assert inventory.thingplus.password is not None
    assert inventory.thingplus.password.reveal() == "x" * MAX_FILE_REF_BYTES


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda tmp: tmp, "is a directory, not a regular file"),
        (lambda tmp: Path("/dev/null"), "is a character device, not a regular file"),
        (fifo, "is a FIFO (named pipe), not a regular file"),
    ],
    ids=["directory", "device", "fifo"],
)
def test_anything_but_a_regular_file_is_a_located_problem(
    tmp_path: Path, make: Callable[[Path], Path], why: str
) -> None:
    path = make(tmp_path)
    problems = in_thread(lambda: problems_of(password_from(path)))
    assert problems == [f"inv.yaml:8:13: thingplus.password: file {path} (from ${{file:...}}) {why}"]


def test_a_file_over_the_cap_is_a_located_problem(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_bytes(b"x" * (MAX_FILE_REF_BYTES + 1))
    assert problems_of(password_from(path)) == [
        f"inv.yaml:8:13: thingplus.password: file {path} (from ${{file:...}}) is larger than "
        f"{MAX_FILE_REF_BYTES} bytes ({MAX_FILE_REF_BYTES + 1} bytes)"
    ]


def test_a_file_that_is_not_utf8_is_a_located_problem(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_bytes(b"\xff\xfe secret")
    assert problems_of(password_from(path)) == [
        f"inv.yaml:8:13: thingplus.password: file {path} (from ${{file:...}}) is not UTF-8 text"
    ]


def test_an_unreadable_file_says_why(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    path = tmp_path / "pw"
    path.write_text("secret")
    path.chmod(0)
    assert problems_of(password_from(path)) == [
        f"inv.yaml:8:13: thingplus.password: file {path} (from ${{file:...}}) cannot be opened: "
        "Permission denied"
    ]


def test_a_file_growing_past_the_cap_after_fstat_is_refused(tmp_path: Path) -> None:
    """``/proc``-like files report size 0 and then deliver more: the read itself stops at the cap."""
    proc_file = Path("/proc/self/status")
    if not proc_file.exists():
        pytest.skip("no /proc")
    assert os.stat(proc_file).st_size == 0
    with pytest.raises(ValueError, match=r"is larger than 10 bytes$"):
        read_regular_file(proc_file, 10)
    assert read_regular_file(proc_file, 1 << 20).startswith(b"Name:")


# --------------------------------------------------------------------------------------------- ca_file


def with_ca_file(ca_file: Path | str, section: str = "thingplus") -> str:
    """VALID with ``ca_file`` in ``section`` (a loctube section is added when asked for)."""
    text = VALID.replace(
        "  password: hunter2-password\n", f"  password: hunter2-password\n  ca_file: {ca_file}\n"
    )
    if section == "loctube":
        text = VALID + (
            "loctube:\n  endpoint: https://loctube.example.com\n  client_id: lt\n  secure_key: k\n"
            f"  ca_file: {ca_file}\n"
        )
    return text


def test_a_pem_ca_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    path.write_text(TEST_CA_PEM)
    assert load_ca_bundle(path).cert_store_stats()["x509"] == 1
    assert parse_inventory(with_ca_file(path), env={}).thingplus.ca_file == str(path)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "does not exist"),
        ("", "holds no PEM certificate"),
        ("not a certificate\n", "does not load as PEM certificates: no start line"),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "does not load as PEM certificates",
        ),
        ("\u00e9t\u00e9\n", "is not a PEM file (it is not ASCII text)"),
    ],
    ids=["missing", "empty", "text", "garbled", "not-ascii"],
)
def test_a_bad_ca_file_is_a_located_problem(tmp_path: Path, content: str | None, why: str) -> None:
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    problems = problems_of(with_ca_file(path))
    assert len(problems) == 1
    # OpenSSL 1.1 (Debian 11) puts "[PEM: NO_START_LINE] " before the reason that OpenSSL 3 gives alone
    problem = re.sub(r": \[[A-Z0-9_]+: [A-Z0-9_]+\] ", ": ", problems[0])
    assert problem.startswith(f"inv.yaml:9:3: thingplus.ca_file: CA bundle {path} {why}")


@pytest.mark.parametrize("section", ["thingplus", "loctube"])
def test_a_fifo_ca_file_is_refused_without_blocking(tmp_path: Path, section: str) -> None:
    path = fifo(tmp_path)
    problems = in_thread(lambda: problems_of(with_ca_file(path, section)))
    assert len(problems) == 1
    assert f"{section}.ca_file: CA bundle {path} is a FIFO (named pipe), not a regular file" in problems[0]


def test_a_huge_ca_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    with path.open("wb") as handle:
        handle.truncate(MAX_CA_FILE_BYTES + 1)  # sparse: no disk used
    assert f"is larger than {MAX_CA_FILE_BYTES} bytes" in problems_of(with_ca_file(path))[0]


def test_a_relative_ca_file_is_relative_to_the_inventory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text(TEST_CA_PEM)
    inventory_file = tmp_path / "inventory.yaml"
    inventory_file.write_text(with_ca_file("certs/ca.pem"))
    monkeypatch.chdir("/")
    inventory = load_inventory(inventory_file, env={})
    assert inventory.thingplus.ca_file == str(tmp_path / "certs" / "ca.pem")
