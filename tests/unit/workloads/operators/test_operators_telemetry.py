"""Training loss, epoch time and evaluation metrics are recorded through scaleforge.monitor.metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _optoys import TINY

from scaleforge.monitor.metrics import REGISTRY
from scaleforge.workloads.operators.heads import GaussianOperator
from scaleforge.workloads.operators.telemetry import WORKLOAD, record_evaluation
from scaleforge.workloads.operators.training import TrainConfig


def _value(name: str, labels: dict[str, str]) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_training_records_loss_gauge_and_epoch_histogram(toy_1d: dict[str, np.ndarray]) -> None:
    labels = {"workload": WORKLOAD, "head": "gaussian"}
    before = _value("scaleforge_epoch_seconds_count", labels) or 0.0
    before_sum = _value("scaleforge_epoch_seconds_sum", labels) or 0.0
    model = GaussianOperator(**TINY, training=TrainConfig(epochs=3, batch_size=16, patience=None))
    model.fit(toy_1d["x"][:32], toy_1d["y"][:32])
    assert _value("scaleforge_epoch_seconds_count", labels) == before + 3
    assert (_value("scaleforge_epoch_seconds_sum", labels) or 0.0) > before_sum
    assert _value("scaleforge_train_loss", labels) == pytest.approx(model.history_[-1]["train_loss"])


def test_evaluation_metrics_become_gauges() -> None:
    record_evaluation(
        "toy", "laplace", {"rel_l2": 0.02, "cov90": 0.9, "calibration": [[0.5], [0.4]], "nll": math.nan}
    )
    labels = {"workload": WORKLOAD, "dataset": "toy", "head": "laplace"}
    assert _value("scaleforge_eval_metric", {**labels, "metric": "rel_l2"}) == pytest.approx(0.02)
    assert _value("scaleforge_eval_metric", {**labels, "metric": "cov90"}) == pytest.approx(0.9)
    # lists and non-finite values are not metrics
    assert _value("scaleforge_eval_metric", {**labels, "metric": "calibration"}) is None
    assert _value("scaleforge_eval_metric", {**labels, "metric": "nll"}) is None
