"""Modbus decoding (pure), scale/offset, and the inventory's modbus validation."""

from __future__ import annotations

import math
import struct

import pytest

from gatewayd.errors import ConfigError, SourceError
from gatewayd.inventory.config import parse_inventory
from gatewayd.inventory.sources import ModbusSource
from gatewayd.sources.modbusvalues import (
    decode_bits,
    decode_registers,
    encode_registers,
    exception_text,
)
from gatewayd.sources.pick import scaled
from tests.conftest import VALID

ORDERS = [("big", "big"), ("little", "big"), ("big", "little"), ("little", "little")]

# 123.456 as a float32 is 0x42F6E979: its four register layouts (word order, byte order).
FLOAT_123_456 = {
    ("big", "big"): [0x42F6, 0xE979],  # ABCD
    ("little", "big"): [0xE979, 0x42F6],  # CDAB
    ("big", "little"): [0xF642, 0x79E9],  # BADC
    ("little", "little"): [0x79E9, 0xF642],  # DCBA
}


@pytest.mark.parametrize(("word_order", "byte_order"), ORDERS)
def test_float32_known_vector_in_every_layout(word_order: str, byte_order: str) -> None:
    regs = FLOAT_123_456[(word_order, byte_order)]
    assert decode_registers(regs, "float32", word_order, byte_order) == 123.456  # type: ignore[arg-type]
    assert encode_registers(123.456, "float32", word_order, byte_order) == regs  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("regs", "word_order", "byte_order", "expected"),
    [
        # 0x12345678 = 305419896
        ([0x1234, 0x5678], "big", "big", 0x12345678),
        ([0x5678, 0x1234], "little", "big", 0x12345678),
        ([0x3412, 0x7856], "big", "little", 0x12345678),
        ([0x7856, 0x3412], "little", "little", 0x12345678),
        # 0xFFFFFFFE = -2 (int32)
        ([0xFFFF, 0xFFFE], "big", "big", -2),
        ([0xFFFE, 0xFFFF], "little", "big", -2),
        ([0xFFFF, 0xFEFF], "big", "little", -2),
        ([0xFEFF, 0xFFFF], "little", "little", -2),
        # -123456789 = 0xF8A432EB
        ([0xF8A4, 0x32EB], "big", "big", -123456789),
        ([0x32EB, 0xF8A4], "little", "big", -123456789),
        ([0xA4F8, 0xEB32], "big", "little", -123456789),
        ([0xEB32, 0xA4F8], "little", "little", -123456789),
        ([0x8000, 0x0000], "big", "big", -(2**31)),
        ([0x7FFF, 0xFFFF], "big", "big", 2**31 - 1),
    ],
)
def test_int32_vectors(regs: list[int], word_order: str, byte_order: str, expected: int) -> None:
    assert decode_registers(regs, "int32", word_order, byte_order) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("regs", "word_order", "byte_order", "expected"),
    [
        ([0x1234, 0x5678], "big", "big", 0x12345678),
        ([0x5678, 0x1234], "little", "big", 0x12345678),
        ([0x3412, 0x7856], "big", "little", 0x12345678),
        ([0x7856, 0x3412], "little", "little", 0x12345678),
        # 3,000,000,000 = 0xB2D05E00: above int32, and its sign bit must not make it negative
        ([0xB2D0, 0x5E00], "big", "big", 3_000_000_000),
        ([0x5E00, 0xB2D0], "little", "big", 3_000_000_000),
        ([0xD0B2, 0x005E], "big", "little", 3_000_000_000),
        ([0x005E, 0xD0B2], "little", "little", 3_000_000_000),
        ([0xFFFF, 0xFFFF], "big", "big", 2**32 - 1),
        ([0x0000, 0x0000], "little", "little", 0),
    ],
)
def test_uint32_vectors(regs: list[int], word_order: str, byte_order: str, expected: int) -> None:
    assert decode_registers(regs, "uint32", word_order, byte_order) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("reg", "int16", "uint16"),
    [
        (0x0000, 0, 0),
        (0x0001, 1, 1),
        (0x7FFF, 32767, 32767),
        (0x8000, -32768, 32768),
        (0xFFFF, -1, 65535),
        (0xFFFE, -2, 65534),
        (0xFF38, -200, 65336),
    ],
)
def test_16_bit_vectors(reg: int, int16: int, uint16: int) -> None:
    assert decode_registers([reg], "int16") == int16
    assert decode_registers([reg], "uint16") == uint16
    # word order means nothing for one register; byte order swaps its two bytes
    assert decode_registers([reg], "int16", "little") == int16
    swapped = ((reg & 0xFF) << 8) | (reg >> 8)
    assert decode_registers([swapped], "int16", "big", "little") == int16
    assert decode_registers([swapped], "uint16", "little", "little") == uint16


@pytest.mark.parametrize(
    ("value", "regs"),
    [
        (1.0, [0x3F80, 0x0000]),
        (-1.5, [0xBFC0, 0x0000]),
        (0.1, [0x3DCC, 0xCCCD]),
        (-273.15, [0xC388, 0x9333]),
        (1e-3, [0x3A83, 0x126F]),
        (3.4028235e38, [0x7F7F, 0xFFFF]),  # the largest float32
        (0.0, [0x0000, 0x0000]),
    ],
)
def test_float32_vectors_decode_to_their_shortest_decimal(value: float, regs: list[int]) -> None:
    decoded = decode_registers(regs, "float32")
    assert decoded == value
    assert struct.pack(">f", decoded) == struct.pack(">HH", *regs)


def test_float32_negative_zero_nan_and_infinity_pass_through() -> None:
    negative_zero = decode_registers([0x8000, 0x0000], "float32")
    assert negative_zero == 0.0 and math.copysign(1.0, negative_zero) == -1.0
    assert math.isnan(decode_registers([0x7FC0, 0x0000], "float32"))
    assert decode_registers([0x7F80, 0x0000], "float32") == math.inf
    assert decode_registers([0x0000, 0xFF80], "float32", "little") == -math.inf


def test_encode_and_decode_round_trip_every_type_and_layout() -> None:
    samples: dict[str, list[float]] = {
        "int16": [-32768, -1, 0, 1, 32767],
        "uint16": [0, 1, 65535],
        "int32": [-(2**31), -70000, 0, 70000, 2**31 - 1],
        "uint32": [0, 70000, 2**32 - 1],
        "float32": [-1.5, 0.25, 123.456, 6.02e23],
    }
    for data_type, values in samples.items():
        for word_order, byte_order in ORDERS:
            for value in values:
                regs = encode_registers(value, data_type, word_order, byte_order)  # type: ignore[arg-type]
                assert all(0 <= r <= 0xFFFF for r in regs)
                assert decode_registers(regs, data_type, word_order, byte_order) == value  # type: ignore[arg-type]


def test_extra_registers_are_ignored() -> None:
    assert decode_registers([0x42F6, 0xE979, 0xDEAD, 0xBEEF], "float32") == 123.456
    assert decode_registers([0xFFFF, 0x1234], "int16") == -1


def test_too_few_registers_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="float32 needs 2 registers, got 1"):
        decode_registers([0x42F6], "float32")
    with pytest.raises(SourceError, match="needs 1 registers, got 0"):
        decode_registers([], "uint16")


def test_register_out_of_range_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="16-bit"):
        decode_registers([0x10000], "uint16")
    with pytest.raises(SourceError, match="16-bit"):
        decode_registers([1, -1], "int32")


def test_unknown_data_type_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown register data type"):
        decode_registers([1], "bool")
    with pytest.raises(ValueError, match="unknown register data type"):
        encode_registers(1, "float64")


def test_bits_decode_to_the_first_bit() -> None:
    assert decode_bits([True]) is True
    assert decode_bits([False, True, True, True, True, True, True, True]) is False
    assert decode_bits([True, False, False, False, False, False, False, False]) is True
    assert decode_bits([1]) is True and decode_bits([0]) is False
    with pytest.raises(SourceError, match="no bits"):
        decode_bits([])


def test_exception_text_names_the_code() -> None:
    assert exception_text(2) == "exception 2 (illegal data address)"
    assert exception_text(11) == "exception 11 (gateway target device failed to respond)"
    assert exception_text(99) == "exception 99"
    assert exception_text(None) == "an exception"


def test_scale_and_offset_apply_to_decoded_values() -> None:
    # a tenths-of-a-degree int16 register: -200 -> -20.0 C
    raw = decode_registers([0xFF38], "int16")
    assert scaled(raw, 0.1, 0.0) == pytest.approx(-20.0)
    # a uint16 4..20 mA reading scaled to 0..100 %: value x scale + offset
    assert scaled(decode_registers([12000], "uint16"), 0.00625, -25.0) == pytest.approx(50.0)
    # integers stay integers when the maths allows
    assert scaled(decode_registers([0x0000, 0x0064], "uint32"), 10, 5) == 1005
    assert isinstance(scaled(decode_registers([0x0000, 0x0064], "uint32"), 10, 5), int)
    assert scaled(decode_registers(FLOAT_123_456[("big", "big")], "float32"), 2, 1) == pytest.approx(247.912)
    # default scale/offset leave values (and booleans) untouched
    assert scaled(decode_bits([True]), 1.0, 0.0) is True


# ---------------------------------------------------------------------------------------------- inventory


def _inventory_with(modbus: str) -> str:
    return VALID.replace("simulate: {pattern: sine, min: 18, max: 26, period: 1h}", f"modbus: {modbus}")


def _problems(modbus: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_inventory(_inventory_with(modbus), "inv.yaml", env={})
    return [str(p) for p in info.value.problems]


def _modbus_line() -> int:
    lines = _inventory_with("{}").splitlines()
    return next(i for i, line in enumerate(lines, 1) if "modbus:" in line)


def _source(modbus: str) -> ModbusSource:
    inventory = parse_inventory(_inventory_with(modbus), "inv.yaml", env={})
    ((_device, sensor),) = inventory.sensors()
    assert sensor.source_kind == "modbus"
    assert sensor.modbus is not None
    return sensor.modbus


def test_inventory_tcp_sensor_with_defaults() -> None:
    source = _source("{host: 10.0.0.5, address: 7}")
    assert source.endpoint == "tcp://10.0.0.5:502"
    assert (source.unit, source.function, source.effective_type, source.words) == (1, "holding", "uint16", 1)
    assert (source.word_order, source.byte_order, source.timeout) == ("big", "big", 3.0)


def test_inventory_rtu_sensor() -> None:
    source = _source(
        "{serial: /dev/ttyUSB0, baudrate: 19200, parity: E, unit: 3, function: input, address: 0,"
        " data_type: float32, word_order: little}"
    )
    assert source.endpoint == "rtu:///dev/ttyUSB0?19200E81"
    assert source.words == 2 and source.effective_type == "float32"
    coil = _source("{serial: /dev/ttyUSB0, function: coil, address: 4}")
    assert coil.effective_type == "bool" and coil.words == 1


@pytest.mark.parametrize(
    "modbus",
    [
        "{host: 127.0.0.1, serial: /dev/ttyUSB0, address: 0}",
        "{address: 0}",
    ],
)
def test_inventory_needs_exactly_one_of_host_and_serial(modbus: str) -> None:
    assert _problems(modbus) == [
        f"inv.yaml:{_modbus_line()}:9: devices[0].sensors[0].modbus: "
        "give exactly one of 'host' (Modbus TCP) and 'serial' (Modbus RTU)"
    ]


def test_inventory_coil_cannot_be_int32() -> None:
    assert _problems("{host: plc, function: coil, data_type: int32, address: 0}") == [
        f"inv.yaml:{_modbus_line()}:9: devices[0].sensors[0].modbus: "
        "function 'coil' reads bits: data_type must be 'bool'"
    ]


def test_inventory_registers_cannot_be_bool() -> None:
    (problem,) = _problems("{host: plc, function: input, data_type: bool, address: 0}")
    assert f"inv.yaml:{_modbus_line()}:" in problem
    assert "devices[0].sensors[0].modbus" in problem and "'bool' is for coils" in problem


def test_inventory_count_too_small_for_the_type() -> None:
    assert _problems("{host: plc, data_type: float32, count: 1, address: 0}") == [
        f"inv.yaml:{_modbus_line()}:9: devices[0].sensors[0].modbus: "
        "count 1 is too small for float32 (2 registers)"
    ]


def test_inventory_rejects_bad_values_with_their_path() -> None:
    problems = _problems("{host: plc, address: 0, unit: 300, word_order: middle}")
    assert len(problems) == 2
    assert all(f"inv.yaml:{_modbus_line()}:" in p for p in problems)
    assert any("devices[0].sensors[0].modbus.unit" in p for p in problems)
    assert any("devices[0].sensors[0].modbus.word_order" in p for p in problems)
