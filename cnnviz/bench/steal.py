"""CPU steal time: how much of the run a virtual machine's host gave to someone else.

Benchmarks report ratios measured side by side, which survive a busy host; absolute
times and multi-threaded speed-ups do not. The share of stolen CPU time goes into every
``cnnviz bench`` result so a reader can tell a quiet run from a noisy one.
"""

from __future__ import annotations

from pathlib import Path

_STAT = Path("/proc/stat")


def _sample() -> tuple[int, int] | None:
    """(steal, total) jiffies over all CPUs, or None where /proc/stat has no steal column."""
    try:
        fields = _STAT.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return values[7], sum(values)


class StealMeter:
    """``with StealMeter() as m: ...`` then ``m.percent`` (None where it cannot be read)."""

    def __init__(self) -> None:
        self.percent: float | None = None
        self._start: tuple[int, int] | None = None

    def __enter__(self) -> "StealMeter":
        self._start = _sample()
        return self

    def __exit__(self, *exc) -> None:
        end = _sample()
        if self._start is None or end is None or end[1] <= self._start[1]:
            self.percent = None
        else:
            self.percent = round(100.0 * (end[0] - self._start[0]) / (end[1] - self._start[1]), 1)
