"""The MQTT payloads as the protocol document shows them, parsed without a broker: tables of cases."""

from __future__ import annotations

import gzip
import io
import zipfile
import zlib

import pytest

from gatewayd.emulator.thingplus.mqttpayloads import (
    BadPayload,
    RawPoint,
    Status,
    gateway_data,
    gateway_status,
    inflate,
    sensor_data,
    sensor_status,
)


def _zip(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("payload", data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("payload", "gateway", "sensors"),
    [
        (b"on,90", Status("on", "", 90), {}),
        (b"on,90,s1,off,30,s2,err:no fix,-1", Status("on", "", 90), {
            "s1": Status("off", "", 30), "s2": Status("err", "no fix", -1)
        }),
        (b"err:disk full,-1", Status("err", "disk full", -1), {}),
    ],
)  # fmt: skip
def test_gateway_status(payload: bytes, gateway: Status, sensors: dict[str, Status]) -> None:
    assert gateway_status(payload) == (gateway, sensors)


@pytest.mark.parametrize(
    "payload",
    [b"", b"on", b"on,90,s1,on", b"up,90", b"on,0", b"on,-2", b"on,1.5", b"off:why,90", b"on,90,,on,9"],
)
def test_bad_gateway_status(payload: bytes) -> None:
    with pytest.raises(BadPayload):
        gateway_status(payload)


def test_sensor_status() -> None:
    assert sensor_status(b"off,30") == Status("off", "", 30)
    with pytest.raises(BadPayload):
        sensor_status(b"off,30,x")


@pytest.mark.parametrize(
    ("payload", "points"),
    [
        (b"1000,21.5,2000,21.6", [RawPoint(1000, "21.5"), RawPoint(2000, "21.6")]),
        (b'[1000, 21.5, 2000, "on"]', [RawPoint(1000, "21.5"), RawPoint(2000, "on")]),
        (b'[1000, {"lat": 1.5, "lng": 2}]', [RawPoint(1000, {"lat": 1.5, "lng": 2})]),
        (b"[1000.0, 7]", [RawPoint(1000, "7")]),
    ],
)
def test_sensor_data(payload: bytes, points: list[RawPoint]) -> None:
    assert sensor_data(payload) == points


@pytest.mark.parametrize(
    "payload",
    [b"1000", b"1000,1,2000", b"x,1", b"[1000]", b"[0, 1]", b"[1000, null]", b"[1000, true]", b"[1.5, 1]"],
)
def test_bad_sensor_data(payload: bytes) -> None:
    with pytest.raises(BadPayload):
        sensor_data(payload)


def test_gateway_data_and_its_compressed_forms() -> None:
    text = b'{"s1": [1000, "1", 2000, 2], "s2": [1000, {"lat": 1}]}'
    expected = {
        "s1": [RawPoint(1000, "1"), RawPoint(2000, "2")],
        "s2": [RawPoint(1000, {"lat": 1})],
    }
    for payload in (text, zlib.compress(text), gzip.compress(text), _zip(text)):
        assert gateway_data(payload) == expected
    assert inflate(b"on,90") == b"on,90"
    for bad in (b'["s1", 1000, 1]', b'{"s1": 1000}', b"\x78\x9cnot deflate", b"{"):
        with pytest.raises(BadPayload):
            gateway_data(bad)
