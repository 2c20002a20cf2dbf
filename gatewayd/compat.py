"""What Python 3.9 lacks and gatewayd uses, in one place, so that each call site stays one line.

Why 3.9: RobustOS Pro, the OS of the Robustel EG gateways gatewayd runs on, is Debian 11, whose own
``python3`` is 3.9.2. Each helper *is* the standard feature on the Pythons that have it (on 3.11 the only
difference is one function call), and a faithful equivalent on 3.9.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass, field, fields
from itertools import zip_longest
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

T = TypeVar("T")
T1 = TypeVar("T1")
T2 = TypeVar("T2")
T3 = TypeVar("T3")

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**_: Any) -> Callable[[T], T]:
        """Only type checkers read it (PEP 681)."""
        return lambda decorated: decorated


@dataclass_transform(field_specifiers=(field,))
def slotted_dataclass(*, eq: bool = True) -> Callable[[type[T]], type[T]]:
    """``@dataclass(eq=eq, slots=True)``. Python 3.9 has no ``slots=``: there the dataclass is rebuilt
    with ``__slots__`` the way 3.10+ does it, so objects kept by the ten thousand (one per sensor) have
    no ``__dict__`` on either version."""
    if sys.version_info >= (3, 10):
        return dataclass(eq=eq, slots=True)

    def slotted(cls: Any) -> Any:
        cls = dataclass(eq=eq)(cls)
        names = tuple(f.name for f in fields(cls))
        namespace = {k: v for k, v in cls.__dict__.items() if k not in (*names, "__dict__", "__weakref__")}
        namespace["__slots__"] = names
        rebuilt = type(cls)(cls.__name__, cls.__bases__, namespace)
        rebuilt.__qualname__ = cls.__qualname__
        return rebuilt

    return slotted


@overload
def zip_strict(a: Iterable[T1], b: Iterable[T2], /) -> Iterator[tuple[T1, T2]]: ...
@overload
def zip_strict(a: Iterable[T1], b: Iterable[T2], c: Iterable[T3], /) -> Iterator[tuple[T1, T2, T3]]: ...
def zip_strict(*iterables: Iterable[Any]) -> Iterator[tuple[Any, ...]]:
    """``zip(..., strict=True)``: ValueError when the iterables' lengths differ, never a silent cut."""
    if sys.version_info >= (3, 10):
        return zip(*iterables, strict=True)
    if all(isinstance(it, Sized) for it in iterables):  # lists, tuples: checked up front, zipped at C speed
        if len({len(cast(Sized, it)) for it in iterables}) > 1:
            raise ValueError("zip_strict: arguments have different lengths")
        return zip(*iterables)
    return _zip_checked(iterables)


def _zip_checked(iterables: tuple[Iterable[Any], ...]) -> Iterator[tuple[Any, ...]]:
    missing = object()
    for items in zip_longest(*iterables, fillvalue=missing):
        if any(item is missing for item in items):
            raise ValueError("zip_strict: arguments have different lengths")
        yield items
