"""Alert rules: duration before firing, hysteresis before clearing, callbacks and webhooks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from scaleforge.errors import InvalidParameterError
from scaleforge.monitor.alerts import DEFAULT_RULES, Alert, AlertManager, AlertRule, WebhookNotifier
from scaleforge.testing.fixtures import free_port


def _cpu_rule(**kw: float) -> AlertRule:
    params = {"for_s": 10.0, "clear_for_s": 5.0, "hysteresis": 0.1, **kw}
    return AlertRule("cpu", "cpu_percent", 80.0, 95.0, **params)  # type: ignore[arg-type]


def test_defaults_match_the_issue() -> None:
    by_metric = {r.metric: (r.warning, r.critical) for r in DEFAULT_RULES}
    assert by_metric == {
        "cpu_percent": (85.0, 95.0),
        "memory_percent": (90.0, 95.0),
        "latency_p99_s": (1.0, 2.0),
        "error_rate": (0.05, 0.20),
    }


def test_fires_only_after_the_minimum_duration() -> None:
    mgr = AlertManager([_cpu_rule()])
    assert mgr.evaluate({"cpu_percent": 90.0}, now=0.0) == []
    assert mgr.evaluate({"cpu_percent": 90.0}, now=9.9) == []
    fired = mgr.evaluate({"cpu_percent": 90.0}, now=10.0)
    assert [(a.severity, a.since) for a in fired] == [("warning", 10.0)]


def test_a_dip_restarts_the_duration() -> None:
    mgr = AlertManager([_cpu_rule()])
    mgr.evaluate({"cpu_percent": 90.0}, now=0.0)
    mgr.evaluate({"cpu_percent": 50.0}, now=5.0)
    assert mgr.evaluate({"cpu_percent": 90.0}, now=12.0) == []
    assert len(mgr.evaluate({"cpu_percent": 90.0}, now=22.0)) == 1


def test_escalates_to_critical_and_clears_with_hysteresis() -> None:
    events: list[tuple[str, str]] = []
    mgr = AlertManager([_cpu_rule()], callbacks=[lambda e, a: events.append((e, a.severity))])
    mgr.evaluate({"cpu_percent": 97.0}, now=0.0)
    assert [a.severity for a in mgr.evaluate({"cpu_percent": 97.0}, now=10.0)] == ["critical"]
    # 79 is below warning (80) but inside the hysteresis band (72): stays firing however long
    mgr.evaluate({"cpu_percent": 79.0}, now=11.0)
    assert [a.severity for a in mgr.evaluate({"cpu_percent": 79.0}, now=100.0)] == ["warning"]
    # below the band but not for clear_for_s yet
    assert mgr.evaluate({"cpu_percent": 60.0}, now=101.0)
    assert mgr.evaluate({"cpu_percent": 60.0}, now=105.9)
    assert mgr.evaluate({"cpu_percent": 60.0}, now=106.0) == []
    assert events == [("firing", "critical"), ("deescalated", "warning"), ("resolved", "warning")]


def test_direction_below() -> None:
    rule = AlertRule("hit rate", "cache_hit_rate", 0.5, 0.2, direction="below", for_s=0, clear_for_s=0)
    mgr = AlertManager([rule])
    assert [a.severity for a in mgr.evaluate({"cache_hit_rate": 0.1}, now=0)] == ["critical"]
    assert mgr.evaluate({"cache_hit_rate": 0.9}, now=1) == []


def test_missing_or_nan_figures_leave_state_unchanged() -> None:
    mgr = AlertManager([_cpu_rule(for_s=0)])
    mgr.evaluate({"cpu_percent": 99.0}, now=0)
    assert len(mgr.evaluate({}, now=1)) == 1
    assert len(mgr.evaluate({"cpu_percent": float("nan")}, now=2)) == 1
    assert mgr.active()[0].value == 99.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"warning": 95.0, "critical": 85.0}, "must be below its 'critical'"),
        ({"warning": 0.1, "critical": 0.5, "direction": "below"}, "must be above its 'critical'"),
        ({"warning": 1.0, "critical": 2.0, "for_s": -1.0}, "for_s"),
        ({"warning": 1.0, "critical": 2.0, "direction": "sideways"}, "direction"),
        ({"warning": 1.0, "critical": 2.0, "hysteresis": 2.0}, "hysteresis"),
    ],
)
def test_rule_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        AlertRule("r", "m", **kwargs)  # type: ignore[arg-type]


def test_a_failing_callback_is_counted_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def boom(event: str, alert: Alert) -> None:
        raise RuntimeError("pager is down")

    seen: list[str] = []
    mgr = AlertManager([_cpu_rule(for_s=0)], callbacks=[boom, lambda e, a: seen.append(e)])
    assert len(mgr.evaluate({"cpu_percent": 99.0}, now=0)) == 1
    assert mgr.callback_failures == 1
    assert seen == ["firing"]  # the next callback still ran
    assert "pager is down" in caplog.text


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, object]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hook.received = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_webhook_receives_transitions(webhook_server: str) -> None:
    mgr = AlertManager([_cpu_rule(for_s=0, clear_for_s=0)], webhook_url=webhook_server)
    mgr.evaluate({"cpu_percent": 99.0}, now=0)
    mgr.evaluate({"cpu_percent": 10.0}, now=1)
    assert [(m["event"], m["alert"]["severity"]) for m in _Hook.received] == [  # type: ignore[index]
        ("firing", "critical"),
        ("resolved", "critical"),
    ]


def test_webhook_failure_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    hook = WebhookNotifier(f"http://127.0.0.1:{free_port()}/nobody", timeout_s=0.5)
    mgr = AlertManager([_cpu_rule(for_s=0)], callbacks=[hook])
    assert len(mgr.evaluate({"cpu_percent": 99.0}, now=0)) == 1
    assert hook.failures == 1 and hook.sent == 0
    assert "alert webhook" in caplog.text
    with pytest.raises(InvalidParameterError, match="http"):
        WebhookNotifier("ftp://example")
