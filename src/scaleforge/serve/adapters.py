"""Adapters that turn common model objects into a :class:`~scaleforge.serve.base.ModelAPI`.

* :class:`CallableAPI` — any Python callable, per item or per batch;
* :class:`TorchAPI` — a ``torch.nn.Module``: ``eval()``, ``torch.inference_mode()``,
  device placement with a CPU fallback;
* :class:`OperatorAPI` — a probabilistic operator (``predict(x) -> (mean, std)``,
  ``sample(x, n)``, e.g. :class:`scaleforge.workloads.operators.base.ProbabilisticOperator`):
  each answer is ``{"mean", "std"}`` plus optional Gaussian quantiles and samples;
* :func:`as_model_api` picks the right one.

torch is imported only inside the torch adapter's methods.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from scaleforge._validation import check_choice, check_number
from scaleforge.errors import InvalidParameterError
from scaleforge.serve.base import ModelAPI, ModelContext, check_item

__all__ = [
    "CallableAPI",
    "OperatorAPI",
    "TorchAPI",
    "as_model_api",
    "is_probabilistic_operator",
    "predict_by_shape",
]

logger = logging.getLogger(__name__)


def predict_by_shape(batch: list[Any], run: Callable[[np.ndarray[Any, Any]], Sequence[Any]]) -> list[Any]:
    """Run ``run(stacked)`` once per group of equally shaped items and put the answers back in order.

    Items of different shapes (a resolution-agnostic operator fed several grids)
    cannot be stacked into one array; each group is stacked and run on its own.
    A group whose run raises :class:`~scaleforge.errors.InvalidParameterError`
    is answered with that exception instance, which fails only its requests (422);
    other exceptions fail the whole batch.

    Parameters
    ----------
    batch : list of ndarray
    run : callable
        ``run(array of shape (k, *item_shape))`` -> k outputs.

    Returns
    -------
    list
        One output (or exception instance) per item.
    """
    groups: dict[tuple[tuple[int, ...], str], list[int]] = {}
    for i, item in enumerate(batch):
        groups.setdefault((np.shape(item), np.asarray(item).dtype.str), []).append(i)
    if len(groups) == 1:
        try:
            return list(run(np.stack(batch)))
        except InvalidParameterError as exc:
            return [exc] * len(batch)
    out: list[Any] = [None] * len(batch)
    for idx in groups.values():
        try:
            answers: Sequence[Any] = list(run(np.stack([batch[i] for i in idx])))
        except InvalidParameterError as exc:
            answers = [exc] * len(idx)
        for i, answer in zip(idx, answers, strict=True):
            out[i] = answer
    return out


class _ConfiguredAPI(ModelAPI):
    """A ModelAPI whose input description is set per instance."""

    def __init__(
        self,
        *,
        input_shape: Sequence[int | None] | None = None,
        input_dtype: str = "float32",
        allow_nan: bool = False,
    ) -> None:
        owner = type(self).__name__
        try:
            np.dtype(input_dtype)
        except TypeError as exc:
            raise InvalidParameterError(
                f"The 'input_dtype' parameter of {owner} must be a NumPy dtype name such as 'float32'. "
                f"Got {input_dtype!r} instead."
            ) from exc
        if input_shape is not None and (
            isinstance(input_shape, (str, bytes))
            or not all(
                e is None or (isinstance(e, int) and not isinstance(e, bool) and e >= 0) for e in input_shape
            )
        ):
            raise InvalidParameterError(
                f"The 'input_shape' parameter of {owner} must be a sequence of ints >= 0 or None. "
                f"Got {input_shape!r} instead."
            )
        self._shape = tuple(input_shape) if input_shape is not None else None
        self._dtype = str(np.dtype(input_dtype))
        self._allow_nan = bool(allow_nan)

    def decode(self, item: Any, ctx: ModelContext) -> Any:
        """Convert and validate one item (see :func:`~scaleforge.serve.base.check_item`).

        Parameters
        ----------
        item : array-like
        ctx : ModelContext

        Returns
        -------
        numpy.ndarray
        """
        return check_item(
            item, dtype=self._dtype, shape=self._shape, allow_nan=self._allow_nan, owner=f"model {ctx.name!r}"
        )

    def describe(self) -> dict[str, Any]:
        """Return the input description shown by ``GET /v1/models/{name}``.

        Returns
        -------
        dict
        """
        return {"input_shape": self._shape, "input_dtype": self._dtype, "allow_nan": self._allow_nan}


class CallableAPI(_ConfiguredAPI):
    """Serve a plain callable.

    Parameters
    ----------
    fn : callable
        The model.
    batch_mode : {"item", "list", "array"}, default="item"
        ``"item"`` calls ``fn(x)`` once per item; ``"list"`` calls ``fn(batch)``
        with the list of items and expects a list back; ``"array"`` stacks the
        items into one array of shape (n, *item_shape), calls ``fn`` once and
        splits its result along the first axis.
    input_shape : sequence of int or None, optional
        Shape of one item; ``None`` skips the check.
    input_dtype : str, default="float32"
    allow_nan : bool, default=False

    Examples
    --------
    >>> api = CallableAPI(lambda x: x.sum(), input_shape=(3,))
    >>> ctx = ModelContext(name="sum", version="1")
    >>> float(api.predict([api.decode([1, 2, 3], ctx)], ctx)[0])
    6.0
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        batch_mode: str = "item",
        input_shape: Sequence[int | None] | None = None,
        input_dtype: str = "float32",
        allow_nan: bool = False,
    ) -> None:
        if not callable(fn):
            raise InvalidParameterError(
                f"The 'fn' parameter of CallableAPI must be callable. Got {type(fn).__name__} instead."
            )
        check_choice(batch_mode, "batch_mode", "CallableAPI", ("item", "list", "array"))
        super().__init__(input_shape=input_shape, input_dtype=input_dtype, allow_nan=allow_nan)
        self.fn = fn
        self.batch_mode = batch_mode

    def predict(self, batch: list[Any], ctx: ModelContext) -> list[Any]:
        """Call the function on the batch according to ``batch_mode``.

        Parameters
        ----------
        batch : list
        ctx : ModelContext

        Returns
        -------
        list
        """
        if self.batch_mode == "item":
            return [self.fn(x) for x in batch]
        if self.batch_mode == "list":
            out = self.fn(batch)
            return out if isinstance(out, list) else list(out)
        return predict_by_shape(batch, self.fn)


class TorchAPI(_ConfiguredAPI):
    """Serve a ``torch.nn.Module``: eval mode, inference mode, device with CPU fallback.

    Parameters
    ----------
    module : torch.nn.Module
        The model; called once per batch on a tensor of shape (n, *item_shape).
    device : str, default="auto"
        ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or
        ``"cuda:N"``; a CUDA device that is absent falls back to CPU with a log line.
    input_shape : sequence of int or None, optional
    input_dtype : str, default="float32"
    allow_nan : bool, default=False
    num_threads : int, optional
        ``torch.set_num_threads`` in ``setup`` (intra-op threads of this process).

    Attributes
    ----------
    device_ : str
        The device chosen by ``setup``.
    """

    def __init__(
        self,
        module: Any,
        *,
        device: str = "auto",
        input_shape: Sequence[int | None] | None = None,
        input_dtype: str = "float32",
        allow_nan: bool = False,
        num_threads: int | None = None,
    ) -> None:
        if not callable(module):
            raise InvalidParameterError(
                f"The 'module' parameter of TorchAPI must be a torch.nn.Module. Got {type(module).__name__} instead."
            )
        if not isinstance(device, str) or not (
            device in ("auto", "cpu", "cuda") or device.startswith("cuda:")
        ):
            raise InvalidParameterError(
                f"The 'device' parameter of TorchAPI must be 'auto', 'cpu', 'cuda' or 'cuda:N'. Got {device!r} instead."
            )
        check_number(num_threads, "num_threads", "TorchAPI", minimum=1, integer=True, allow_none=True)
        super().__init__(input_shape=input_shape, input_dtype=input_dtype, allow_nan=allow_nan)
        self.module = module
        self.device = device
        self.num_threads = num_threads
        self.device_ = "cpu"

    def setup(self, ctx: ModelContext) -> None:
        """Choose the device, move the module there and switch it to eval mode.

        Parameters
        ----------
        ctx : ModelContext
        """
        import torch

        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        wanted = ctx.device if self.device == "auto" and ctx.device != "cpu" else self.device
        if wanted == "auto":
            wanted = "cuda" if torch.cuda.is_available() else "cpu"
        if wanted.startswith("cuda") and not torch.cuda.is_available():
            logger.warning(
                "model %s: device %r requested but CUDA is unavailable; using CPU", ctx.name, wanted
            )
            wanted = "cpu"
        self.device_ = wanted
        # torch.export programs refuse eval() and may refuse to(); they are inference graphs already
        if wanted != "cpu" and hasattr(self.module, "to"):
            with contextlib.suppress(NotImplementedError):
                self.module = self.module.to(wanted)
        if hasattr(self.module, "eval"):
            with contextlib.suppress(NotImplementedError):
                self.module.eval()

    def predict(self, batch: list[Any], ctx: ModelContext) -> list[Any]:
        """Stack the items, run the module under ``torch.inference_mode()``, split the rows.

        Parameters
        ----------
        batch : list of ndarray
        ctx : ModelContext

        Returns
        -------
        list of ndarray
        """
        import torch

        def run(stacked: np.ndarray[Any, Any]) -> Sequence[Any]:
            x = torch.from_numpy(stacked)
            if self.device_ != "cpu":
                x = x.to(self.device_, non_blocking=True)
            with torch.inference_mode():
                y = self.module(x)
            return list(y.detach().to("cpu").numpy() if isinstance(y, torch.Tensor) else np.asarray(y))

        return predict_by_shape(batch, run)


def is_probabilistic_operator(obj: object) -> bool:
    """Whether ``obj`` looks like a probabilistic operator (``predict`` and ``sample`` methods).

    Parameters
    ----------
    obj : object

    Returns
    -------
    bool
    """
    mod = sys.modules.get("scaleforge.workloads.operators.base")
    cls = getattr(mod, "ProbabilisticOperator", None) if mod is not None else None
    if isinstance(cls, type) and isinstance(obj, cls):
        return True
    return callable(getattr(obj, "predict", None)) and callable(getattr(obj, "sample", None))


class OperatorAPI(_ConfiguredAPI):
    """Serve a probabilistic operator: each answer carries ``mean`` and ``std``.

    Parameters
    ----------
    operator : ProbabilisticOperator or duck type
        ``predict(x) -> (mean, std)`` for ``x`` of shape (n, *grid), and
        ``sample(x, n, random_state=...)`` -> (n_inputs, n, *grid).
    quantiles : sequence of float, default=()
        Gaussian quantiles ``mean + std * z(q)`` to add under ``"quantiles"``,
        each in (0, 1).
    n_samples : int, default=0
        Samples per input to add under ``"samples"`` (0: none).
    input_shape : sequence of int or None, optional
    allow_nan : bool, default=False

    Examples
    --------
    >>> class Op:
    ...     def predict(self, x):
    ...         return x * 2, np.ones_like(x)
    ...     def sample(self, x, n, random_state=None):
    ...         return np.repeat((x * 2)[:, None], n, axis=1)
    >>> api = OperatorAPI(Op(), quantiles=[0.5])
    >>> ctx = ModelContext(name="op", version="1")
    >>> out = api.predict([api.decode([1.0, 2.0], ctx)], ctx)[0]
    >>> out["mean"].tolist(), out["std"].tolist(), out["quantiles"]["0.5"].tolist()
    ([2.0, 4.0], [1.0, 1.0], [2.0, 4.0])
    """

    def __init__(
        self,
        operator: Any,
        *,
        quantiles: Sequence[float] = (),
        n_samples: int = 0,
        input_shape: Sequence[int | None] | None = None,
        allow_nan: bool = False,
    ) -> None:
        if not is_probabilistic_operator(operator):
            raise InvalidParameterError(
                "The 'operator' parameter of OperatorAPI must have predict(x) -> (mean, std) and sample(x, n). "
                f"Got {type(operator).__name__} instead."
            )
        qs = tuple(quantiles)
        for q in qs:
            check_number(q, "quantiles", "OperatorAPI", minimum=0, maximum=1)
            if q in (0, 1):
                raise InvalidParameterError(
                    f"The 'quantiles' parameter of OperatorAPI must hold numbers strictly inside (0, 1). Got {q!r}."
                )
        check_number(n_samples, "n_samples", "OperatorAPI", minimum=0, integer=True)
        super().__init__(input_shape=input_shape, input_dtype="float64", allow_nan=allow_nan)
        self.operator = operator
        self.quantiles = qs
        self.n_samples = n_samples
        self._z = [statistics.NormalDist().inv_cdf(q) for q in qs]

    def predict(self, batch: list[Any], ctx: ModelContext) -> list[Any]:
        """Predict mean and std (and quantiles, samples) for every item.

        Parameters
        ----------
        batch : list of ndarray
        ctx : ModelContext

        Returns
        -------
        list of dict
            ``{"mean": ndarray, "std": ndarray[, "quantiles": {q: ndarray}][, "samples": ndarray]}``.
        """
        return predict_by_shape(batch, self._run)

    def _run(self, x: np.ndarray[Any, Any]) -> list[Any]:
        mean, std = self.operator.predict(x)
        mean = np.asarray(mean)
        std = np.asarray(std)
        samples = self.operator.sample(x, self.n_samples) if self.n_samples else None
        out: list[Any] = []
        for i in range(len(x)):
            item: dict[str, Any] = {"mean": mean[i], "std": std[i]}
            if self.quantiles:
                item["quantiles"] = {
                    f"{q:g}": mean[i] + std[i] * z for q, z in zip(self.quantiles, self._z, strict=True)
                }
            if samples is not None:
                item["samples"] = np.asarray(samples[i])
            out.append(item)
        return out


def as_model_api(model: Any, **options: Any) -> ModelAPI:
    """Wrap ``model`` in the right :class:`ModelAPI` adapter.

    Parameters
    ----------
    model : ModelAPI, ModelAPI subclass, torch.nn.Module, probabilistic operator or callable
        A ModelAPI instance is returned as is; a ModelAPI subclass is
        instantiated with ``**options``.
    **options
        Passed to the adapter (``input_shape``, ``input_dtype``, ``device``,
        ``batch_mode``, ``quantiles``...).

    Returns
    -------
    ModelAPI

    Raises
    ------
    InvalidParameterError
        If ``model`` is none of the above.
    """
    if isinstance(model, ModelAPI):
        return model
    if isinstance(model, type) and issubclass(model, ModelAPI):
        return model(**options)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return TorchAPI(model, **options)
    if is_probabilistic_operator(model):
        return OperatorAPI(model, **options)
    if callable(model):
        return CallableAPI(model, **options)
    raise InvalidParameterError(
        f"Cannot serve an object of type {type(model).__name__}: pass a ModelAPI, a torch.nn.Module, "
        "a probabilistic operator (predict/sample) or a callable."
    )
