"""Retry policy of :func:`scaleforge.map`: how many attempts, how long between them."""

from __future__ import annotations

import dataclasses

from scaleforge._validation import check_number

__all__ = ["RetryPolicy"]


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff between the attempts of one failing item.

    Parameters
    ----------
    retries : int, default=0
        Extra attempts after the first; an item runs at most ``retries + 1`` times.
    backoff_s : float, default=0.1
        Wait before the first retry; doubled for each later one.
    max_backoff_s : float, default=30.0
        Upper bound of one wait.

    Examples
    --------
    >>> p = RetryPolicy(retries=3, backoff_s=0.1)
    >>> [p.delay_s(a) for a in (1, 2, 3)]
    [0.1, 0.2, 0.4]
    """

    retries: int = 0
    backoff_s: float = 0.1
    max_backoff_s: float = 30.0

    def __post_init__(self) -> None:
        check_number(self.retries, "retries", "scaleforge.map", minimum=0, integer=True)
        check_number(self.backoff_s, "retry_backoff_s", "scaleforge.map", minimum=0)
        check_number(self.max_backoff_s, "max_backoff_s", "RetryPolicy", minimum=0)

    @property
    def max_attempts(self) -> int:
        """``retries + 1``."""
        return self.retries + 1

    def should_retry(self, attempts: int) -> bool:
        """True if an item that has failed ``attempts`` times may run again."""
        return attempts < self.max_attempts

    def delay_s(self, attempts: int) -> float:
        """Seconds to wait before attempt ``attempts + 1`` (after ``attempts`` failures)."""
        if attempts <= 0:
            return 0.0
        return float(min(self.max_backoff_s, self.backoff_s * 2 ** (attempts - 1)))
