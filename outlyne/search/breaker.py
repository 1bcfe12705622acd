"""A circuit breaker per engine: after repeated failures the engine is skipped for a cool-down that grows.

Closed: calls go through; `threshold` failures in a row open it. Open: calls are refused until the
cool-down ends (`base_cooldown * 2**(openings - 1)`, capped, and never shorter than a Retry-After the
engine sent). Then one trial call is let through (half-open) while others are still refused: success
closes the breaker and forgets the history, failure opens it again for twice as long. So a blocked engine
costs one probe per cool-down instead of a timeout for every visitor.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Breaker:
    def __init__(
        self,
        *,
        threshold: int = 3,
        base_cooldown: float = 30.0,
        max_cooldown: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self.threshold = threshold
        self.base_cooldown = base_cooldown
        self.max_cooldown = max_cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0  # in a row, while closed
        self._openings = 0  # in a row, without a success between them
        self._open_until: float | None = None
        self._trial_running = False

    def allow(self) -> float:
        """0.0 when a call may go ahead (and, after a cool-down, claims the one trial call); otherwise the
        seconds until the engine may be tried again (for "skipped, retry in N s")."""
        with self._lock:
            if self._open_until is None:
                return 0.0
            left = self._open_until - self._clock()
            if left > 0:
                return left
            if self._trial_running:
                return self.base_cooldown  # a trial is under way; its outcome decides
            self._trial_running = True
            return 0.0

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._openings = 0
            self._open_until = None
            self._trial_running = False

    def record_failure(self, retry_after: float | None = None) -> None:
        with self._lock:
            self._failures += 1
            if self._trial_running or self._failures >= self.threshold or retry_after is not None:
                self._openings += 1
                cooldown = min(self.max_cooldown, self.base_cooldown * 2 ** (self._openings - 1))
                if retry_after is not None:
                    cooldown = max(cooldown, min(retry_after, self.max_cooldown))
                self._open_until = self._clock() + cooldown
                self._failures = 0
                self._trial_running = False

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._open_until is not None
