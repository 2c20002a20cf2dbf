"""Modbus values: the 16-bit registers or bits a device answered, decoded (and encoded, for tests).

Pure functions, no I/O: int16/uint16/int32/uint32/float32 in any word order and byte order, coils and
discrete inputs, and the names of Modbus exception codes.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Literal

from gatewayd.errors import SourceError

Order = Literal["big", "little"]

#: struct code and register count of each register data type.
REGISTER_TYPES: dict[str, tuple[str, int]] = {
    "int16": ("h", 1),
    "uint16": ("H", 1),
    "int32": ("i", 2),
    "uint32": ("I", 2),
    "float32": ("f", 2),
}

#: Modbus exception codes (Modbus Application Protocol v1.1b3, section 7).
EXCEPTION_NAMES: dict[int, str] = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


def decode_registers(
    registers: Sequence[int], data_type: str, word_order: Order = "big", byte_order: Order = "big"
) -> int | float:
    """The value the first registers hold.

    ``word_order`` orders the registers of a 32-bit value: ``big`` = most significant register first
    (the Modbus convention), ``little`` = least significant first. ``byte_order`` orders the two bytes
    inside each register: ``big`` = as on the wire, ``little`` = swapped. So for 0x42F6E979 (123.456 as a
    float32) the four combinations are ABCD ``[0x42F6, 0xE979]`` (big, big), CDAB ``[0xE979, 0x42F6]``
    (little, big), BADC ``[0xF642, 0x79E9]`` (big, little) and DCBA ``[0x79E9, 0xF642]`` (little, little).
    Registers beyond what the type spans are ignored. A float32 is returned as the shortest decimal that
    is the same float32 (123.456, not 123.45600128173828).
    """
    if data_type not in REGISTER_TYPES:
        raise ValueError(f"unknown register data type {data_type!r}")
    code, words = REGISTER_TYPES[data_type]
    if len(registers) < words:
        raise SourceError(f"{data_type} needs {words} registers, got {len(registers)}")
    regs = list(registers[:words])
    for register in regs:
        if not isinstance(register, int) or not 0 <= register <= 0xFFFF:
            raise SourceError(f"not a 16-bit register value: {register!r}")
    if word_order == "little":
        regs.reverse()
    byteorder: Literal["big", "little"] = "little" if byte_order == "little" else "big"
    raw = b"".join(register.to_bytes(2, byteorder) for register in regs)
    value: int | float = struct.unpack(">" + code, raw)[0]
    if code == "f":
        return _shortest_float32(float(value), raw)
    return value


def _shortest_float32(value: float, raw: bytes) -> float:
    if not math.isfinite(value):
        return value
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        try:
            if struct.pack(">f", candidate) == raw:
                return candidate
        except OverflowError:  # rounding up past the largest float32
            continue
    return value  # pragma: no cover  (9 significant digits always round-trip a float32)


def decode_bits(bits: Sequence[bool | int]) -> bool:
    """The first coil / discrete input of an answer (pymodbus pads answers to whole bytes)."""
    if not bits:
        raise SourceError("the answer holds no bits")
    return bool(bits[0])


def encode_registers(
    value: int | float, data_type: str, word_order: Order = "big", byte_order: Order = "big"
) -> list[int]:
    """The inverse of :func:`decode_registers` (for tests and emulators)."""
    if data_type not in REGISTER_TYPES:
        raise ValueError(f"unknown register data type {data_type!r}")
    code, words = REGISTER_TYPES[data_type]
    raw = struct.pack(">" + code, value)
    byteorder: Literal["big", "little"] = "little" if byte_order == "little" else "big"
    regs = [int.from_bytes(raw[i : i + 2], byteorder) for i in range(0, 2 * words, 2)]
    if word_order == "little":
        regs.reverse()
    return regs


def exception_text(code: int | None) -> str:
    """``exception 2 (illegal data address)``."""
    if code is None:
        return "an exception"
    name = EXCEPTION_NAMES.get(code)
    return f"exception {code} ({name})" if name else f"exception {code}"
