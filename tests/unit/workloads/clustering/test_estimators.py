"""ReservoirClustering and ProfileClustering: known answers, predict semantics, bad input, caching."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.exceptions
from sklearn.metrics import adjusted_rand_score

from scaleforge.errors import InvalidParameterError, NotFittedError
from scaleforge.workloads.clustering import ProfileClustering, ReservoirClustering, make_ar2, make_profiles
from scaleforge.workloads.clustering.datasets import make_nonlinear, oracle_labels

SMALL = {"reservoir_size": 30, "n_init": 10}


@pytest.fixture(scope="module")
def ar2() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    train = make_ar2(240, 300, random_state=1)
    test = make_ar2(120, 300, random_state=2)
    return train.X, train.y, test.X, test.y


@pytest.fixture(scope="module")
def esn(ar2: tuple[np.ndarray, ...]) -> ReservoirClustering:
    return ReservoirClustering(n_clusters=4, random_state=0, **SMALL).fit(ar2[0])


def test_esn_model_space_separates_ar2_classes(esn: ReservoirClustering, ar2: tuple[np.ndarray, ...]) -> None:
    _, y, *_ = ar2
    assert adjusted_rand_score(y, esn.labels_) >= 0.75
    raw = ReservoirClustering(n_clusters=4, random_state=0, **SMALL)
    assert esn.labels_.dtype == np.int64 and raw.get_params()["method"] == "esn"


def test_predict_uses_fitted_centres_without_relabelling(
    esn: ReservoirClustering, ar2: tuple[np.ndarray, ...]
) -> None:
    X, y, X_new, y_new = ar2
    np.testing.assert_array_equal(esn.predict(X), esn.labels_)
    # Map clusters to classes on the training set, then check new series land in the same numbering.
    mapping = {k: np.bincount(y[esn.labels_ == k]).argmax() for k in range(4)}
    predicted_class = np.array([mapping[k] for k in esn.predict(X_new)])
    assert np.mean(predicted_class == y_new) >= 0.85
    # predict is the nearest centre in transform space.
    Z = esn.transform(X_new)
    nearest = np.argmin(((Z[:, None, :] - esn.cluster_centers_[None]) ** 2).sum(axis=2), axis=1)
    np.testing.assert_array_equal(esn.predict(X_new), nearest)
    assert Z.shape == (X_new.shape[0], esn.n_components_)
    np.testing.assert_allclose(esn.transform(X), esn.embedding_, atol=1e-10)


def test_lsm_and_hybrid_separate_logistic_regimes() -> None:
    data = make_nonlinear(120, 200, random_state=3)
    for method in ("lsm", "hybrid"):
        model = ReservoirClustering(method=method, n_clusters=4, reservoir_size=30, random_state=0).fit(
            data.X
        )
        assert adjusted_rand_score(data.y, model.labels_) >= 0.8, method
    assert model.lsm_weights_ is not None and model.esn_weights_ is not None


def test_hybrid_blocks_get_equal_weight() -> None:
    data = make_nonlinear(40, 60, random_state=0)
    model = ReservoirClustering(
        method="hybrid", n_clusters=4, reservoir_size=10, washout=5, random_state=0
    ).fit(data.X)
    esn_width = 10 + 1  # model-space readout with intercept
    lsm_width = 3 * 10
    scale = model.block_scale_
    assert scale.shape == (esn_width + lsm_width,)
    assert (
        np.sum(scale[:esn_width] ** 2) == pytest.approx(np.sum(scale[esn_width:] ** 2)) == pytest.approx(1.0)
    )


def test_torch_backend_gives_the_same_clustering(ar2: tuple[np.ndarray, ...]) -> None:
    pytest.importorskip("torch")
    X = ar2[0][:60, :120]
    params = {"n_clusters": 4, "reservoir_size": 15, "washout": 20, "random_state": 3}
    a = ReservoirClustering(backend="numpy", **params).fit(X)
    b = ReservoirClustering(backend="torch", **params).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(a.embedding_, b.embedding_, atol=1e-8)


def test_same_random_state_same_result(ar2: tuple[np.ndarray, ...]) -> None:
    X = ar2[0][:60]
    a = ReservoirClustering(n_clusters=3, reservoir_size=15, random_state=7).fit(X)
    b = ReservoirClustering(n_clusters=3, reservoir_size=15, random_state=7).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.esn_weights_.w, b.esn_weights_.w)


@pytest.mark.parametrize(
    ("X", "params", "match"),
    [
        (np.array([[0.0, 1.0, np.nan]] * 5), {}, "'X'.*NaN"),
        (np.array([[0.0, 1.0, np.inf]] * 5), {}, "'X'.*infinity"),
        ([[0.0, 1.0, 2.0], [1.0, 2.0]] * 3, {}, "'X'.*equal length.*from 2 to 3"),
        (np.zeros((3, 20)), {"n_clusters": 4}, "'n_clusters'.*n_clusters=4.*n_samples=3"),
        (np.zeros((6, 20)), {"n_clusters": 1}, "'n_clusters'.*>= 2.*Got 1"),
        (np.zeros(20), {}, "'X'.*2D array"),
        (np.zeros((6, 20)), {"method": "gru"}, "'method'.*'gru'"),
        (np.zeros((6, 20)), {"leak_rate": 0.0}, "'leak_rate'.*Got 0.0"),
        (np.zeros((6, 20)), {"representation": "mean"}, "'representation'.*'mean'"),
        (np.zeros((6, 20)), {"ridge": -1.0}, "'ridge'.*Got -1.0"),
        (np.zeros((6, 20)), {"reservoir_size": 0}, "'reservoir_size'.*Got 0"),
    ],
)
def test_bad_input_raises_named_errors(X: object, params: dict[str, object], match: str) -> None:
    model = ReservoirClustering(**{"n_clusters": 2, "reservoir_size": 5, **params})  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match=match):
        model.fit(X)


def test_predict_with_wrong_length_names_the_mismatch(esn: ReservoirClustering) -> None:
    with pytest.raises(InvalidParameterError, match=r"'X'.*X has 200 features.*expecting 300"):
        esn.predict(np.zeros((2, 200)))


def test_unfitted_raises_both_not_fitted_errors() -> None:
    for model in (ReservoirClustering(), ProfileClustering()):
        with pytest.raises(NotFittedError, match=r"not fitted"):
            model.predict(np.zeros((2, 4)))
        with pytest.raises(sklearn.exceptions.NotFittedError):
            model.predict(np.zeros((2, 4)))


def test_profiles_kmeans_is_within_002_of_the_oracle(global_random_seed: int) -> None:
    data = make_profiles(1000, spread=20.0, random_state=global_random_seed)
    oracle = adjusted_rand_score(data.y, oracle_labels(data.X))
    model = ProfileClustering(4, random_state=global_random_seed).fit(data.X)
    assert adjusted_rand_score(data.y, model.labels_) >= oracle - 0.02
    np.testing.assert_array_equal(model.predict(data.X), model.labels_)


@pytest.mark.parametrize(
    ("method", "criterion"), [("kmeans", "bic"), ("kmeans", "silhouette"), ("gmm", "bic")]
)
def test_auto_n_clusters_finds_the_four_colours(method: str, criterion: str, global_random_seed: int) -> None:
    data = make_profiles(200, spread=6.0, random_state=global_random_seed)
    model = ProfileClustering(
        "auto", method=method, criterion=criterion, max_clusters=6, n_init=2, random_state=0
    )
    model.fit(data.X)
    assert model.n_clusters_ == 4
    assert sorted(model.selection_scores_) == [2, 3, 4, 5, 6]
    assert adjusted_rand_score(data.y, model.labels_) > 0.95
    assert model.cluster_centers_.shape == (4, 4)


def test_profile_bad_input() -> None:
    with pytest.raises(InvalidParameterError, match=r"'method'.*'dbscan'"):
        ProfileClustering(method="dbscan").fit(np.eye(5))
    with pytest.raises(InvalidParameterError, match=r"'n_clusters'.*n_clusters=6.*n_samples=5"):
        ProfileClustering(6).fit(np.eye(5))
    with pytest.raises(InvalidParameterError, match=r"'X'.*NaN"):
        ProfileClustering(2).fit(np.array([[1.0, np.nan]] * 4))


def test_cache_keys_by_content_not_by_str(global_random_seed: int) -> None:
    # numpy abbreviates large arrays in str() ("..."), so two inputs that differ only in the middle
    # print the same. A cache keyed by str(array) would return the first one's features for the second.
    from scaleforge.cache.memory import MemoryTier
    from scaleforge.settings import config_context
    from scaleforge.workloads.clustering.features import _get_cached_compute

    rng = np.random.default_rng(global_random_seed)
    a = rng.standard_normal((60, 400))
    b = a.copy()
    b[30, 200] += 5.0
    assert str(a) == str(b)
    model = ReservoirClustering(n_clusters=2, reservoir_size=8, washout=5, cache=True, random_state=0)
    with config_context(cache=MemoryTier(max_bytes="64MB")):
        model.fit(a)
        fn = _get_cached_compute()
        assert fn is not None
        hits = fn.cache_info()["hits"]
        za, zb = model.transform(a), model.transform(b)
        assert fn.cache_info()["hits"] == hits + 1  # a again: hit; b: a different key, computed
        assert not np.allclose(za[30], zb[30])
        np.testing.assert_allclose(za[:30], zb[:30])
        uncached = ReservoirClustering(**{**model.get_params(), "cache": False}).fit(a)
        np.testing.assert_allclose(uncached.transform(b), zb)
