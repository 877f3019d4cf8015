"""What the benchmark scripts share: article-sized groups of dataset paragraphs, per-stage clocks, CPU meters.

The scripts run as `python bench/NAME.py`, so this folder is first on sys.path and `import common` finds this.
"""

import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any


def group(items: list[Any], rng: random.Random, low: int, high: int) -> list[list[Any]]:
    """Consecutive groups of `low`-`high` items; a short tail joins the group before it."""
    groups: list[list[Any]] = []
    start = 0
    while start < len(items):
        size = rng.randint(low, high)
        groups.append(items[start:start + size])
        start += size
    if len(groups) > 1 and len(groups[-1]) < low:
        groups[-2].extend(groups.pop())
    return groups


@dataclass
class StageClock:
    """Seconds spent inside wrapped calls, by stage."""

    seconds: dict[str, float] = field(default_factory=dict)

    def timed(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """`function`, counting its time under `stage`."""
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
        return timed

    def wrap(self, owner: Any, name: str, stage: str) -> None:
        """Replace `owner.name` (a bound method) by a timed one on this instance only."""
        setattr(owner, name, self.timed(stage, getattr(owner, name)))

    def iterate(self, stage: str, items: Iterable[Any]) -> Iterator[Any]:
        """Yield from `items`, counting the time spent producing each one."""
        iterator = iter(items)
        while True:
            start = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                return
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
            yield item

    def take(self) -> dict[str, float]:
        """The seconds counted since the last take, by stage; the clock starts again from zero."""
        seconds, self.seconds = self.seconds, {}
        return seconds


def busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy, or None without psutil."""
    try:
        import psutil
    except ImportError:
        return None
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)
