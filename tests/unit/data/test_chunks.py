"""map_chunks / chunks over .npy memmaps and zarr arrays, against known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import scaleforge as sf
from scaleforge.data import chunks, map_chunks
from scaleforge.errors import InvalidParameterError


@pytest.fixture
def x(global_random_seed: int) -> np.ndarray:
    return np.random.default_rng(global_random_seed).random((103, 7))


def test_chunks_cover_every_row_once(x: np.ndarray, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", x)
    blocks = list(chunks(tmp_path / "x.npy", chunk=10))
    assert [s.start for s, _ in blocks] == list(range(0, 103, 10))
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), x)


def test_map_chunks_npy_memmap_to_npy(x: np.ndarray, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", x)
    src = np.load(tmp_path / "x.npy", mmap_mode="r")
    out = sf.map_chunks(np.sqrt, src, out=tmp_path / "y.npy", chunk=9)
    assert isinstance(out, np.memmap)
    np.testing.assert_allclose(out, np.sqrt(x))
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), np.sqrt(x))  # really on disk


def _row_norms(block: np.ndarray) -> np.ndarray:
    return np.linalg.norm(block, axis=1)


def test_map_chunks_zarr_to_zarr_changes_shape(x: np.ndarray, tmp_path: Path) -> None:
    import zarr

    z = zarr.create_array(store=str(tmp_path / "x.zarr"), shape=x.shape, chunks=(16, 7), dtype=x.dtype)
    z[:] = x
    out = map_chunks(_row_norms, z, out=tmp_path / "n.zarr")
    assert out.shape == (103,)
    np.testing.assert_allclose(out[:], np.linalg.norm(x, axis=1))
    np.testing.assert_allclose(
        zarr.open_array(str(tmp_path / "n.zarr"), mode="r")[:], np.linalg.norm(x, axis=1)
    )


def test_map_chunks_in_memory_array_default_output(x: np.ndarray) -> None:
    out = map_chunks(lambda b: b * 2 + 1, x, chunk=20, executor="threads")
    np.testing.assert_allclose(out, x * 2 + 1)


def test_map_chunks_rejects_bad_input(x: np.ndarray, tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="does not exist"):
        map_chunks(np.sqrt, tmp_path / "missing.npy")
    with pytest.raises(InvalidParameterError, match="'chunk'"):
        map_chunks(np.sqrt, x, chunk=0)
    with pytest.raises(InvalidParameterError, match="n rows to n rows"):
        map_chunks(lambda b: b[:1], x, chunk=10)
    with pytest.raises(InvalidParameterError, match="callable"):
        map_chunks(3, x)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="numpy arrays"):
        map_chunks(np.sqrt, [1, 2, 3])
