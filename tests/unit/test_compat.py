"""gatewayd/compat.py: the same behaviour on Python 3.9 (its own code) as on 3.10+ (the standard library).

`make test-py39` and the Debian 11 root run these on 3.9; `make test` on the machine's Python.
"""

from __future__ import annotations

from dataclasses import field, fields
from typing import Any

import pytest

from gatewayd.compat import slotted_dataclass, zip_strict
from gatewayd.runtime.registry import Entry
from gatewayd.runtime.sampler import SensorRuntime


@slotted_dataclass(eq=False)
class Runtime:
    name: str
    reads: int = 0
    last: str | None = None
    derived: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        self.derived = self.name.upper()

    @property
    def key(self) -> str:
        return f"{self.name}/{self.reads}"


def test_slotted_dataclass_has_no_instance_dict_and_keeps_dataclass_behaviour() -> None:
    r = Runtime("a")
    assert not hasattr(r, "__dict__")
    assert Runtime.__slots__ == ("name", "reads", "last", "derived")
    assert (r.name, r.reads, r.last, r.derived, r.key) == ("a", 0, None, "A", "a/0")
    r.reads += 1
    assert r.key == "a/1"
    with pytest.raises(AttributeError):
        r.other = 1  # type: ignore[attr-defined]
    assert [f.name for f in fields(Runtime)] == ["name", "reads", "last", "derived"]
    assert "derived" not in repr(r) and "name='a'" in repr(r)
    assert Runtime.__qualname__ == "Runtime"
    # eq=False: identity, as the sampler needs for its sensors (hashable, never equal by value)
    assert r != Runtime("a") and len({r, Runtime("a")}) == 2


@pytest.mark.parametrize("cls", [SensorRuntime, Entry])
def test_the_daemons_many_objects_are_slotted(cls: type[Any]) -> None:
    assert "__slots__" in vars(cls) and "__dict__" not in vars(cls)


def test_slotted_dataclass_default_eq_compares_values() -> None:
    assert Entry("x") == Entry("x") and Entry("x") != Entry("x", registered=True)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (([1, 2], ["a", "b"]), [(1, "a"), (2, "b")]),
        (([1], ["a"], (True,)), [(1, "a", True)]),
        (([], ()), []),
        ((iter([1, 2]), (x for x in "ab")), [(1, "a"), (2, "b")]),
    ],
)
def test_zip_strict_zips_equal_lengths(args: tuple[Any, ...], expected: list[tuple[Any, ...]]) -> None:
    assert list(zip_strict(*args)) == expected


@pytest.mark.parametrize(
    "args",
    [
        ([1, 2], ["a"]),
        ([1], ["a", "b"]),
        ([1, 2], ["a", "b"], [True]),
        (iter([1, 2]), iter(["a"])),
        (iter([1]), (x for x in "ab")),
    ],
)
def test_zip_strict_refuses_unequal_lengths(args: tuple[Any, ...]) -> None:
    with pytest.raises(ValueError):
        list(zip_strict(*args))
