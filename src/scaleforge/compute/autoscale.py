"""Autoscaling of the local process pool.

:class:`Autoscaler` makes one decision per tick from three numbers: live
workers, busy workers and the backlog (queued + running tasks). It grows the
pool by one worker when the backlog per worker has stayed above
``backlog_per_worker`` for ``grow_after_s``, and shrinks it by one when the
pool has had idle workers and no queued work for ``idle_cooldown_s``. The
:class:`~scaleforge.compute.local.ProcessExecutor` only retires an *idle*
worker (nothing in flight, no new work sent to it), so scaling never loses or
duplicates a task. Every decision is logged and counted in
``scaleforge_autoscale_decisions_total{executor,direction}``.

Ray and Dask scale themselves: ``DaskExecutor(adapt=(minimum, maximum))``
calls ``cluster.adapt``; for Ray, configure the cluster autoscaler
(``ray up`` cluster YAML, ``max_workers``/``available_node_types``) and
scaleforge's tasks, which request ``num_cpus``/``num_gpus``, drive it.
"""

from __future__ import annotations

import dataclasses

from scaleforge._validation import check_number
from scaleforge.errors import InvalidParameterError

__all__ = ["AutoscalePolicy", "Autoscaler"]


@dataclasses.dataclass(frozen=True, slots=True)
class AutoscalePolicy:
    """Thresholds of the local pool's autoscaler.

    Parameters
    ----------
    min_workers : int, default=0
        Workers kept even when idle.
    max_workers : int, default=4
        Upper bound of the pool.
    backlog_per_worker : float, default=2.0
        Grow when (queued + running tasks) / workers stays above this.
    grow_after_s : float, default=0.2
        ...for this long.
    idle_cooldown_s : float, default=5.0
        Shrink after workers have been idle with nothing queued this long.
    """

    min_workers: int = 0
    max_workers: int = 4
    backlog_per_worker: float = 2.0
    grow_after_s: float = 0.2
    idle_cooldown_s: float = 5.0

    def __post_init__(self) -> None:
        owner = "AutoscalePolicy"
        check_number(self.min_workers, "min_workers", owner, minimum=0, integer=True)
        check_number(self.max_workers, "max_workers", owner, minimum=1, integer=True)
        check_number(self.backlog_per_worker, "backlog_per_worker", owner, minimum=0)
        check_number(self.grow_after_s, "grow_after_s", owner, minimum=0)
        check_number(self.idle_cooldown_s, "idle_cooldown_s", owner, minimum=0)
        if self.min_workers > self.max_workers:
            raise InvalidParameterError(
                f"The 'min_workers' parameter of AutoscalePolicy ({self.min_workers}) must be <= "
                f"max_workers ({self.max_workers}). Lower min_workers or raise max_workers."
            )


class Autoscaler:
    """Stateful decisions for one pool (see the module docstring).

    Parameters
    ----------
    policy : AutoscalePolicy
    """

    def __init__(self, policy: AutoscalePolicy) -> None:
        self.policy = policy
        self._over_since: float | None = None
        self._idle_since: float | None = None

    def decide(self, now: float, *, workers: int, busy: int, backlog: int) -> int:
        """Return how many workers to add (> 0) or retire (< 0), or 0.

        Parameters
        ----------
        now : float
            ``time.monotonic()``.
        workers : int
            Live, non-draining workers.
        busy : int
            Workers with a task in flight.
        backlog : int
            Queued plus running tasks.

        Returns
        -------
        int
        """
        p = self.policy
        if workers < p.min_workers:
            self._over_since = self._idle_since = None
            return p.min_workers - workers
        if backlog > 0 and workers == 0:
            self._over_since = None
            return 1
        if workers < p.max_workers and workers > 0 and backlog / workers > p.backlog_per_worker:
            if self._over_since is None:
                self._over_since = now
            if now - self._over_since >= p.grow_after_s:
                self._over_since = now
                self._idle_since = None
                return 1
        else:
            self._over_since = None
        queued = backlog - busy
        if workers > p.min_workers and queued <= 0 and busy < workers:
            if self._idle_since is None:
                self._idle_since = now
            if now - self._idle_since >= p.idle_cooldown_s:
                self._idle_since = now
                return -1
        else:
            self._idle_since = None
        return 0
