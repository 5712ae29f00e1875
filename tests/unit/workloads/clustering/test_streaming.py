"""Streaming clustering: drift detected within 500 samples, no false alarm when stationary, adaptation."""

from __future__ import annotations

import numpy as np
import pytest

from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.clustering import (
    ReservoirClustering,
    StreamingClustering,
    make_ar2,
    make_drifting_stream,
)
from scaleforge.workloads.clustering.datasets import PROFILE_CENTRES


def _stream(model: StreamingClustering, X: np.ndarray, chunk: int = 250) -> StreamingClustering:
    for start in range(0, X.shape[0], chunk):
        model.partial_fit(X[start : start + chunk])
    return model


@pytest.mark.parametrize("detector", ["page_hinkley", "adwin"])
def test_mixture_change_is_detected_within_500_samples(detector: str, global_random_seed: int) -> None:
    data = make_drifting_stream(5000, change_at=2500, random_state=global_random_seed)
    model = _stream(StreamingClustering(detector=detector, random_state=global_random_seed), data.X)
    assert model.n_samples_seen_ == 5000
    assert len(model.drift_events_) == 1
    event = model.drift_events_[0]
    assert 2500 <= event.index < 3000
    assert event.mean_distance_recent > 1.3 * event.mean_distance_before
    # Adapted: re-seeded centres describe the new class and distances fall back to their old level.
    nearest = np.min(np.linalg.norm(model.cluster_centers_ - PROFILE_CENTRES[3], axis=1))
    assert nearest < 5.0
    assert model.distances_[-1000:].mean() < 1.3


def test_no_false_alarm_on_a_stationary_stream_of_20000(global_random_seed: int) -> None:
    data = make_drifting_stream(20_000, change_at=None, random_state=global_random_seed)
    model = StreamingClustering(random_state=global_random_seed).fit(data.X)
    assert model.drift_events_ == []
    assert model.distances_.size == 20_000 - 500
    np.testing.assert_array_equal(model.distance_index_[[0, -1]], [500, 19_999])
    assert model.labels_.shape == (20_000,)


def test_river_detector_instance_is_cloned() -> None:
    from river import drift

    detector = drift.PageHinkley(threshold=25.0, delta=0.5, mode="up")
    data = make_drifting_stream(3000, change_at=1500, random_state=0)
    model = StreamingClustering(detector=detector, random_state=0).fit(data.X)
    assert [1500 <= e.index < 2000 for e in model.drift_events_] == [True]
    assert detector.n_detections == 0 if hasattr(detector, "n_detections") else not detector.drift_detected


def test_streaming_over_reservoir_representation_of_series() -> None:
    data = make_ar2(300, 120, n_classes=3, random_state=0)
    transformer = ReservoirClustering(n_clusters=3, reservoir_size=20, washout=10, random_state=0)
    model = StreamingClustering(3, transformer=transformer, warmup=150, batch_size=50, random_state=0).fit(
        data.X
    )
    assert model.cluster_centers_.shape == (3, 10)
    assert transformer.__dict__.get("cluster_centers_") is None  # the given estimator is cloned, not fitted


def test_streaming_bad_input() -> None:
    model = StreamingClustering(warmup=10, random_state=0).partial_fit(
        np.random.default_rng(0).random((20, 4))
    )
    with pytest.raises(InvalidParameterError, match=r"'X'.*X has 3 features.*expecting 4"):
        model.partial_fit(np.zeros((5, 3)))
    with pytest.raises(InvalidParameterError, match=r"'detector'.*'cusum'"):
        StreamingClustering(detector="cusum").fit(np.zeros((20, 2)))
    with pytest.raises(InvalidParameterError, match=r"'warmup'.*Got 0"):
        StreamingClustering(warmup=0).partial_fit(np.zeros((20, 2)))
    with pytest.raises(InvalidParameterError, match=r"'X'.*NaN"):
        StreamingClustering().fit(np.full((20, 2), np.nan))
