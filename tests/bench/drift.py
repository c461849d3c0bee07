"""How fast the machine it runs on is right now, over time: a fixed pure-Python loop, per CPU-second.

Nothing else needs to run. On the benchmarks' 2-core VM, idle, it ranged 1,177–1,783 loops per
CPU-second over two minutes (docs/benchmarks.md, "Machine drift"): the CPU-second itself is not a fixed amount of
work there, so a figure measured minutes apart from another compares machines as much as code.

    python tests/bench/drift.py [probes 24] [seconds between them 5]
"""

from __future__ import annotations

import sys
import time


def probe(seconds: float = 0.3) -> float:
    """Loops of a fixed arithmetic workload per CPU-second of this thread."""
    loops, t0, c0 = 0, time.perf_counter(), time.thread_time()
    while time.perf_counter() - t0 < seconds:
        x = 0
        for i in range(10_000):
            x += i * i
        loops += 1
    return loops / (time.thread_time() - c0)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 24
    pause = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    seen = []
    for n in range(count):
        seen.append(probe())
        print(f"{time.strftime('%H:%M:%S')} {seen[-1]:6.0f} loops/CPU-s", flush=True)
        if n + 1 < count:
            time.sleep(pause)
    print(f"min {min(seen):.0f}, max {max(seen):.0f}, max/min {max(seen) / min(seen):.2f}")


if __name__ == "__main__":
    main()
