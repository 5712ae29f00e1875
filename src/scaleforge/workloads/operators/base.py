"""The ``ProbabilisticOperator`` interface and the checksummed file format.

Every head (Gaussian, generative, ensemble, Laplace) is a
:class:`ProbabilisticOperator`: ``fit(x, y)`` learns the map from input fields
to output fields, ``predict(x)`` returns a per-point mean and standard
deviation, ``sample(x, n)`` draws whole output fields, and ``save``/``load``
round-trip the model through one file whose SHA-256 is checked before any
byte is unpickled. The model server and the active-learning loop use only
this interface.

File layout (models and training checkpoints)::

    SCALEFORGE-OPERATOR 1\\n
    <one line of JSON metadata>\\n
    <sha256 hex of the metadata line and the payload>\\n
    <payload: torch.save of a dict of tensors, loaded with weights_only=True>
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from scaleforge.errors import IntegrityError, InvalidParameterError, NotFittedError

if TYPE_CHECKING:
    from typing import Self

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "ProbabilisticOperator",
    "make_operator",
    "read_blob",
    "read_meta",
    "write_blob",
]

logger = logging.getLogger(__name__)

MAGIC = b"SCALEFORGE-OPERATOR 1\n"
FORMAT_VERSION = 1

_HEADS: dict[str, type[ProbabilisticOperator]] = {}


def write_blob(path: str | os.PathLike[str], meta: dict[str, Any], payload: dict[str, Any]) -> Path:
    """Atomically write ``meta`` and a torch ``payload`` to ``path`` with a checksum.

    The file is written to a temporary name in the same directory, flushed,
    fsynced and renamed, so a crash leaves either the old file or the new one.

    Parameters
    ----------
    path : path-like
        Destination file.
    meta : dict
        JSON-serialisable metadata (kind, head, architecture...).
    payload : dict
        Tensors and plain values accepted by ``torch.load(weights_only=True)``.

    Returns
    -------
    Path
    """
    import torch

    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(payload, buf)
    meta_line = json.dumps(meta, sort_keys=True).encode() + b"\n"
    body = buf.getvalue()
    digest = hashlib.sha256(meta_line + body).hexdigest().encode() + b"\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(MAGIC + meta_line + digest + body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _split(path: Path) -> tuple[bytes, bytes, bytes]:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise InvalidParameterError(f"No model or checkpoint file at {str(path)!r}. Check the path.") from exc
    if not data.startswith(MAGIC):
        raise IntegrityError(
            f"{str(path)!r} is not a scaleforge operator file (bad header). "
            "Pass a file written by ProbabilisticOperator.save or a training checkpoint."
        )
    rest = data[len(MAGIC) :]
    meta_end = rest.find(b"\n")
    digest_end = rest.find(b"\n", meta_end + 1)
    if meta_end < 0 or digest_end < 0:
        raise IntegrityError(f"{str(path)!r} is truncated; it cannot be loaded. Retrain or restore it.")
    return rest[: meta_end + 1], rest[meta_end + 1 : digest_end], rest[digest_end + 1 :]


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the JSON metadata of a model or checkpoint file without loading its payload.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    dict
    """
    meta_line, _, _ = _split(Path(path))
    try:
        meta: dict[str, Any] = json.loads(meta_line)
    except ValueError as exc:
        raise IntegrityError(f"{str(path)!r} has corrupt metadata; it cannot be loaded.") from exc
    return meta


def read_blob(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify the checksum of ``path`` and return ``(meta, payload)``.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    meta, payload : dict

    Raises
    ------
    IntegrityError
        If the header is wrong or the SHA-256 does not match (nothing is unpickled).
    """
    import torch

    p = Path(path)
    meta_line, digest, body = _split(p)
    if hashlib.sha256(meta_line + body).hexdigest().encode() != digest:
        raise IntegrityError(
            f"Checksum mismatch in {str(p)!r}: the file is corrupt or was modified, so it was not loaded. "
            "Retrain, or restore the file from a copy."
        )
    meta = read_meta(p)
    payload: dict[str, Any] = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    return meta, payload


@dataclass(frozen=True, slots=True)
class _Scaler:
    """Scalar affine normalisation (scalar, so it holds at every resolution)."""

    mean: float
    std: float

    @classmethod
    def fit(cls, a: NDArray[np.float64]) -> _Scaler:
        std = float(a.std())
        return cls(float(a.mean()), std if std > 0 else 1.0)


class ProbabilisticOperator(ABC):
    """A neural operator that predicts a mean field and a per-point standard deviation.

    Subclasses implement :meth:`fit`, :meth:`predict`, :meth:`sample` and the
    two state hooks; this base class validates inputs and saves/loads models.

    Parameters
    ----------
    width, modes, depth, hidden : int
        FNO architecture (see :class:`~scaleforge.workloads.operators.fno.FNO`).
    padding : float
        Zero padding as a fraction of the resolution.
    training : TrainConfig or None
        Optimiser, schedule, early stopping, checkpoint and device options.
    random_state : int
        Seed of initialisation, shuffling and noise.

    Attributes
    ----------
    dim_ : int
        Spatial dimension seen in ``fit`` (1 or 2).
    resolution_ : tuple of int
        Training grid shape.
    history_ : list of dict
        Per-epoch training and validation losses.
    """

    head: ClassVar[str] = ""
    #: Architecture keyword arguments that are stored and compared on load.
    _arch_params: ClassVar[tuple[str, ...]] = ("width", "modes", "depth", "hidden", "padding")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.head:
            _HEADS[cls.head] = cls

    # ------------------------------------------------------------------ abstract API
    @abstractmethod
    def fit(
        self,
        x: ArrayLike,
        y: ArrayLike,
        *,
        x_val: ArrayLike | None = None,
        y_val: ArrayLike | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        resume: bool = False,
    ) -> Self:
        """Train on input fields ``x`` and output fields ``y`` of shape (n, *grid).

        Parameters
        ----------
        x, y : array-like of shape (n_samples, s) or (n_samples, s1, s2)
        x_val, y_val : array-like, optional
            Validation data for early stopping (default: 10 % of ``x`` held out).
        checkpoint_dir : path-like, optional
            Where atomic checkpoints are written every ``training.checkpoint_every`` epochs.
        resume : bool, default=False
            Continue from the checkpoint in ``checkpoint_dir`` if one exists.

        Returns
        -------
        self
        """

    @abstractmethod
    def predict(self, x: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Return the predictive ``(mean, std)``, each of the shape of ``x``.

        Parameters
        ----------
        x : array-like of shape (n_samples, *grid)

        Returns
        -------
        mean, std : ndarray
        """

    @abstractmethod
    def sample(self, x: ArrayLike, n: int, *, random_state: int | None = None) -> NDArray[np.float64]:
        """Draw ``n`` output fields per input: shape (n_samples, n, *grid).

        Parameters
        ----------
        x : array-like of shape (n_samples, *grid)
        n : int
            Samples per input.
        random_state : int, optional

        Returns
        -------
        ndarray
        """

    @abstractmethod
    def _get_state(self) -> dict[str, Any]:
        """Tensors and plain values that :meth:`_set_state` restores."""

    @abstractmethod
    def _set_state(self, state: dict[str, Any]) -> None:
        """Rebuild the fitted model from :meth:`_get_state`'s output."""

    # ------------------------------------------------------------------ shared helpers
    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (scikit-learn convention).

        Returns
        -------
        dict
        """
        import inspect

        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`load`) has run."""
        return hasattr(self, "resolution_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet. Call fit(x, y) or {type(self).__name__}.load(path)."
            )

    def _check_fields(self, x: ArrayLike, name: str = "x", *, fitting: bool = False) -> NDArray[np.float64]:
        owner = type(self).__name__
        try:
            a = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(f"The {name!r} argument of {owner} must be a numeric array.") from exc
        if a.ndim not in (2, 3):
            raise InvalidParameterError(
                f"The {name!r} argument of {owner} must have shape (n_samples, s) for 1D or "
                f"(n_samples, s1, s2) for 2D fields. Got shape {a.shape}; add the sample axis with x[None]."
            )
        if a.shape[0] == 0:
            raise InvalidParameterError(f"The {name!r} argument of {owner} is empty (0 samples).")
        if not np.all(np.isfinite(a)):
            bad = int(np.sum(~np.isfinite(a)))
            raise InvalidParameterError(
                f"The {name!r} argument of {owner} contains {bad} NaN or infinite values. "
                "Clean or impute the fields before calling it."
            )
        modes = int(getattr(self, "modes", 1))
        if any(s < 2 * modes for s in a.shape[1:]):
            raise InvalidParameterError(
                f"The {name!r} argument of {owner} has grid {a.shape[1:]}, too coarse for modes={modes}: "
                f"every axis needs at least {2 * modes} points. Use a finer grid or fewer modes."
            )
        if not fitting:
            self._check_fitted()
            if a.ndim - 1 != self.dim_:
                raise InvalidParameterError(
                    f"The {name!r} argument of {owner} has {a.ndim - 1}D fields {a.shape[1:]}, but the model was "
                    f"trained on {self.dim_}D fields {self.resolution_}. Pass fields of shape (n, "
                    f"{', '.join(['s'] * self.dim_)})."
                )
        return a

    def _check_xy(
        self, x: ArrayLike, y: ArrayLike, tag: str = ""
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        xa = self._check_fields(x, f"x{tag}", fitting=True)
        ya = self._check_fields(y, f"y{tag}", fitting=True)
        if xa.shape != ya.shape:
            raise InvalidParameterError(
                f"{type(self).__name__}.fit needs x{tag} and y{tag} of one shape (n_samples, *grid). "
                f"Got {xa.shape} and {ya.shape}."
            )
        return xa, ya

    def _arch(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._arch_params}

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted model to one checksummed file.

        Parameters
        ----------
        path : path-like

        Returns
        -------
        Path
            The file written.
        """
        self._check_fitted()
        meta = {
            "kind": "model",
            "format": FORMAT_VERSION,
            "head": self.head,
            "params": self.get_params_for_save(),
            "dim": self.dim_,
            "resolution": list(self.resolution_),
        }
        return write_blob(path, meta, self._get_state())

    def get_params_for_save(self) -> dict[str, Any]:
        """JSON-serialisable constructor parameters (``training`` stored as a dict).

        Returns
        -------
        dict
        """
        from dataclasses import asdict, is_dataclass

        out: dict[str, Any] = {}
        for key, value in self.get_params().items():
            out[key] = asdict(value) if is_dataclass(value) and not isinstance(value, type) else value
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ProbabilisticOperator:
        """Load a model written by :meth:`save`, verifying its checksum first.

        Called on a subclass, the file must hold that head; called on
        :class:`ProbabilisticOperator`, any head is accepted.

        Parameters
        ----------
        path : path-like

        Returns
        -------
        ProbabilisticOperator

        Raises
        ------
        IntegrityError
            If the file is corrupt.
        InvalidParameterError
            If it is a checkpoint rather than a model, or holds another head.
        """
        meta, payload = read_blob(path)
        _register_heads()
        if meta.get("kind") != "model":
            raise InvalidParameterError(
                f"{str(path)!r} is a {meta.get('kind')!r} file, not a saved model. "
                "Load checkpoints by fitting with resume=True."
            )
        head = meta.get("head")
        target = _HEADS.get(str(head))
        if target is None:
            raise InvalidParameterError(
                f"{str(path)!r} holds an unknown head {head!r}; known heads: {', '.join(sorted(_HEADS))}."
            )
        if cls is not ProbabilisticOperator and not issubclass(target, cls):
            raise InvalidParameterError(
                f"{str(path)!r} holds a {target.__name__} (head {head!r}), not a {cls.__name__}. "
                f"Use {target.__name__}.load or ProbabilisticOperator.load."
            )
        params = dict(meta["params"])
        if "training" in params and isinstance(params["training"], dict):
            from scaleforge.workloads.operators.training import TrainConfig

            params["training"] = TrainConfig(**params["training"])
        model = target(**params)
        model.dim_ = int(meta["dim"])
        model.resolution_ = tuple(int(s) for s in meta["resolution"])
        model._set_state(payload)
        return model

    # attributes set by fit / load
    dim_: int
    resolution_: tuple[int, ...]


def _register_heads() -> None:
    import scaleforge.workloads.operators.heads
    import scaleforge.workloads.operators.laplace  # noqa: F401  (importing registers the heads)


def make_operator(head: str, **params: Any) -> ProbabilisticOperator:
    """Build an operator by head name: ``gaussian``, ``crps``, ``ensemble`` or ``laplace``.

    Parameters
    ----------
    head : str
    **params
        Constructor arguments of that head.

    Returns
    -------
    ProbabilisticOperator
    """
    _register_heads()
    cls = _HEADS.get(head)
    if cls is None:
        raise InvalidParameterError(
            f"The 'head' parameter must be one of {', '.join(repr(h) for h in sorted(_HEADS))}. Got {head!r} instead."
        )
    return cls(**params)
