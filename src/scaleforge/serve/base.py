"""The ``ModelAPI`` contract: how a model is set up, fed, run and answered.

A served model is a :class:`ModelAPI` with four hooks, each receiving one
:class:`ModelContext`:

``setup(ctx)``
    Load weights, pick a device. Runs once, in the model's worker thread or process.
``decode(item, ctx)``
    Turn one request item (already parsed from JSON, msgpack or npy) into model
    input. Runs on the event loop, per item; a bad item raises
    :class:`~scaleforge.errors.InvalidParameterError` and its request gets a 422.
``predict(batch, ctx)``
    Run the model on a list of decoded items; return a list of the same length.
    Runs in the worker, one batch at a time.
``encode(output, ctx)``
    Turn one prediction into something the wire format can write (arrays,
    lists, numbers, dicts of those). Runs on the event loop.

Only ``predict`` is abstract. The default ``decode`` converts an item into a
NumPy array of :attr:`ModelAPI.input_dtype`, checks it against
:attr:`ModelAPI.input_shape` and rejects NaN unless :attr:`ModelAPI.allow_nan`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from scaleforge.errors import InvalidParameterError

__all__ = ["ModelAPI", "ModelContext", "check_item"]

logger = logging.getLogger(__name__)

_NUMERIC_KINDS = {
    "f": frozenset("biuf"),  # float models accept ints and bools
    "i": frozenset("biu"),
    "u": frozenset("bu"),
    "b": frozenset("b"),
    "c": frozenset("biufc"),
}


@dataclass(frozen=True, slots=True)
class ModelContext:
    """Everything a model hook may need, in one typed object.

    Parameters
    ----------
    name : str
        The model's name in the URL (``/v1/models/{name}/predict``).
    version : str
        The version being served.
    device : str, default="cpu"
        Where the model runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``); adapters may
        change it in ``setup`` when the requested device is unavailable.
    max_batch_size : int, default=64
        The largest batch ``predict`` receives, counted in items.
    model_dir : pathlib.Path or None, default=None
        The version's directory when the model comes from a registry.
    metadata : mapping, default={}
        The version's metadata (``model.json``) or user-supplied values.
    logger : logging.Logger
        Logger to use from hooks.
    """

    name: str
    version: str
    device: str = "cpu"
    max_batch_size: int = 64
    model_dir: Path | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    logger: logging.Logger = field(default=logger)


def check_item(
    item: Any,
    *,
    dtype: str | np.dtype[Any] = "float32",
    shape: tuple[int | None, ...] | None = None,
    allow_nan: bool = False,
    owner: str = "model",
) -> np.ndarray[Any, Any]:
    """Convert one request item to an array and validate dtype, shape and NaN.

    Parameters
    ----------
    item : array-like
        A number, nested list or array.
    dtype : str or numpy.dtype, default="float32"
        Target dtype; the item's kind must convert safely (ints to floats, not
        strings to floats).
    shape : tuple of int or None, optional
        Expected shape of one item; ``None`` entries accept any length.
    allow_nan : bool, default=False
        Accept NaN and infinities.
    owner : str, default="model"
        Name used in error messages.

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    InvalidParameterError
        If the item is ragged, of the wrong kind, the wrong shape, or holds NaN.

    Examples
    --------
    >>> check_item([1, 2, 3], shape=(3,)).dtype
    dtype('float32')
    """
    target = np.dtype(dtype)
    try:
        raw = np.asarray(item)
    except (ValueError, TypeError) as exc:
        raise InvalidParameterError(
            f"An input of {owner} is not a rectangular numeric array ({exc}). "
            "Send nested lists whose rows have equal lengths."
        ) from exc
    allowed = _NUMERIC_KINDS.get(target.kind, frozenset(target.kind))
    if raw.dtype.kind not in allowed:
        raise InvalidParameterError(
            f"An input of {owner} has dtype {raw.dtype.name!r} but the model expects {target.name} "
            f"numbers. Send numbers only (no strings, nulls or objects)."
        )
    arr = raw.astype(target, copy=False)
    if shape is not None:
        ok = arr.ndim == len(shape) and all(
            e is None or e == s for e, s in zip(shape, arr.shape, strict=False)
        )
        if not ok:
            want = "(" + ", ".join("any" if e is None else str(e) for e in shape) + ")"
            raise InvalidParameterError(
                f"An input of {owner} has shape {arr.shape}; each item must have shape {want}. "
                "Send one item per entry of 'inputs', or one item as 'input'."
            )
    if not allow_nan and arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        raise InvalidParameterError(
            f"An input of {owner} contains NaN or infinite values, which this model does not accept. "
            "Clean or impute the input first."
        )
    return arr


class ModelAPI(ABC):
    """Base class of every served model.

    Subclasses implement :meth:`predict`; the other hooks have working defaults.
    Class attributes describe the input so the default :meth:`decode` can
    reject bad requests before they reach the model.

    Attributes
    ----------
    input_shape : tuple of int or None, or None
        Shape of one input item (``None`` entries are free); ``None`` skips the check.
    input_dtype : str
        NumPy dtype the default ``decode`` converts to.
    allow_nan : bool
        Whether NaN and infinities are valid input.

    Examples
    --------
    >>> class Doubler(ModelAPI):
    ...     def predict(self, batch, ctx):
    ...         return [2 * x for x in batch]
    >>> ctx = ModelContext(name="doubler", version="1")
    >>> api = Doubler()
    >>> api.predict([api.decode([1.0], ctx)], ctx)[0].tolist()
    [2.0]
    """

    input_shape: ClassVar[tuple[int | None, ...] | None] = None
    input_dtype: ClassVar[str] = "float32"
    allow_nan: ClassVar[bool] = False

    def setup(self, ctx: ModelContext) -> None:  # noqa: B027 - optional hook, documented no-op default
        """Prepare the model (load weights, move to a device). Default: nothing.

        Parameters
        ----------
        ctx : ModelContext
        """

    def decode(self, item: Any, ctx: ModelContext) -> Any:
        """Turn one request item into model input.

        The default converts ``item`` with :func:`check_item` using the class
        attributes ``input_dtype``, ``input_shape`` and ``allow_nan``.

        Parameters
        ----------
        item : object
            One entry of the request's ``inputs``.
        ctx : ModelContext

        Returns
        -------
        object

        Raises
        ------
        InvalidParameterError
            When the item is not valid input (the request gets a 422).
        """
        return check_item(
            item,
            dtype=self.input_dtype,
            shape=self.input_shape,
            allow_nan=self.allow_nan,
            owner=f"model {ctx.name!r}",
        )

    @abstractmethod
    def predict(self, batch: list[Any], ctx: ModelContext) -> list[Any]:
        """Run the model on a batch.

        Parameters
        ----------
        batch : list
            Decoded items, at most ``ctx.max_batch_size`` of them.
        ctx : ModelContext

        Returns
        -------
        list
            One output per item, in order. Another length raises
            :class:`~scaleforge.errors.BatchSizeMismatchError`. An item may be
            answered with an exception instance: only its request fails (422 for
            :class:`~scaleforge.errors.InvalidParameterError`, else 500), while an
            exception raised by ``predict`` fails the whole batch.
        """

    def encode(self, output: Any, ctx: ModelContext) -> Any:
        """Turn one output into a wire value. Default: unchanged.

        NumPy arrays, lists, numbers, strings and dicts of those are written
        by every wire format.

        Parameters
        ----------
        output : object
        ctx : ModelContext

        Returns
        -------
        object
        """
        return output

    def describe(self) -> dict[str, Any]:
        """Return the input description shown by ``GET /v1/models/{name}``.

        Returns
        -------
        dict
        """
        return {"input_shape": self.input_shape, "input_dtype": self.input_dtype, "allow_nan": self.allow_nan}

    def teardown(self, ctx: ModelContext) -> None:  # noqa: B027 - optional hook, documented no-op default
        """Release resources when the model is unloaded. Default: nothing.

        Parameters
        ----------
        ctx : ModelContext
        """
