"""Hashing of torch tensors and pandas objects (both recognised lazily by their module)."""

from __future__ import annotations

import pickle

import pytest

from scaleforge.hashing import hash_value

# --------------------------------------------------------------------------- torch

torch = pytest.importorskip("torch")


def test_torch_tensors() -> None:
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    assert hash_value(t) == hash_value(t.clone())
    assert hash_value(t) == hash_value(t.t().contiguous().t())  # non-contiguous view, same values
    assert hash_value(t) != hash_value(t.double())
    assert hash_value(t) != hash_value(t.reshape(4, 3))
    changed = t.clone()
    changed[1, 2] += 1
    assert hash_value(changed) != hash_value(t)
    assert hash_value(t) != hash_value(t.numpy())
    assert hash_value(torch.nn.Parameter(t.clone())) == hash_value(t)
    assert hash_value(t.bfloat16()) != hash_value(t.half())
    assert hash_value(torch.tensor(1.0)) != hash_value(torch.tensor([1.0]))
    assert hash_value(torch.zeros(0, 3)) != hash_value(torch.zeros(3, 0))
    assert hash_value(torch.float32) != hash_value(torch.float64)
    assert hash_value(torch.Size([2, 3])) != hash_value((2, 3))


def test_torch_hashing_leaves_caller_tensor_unchanged() -> None:
    t = torch.randn(5, 5, requires_grad=True)
    before = t.detach().clone()
    hash_value(t)
    assert t.requires_grad and t.device.type == "cpu" and t.dtype == torch.float32
    assert torch.equal(t.detach(), before)
    z = torch.complex(torch.randn(3), torch.randn(3))
    assert hash_value(z.conj()) == hash_value(z.conj().resolve_conj())
    assert hash_value(z.conj()) != hash_value(z)
    sparse = torch.eye(3).to_sparse()
    assert hash_value(sparse) == hash_value(torch.eye(3))


@pytest.mark.gpu
def test_cuda_tensor_is_hashed_without_moving_it() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the CPU path is covered by test_torch_tensors")
    t = torch.arange(6.0).cuda()
    assert hash_value(t) == hash_value(t.cpu())
    assert t.device.type == "cuda"


# --------------------------------------------------------------------------- pandas

pd = pytest.importorskip("pandas")


def test_pandas_series() -> None:
    s = pd.Series([1.0, 2.0, 3.0], index=["a", "b", "c"], name="x")
    assert hash_value(s) == hash_value(s.copy())
    assert hash_value(s) == hash_value(pickle.loads(pickle.dumps(s)))
    assert hash_value(s) != hash_value(s.rename("y"))
    assert hash_value(s) != hash_value(s.astype("float32"))
    assert hash_value(s) != hash_value(pd.Series([1.0, 2.0, 3.0], index=["a", "b", "d"], name="x"))
    assert hash_value(s) != hash_value(pd.Series([1.0, 2.0, 4.0], index=["a", "b", "c"], name="x"))
    # RangeIndex and an equal integer Index hash alike (value semantics)
    assert hash_value(pd.Series([1, 2])) == hash_value(pd.Series([1, 2], index=pd.Index([0, 1])))
    nullable = pd.Series([1, None], dtype="Int64")
    assert hash_value(nullable) != hash_value(pd.Series([1, 2], dtype="Int64"))
    assert hash_value(nullable) != hash_value(pd.Series([1.0, float("nan")]))
    cat = pd.Series(["a", "b"], dtype="category")
    assert hash_value(cat) != hash_value(pd.Series(["a", "b"]))
    assert hash_value(cat) == hash_value(cat.copy())


def test_pandas_dataframes() -> None:
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"], "c": pd.to_datetime(["2020", "2021", "2022"])})
    assert hash_value(df) == hash_value(df.copy())
    assert hash_value(df) == hash_value(pickle.loads(pickle.dumps(df)))
    assert hash_value(df) != hash_value(df[["b", "a", "c"]])  # column order
    assert hash_value(df) != hash_value(df.rename(columns={"a": "A"}))
    assert hash_value(df) != hash_value(df.set_axis([5, 6, 7]))
    assert hash_value(df) != hash_value(df.astype({"a": "int32"}))
    changed = df.copy()
    changed.loc[1, "b"] = "q"
    assert hash_value(changed) != hash_value(df)
    assert hash_value(pd.Timestamp("2020-01-01", tz="UTC")) != hash_value(pd.Timestamp("2020-01-01"))
    assert hash_value(pd.NaT) != hash_value(pd.NA)
    periods = pd.Series(pd.period_range("2020-01", periods=3, freq="M"))
    assert hash_value(periods) == hash_value(periods.copy())
    assert hash_value(periods) != hash_value(pd.Series(pd.period_range("2020-02", periods=3, freq="M")))
    assert hash_value(pd.Interval(0, 1)) != hash_value(pd.Interval(0, 1, closed="left"))
    tz = pd.Series(pd.date_range("2020", periods=3, tz="UTC"))
    assert hash_value(tz) != hash_value(pd.Series(pd.date_range("2020", periods=3)))
