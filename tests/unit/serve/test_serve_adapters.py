"""ModelAPI defaults and the callable, torch and probabilistic-operator adapters (known answers)."""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
import pytest

from scaleforge.errors import InvalidParameterError
from scaleforge.serve.adapters import (
    CallableAPI,
    OperatorAPI,
    TorchAPI,
    as_model_api,
    is_probabilistic_operator,
)
from scaleforge.serve.base import ModelAPI, ModelContext, check_item

CTX = ModelContext(name="m", version="1")


class _Op:
    """A closed-form probabilistic operator: mean = 2x, std = |x| + 1, samples = mean."""

    def predict(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x)
        return 2 * x, np.abs(x) + 1

    def sample(self, x: Any, n: int, *, random_state: int | None = None) -> np.ndarray:
        return np.repeat((2 * np.asarray(x))[:, None], n, axis=1)


def test_check_item_converts_and_validates() -> None:
    a = check_item([1, 2, 3], shape=(3,))
    assert a.dtype == np.float32 and a.tolist() == [1, 2, 3]
    assert check_item([[1, 2]], shape=(None, 2)).shape == (1, 2)
    with pytest.raises(InvalidParameterError, match=r"shape \(2,\)"):
        check_item([1, 2], shape=(3,))
    with pytest.raises(InvalidParameterError, match="dtype"):
        check_item(["a", "b"])
    with pytest.raises(InvalidParameterError, match="dtype"):
        check_item([1, None])
    with pytest.raises(InvalidParameterError, match="rectangular"):
        check_item([[1, 2], [3]])
    with pytest.raises(InvalidParameterError, match="NaN"):
        check_item([1.0, float("nan")])
    assert np.isnan(check_item([float("nan")], allow_nan=True)[0])
    with pytest.raises(InvalidParameterError, match="int64"):
        check_item([1.5], dtype="int64")


def test_model_api_defaults() -> None:
    class Square(ModelAPI):
        input_shape = (2,)

        def predict(self, batch: list[Any], ctx: ModelContext) -> list[Any]:
            return [x**2 for x in batch]

    api = Square()
    x = api.decode([3, 4], CTX)
    assert api.encode(api.predict([x], CTX)[0], CTX).tolist() == [9, 16]
    with pytest.raises(InvalidParameterError):
        api.decode([1, 2, 3], CTX)
    assert api.describe()["input_shape"] == (2,)
    with pytest.raises(TypeError):
        ModelAPI()  # type: ignore[abstract]


@pytest.mark.parametrize("mode", ["item", "list", "array"])
def test_callable_modes_give_the_same_answer(mode: str) -> None:
    fns = {
        "item": lambda x: x.sum(),
        "list": lambda xs: [x.sum() for x in xs],
        "array": lambda a: a.sum(axis=1),
    }
    api = CallableAPI(fns[mode], batch_mode=mode, input_shape=(3,))
    batch = [api.decode([1, 2, 3], CTX), api.decode([4, 5, 6], CTX)]
    assert [float(v) for v in api.predict(batch, CTX)] == [6.0, 15.0]


def test_callable_validation() -> None:
    with pytest.raises(InvalidParameterError, match="fn"):
        CallableAPI(3)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="batch_mode"):
        CallableAPI(abs, batch_mode="rows")
    with pytest.raises(InvalidParameterError, match="input_dtype"):
        CallableAPI(abs, input_dtype="float99")
    with pytest.raises(InvalidParameterError, match="input_shape"):
        CallableAPI(abs, input_shape=(-1,))


def test_torch_adapter_is_exact_linear_map_in_eval_and_inference_mode() -> None:
    torch = pytest.importorskip("torch")
    lin = torch.nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0, -1.0], [2.0, 1.0, 0.0]]))
        lin.bias.copy_(torch.tensor([0.5, -1.0]))
    module = torch.nn.Sequential(lin, torch.nn.Dropout(p=0.9))
    module.train()
    api = TorchAPI(module, input_shape=(3,), device="cuda" if not torch.cuda.is_available() else "cpu")
    api.setup(CTX)
    assert api.device_ == "cpu"  # CUDA requested but absent: CPU fallback
    assert not module.training  # eval(): dropout off, so the answer is exact
    out = api.predict([api.decode([1, 2, 3], CTX), api.decode([0, 0, 0], CTX)], CTX)
    np.testing.assert_allclose(np.stack(out), [[1 - 3 + 0.5, 2 + 2 - 1.0], [0.5, -1.0]], rtol=1e-6)
    assert isinstance(out[0], np.ndarray)


def test_torch_adapter_validation() -> None:
    with pytest.raises(InvalidParameterError, match="device"):
        TorchAPI(abs, device="tpu")
    with pytest.raises(InvalidParameterError, match="module"):
        TorchAPI(3)


def test_operator_adapter_mean_std_quantiles_samples_closed_form() -> None:
    api = OperatorAPI(_Op(), quantiles=[0.025, 0.5, 0.975], n_samples=4)
    x = api.decode([1.0, -2.0], CTX)
    out = api.predict([x], CTX)[0]
    np.testing.assert_allclose(out["mean"], [2.0, -4.0])
    np.testing.assert_allclose(out["std"], [2.0, 3.0])
    z = statistics.NormalDist().inv_cdf(0.975)
    np.testing.assert_allclose(out["quantiles"]["0.975"], [2 + 2 * z, -4 + 3 * z])
    np.testing.assert_allclose(out["quantiles"]["0.025"], [2 - 2 * z, -4 - 3 * z])
    np.testing.assert_allclose(out["quantiles"]["0.5"], out["mean"])
    assert out["samples"].shape == (4, 2)


def test_operator_adapter_validation() -> None:
    with pytest.raises(InvalidParameterError, match="operator"):
        OperatorAPI(object())
    with pytest.raises(InvalidParameterError, match="quantiles"):
        OperatorAPI(_Op(), quantiles=[1.0])
    with pytest.raises(InvalidParameterError, match="n_samples"):
        OperatorAPI(_Op(), n_samples=-1)


def test_as_model_api_dispatch() -> None:
    torch = pytest.importorskip("torch")
    assert isinstance(as_model_api(torch.nn.Linear(2, 2)), TorchAPI)
    assert isinstance(as_model_api(_Op()), OperatorAPI)
    assert is_probabilistic_operator(_Op())
    assert isinstance(as_model_api(abs), CallableAPI)
    api = CallableAPI(abs)
    assert as_model_api(api) is api
    with pytest.raises(InvalidParameterError, match="Cannot serve"):
        as_model_api(42)


class _GridOp(_Op):
    """Resolution-agnostic, but grids shorter than 4 points are invalid input."""

    def predict(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        if np.shape(x)[1] < 4:
            raise InvalidParameterError("grid too coarse: use at least 4 points")
        return super().predict(x)


def test_mixed_grids_in_one_batch_are_answered_per_group_and_bad_groups_fail_alone() -> None:
    api = OperatorAPI(_GridOp())
    batch = [api.decode(v, CTX) for v in ([1.0] * 4, [2.0] * 6, [3.0, 3.0], [4.0] * 4)]
    out = api.predict(batch, CTX)
    assert [o["mean"].tolist() for o in (out[0], out[1], out[3])] == [[2.0] * 4, [4.0] * 6, [8.0] * 4]
    assert isinstance(out[2], InvalidParameterError) and "coarse" in str(out[2])


def test_runtime_errors_still_fail_the_whole_batch() -> None:
    def broken(a: np.ndarray) -> np.ndarray:
        raise RuntimeError("model bug")

    api = CallableAPI(broken, batch_mode="array")
    with pytest.raises(RuntimeError, match="model bug"):
        api.predict([np.ones(2), np.ones(3)], CTX)
