"""The Debian package's sources (packaging/deb/), checked without building it.

Building needs the network (wheels from PyPI) and proving it needs root (a Debian 11 root): that is
`make test-debian` (tests/debian/run.sh). Here, what can drift silently between the files: the
maintainer scripts parse as POSIX sh (dash runs them on Debian), the man page names every command, the
package asks for the Python that pyproject.toml supports, and the scripts agree on where things live.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gatewayd.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DEB = ROOT / "packaging" / "deb"
SCRIPTS = ("postinst", "prerm", "postrm")


@pytest.mark.parametrize("script", SCRIPTS)
def test_maintainer_scripts_are_posix_sh_with_set_e(script: str) -> None:
    text = (DEB / script).read_text(encoding="utf-8")
    assert text.startswith("#!/bin/sh\n")
    assert "\nset -e\n" in text
    shell = shutil.which("dash") or shutil.which("sh")
    assert shell
    result = subprocess.run([shell, "-n", str(DEB / script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", ["packaging/deb/build.sh", "tests/debian/run.sh"])
def test_build_and_test_scripts_parse(script: str) -> None:
    result = subprocess.run(["bash", "-n", str(ROOT / script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_prerm_stops_the_daemon_on_upgrade_too() -> None:
    """postinst recreates /opt/gatewayd: the old daemon must not run from it meanwhile."""
    prerm = (DEB / "prerm").read_text(encoding="utf-8")
    condition = next(line for line in prerm.splitlines() if line.startswith("if ") and "/run/systemd" in line)
    for action in ("remove", "upgrade", "deconfigure"):
        assert f'"$1" = {action}' in condition
    assert "deb-systemd-invoke stop 'gatewayd.service'" in prerm


def commands(parser: argparse.ArgumentParser) -> set[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_man_page_names_every_command() -> None:
    page = (DEB / "gatewayd.1").read_text(encoding="utf-8")
    named = set(re.findall(r"^\.B gatewayd ([a-z-]+)", page, re.MULTILINE))
    named |= set(re.findall(r"\b(thingplus|rcms|loctube)\b", page))
    assert commands(build_parser()) <= named, commands(build_parser()) - named


def found(pattern: str, text: str) -> str:
    match = re.search(pattern, text, re.MULTILINE)
    assert match, pattern
    return match.group(1)


def test_package_depends_on_the_python_pyproject_supports() -> None:
    floor = found(r'^requires-python = ">=(\d+\.\d+)"', (ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    depends = found(r"^Depends: (.*)$", (DEB / "control").read_text(encoding="utf-8"))
    major, minor = floor.split(".")
    # the wheels inside are for one CPython minor version, the one build.sh downloads for
    assert f"python3 (>= {floor}), python3 (<< {major}.{int(minor) + 1})" in depends
    build = (DEB / "build.sh").read_text(encoding="utf-8")
    assert f"--python-version {floor} --abi cp{major}{minor}" in build


def test_scripts_agree_on_where_things_live() -> None:
    build = (DEB / "build.sh").read_text(encoding="utf-8")
    postinst = (DEB / "postinst").read_text(encoding="utf-8")
    wheels = found(r"^WHEELS=(\S+)$", postinst)
    assert f'wheels="$tree{wheels}"' in build
    assert found(r"^VENV=(\S+)$", postinst) == "/opt/gatewayd"
    assert 'ln -s /opt/gatewayd/bin/gatewayd "$tree/usr/bin/gatewayd"' in build
    unit = (ROOT / "systemd" / "gatewayd.service").read_text(encoding="utf-8")
    assert "\nExecStart=/usr/bin/gatewayd run " in unit
    assert '"$root/systemd/gatewayd.service" "$tree/lib/systemd/system/gatewayd.service"' in build
    assert '"$root/systemd/gatewayd.yaml" "$tree/etc/gatewayd/gatewayd.yaml"' in build
    assert 'echo /etc/gatewayd/gatewayd.yaml > "$tree/DEBIAN/conffiles"' in build
