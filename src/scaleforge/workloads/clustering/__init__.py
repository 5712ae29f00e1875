"""Reservoir-computing ("neuromorphic") clustering of time series and profiles.

Estimators follow scikit-learn:

- :class:`ReservoirClustering` — echo state network, liquid state machine
  (leaky integrate-and-fire) or hybrid representation, then PCA and k-means.
- :class:`ProfileClustering` — static tabular profiles, k-means or a Gaussian
  mixture, with ``n_clusters="auto"`` by BIC or silhouette.
- :class:`StreamingClustering` — ``partial_fit`` over chunks with drift
  detection (river's Page-Hinkley or ADWIN) and adaptation.

Plus :func:`consensus_clustering` (parallel runs through
:func:`scaleforge.map`, Hungarian-aligned vote, stability), reports and
balanced teams, seeded data sets (:mod:`.datasets`) and baselines
(:mod:`.baselines`).

Examples
--------
>>> from scaleforge.workloads.clustering import ReservoirClustering, make_ar2
>>> data = make_ar2(40, 120, random_state=0)
>>> labels = ReservoirClustering(n_clusters=4, reservoir_size=20, random_state=0).fit_predict(data.X)
>>> labels.shape
(40,)
"""

from __future__ import annotations

from scaleforge.workloads.clustering.datasets import (
    load_digits,
    load_trace,
    make_ar2,
    make_drifting_stream,
    make_nonlinear,
    make_profiles,
)
from scaleforge.workloads.clustering.ensemble import ConsensusResult, align_labels, consensus_clustering
from scaleforge.workloads.clustering.estimators import ProfileClustering, ReservoirClustering
from scaleforge.workloads.clustering.report import ClusterReport, balanced_teams, cluster_report
from scaleforge.workloads.clustering.scale import ScaleReport, predict_in_chunks, run_at_scale
from scaleforge.workloads.clustering.streaming import DriftEvent, StreamingClustering

__all__ = [
    "ClusterReport",
    "ConsensusResult",
    "DriftEvent",
    "ProfileClustering",
    "ReservoirClustering",
    "ScaleReport",
    "StreamingClustering",
    "align_labels",
    "balanced_teams",
    "cluster_report",
    "consensus_clustering",
    "load_digits",
    "load_trace",
    "make_ar2",
    "make_drifting_stream",
    "make_nonlinear",
    "make_profiles",
    "predict_in_chunks",
    "run_at_scale",
]
