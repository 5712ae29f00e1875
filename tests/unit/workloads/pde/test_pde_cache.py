"""``generate`` through ``@cached``: re-runs and extensions compute only new blocks, and hits are counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scaleforge.cache.disk import DiskTier
from scaleforge.cache.memory import MemoryTier
from scaleforge.settings import config_context
from scaleforge.workloads.pde.datasets import BLOCK_SIZE, generate


def test_rerun_is_all_hits_and_extension_computes_only_new_samples() -> None:
    tier = MemoryTier(max_bytes="64MB")
    with config_context(cache=tier):
        cold = generate("darcy", 3 * BLOCK_SIZE, 8, seed=11)
        assert cold.stats["computed_blocks"] == 3
        assert cold.stats["cached_blocks"] == 0

        warm = generate("darcy", 3 * BLOCK_SIZE, 8, seed=11)
        assert warm.stats["computed_blocks"] == 0  # none computed
        assert warm.stats["cached_blocks"] == 3
        assert tier.stats().hits >= 3  # the tier really answered: every block a counted hit
        assert tier.stats().sets >= 3
        assert np.array_equal(warm.inputs, cold.inputs)
        assert np.array_equal(warm.outputs, cold.outputs)

        longer = generate("darcy", 5 * BLOCK_SIZE, 8, seed=11)
        assert longer.stats["cached_blocks"] == 3
        assert longer.stats["computed_blocks"] == 2  # only the new ones
        assert longer.stats["computed_samples"] == 2 * BLOCK_SIZE
        assert np.array_equal(longer.outputs[: 3 * BLOCK_SIZE], cold.outputs)

        # another seed or resolution is another key
        other = generate("darcy", BLOCK_SIZE, 8, seed=12)
        assert other.stats["computed_blocks"] == 1


def test_cache_survives_the_process_through_a_disk_tier(tmp_path: Path) -> None:
    with config_context(cache=DiskTier(tmp_path / "cache", key=b"k" * 32)):
        cold = generate("burgers", 2 * BLOCK_SIZE, 16, seed=4)
    # a fresh tier object on the same directory: what a new process would see
    with config_context(cache=DiskTier(tmp_path / "cache", key=b"k" * 32)):
        warm = generate("burgers", 2 * BLOCK_SIZE, 16, seed=4)
    assert warm.stats["computed_blocks"] == 0
    assert np.array_equal(warm.outputs, cold.outputs)


def test_cache_false_neither_reads_nor_writes() -> None:
    tier = MemoryTier(max_bytes="64MB")
    with config_context(cache=tier):
        generate("darcy", BLOCK_SIZE, 8, seed=21, cache=False)
        assert tier.stats().sets == 0
        again = generate("darcy", BLOCK_SIZE, 8, seed=21)
        assert again.stats["computed_blocks"] == 1


def test_parallel_generation_gives_the_same_bytes_as_a_serial_loop() -> None:
    from scaleforge.compute.local import ProcessExecutor
    from scaleforge.workloads.pde.datasets import sample_burgers, sample_darcy

    n = 3 * BLOCK_SIZE + 5
    with ProcessExecutor(max_workers=2) as ex:
        darcy = generate("darcy", n, 12, seed=9, executor=ex, cache=False, progress=False)
        burgers = generate("burgers", n, 32, seed=9, executor=ex, cache=False, progress=False)
    serial = [sample_darcy(9, i, 12) for i in range(n)]
    assert darcy.inputs.tobytes() == np.stack([s[0] for s in serial]).tobytes()
    assert darcy.outputs.tobytes() == np.stack([s[1] for s in serial]).tobytes()
    u0, ut = sample_burgers(9, range(n), 32)  # one batch: the blocks' batching changes no bit
    assert burgers.inputs.tobytes() == u0.tobytes()
    assert burgers.outputs.tobytes() == ut.tobytes()
