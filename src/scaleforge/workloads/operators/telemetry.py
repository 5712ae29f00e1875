"""Training and evaluation metrics of the operator workload, through :mod:`scaleforge.monitor.metrics`.

Recorded (all cheap: a few label look-ups per epoch or per evaluation):

``scaleforge_train_loss{workload, head}`` (gauge)
    Mean training loss of the last finished epoch.
``scaleforge_epoch_seconds{workload, head}`` (histogram)
    Wall time of each training epoch (including validation).
``scaleforge_eval_metric{workload, dataset, head, metric}`` (gauge)
    The scalar evaluation metrics of the last evaluation (``rel_l2``, ``nll``,
    ``crps``, ``cov50``, ``cov90``, ``cov95``, ``width90``, ...).

``workload`` is ``"operators"``. Recording never fails training: an error of
the metrics layer is logged and dropped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["EPOCH_BUCKETS", "WORKLOAD", "record_epoch", "record_evaluation"]

logger = logging.getLogger(__name__)

#: Workload label of every metric recorded here.
WORKLOAD = "operators"
#: Histogram buckets of ``scaleforge_epoch_seconds`` (seconds).
EPOCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def record_epoch(head: str, train_loss: float, seconds: float) -> None:
    """Record one finished training epoch.

    Parameters
    ----------
    head : str
        Operator head (``"gaussian"``, ``"laplace"``...).
    train_loss : float
        Mean training loss of the epoch.
    seconds : float
        Wall time of the epoch.
    """
    try:
        from scaleforge.monitor.metrics import gauge, histogram

        gauge("scaleforge_train_loss", "Training loss of the last epoch", ["workload", "head"]).labels(
            workload=WORKLOAD, head=head
        ).set(float(train_loss))
        histogram(
            "scaleforge_epoch_seconds", "Wall time of a training epoch", ["workload", "head"], EPOCH_BUCKETS
        ).labels(workload=WORKLOAD, head=head).observe(max(float(seconds), 0.0))
    except Exception:  # metrics must never break training
        logger.warning("could not record the training metrics", exc_info=True)


def record_evaluation(dataset: str, head: str, metrics: Mapping[str, Any]) -> None:
    """Record the finite scalar entries of ``metrics`` as ``scaleforge_eval_metric`` gauges.

    Parameters
    ----------
    dataset : str
        Data set or experiment name (``"burgers"``, ``"darcy"``...).
    head : str
        Operator head or baseline name.
    metrics : mapping of str to object
        Evaluation results; non-numeric and non-finite entries are skipped.
    """
    try:
        from scaleforge.monitor.metrics import gauge

        g = gauge(
            "scaleforge_eval_metric",
            "Evaluation metric of the last evaluation",
            ["workload", "dataset", "head", "metric"],
        )
        for name, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            g.labels(workload=WORKLOAD, dataset=dataset, head=head, metric=name).set(float(value))
    except Exception:  # metrics must never break evaluation
        logger.warning("could not record the evaluation metrics", exc_info=True)
