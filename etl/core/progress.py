"""A tiny publish/subscribe hook so long work can report progress without knowing who shows it.

The flows and pipeline call `emit`; the command line subscribes a rich progress bar. Nothing is
shown when nobody listens (tests, scheduled runs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_listeners: list[Callable[[str, dict[str, Any]], None]] = []


def emit(event: str, **data: Any) -> None:
    for fn in list(_listeners):
        fn(event, data)


@contextmanager
def listening(fn: Callable[[str, dict[str, Any]], None]) -> Iterator[None]:
    _listeners.append(fn)
    try:
        yield
    finally:
        _listeners.remove(fn)


@contextmanager
def stage(name: str, **data: Any) -> Iterator[None]:
    """Time a stage of the work and emit ("stage", name=..., seconds=...) when it ends (benchmarks listen)."""
    import time

    start = time.perf_counter()
    try:
        yield
    finally:
        if _listeners:
            emit("stage", name=name, seconds=time.perf_counter() - start, **data)
