"""A redraw throttle: every N steps, at most a few per second, within a time budget."""
from __future__ import annotations

import time


class Throttle:
    """Decide whether a view may redraw now.

    A redraw is allowed on every `every`-th call to `due()`, no sooner than `min_interval`
    seconds after the last one, and only while the time spent drawing stays under `budget`
    (a fraction) of the time since `start()` (counting the redraw about to happen at `cost`
    seconds). Views call `charge(seconds)` after drawing.
    """

    def __init__(self, every: int = 5, min_interval: float = 0.3, budget: float = 0.025):
        self.every = max(1, int(every))
        self.min_interval = min_interval
        self.budget = budget
        self.start()

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.calls = 0
        self.spent = 0.0
        self.last = float("-inf")

    def due(self, cost: float = 0.0) -> bool:
        self.calls += 1
        if self.calls % self.every:
            return False
        now = time.perf_counter()
        if now - self.last < self.min_interval:
            return False
        return self.spent + cost <= self.budget * (now - self.t0)

    def charge(self, seconds: float) -> None:
        self.spent += seconds
        self.last = time.perf_counter()
