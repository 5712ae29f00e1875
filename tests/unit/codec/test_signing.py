"""Signer and key management."""

from __future__ import annotations

import hashlib
import hmac
import multiprocessing
import os
import stat
from pathlib import Path

import blake3
import numpy as np
import pytest

from scaleforge.codec.signing import KEY_BYTES, Signer, load_key
from scaleforge.errors import ConfigError, InvalidParameterError
from scaleforge.settings import CacheSettings

KEY = bytes(range(32))


def test_blake3_mac_is_keyed_blake3_of_the_concatenation() -> None:
    parts = [b"head", memoryview(b"payload"), bytearray(b"tail")]
    expected = blake3.blake3(b"headpayloadtail", key=KEY).digest()
    assert Signer(KEY).mac(parts) == expected


def test_hmac_sha256_is_standard_hmac() -> None:
    expected = hmac.new(KEY, b"abc", hashlib.sha256).digest()
    assert Signer(KEY, "hmac-sha256").mac([b"a", b"bc"]) == expected


def test_signing_works_in_a_forked_child_after_large_macs_in_the_parent() -> None:
    big = bytes(8 * 2**20)
    Signer(KEY).mac([big])  # a threaded hasher here would leave a dead pool to the child
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=Signer(KEY).mac, args=([big],))
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == 0


def test_large_buffers_use_the_same_mac() -> None:
    big = np.random.default_rng(0).integers(0, 255, 6 * 2**20, dtype=np.uint8).tobytes()
    assert Signer(KEY).mac([big]) == blake3.blake3(big, key=KEY).digest()


def test_verify_detects_changes_and_other_keys() -> None:
    s = Signer(KEY)
    tag = s.mac([b"data"])
    assert s.verify([b"data"], tag)
    assert not s.verify([b"datA"], tag)
    assert not Signer(bytes(32)).verify([b"data"], tag)


@pytest.mark.parametrize("key", [b"", b"x" * 31, b"x" * 33, "x" * 32])
def test_bad_keys_are_rejected(key: object) -> None:
    with pytest.raises(InvalidParameterError, match="32 bytes"):
        Signer(key)  # type: ignore[arg-type]


def test_bad_algorithm_is_rejected() -> None:
    with pytest.raises(InvalidParameterError, match="algorithm"):
        Signer(KEY, "md5")  # type: ignore[arg-type]


def test_hmac_key_setting_hex_and_passphrase(tmp_path: Path) -> None:
    hex_key = os.urandom(32).hex()
    assert load_key(CacheSettings(hmac_key=hex_key, key_file=tmp_path / "k")) == bytes.fromhex(hex_key)
    derived = load_key(CacheSettings(hmac_key="a long shared passphrase", key_file=tmp_path / "k"))
    assert len(derived) == KEY_BYTES
    assert derived == load_key(CacheSettings(hmac_key="a long shared passphrase", key_file=tmp_path / "k"))
    assert not (tmp_path / "k").exists()  # the setting wins; no file is written
    with pytest.raises(ConfigError, match="at least 16"):
        load_key(CacheSettings(hmac_key="short", key_file=tmp_path / "k"))


def test_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "sub" / "hmac.key"
    first = load_key(CacheSettings(key_file=path))
    assert len(first) == KEY_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(CacheSettings(key_file=path)) == first
    assert [p.name for p in path.parent.iterdir()] == ["hmac.key"]  # no temp files left


def test_corrupt_key_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "hmac.key"
    path.write_bytes(b"too short")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="Delete it"):
        load_key(CacheSettings(key_file=path))


def test_unwritable_key_location_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="key_file"):
        load_key(CacheSettings(key_file=blocker / "hmac.key"))


def _load_in_child(
    path: str, barrier: multiprocessing.synchronize.Barrier, out: multiprocessing.Queue
) -> None:  # type: ignore[type-arg]
    barrier.wait()
    out.put(load_key(CacheSettings(key_file=Path(path))))


def test_processes_racing_to_create_the_key_agree(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    path = tmp_path / "race" / "hmac.key"
    barrier = ctx.Barrier(6)
    out = ctx.Queue()
    procs = [ctx.Process(target=_load_in_child, args=(str(path), barrier, out)) for _ in range(6)]
    for p in procs:
        p.start()
    keys = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(set(keys)) == 1
    assert path.read_bytes() == keys[0]


@pytest.mark.parametrize("mode", [0o644, 0o620, 0o602])
def test_key_file_others_can_read_or_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "hmac.key"
    path.write_bytes(bytes(range(32)))
    path.chmod(mode)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_key(CacheSettings(key_file=path))
    path.chmod(0o640)  # readable by the group (a team sharing one cache) is allowed
    assert load_key(CacheSettings(key_file=path)) == bytes(range(32))
