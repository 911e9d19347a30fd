"""The one way tests wait for something: poll a condition, bounded, and say what never came."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(cond: Callable[[], object], timeout: float, what: str, interval: float = 0.05
               ) -> float:
    """Call `cond` every `interval` s until it returns something truthy; the seconds that took.
    TimeoutError naming `what` if it has not within `timeout` s (it is always called at least
    once, and once more at the deadline)."""
    start = time.monotonic()
    while True:
        if cond():
            return time.monotonic() - start
        left = timeout - (time.monotonic() - start)
        if left <= 0:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(min(interval, left))
