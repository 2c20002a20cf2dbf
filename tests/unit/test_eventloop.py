"""Choosing the event loop: uvloop by default, asyncio on request, a clear error for a bad choice."""

from __future__ import annotations

import asyncio
import builtins
from typing import Any

import pytest
import uvloop

from gatewayd import eventloop
from gatewayd.errors import ConfigError


def test_auto_takes_uvloop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(eventloop.ENV, raising=False)
    assert eventloop.loop_factory() is uvloop.new_event_loop


def test_the_environment_can_ask_for_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENV, " AsyncIO ")
    assert eventloop.loop_factory() is None


def test_an_unknown_choice_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENV, "trio")
    with pytest.raises(
        ConfigError, match="GATEWAYD_EVENT_LOOP='trio': expected one of auto, uvloop, asyncio"
    ):
        eventloop.loop_factory()


def _without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "uvloop":
            raise ImportError("No module named 'uvloop'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_without_uvloop_auto_falls_back_and_an_explicit_choice_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    _without_uvloop(monkeypatch)
    assert eventloop.loop_factory("auto") is None
    with pytest.raises(ConfigError, match="uvloop cannot be imported"):
        eventloop.loop_factory("uvloop")


@pytest.mark.parametrize(("choice", "name"), [("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_run_runs_the_coroutine_on_the_chosen_loop(choice: str, name: str) -> None:
    async def which() -> str:
        await asyncio.sleep(0)
        return eventloop.loop_name(asyncio.get_running_loop())

    assert eventloop.run(which(), choice=choice) == name
