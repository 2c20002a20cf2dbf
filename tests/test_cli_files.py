"""Files an inventory names, as the command line sees them: ``check`` and ``run`` refuse the same bad
``ca_file`` with the same located message and exit 2, and a FIFO behind ``${file:...}`` never hangs them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import TEST_CA_PEM, VALID
from tests.test_cli import run_cli


def inventory_with_ca_file(tmp_path: Path, ca_file: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    text = VALID.replace("state_dir: ./state", f"state_dir: {tmp_path / 'state'}").replace(
        "  password: hunter2-password\n", f"  password: hunter2-password\n  ca_file: {ca_file}\n"
    )
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", ["missing", "directory", "not-pem"])
def test_check_and_run_refuse_a_bad_ca_file_alike_with_exit_2(tmp_path: Path, kind: str) -> None:
    ca_file = tmp_path / "ca.pem"
    if kind == "directory":
        ca_file.mkdir()
    elif kind == "not-pem":
        ca_file.write_text("this is no certificate\n")
    inventory = inventory_with_ca_file(tmp_path, ca_file)
    check = run_cli("check", "--config", str(inventory))
    run = run_cli("run", "--config", str(inventory))
    assert (check.returncode, run.returncode) == (2, 2), check.stderr + run.stderr
    expected = f"{inventory}:9:3: thingplus.ca_file: CA bundle {ca_file} "
    assert check.stderr.startswith(expected), check.stderr
    assert expected in run.stderr
    assert "Traceback" not in check.stderr + run.stderr
    assert not (tmp_path / "state").exists(), "run must refuse before it opens the state directory"


def test_check_accepts_a_pem_ca_file(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(TEST_CA_PEM)
    result = run_cli("check", "--config", str(inventory_with_ca_file(tmp_path, ca_file)))
    assert result.returncode == 0, result.stderr


def test_check_with_a_fifo_secret_exits_2_at_once(tmp_path: Path) -> None:
    pipe = tmp_path / "secret"
    os.mkfifo(pipe)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(VALID.replace("password: hunter2-password", f"password: ${{file:{pipe}}}"))
    result = run_cli("check", "--config", str(inventory))  # run_cli's timeout fails a hang
    assert result.returncode == 2
    assert "is a FIFO (named pipe), not a regular file" in result.stderr
