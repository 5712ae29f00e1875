"""``scaleforge cluster``: reservoir clustering of series and profiles, batch and streaming."""

from __future__ import annotations

import json
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["app", "run", "stream"]

app = typer.Typer(
    help="Reservoir clustering of time series and profiles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class DataChoice(StrEnum):
    """Data sets of ``cluster run``."""

    ar2 = "ar2"
    nonlinear = "nonlinear"
    profiles = "profiles"
    trace = "trace"
    digits = "digits"


class MethodChoice(StrEnum):
    """Methods of ``cluster run``."""

    esn = "esn"
    lsm = "lsm"
    hybrid = "hybrid"
    spectral = "spectral"
    raw = "raw"


class DetectorChoice(StrEnum):
    """Drift detectors of ``cluster stream``."""

    page_hinkley = "page_hinkley"
    adwin = "adwin"


def _load(data: DataChoice, n_series: int, length: int, spread: float, seed: int) -> Any:
    from scaleforge.workloads.clustering import datasets

    if data is DataChoice.ar2:
        return datasets.make_ar2(n_series, length, random_state=seed)
    if data is DataChoice.nonlinear:
        return datasets.make_nonlinear(n_series, length, random_state=seed)
    if data is DataChoice.profiles:
        return datasets.make_profiles(n_series, spread=spread, random_state=seed)
    if data is DataChoice.trace:
        return datasets.load_trace()
    return datasets.load_digits()


def _cluster(method: MethodChoice, X: Any, k: int, seed: int, reservoir_size: int) -> tuple[Any, Any]:
    """Return (labels, 2-D-or-more embedding for the plot)."""
    import numpy as np
    from sklearn.decomposition import PCA

    from scaleforge.workloads.clustering import ProfileClustering, ReservoirClustering
    from scaleforge.workloads.clustering.baselines import log_spectrum, raw_kmeans, spectral_kmeans

    if method in (MethodChoice.esn, MethodChoice.lsm, MethodChoice.hybrid):
        model = ReservoirClustering(
            method=method.value, n_clusters=k, reservoir_size=reservoir_size, random_state=seed
        ).fit(X)
        return model.labels_, model.embedding_
    n_comp = min(2, X.shape[0], X.shape[1])
    if method is MethodChoice.spectral:
        F = log_spectrum(X)
        return spectral_kmeans(X, k, random_state=seed), PCA(n_comp).fit_transform(F)
    if X.shape[1] <= 10:  # profiles: the tabular estimator (k-means, n_init=10)
        labels = ProfileClustering(k, random_state=seed).fit(X).labels_
    else:
        labels = raw_kmeans(X, k, random_state=seed)
    return np.asarray(labels), PCA(n_comp).fit_transform(X)


@app.command()
def run(
    data: Annotated[DataChoice, typer.Option("--data", help="Data set.")] = DataChoice.ar2,
    method: Annotated[
        MethodChoice, typer.Option("--method", help="Representation / baseline.")
    ] = MethodChoice.esn,
    n_series: Annotated[
        int, typer.Option("--n-series", min=4, help="Series or profiles (synthetic data).")
    ] = 400,
    length: Annotated[
        int, typer.Option("--length", min=10, help="Steps per series (synthetic series).")
    ] = 500,
    spread: Annotated[float, typer.Option("--spread", min=0.0, help="Profile noise (profiles only).")] = 20.0,
    reservoir_size: Annotated[int, typer.Option("--reservoir-size", min=1, help="Units per reservoir.")] = 50,
    n_teams: Annotated[
        int, typer.Option("--n-teams", min=1, help="Balanced teams to form (profiles only).")
    ] = 4,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of data and model.")] = 0,
    plot: Annotated[Path, typer.Option("--plot", help="PNG of the 2-D embedding.")] = Path(
        "cluster-embedding.png"
    ),
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
) -> None:
    """Cluster a data set and report ARI / NMI against the true classes, with a PNG of the embedding."""
    import numpy as np
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from scaleforge.workloads.clustering.plots import plot_embedding

    dataset = _load(data, n_series, length, spread, seed)
    k = int(np.unique(dataset.y).size)
    t0 = time.perf_counter()
    labels, embedding = _cluster(method, dataset.X, k, seed, reservoir_size)
    seconds = time.perf_counter() - t0
    result: dict[str, Any] = {
        "data": data.value,
        "method": method.value,
        "n_samples": int(dataset.X.shape[0]),
        "n_features": int(dataset.X.shape[1]),
        "n_clusters": k,
        "ari": round(float(adjusted_rand_score(dataset.y, labels)), 4),
        "nmi": round(float(normalized_mutual_info_score(dataset.y, labels)), 4),
        "seconds": round(seconds, 3),
    }
    if data is DataChoice.profiles:
        from scaleforge.workloads.clustering.datasets import oracle_labels
        from scaleforge.workloads.clustering.report import balanced_teams, cluster_report

        result["oracle_ari"] = round(float(adjusted_rand_score(dataset.y, oracle_labels(dataset.X))), 4)
        result["report"] = cluster_report(dataset.X, labels).to_dict()
        teams = balanced_teams(labels, min(n_teams, dataset.X.shape[0]), random_state=seed)
        result["team_sizes"] = np.bincount(teams).tolist()
    path = plot_embedding(
        embedding,
        np.asarray(labels),
        plot,
        truth=dataset.y if k <= 10 else None,
        title=f"{data.value} / {method.value}: ARI {result['ari']:.3f}",
    )
    result["plot"] = str(path)
    if as_json:
        typer.echo(json.dumps(result))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"scaleforge cluster run --data {data.value} --method {method.value}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if key != "report":
            table.add_row(key, str(value))
    Console().print(table)
    if data is DataChoice.profiles:
        from scaleforge.workloads.clustering.report import cluster_report

        typer.echo(cluster_report(dataset.X, labels).to_text())


@app.command()
def stream(
    n_samples: Annotated[int, typer.Option("--n-samples", min=100, help="Length of the stream.")] = 6000,
    change_at: Annotated[
        int, typer.Option("--change-at", min=0, help="First sample of the new class mixture.")
    ] = 3000,
    detector: Annotated[
        DetectorChoice, typer.Option("--detector", help="Drift detector.")
    ] = DetectorChoice.page_hinkley,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", min=1, help="Samples per partial_fit call.")
    ] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    plot: Annotated[Path, typer.Option("--plot", help="PNG of the drift timeline.")] = Path(
        "cluster-drift.png"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Stream colour profiles whose class mixture changes; print drift events and plot the timeline."""
    from scaleforge.errors import InvalidParameterError
    from scaleforge.workloads.clustering import StreamingClustering, make_drifting_stream
    from scaleforge.workloads.clustering.plots import plot_drift_timeline

    if change_at > n_samples:
        raise InvalidParameterError(
            f"The '--change-at' option must be <= --n-samples ({n_samples}). Got {change_at} instead."
        )
    data = make_drifting_stream(n_samples, change_at=change_at, random_state=seed)
    model = StreamingClustering(detector=detector.value, random_state=seed)
    events: list[dict[str, Any]] = []
    for start in range(0, n_samples, chunk_size):
        seen = len(model.drift_events_) if hasattr(model, "drift_events_") else 0
        model.partial_fit(data.X[start : start + chunk_size])
        for event in model.drift_events_[seen:]:
            row = {
                "index": event.index,
                "delay": event.index - change_at if event.index >= change_at else None,
                "detector": event.detector,
                "mean_distance_before": round(event.mean_distance_before, 3),
                "mean_distance_recent": round(event.mean_distance_recent, 3),
            }
            events.append(row)
            if not as_json:
                typer.echo(
                    f"drift detected at sample {event.index} ({event.detector}); true change at {change_at}"
                )
    path = plot_drift_timeline(
        model.distance_index_,
        model.distances_,
        plot,
        detections=[e["index"] for e in events],
        changes=[change_at] if change_at < n_samples else [],
    )
    summary = {"n_samples": n_samples, "change_at": change_at, "events": events, "plot": str(path)}
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(f"{len(events)} drift event(s); timeline written to {path}")
