"""Garbage-collector settings for a daemon whose heap is big and steady once it runs.

Why: with 10,000 sensors the daemon holds ~150,000 long-lived objects (runtimes, sources, ids) that
never become garbage, and allocates thousands of short-lived ones a second (points, requests, futures).
With CPython's defaults young collections come many times a second and every full collection walks the
whole steady heap, only to find nothing to free. Frozen after start-up, the steady heap is never walked
again, and a young collection every 10,000 allocations lets almost everything die by reference counting
first (what it saved: bench/README.md, History).

Only the daemon process (``gatewayd run``) calls this; tests and one-shot commands keep the defaults.
"""

from __future__ import annotations

import gc

#: Allocations between young collections (CPython's default is 700).
YOUNG_THRESHOLD = 10_000


def settle() -> None:
    """Start-up (or a reload) has built the long-lived objects: collect once, then freeze the survivors.

    Unfreezing first lets objects frozen by an earlier call be collected if a reload let go of them
    (sources hold reference cycles: frozen, they would never be freed).
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
