"""Circuit breaking and retry timing for upstream calls (per gateway process)."""

import email.utils
import random
import time

FAILURE_THRESHOLD = 5  # consecutive failures that open a circuit
OPEN_SECONDS = 30.0  # how long it stays open before one trial request (half-open)


class CircuitBreaker:
    """Per provider config: closed → open after FAILURE_THRESHOLD consecutive failures → half-open
    after OPEN_SECONDS (one trial request; success closes, failure re-opens)."""

    def __init__(self, threshold: int = FAILURE_THRESHOLD, open_seconds: float = OPEN_SECONDS, clock=time.monotonic):
        self.threshold = threshold
        self.open_seconds = open_seconds
        self.clock = clock
        self._failures: dict[int, int] = {}
        self._opened_at: dict[int, float] = {}
        self._trial: set[int] = set()

    def state(self, key: int) -> str:
        opened = self._opened_at.get(key)
        if opened is None:
            return "closed"
        return "half_open" if self.clock() - opened >= self.open_seconds else "open"

    def is_open(self, key: int) -> bool:
        """Open, or half-open with its one trial request already under way."""
        state = self.state(key)
        return state == "open" or (state == "half_open" and key in self._trial)

    def allow(self, key: int) -> bool:
        state = self.state(key)
        if state == "closed":
            return True
        if state == "half_open" and key not in self._trial:
            self._trial.add(key)
            return True
        return False

    def success(self, key: int):
        self._failures.pop(key, None)
        self._opened_at.pop(key, None)
        self._trial.discard(key)

    def failure(self, key: int):
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        if key in self._trial or count >= self.threshold:
            self._opened_at[key] = self.clock()
            self._trial.discard(key)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: either a number or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(attempt: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter; an upstream's Retry-After takes precedence."""
    if retry_after is not None:
        return retry_after
    return random.uniform(0, min(cap, base * (2 ** attempt)))
