"""Thing+ ids from the cloud's id templates (discovery over REST, MQTT transport): tables."""

from __future__ import annotations

import pytest

from gatewayd.runtime.discoveryids import TemplateError, fill, free_id, sequences

SENSOR = "{gatewayId}-{deviceAddress}-{type}-{sequence}"


@pytest.mark.parametrize(
    ("template", "kw", "expected"),
    [
        ("{gatewayId}-{deviceAddress}", {}, "0a1b-pump1"),
        (SENSOR, {"type": "temperature"}, "0a1b-pump1-temperature"),
        (SENSOR, {"type": "temperature", "sequence": 0}, "0a1b-pump1-temperature-0"),
        (SENSOR, {"type": "number", "sequence": 2}, "0a1b-pump1-number-2"),
        ("{gatewayId}.{deviceAddress}_{type}_{sequence}", {"type": "led"}, "0a1b.pump1_led"),
        ("fixed-{deviceAddress}", {}, "fixed-pump1"),
    ],
)
def test_fill(template: str, kw: dict[str, object], expected: str) -> None:
    assert fill(template, gateway_id="0a1b", device_address="pump1", **kw) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("template", "address", "message"),
    [
        ("{gatewayId}-{mac}", "pump1", "unknown placeholders \\['mac'\\]"),
        ("{gatewayId}/{deviceAddress}", "pump1", "holds / \\+ #"),
        ("{gatewayId}-{deviceAddress}", "a+b", "holds / \\+ #"),
        ("{gatewayId}-{deviceAddress}", "Room, north", "holds / \\+ # ,"),
        ("{gatewayId}-{type}", "pump1", "needs a type"),
    ],
)
def test_bad_templates_refused(template: str, address: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        fill(template, gateway_id="0a1b", device_address=address)


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        ([], []),
        (["temperature"], [None]),
        (["temperature", "humidity", "temperature"], [0, None, 1]),
        (["number", "number", "number", "powerSwitch"], [0, 1, 2, None]),
    ],
)
def test_sequences(types: list[str], expected: list[int | None]) -> None:
    assert sequences(types) == expected


@pytest.mark.parametrize(
    ("sequence", "taken", "expected"),
    [
        (None, set(), "g-d-number"),
        (None, {"g-d-number"}, "g-d-number-0"),
        (0, {"g-d-number-0", "g-d-number-1"}, "g-d-number-2"),
    ],
)
def test_free_id_skips_ids_taken(sequence: int | None, taken: set[str], expected: str) -> None:
    made = free_id(SENSOR, gateway_id="g", device_address="d", type="number", sequence=sequence, taken=taken)
    assert made == expected
