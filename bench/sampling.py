"""Sampling benchmark: the CPU one simulated read costs in the sampler, from the source to the buffer.

Run on demand, not a test::

    .venv/bin/python bench/sampling.py [--sensors 10000] [--rounds 15]

The path every simulated read takes at each tick (``Sampler._read_inline``: the source's value, made a
Thing+ value, checked against the sensor's type, stamped and buffered), timed over ``--sensors`` sensors
per round, in one process with no I/O: the buffer is emptied between rounds and never committed. Cases:
a numeric type reading numbers (nearly every sensor), a text type reading text, and a numeric type
reading numeric text (the one case that pays for a type check: a pattern and a float). Figures in ns per
read, the median and the best of the rounds; the best moves least with whatever else runs on the box.
No target: a figure to compare before and after a change to the sampling hot path.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import print_machine, print_table, run_main
from gatewayd.inventory.sources import ConstantPattern, UniformPattern
from gatewayd.runtime.sampler import SampleBuffer, Sampler, SensorRuntime
from gatewayd.sources.simulate import Simulation

CASES: list[tuple[str, str, Any]] = [
    (
        "temperature, uniform numbers",
        "temperature",
        UniformPattern(pattern="uniform", min=0, max=100, seed=1),
    ),
    ("string, constant text", "string", ConstantPattern(pattern="constant", value="open")),
    ("temperature, constant text '21.5'", "temperature", ConstantPattern(pattern="constant", value="21.5")),
]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sensors", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    print_machine()
    buffer = SampleBuffer(outbox=None)  # type: ignore[arg-type]  # never flushed
    sampler = Sampler(scheduler=None, buffer=buffer)  # type: ignore[arg-type]  # no jobs: reads only
    rows = []
    for title, sensor_type, pattern in CASES:
        sensors = [
            SensorRuntime("D", f"s{i}", sensor_type, f"{i:032x}", 1.0, Simulation(pattern, clock=time.time))
            for i in range(args.sensors)
        ]
        per_read = []
        for _ in range(args.rounds):
            buffer._points.clear()
            now_ms = int(time.time() * 1000)
            started = time.perf_counter()
            for sensor in sensors:
                sampler._read_inline(sensor, sensor.read_now, now_ms)  # type: ignore[arg-type]
            per_read.append((time.perf_counter() - started) / args.sensors * 1e9)
        if len(buffer) != args.sensors:
            raise SystemExit(f"{title}: {args.sensors - len(buffer)} reads failed")
        rows.append((title, f"{statistics.median(per_read):,.0f}", f"{min(per_read):,.0f}"))
    print_table(
        f"ns per read ({args.sensors:,} sensors x {args.rounds} rounds)", rows, ("case", "median", "best")
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
