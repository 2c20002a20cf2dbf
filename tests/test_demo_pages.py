"""Where ``gatewayd demo`` serves its pages: the console's port (default, given, taken) and the daemons'.

In-process, on loopback: a port is "taken" by a listening socket the test holds; the default port is
replaced by one the test picks, so no test depends on (or holds) the real 8080.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gatewayd import demopages
from gatewayd.demopages import DaemonPage, daemon_page, start_console, url_of, urls_line
from gatewayd.emulator import EmulatorServer
from gatewayd.errors import GatewaydError
from gatewayd.inventory.config import Inventory, load_inventory
from gatewayd.inventory.models import HttpConfig
from tests.helpers.ports import free_port, taken_port

DEMO = Path(__file__).resolve().parent.parent / "config" / "demo.yaml"


def demo_inventory(listen: str | None) -> Inventory:
    inventory = load_inventory(DEMO)
    return inventory.model_copy(update={"http": HttpConfig(listen=listen) if listen else None})


def emulator(on_port: int) -> EmulatorServer:
    return EmulatorServer(demo_inventory(None), port=on_port)


async def test_the_console_takes_the_default_port_when_free(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setattr(demopages, "DEFAULT_PORT", port)
    server, note = await start_console(emulator, None)
    try:
        assert (server.port, note) == (port, None)
    finally:
        await server.stop()


async def test_a_taken_default_port_gives_way_to_a_free_one_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with taken_port() as taken:
        monkeypatch.setattr(demopages, "DEFAULT_PORT", taken)
        server, note = await start_console(emulator, None)
        try:
            assert server.port not in (None, taken)
            assert note == f"port {taken} is taken: the console is on port {server.port} instead"
        finally:
            await server.stop()


async def test_a_taken_port_given_by_name_is_an_error() -> None:
    with taken_port() as taken, pytest.raises(GatewaydError) as caught:
        await start_console(emulator, taken)
    assert str(caught.value) == (
        f"cannot serve the console on 127.0.0.1:{taken}: the port is taken (--port 0 takes any free port)"
    )


async def test_port_0_is_any_free_port() -> None:
    server, note = await start_console(emulator, 0)
    try:
        assert server.port and note is None
    finally:
        await server.stop()


def test_a_daemon_page_keeps_its_inventorys_listen_when_free() -> None:
    listen = f"127.0.0.1:{free_port()}"
    page = daemon_page("https", demo_inventory(listen))
    assert page == DaemonPage("https", listen)
    assert page.url == f"http://{listen}/" and page.note() is None


def test_a_daemon_page_whose_listen_is_taken_moves_to_a_free_loopback_port() -> None:
    with taken_port() as taken:
        page = daemon_page("https", demo_inventory(f"127.0.0.1:{taken}"))
    assert page.wanted == f"127.0.0.1:{taken}" and page.listen != page.wanted
    assert page.listen.startswith("127.0.0.1:")
    assert (
        page.note()
        == f"127.0.0.1:{taken} (the https gateway's http.listen) is taken: its page is on {page.listen}"
    )


def test_a_daemon_without_http_listen_gets_a_free_loopback_port() -> None:
    for page in (daemon_page("mqtt"), daemon_page("https", demo_inventory(None))):
        host, _, port = page.listen.rpartition(":")
        assert host == "127.0.0.1" and int(port) > 0 and page.wanted is None


def test_the_first_line_names_every_url() -> None:
    pages = [DaemonPage("https", "127.0.0.1:9108"), DaemonPage("mqtt", "0.0.0.0:4000")]
    assert urls_line(url_of("::", 8080), pages) == (
        "gatewayd demo: console http://127.0.0.1:8080/  daemon pages: https http://127.0.0.1:9108/, "
        "mqtt http://127.0.0.1:4000/"
    )
    assert url_of("::1", 8080) == "http://[::1]:8080/"
