"""The command line: check on every shipped inventory, exit statuses, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gatewayd import __version__
from gatewayd.cli import main

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "config").glob("*.yaml"))


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatewayd", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )


def test_configs_exist() -> None:
    assert {p.name for p in CONFIGS} >= {"example.yaml", "demo.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_inventory_checks(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: OK" in out
    assert "sensors:" in out and "devices:" in out and "polled:" in out


def test_check_summary_of_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(ROOT / "config" / "example.yaml")]) == 0
    out = capsys.readouterr().out
    assert "devices:   5" in out
    assert "sensors:   12 (4 simulate, 2 file, 1 command, 2 modbus, 1 http, 1 rcms, 1 loctube)" in out
    assert "polled:    rcms, loctube" in out


def test_check_bad_inventory_exits_2_with_located_messages(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("gateway: {name: x}\nthingplus: {endpoint: nope}\nbogus: 1\n")
    result = run_cli("check", "--config", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{bad}:3:1: bogus: unknown key" in result.stderr
    assert f"{bad}:2:13: thingplus.endpoint: must be an http:// or https:// URL" in result.stderr


def test_config_from_environment(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "GATEWAYD_CONFIG": str(ROOT / "config" / "demo.yaml")}
    result = run_cli("check", env=env)
    assert result.returncode == 0, result.stderr
    assert "demo.yaml: OK" in result.stdout


def test_missing_config_is_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEWAYD_CONFIG", raising=False)
    assert main(["check"]) == 2
    assert "use --config FILE or set GATEWAYD_CONFIG" in capsys.readouterr().err


def test_unknown_command_and_option_exit_2() -> None:
    assert run_cli("bogus").returncode == 2
    assert run_cli("check", "--nope").returncode == 2


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: gatewayd" in capsys.readouterr().err


def test_version_and_help() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"gatewayd {__version__}"
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("check",):
        assert command in result.stdout
