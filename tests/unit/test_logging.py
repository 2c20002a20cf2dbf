"""Secrets never reach a log line or a repr, at any level, whichever way they travel."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from gatewayd.inventory.config import parse_inventory
from gatewayd.logging import resolve_level, setup_logging
from gatewayd.secret import Secret, remember
from tests.conftest import VALID

SECRETS = ("testClientPwd12", "hunter2-password")


@pytest.fixture
def captured() -> io.StringIO:
    stream = io.StringIO()
    setup_logging("debug", stream=stream, json=True)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_inventory_repr_hides_secrets() -> None:
    inv = parse_inventory(VALID, env={})
    for text in (repr(inv), str(inv), repr(inv.thingplus), inv.model_dump_json(), str(inv.model_dump())):
        for secret in (*SECRETS, inv.thingplus.password_hash().reveal()):
            assert secret not in text
    assert repr(inv.thingplus.client_secret) == "Secret('***')"


def test_secret_keys_are_masked(captured: io.StringIO) -> None:
    log = structlog.get_logger("t")
    log.debug("token request", password="plain-pw", client_secret="cs-value", access_token="tok-value")
    log.info("nested", body={"grant_type": "password", "password": "plain-pw", "list": [{"secureKey": "sk"}]})
    out = captured.getvalue()
    for value in ("plain-pw", "cs-value", "tok-value", 'sk"'):
        assert value not in out
    first, second = lines(captured)
    assert first["password"] == "***" and first["access_token"] == "***"
    assert second["body"] == {"grant_type": "password", "password": "***", "list": [{"secureKey": "***"}]}


def test_known_secret_values_are_scrubbed_anywhere(captured: io.StringIO) -> None:
    inv = parse_inventory(VALID, env={})
    token = remember("eyJhbGciOiJIUzI1NiJ9.runtime-token")
    log = structlog.get_logger("t")
    log.warning("odd url", url=f"https://x/?access_token={token}", config=inv.thingplus)
    try:
        raise RuntimeError(f"server echoed {SECRETS[0]} and {inv.thingplus.password_hash().reveal()}")
    except RuntimeError:
        log.exception("failed")
    out = captured.getvalue()
    assert token not in out
    for secret in (*SECRETS, inv.thingplus.password_hash().reveal()):
        assert secret not in out
    assert "***" in out


def test_stdlib_loggers_go_through_redaction(captured: io.StringIO) -> None:
    Secret("stdlib-secret-value")
    logging.getLogger("aiohttp.client").error("sent stdlib-secret-value to server")
    (line,) = lines(captured)
    assert line["event"] == "sent *** to server"
    assert line["level"] == "error"


def test_json_lines_have_level_and_timestamp(captured: io.StringIO) -> None:
    structlog.get_logger("gatewayd.x").info("hello", n=1)
    (line,) = lines(captured)
    assert line["event"] == "hello" and line["n"] == 1 and line["level"] == "info"
    assert "timestamp" in line and line["logger"] == "gatewayd.x"


def test_level_filters() -> None:
    stream = io.StringIO()
    setup_logging("warning", stream=stream, json=True)
    log = structlog.get_logger("t")
    log.info("quiet")
    log.warning("loud")
    assert [line["event"] for line in lines(stream)] == ["loud"]


def test_console_format_on_request() -> None:
    stream = io.StringIO()
    setup_logging("info", stream=stream, json=False)
    structlog.get_logger("t").info("readable", password="pw-console")
    out = stream.getvalue()
    assert "readable" in out and "pw-console" not in out and not out.startswith("{")


def test_resolve_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAYD_LOG_LEVEL", "WARNING")
    assert resolve_level(None) == "warning"
    assert resolve_level("debug") == "debug"
    monkeypatch.delenv("GATEWAYD_LOG_LEVEL")
    assert resolve_level(None) == "info"
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        resolve_level("loud")


def test_named_tuples_in_a_log_line_are_scrubbed_like_tuples(captured: io.StringIO) -> None:
    from gatewayd.outbox import Point

    token = remember("named-tuple-secret-value")
    structlog.get_logger("t").warning("points", points=[Point("s1", 1, f"x {token}")], pair=("a", token))
    (line,) = lines(captured)
    assert line["points"] == [["s1", 1, "x ***"]] and line["pair"] == ["a", "***"]
