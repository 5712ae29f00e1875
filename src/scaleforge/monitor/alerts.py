"""Threshold alerts with a minimum duration before firing and hysteresis before clearing.

An :class:`AlertRule` watches one named figure (``"cpu_percent"``,
``"latency_p99_s"`` ...) of the values the dashboard computes each poll. An
:class:`AlertManager` evaluates its rules against those values and keeps the
active :class:`Alert` list served at ``/v1/alerts``; on every transition
(firing, escalated, de-escalated, resolved) it calls the registered callbacks,
e.g. a :class:`WebhookNotifier`. A failing callback is logged and counted,
never raised.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from scaleforge._validation import check_choice, check_number
from scaleforge.errors import InvalidParameterError
from scaleforge.monitor import metrics

__all__ = [
    "DEFAULT_RULES",
    "Alert",
    "AlertCallback",
    "AlertManager",
    "AlertRule",
    "WebhookNotifier",
]

logger = logging.getLogger(__name__)

_SEVERITIES = ("ok", "warning", "critical")


@dataclass(frozen=True, slots=True)
class AlertRule:
    """A warning and a critical threshold on one figure.

    Parameters
    ----------
    name : str
        Rule name shown in the dashboard.
    metric : str
        Key of the figure in the values passed to :meth:`AlertManager.evaluate`.
    warning, critical : float
        Thresholds; with ``direction="above"`` warning must be below critical.
    direction : {"above", "below"}, default="above"
        Whether high or low values are bad.
    for_s : float, default=30.0
        How long a threshold must be breached before the alert fires.
    clear_for_s : float, default=30.0
        How long the figure must stay back inside the hysteresis band before the alert clears.
    hysteresis : float, default=0.05
        Relative band: an alert above threshold ``T`` clears only below ``T - hysteresis*|T|``.
    description : str, default=""
        What the rule protects, shown with the alert.

    Raises
    ------
    InvalidParameterError
        When thresholds are out of order or a duration is negative.

    Examples
    --------
    >>> AlertRule("cpu", "cpu_percent", warning=85, critical=95)  # doctest: +ELLIPSIS
    AlertRule(name='cpu', metric='cpu_percent', warning=85, critical=95, ...)
    """

    name: str
    metric: str
    warning: float
    critical: float
    direction: str = "above"
    for_s: float = 30.0
    clear_for_s: float = 30.0
    hysteresis: float = 0.05
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidParameterError(
                f"The 'name' parameter of AlertRule must be a non-empty str. Got {self.name!r}."
            )
        if not isinstance(self.metric, str) or not self.metric:
            raise InvalidParameterError(
                f"The 'metric' parameter of AlertRule {self.name!r} must be a non-empty str. Got {self.metric!r}."
            )
        owner = f"AlertRule {self.name!r}"
        check_choice(self.direction, "direction", owner, ("above", "below"))
        check_number(self.warning, "warning", owner)
        check_number(self.critical, "critical", owner)
        check_number(self.for_s, "for_s", owner, minimum=0)
        check_number(self.clear_for_s, "clear_for_s", owner, minimum=0)
        check_number(self.hysteresis, "hysteresis", owner, minimum=0, maximum=1)
        if self.direction == "above" and not self.warning < self.critical:
            raise InvalidParameterError(
                f"The 'warning' threshold of {owner} must be below its 'critical' threshold when "
                f"direction='above'. Got warning={self.warning!r} >= critical={self.critical!r}; swap them."
            )
        if self.direction == "below" and not self.warning > self.critical:
            raise InvalidParameterError(
                f"The 'warning' threshold of {owner} must be above its 'critical' threshold when "
                f"direction='below'. Got warning={self.warning!r} <= critical={self.critical!r}; swap them."
            )

    def threshold(self, level: int) -> float:
        """The threshold of ``level`` (1 = warning, 2 = critical)."""
        return float(self.warning if level == 1 else self.critical)

    def breaches(self, value: float, level: int) -> bool:
        """Whether ``value`` is beyond the threshold of ``level``."""
        thr = self.threshold(level)
        return value > thr if self.direction == "above" else value < thr

    def holds(self, value: float, level: int) -> bool:
        """Whether ``value`` is still outside the hysteresis band of ``level``."""
        thr = self.threshold(level)
        band = self.hysteresis * abs(thr)
        return value > thr - band if self.direction == "above" else value < thr + band


DEFAULT_RULES: tuple[AlertRule, ...] = (
    AlertRule("High CPU", "cpu_percent", 85.0, 95.0, description="CPU use of the machine, percent"),
    AlertRule("High memory", "memory_percent", 90.0, 95.0, description="Memory use of the machine, percent"),
    AlertRule("Slow requests", "latency_p99_s", 1.0, 2.0, description="p99 request latency, seconds"),
    AlertRule("Errors", "error_rate", 0.05, 0.20, description="Failed over total requests and tasks"),
)


@dataclass(frozen=True, slots=True)
class Alert:
    """An active alert.

    Attributes
    ----------
    rule, metric : str
    severity : {"warning", "critical"}
    value : float
        The figure at the last evaluation.
    threshold : float
        The threshold breached.
    since : float
        When the alert fired (seconds since the epoch).
    message : str
    """

    rule: str
    metric: str
    severity: str
    value: float
    threshold: float
    since: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


AlertCallback = Callable[[str, Alert], None]
"""``callback(event, alert)`` with event in firing, escalated, deescalated, resolved."""


@dataclass(slots=True)
class _State:
    level: int = 0
    fired_at: float = 0.0
    breach_since: dict[int, float] = field(default_factory=dict)
    below_since: float | None = None
    value: float = math.nan


class WebhookNotifier:
    """POST each alert transition as JSON to a URL (failures are logged, never raised).

    Parameters
    ----------
    url : str
        ``http://`` or ``https://`` URL.
    timeout_s : float, default=2.0
        Timeout of each POST.

    Attributes
    ----------
    sent, failures : int
        POSTs answered with a 2xx status, and POSTs that failed.
    """

    def __init__(self, url: str, *, timeout_s: float = 2.0) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InvalidParameterError(
                f"The 'url' parameter of WebhookNotifier must start with http:// or https://. Got {url!r} instead."
            )
        check_number(timeout_s, "timeout_s", "WebhookNotifier", minimum=0, exclusive_minimum=True)
        self.url = url
        self.timeout_s = float(timeout_s)
        self.sent = 0
        self.failures = 0

    def __call__(self, event: str, alert: Alert) -> None:
        import httpx

        try:
            response = httpx.post(
                self.url, json={"event": event, "alert": alert.to_dict()}, timeout=self.timeout_s
            )
            response.raise_for_status()
        except Exception as exc:
            self.failures += 1
            logger.warning("alert webhook %s failed for %s/%s: %s", self.url, alert.rule, event, exc)
        else:
            self.sent += 1


class AlertManager:
    """Evaluate alert rules against figures and keep the active alerts.

    Parameters
    ----------
    rules : iterable of AlertRule, optional
        Defaults to :data:`DEFAULT_RULES` (CPU, memory, p99 latency, error rate).
    callbacks : iterable of callable, default=()
        Called as ``callback(event, alert)`` on every transition.
    webhook_url : str, optional
        Shortcut for adding a :class:`WebhookNotifier`.

    Examples
    --------
    >>> mgr = AlertManager([AlertRule("cpu", "cpu_percent", 85, 95, for_s=0)])
    >>> [a.severity for a in mgr.evaluate({"cpu_percent": 97.0}, now=0.0)]
    ['critical']
    """

    def __init__(
        self,
        rules: Iterable[AlertRule] | None = None,
        *,
        callbacks: Iterable[AlertCallback] = (),
        webhook_url: str | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._rules: dict[str, AlertRule] = {}
        self._state: dict[str, _State] = {}
        for rule in DEFAULT_RULES if rules is None else rules:
            self.add_rule(rule)
        self._callbacks: list[AlertCallback] = list(callbacks)
        for cb in self._callbacks:
            if not callable(cb):
                raise InvalidParameterError(f"Each alert callback must be callable. Got {cb!r} instead.")
        if webhook_url is not None:
            self._callbacks.append(WebhookNotifier(webhook_url))
        self.callback_failures = 0
        self._fired = metrics.counter(
            "scaleforge_alerts_fired_total", "Alert transitions to firing", ["rule", "severity"]
        )

    @property
    def rules(self) -> Sequence[AlertRule]:
        """The rules, in the order they were added."""
        return tuple(self._rules.values())

    def add_rule(self, rule: AlertRule) -> None:
        """Add or replace (by name) a rule."""
        if not isinstance(rule, AlertRule):
            raise InvalidParameterError(
                f"AlertManager rules must be AlertRule objects. Got {rule!r} instead."
            )
        with self._lock:
            self._rules[rule.name] = rule
            self._state[rule.name] = _State()

    def add_callback(self, callback: AlertCallback) -> None:
        """Register ``callback(event, alert)``."""
        if not callable(callback):
            raise InvalidParameterError(
                f"The 'callback' parameter must be callable. Got {callback!r} instead."
            )
        self._callbacks.append(callback)

    def _alert(self, rule: AlertRule, st: _State) -> Alert:
        sev = _SEVERITIES[st.level]
        thr = rule.threshold(st.level)
        word = "above" if rule.direction == "above" else "below"
        return Alert(
            rule=rule.name,
            metric=rule.metric,
            severity=sev,
            value=st.value,
            threshold=thr,
            since=st.fired_at,
            message=f"{rule.name}: {rule.metric} = {st.value:.4g} is {word} the {sev} threshold {thr:.4g}",
        )

    def _notify(self, event: str, alert: Alert) -> None:
        for cb in self._callbacks:
            try:
                cb(event, alert)
            except Exception:  # a user's callback must not stop alerting
                self.callback_failures += 1
                logger.exception("alert callback %r failed on %s of %s", cb, event, alert.rule)

    def evaluate(self, values: Mapping[str, float | None], *, now: float | None = None) -> list[Alert]:
        """Update every rule with the current figures and return the active alerts.

        Parameters
        ----------
        values : mapping of str to float or None
            Figures by name; a missing or ``None``/NaN figure leaves its rule unchanged.
        now : float, optional
            Evaluation time in seconds (defaults to ``time.time()``).

        Returns
        -------
        list of Alert
        """
        t = time.time() if now is None else float(now)
        events: list[tuple[str, Alert]] = []
        with self._lock:
            for rule in self._rules.values():
                raw = values.get(rule.metric)
                if raw is None or not math.isfinite(float(raw)):
                    continue
                v = float(raw)
                st = self._state[rule.name]
                st.value = v
                for level in (1, 2):
                    if rule.breaches(v, level):
                        st.breach_since.setdefault(level, t)
                    else:
                        st.breach_since.pop(level, None)
                desired = max(
                    (lvl for lvl, since in st.breach_since.items() if t - since >= rule.for_s), default=0
                )
                if desired > st.level:
                    event = "firing" if st.level == 0 else "escalated"
                    if st.level == 0:
                        st.fired_at = t
                    st.level = desired
                    st.below_since = None
                    self._fired.labels(rule=rule.name, severity=_SEVERITIES[desired]).inc()
                    events.append((event, self._alert(rule, st)))
                    continue
                if st.level == 0:
                    continue
                hold = max((lvl for lvl in range(1, st.level + 1) if rule.holds(v, lvl)), default=0)
                if hold >= st.level:
                    st.below_since = None
                    continue
                if st.below_since is None:
                    st.below_since = t
                if t - st.below_since >= rule.clear_for_s:
                    new_level = max(hold, desired)
                    previous = self._alert(rule, st)
                    st.level = new_level
                    st.below_since = None
                    if new_level == 0:
                        events.append(("resolved", previous))
                    else:
                        events.append(("deescalated", self._alert(rule, st)))
            active = self._active_locked()
        for event, alert in events:
            logger.info("alert %s: %s", event, alert.message)
            self._notify(event, alert)
        return active

    def _active_locked(self) -> list[Alert]:
        return [
            self._alert(r, self._state[r.name]) for r in self._rules.values() if self._state[r.name].level > 0
        ]

    def active(self) -> list[Alert]:
        """Return the active alerts, critical first."""
        with self._lock:
            alerts = self._active_locked()
        return sorted(alerts, key=lambda a: (a.severity != "critical", a.rule))
