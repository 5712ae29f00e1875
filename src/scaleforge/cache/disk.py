"""``DiskTier``: a local-disk cache tier shared safely by several processes.

Storage layout under ``path``::

    index.sqlite3        SQLite (WAL mode) index: key, size, last access, expiry,
                         and the entry itself for entries under 64 KiB
    data/ab/cdef-<r>.sfc one file per larger entry and write: the key's xxh3-128, a random suffix
    locks/ab/cdef.lock   single-flight file locks, present while held (:meth:`DiskTier.lock`)

Every entry is a signed :class:`~scaleforge.codec.FrameCodec` frame. Writers
write a unique temporary file in the target directory and ``os.replace`` it,
then record it in the index inside a ``BEGIN IMMEDIATE`` transaction that also
evicts least-recently-used entries until the byte budget holds. Readers
therefore see either a complete old or a complete new entry; anything else
(a torn file after a power loss, a tampered file) fails its length or MAC
check and is a miss.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import mmap as _mmap
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import xxhash

from scaleforge._validation import check_choice, check_number, parse_bytes
from scaleforge.cache import _diskio
from scaleforge.cache._counters import TierCounters
from scaleforge.cache.base import MISSING, Tier, TierStats, check_key, check_ttl
from scaleforge.cache.filelock import FileLock
from scaleforge.codec import MAC_BYTES, FrameCodec, Signer, load_key
from scaleforge.errors import (
    CacheError,
    ConfigError,
    IntegrityError,
    InvalidParameterError,
    SerializationError,
)

__all__ = ["DiskTier"]

logger = logging.getLogger(__name__)

#: Entries smaller than this live inside the SQLite index instead of a file.
SMALL_ENTRY_BYTES = 64 * 1024
_BUSY_TIMEOUT_S = 60.0
# Access times of hits are buffered and written with the next set, or when
# this many are pending, or when the oldest is this old (keeps get read-only).
_ATIME_MAX_PENDING = 10_000
_ATIME_MAX_AGE_S = 30.0
_EVICT_BATCH = 64
_IN_CHUNK = 500  # SQLite host parameters per IN (...) query

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    atime REAL NOT NULL,
    expires REAL,
    blob BLOB,
    fname TEXT
);
CREATE INDEX IF NOT EXISTS entries_atime ON entries(atime);
CREATE TABLE IF NOT EXISTS totals (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    bytes INTEGER NOT NULL,
    entries INTEGER NOT NULL
);
INSERT OR IGNORE INTO totals VALUES (0, 0, 0);
CREATE TRIGGER IF NOT EXISTS entries_ins AFTER INSERT ON entries BEGIN
    UPDATE totals SET bytes = bytes + NEW.size, entries = entries + 1 WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS entries_del AFTER DELETE ON entries BEGIN
    UPDATE totals SET bytes = bytes - OLD.size, entries = entries - 1 WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS entries_upd AFTER UPDATE OF size ON entries BEGIN
    UPDATE totals SET bytes = bytes - OLD.size + NEW.size WHERE id = 0;
END;
"""
# Bumped in a forked child, so connections opened before the fork are not reused
# (cheaper than os.getpid(), a system call, on every get).
_fork_generation = [0]


def _after_fork_in_child() -> None:
    _fork_generation[0] += 1


os.register_at_fork(after_in_child=_after_fork_in_child)

_SELECT_ONE = "SELECT blob, fname, expires FROM entries WHERE key = ?"
_UPSERT = (
    "INSERT INTO entries (key, size, atime, expires, blob, fname) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(key) DO UPDATE SET size = excluded.size, atime = excluded.atime, "
    "expires = excluded.expires, blob = excluded.blob, fname = excluded.fname"
)


class DiskTier(Tier):
    """A cache tier on local disk: LRU under a byte budget, safe across processes.

    Parameters
    ----------
    path : str or path-like
        Directory of the cache (created if missing). Several processes may
        open the same directory at once.
    max_bytes : int or str, default=10_000_000_000
        Byte budget of all entries (encoded sizes). Larger single values are
        rejected (``set`` returns False, counted in ``errors``).
    fsync : bool, default=False
        ``fsync`` each entry file before publishing it, and run SQLite with
        ``synchronous=FULL``. Without it a power loss may tear recent entries;
        torn entries fail their MAC and are misses.
    compression : {"none", "lz4", "zstd", "auto"}, default="auto"
        Payload compression. Compressed arrays cannot be memory-mapped.
    key : bytes, optional
        32-byte signing key. Default: :func:`scaleforge.codec.load_key` from
        the settings (the key file must lie outside ``path``).
    mac_algorithm : {"blake3", "hmac-sha256"}, default="blake3"
        The keyed MAC of every entry.
    name : str, default="disk"
        Name in stats and metrics.

    Raises
    ------
    InvalidParameterError
        For a bad argument.
    CacheError
        If the directory or index cannot be created.
    ConfigError
        If the settings' key file lies inside ``path``.

    Notes
    -----
    * **Atomicity**: entries >= 64 KiB are written to a unique temporary file
      in their final directory (in 4 MiB chunks, each hashed into the MAC right
      before it is written, so the value is read from memory once; no
      concatenation) and published with ``os.replace``; smaller entries are
      stored in the index. A process killed mid-write leaves at most a
      temporary file (see :meth:`sweep_temp_files`), never a partial entry.
    * **LRU across processes**: hits buffer their access time in the process
      and write it with the process's next ``set`` (or every 10,000 hits / 30 s),
      so ``get`` never takes the write lock. Eviction runs in the writer's
      transaction and removes least-recently-used entries until the total is
      under ``max_bytes``. While a large file is written and before it is
      indexed, the directory may exceed the budget by the entries in flight
      (at most one per concurrent writer).
    * **Memory maps**: ``get(key, mmap=True)`` returns an uncompressed array
      stored in a file as a read-only ``numpy`` array over an ``mmap`` of that
      file, without a copy. Its MAC is **not** checked (that would read the
      whole file, defeating the lazy map); since raw arrays are never
      unpickled, the worst a tampered file can do is change numbers. The
      header is still checked (dtype without objects, shape consistent with
      the file size). Everything else (pickles, compressed arrays) is read
      into private memory, then verified, then decoded: never unpickled from a
      shared map, whose bytes another writer could change after the check.
    * **Single flight**: :meth:`lock` is a file lock (``fcntl.flock``) under
      ``locks/``, so the processes of a machine sharing the directory compute
      a key once; the kernel frees it the moment a holder dies.
    * A key whose file was removed by another process is a miss. Each write
      has its own file, so deleting, evicting or overwriting an entry removes
      exactly the file of the index row it replaced, never a file another
      process has just published for the same key. A writer killed between
      publishing and indexing leaves an unindexed file: :meth:`sweep_temp_files`.
    * Pickling a ``DiskTier`` (to ship it to worker processes) includes its
      signing key; do not persist such pickles.
    * Counters in :meth:`stats` are this object's; ``bytes`` and ``entries``
      are the directory's, shared by every process.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> tier = DiskTier(tempfile.mkdtemp(), max_bytes="1GB", key=bytes(32))
    >>> tier.set("a", np.arange(3))
    True
    >>> tier.get("a")
    array([0, 1, 2])
    """

    name = "disk"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int | str = 10 * 10**9,
        fsync: bool = False,
        compression: str = "auto",
        key: bytes | None = None,
        mac_algorithm: str = "blake3",
        name: str = "disk",
    ) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidParameterError(
                f"The 'path' parameter of DiskTier must be a directory path. Got {path!r} instead."
            )
        self._root = Path(path).expanduser().absolute()
        self._max_bytes = parse_bytes(max_bytes, owner="DiskTier")
        if not isinstance(fsync, bool):
            raise InvalidParameterError(
                f"The 'fsync' parameter of DiskTier must be a bool. Got {fsync!r} instead."
            )
        check_choice(mac_algorithm, "mac_algorithm", "DiskTier", ("blake3", "hmac-sha256"))
        if key is None:
            from scaleforge.settings import get_settings

            cache_settings = get_settings().cache
            key_file = Path(cache_settings.key_file).expanduser().absolute()
            if cache_settings.hmac_key is None and key_file.is_relative_to(self._root):
                raise ConfigError(
                    f"The cache key file {str(key_file)!r} lies inside the DiskTier directory "
                    f"{str(self._root)!r}; anyone who can write the cache could then forge entries. "
                    "Set cache.key_file to a path outside the cache directory."
                )
            key = load_key(cache_settings)
        self._key = bytes(key)
        self._mac_algorithm = mac_algorithm
        self._compression = compression
        self._codec = FrameCodec(Signer(self._key, mac_algorithm), compression=compression)  # type: ignore[arg-type]
        self._fsync = fsync
        self.name = name
        self._data_dir = self._root / "data"
        self._db_path = self._root / "index.sqlite3"
        self._local = threading.local()
        self._conns: list[tuple[int, sqlite3.Connection]] = []
        self._conns_lock = threading.Lock()
        self._pending: dict[str, float] = {}
        self._pending_since = time.monotonic()
        self._accesses = 0
        self._c = TierCounters(name)
        try:
            self._data_dir.mkdir(parents=True, exist_ok=True)
            conn = self._conn()
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise CacheError(
                f"Cannot open the disk cache at {str(self._root)!r}: {exc}. "
                "Choose a writable directory (DiskTier(path=...) or cache.disk.path)."
            ) from exc

    def __repr__(self) -> str:
        return f"DiskTier({str(self._root)!r}, max_bytes={self._max_bytes}, name={self.name!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_disk_tier,
            (
                str(self._root),
                self._max_bytes,
                self._fsync,
                self._compression,
                self._key,
                self._mac_algorithm,
                self.name,
            ),
        )

    # ---- plumbing --------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """The cache directory."""
        return self._root

    @property
    def max_bytes(self) -> int:
        """The byte budget."""
        return self._max_bytes

    @property
    def is_shared(self) -> bool:
        """True: other processes may write the directory, so entries are signed."""
        return True

    @property
    def supports_ttl(self) -> bool:
        """True: expired entries are misses."""
        return True

    @property
    def supports_mmap(self) -> bool:
        """True: uncompressed arrays stored in files can be returned memory-mapped."""
        return True

    @property
    def supports_lock(self) -> bool:
        """True: :meth:`lock` is a file lock shared by the processes of this machine."""
        return True

    def lock(
        self, name: str, *, timeout_s: float = 60.0, blocking_timeout_s: float | None = 60.0
    ) -> FileLock:
        """Return a lock that excludes every local process using this cache directory.

        Parameters
        ----------
        name : str
            Lock name (e.g. the cache key being computed).
        timeout_s : float, default=60.0
            Validated and ignored: the operating system frees the lock as soon
            as a holder dies, and a live holder keeps it while it computes.
        blocking_timeout_s : float or None, default=60.0
            Longest wait of ``__enter__``; 0 tries once, None waits for the holder.

        Returns
        -------
        FileLock
            A context manager whose ``__enter__`` returns True if the lock was taken.

        Raises
        ------
        InvalidParameterError
            For a bad name or timeout.

        Notes
        -----
        An ``fcntl.flock`` on ``locks/ab/<xxh3 of name>.lock`` under the cache
        directory (see :mod:`scaleforge.cache.filelock`); local file systems only.
        """
        check_key(name, "DiskTier.lock")
        check_number(timeout_s, "timeout_s", "DiskTier.lock", minimum=0, exclusive_minimum=True)
        check_number(blocking_timeout_s, "blocking_timeout_s", "DiskTier.lock", minimum=0, allow_none=True)
        digest = xxhash.xxh3_128_hexdigest(name.encode("utf-8", "surrogatepass"))
        path = self._root / "locks" / digest[:2] / f"{digest[2:]}.lock"
        return FileLock(
            path, blocking_timeout_s=None if blocking_timeout_s is None else float(blocking_timeout_s)
        )

    def _conn(self) -> sqlite3.Connection:
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None or local.generation != _fork_generation[0]:
            pid = os.getpid()
            # After a fork the parent's connection must not be used; it is kept
            # referenced (never closed here) so the child does not touch its locks.
            conn = sqlite3.connect(
                self._db_path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000)}")
            conn.execute(f"PRAGMA synchronous={'FULL' if self._fsync else 'NORMAL'}")
            local.conn, local.cur, local.generation = conn, conn.cursor(), _fork_generation[0]
            with self._conns_lock:
                self._conns.append((pid, conn))
        return conn

    def _file_for(self, key: str) -> tuple[str, Path]:
        # Every write gets a file of its own (the key's hash plus a random suffix), named in the
        # index row it commits. Deleting, evicting or replacing an entry then unlinks exactly the
        # file of the row it removed, never the file another process has just published for the
        # same key and is about to index; and two writers of one key cannot leave the index
        # counting one file's size while the other's bytes sit under the shared name.
        digest = xxhash.xxh3_128_hexdigest(key.encode("utf-8", "surrogatepass"))
        rel = f"{digest[:2]}/{digest[2:]}-{secrets.token_hex(8)}.sfc"
        return rel, self._data_dir / rel

    def _unlink_quietly(self, rels: Iterable[str | None]) -> None:
        for rel in rels:
            if rel:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._data_dir / rel)

    def _forget(self, key: str, rel: str | None) -> None:
        """Drop a broken or expired entry from the index (best effort)."""
        try:
            conn = self._conn()
            if rel is None:
                conn.execute("DELETE FROM entries WHERE key = ? AND fname IS NULL", (key,))
            else:
                conn.execute("DELETE FROM entries WHERE key = ? AND fname = ?", (key, rel))
        except sqlite3.Error:
            pass

    # ---- reads -----------------------------------------------------------------------
    def _decode_row(self, key: str, row: tuple[Any, ...], mmap: bool, now: float) -> Any:
        blob, rel, expires = row
        if expires is not None and expires <= now:
            self._forget(key, rel)
            # Each write has its own file: this one belongs to the expired row (or to a row
            # already replaced, whose writer unlinks it too), never to a newer entry.
            self._unlink_quietly([rel])
            return MISSING
        try:
            if blob is not None:
                return self._codec.decode(blob)
            path = self._data_dir / rel
            if mmap:
                with open(path, "rb") as f:
                    if os.fstat(f.fileno()).st_size == 0:
                        raise SerializationError("empty entry file")
                    mm = _mmap.mmap(f.fileno(), 0, access=_mmap.ACCESS_READ)
                if _diskio.is_plain_array_frame(mm):
                    return self._codec.decode(mm, verify=False)
                # Anything else is verified, then decoded: both must read the same private
                # bytes. A shared map shows in-place writes made between the two steps, which
                # would let whoever can write the directory slip unverified bytes to pickle.
                mm.close()
            data, mac = _diskio.read_file(path, self._codec.mac_hasher())
            return self._codec.decode(data, precomputed_mac=mac)
        except FileNotFoundError:  # evicted or replaced by another process
            self._forget(key, rel)
            return MISSING
        except (IntegrityError, SerializationError) as exc:
            return self._drop_bad(key, rel, exc)
        except OSError as exc:
            self._c.error(logger, "DiskTier %s: cannot read an entry (%s)", self._root, exc)
            return MISSING

    def _drop_bad(self, key: str, rel: str | None, exc: Exception) -> Any:
        self._c.error(logger, "DiskTier %s: dropping a bad entry (%s)", self._root, exc)
        self._forget(key, rel)
        self._unlink_quietly([rel])
        return MISSING

    def _note_access(self, key: str) -> None:
        pending = self._pending
        pending[key] = time.time()
        self._accesses += 1
        if len(pending) < _ATIME_MAX_PENDING and (
            self._accesses & 255 or time.monotonic() - self._pending_since < _ATIME_MAX_AGE_S
        ):
            return
        try:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._flush_atimes(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._c.error(logger, "DiskTier %s: cannot record access times (%s)", self._root, exc)

    def _flush_atimes(self, conn: sqlite3.Connection) -> None:
        pending, self._pending = self._pending, {}
        self._pending_since = time.monotonic()
        if pending:
            conn.executemany(
                "UPDATE entries SET atime = ? WHERE key = ? AND atime < ?",
                [(t, k, t) for k, t in pending.items()],
            )

    def get(self, key: str, default: Any = None, *, mmap: bool = False) -> Any:
        """Return the value under ``key`` or ``default`` (see :meth:`Tier.get` and the Notes)."""
        if type(key) is not str or not key:
            check_key(key, "DiskTier")
        t0 = time.perf_counter()
        local = self._local
        try:
            if getattr(local, "generation", -1) != _fork_generation[0]:
                self._conn()
            row = local.cur.execute(_SELECT_ONE, (key,)).fetchone()
        except sqlite3.Error as exc:
            self._c.error(logger, "DiskTier %s: index read failed (%s)", self._root, exc)
            row = None
        if row is None:
            value = MISSING
        elif row[0] is not None and row[2] is None:  # small entry without expiry: the fast path
            try:
                value = self._codec.decode(row[0])
            except (IntegrityError, SerializationError) as exc:
                value = self._drop_bad(key, None, exc)
        else:
            value = self._decode_row(key, row, mmap, time.time())
        if value is MISSING:
            self._c.misses += 1
            value = default
        else:
            self._c.hits += 1
            self._note_access(key)
        self._c.observe_get(time.perf_counter() - t0)
        return value

    def get_many(self, keys: Iterable[str], *, mmap: bool = False) -> dict[str, Any]:
        """Return ``{key: value}`` for the keys that hit, one index query per 500 keys."""
        wanted = list(dict.fromkeys(check_key(k, "DiskTier") for k in keys))
        t0 = time.perf_counter()
        out: dict[str, Any] = {}
        now = time.time()
        for i in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[i : i + _IN_CHUNK]
            try:
                rows = (
                    self._conn()
                    .execute(
                        f"SELECT key, blob, fname, expires FROM entries WHERE key IN ({','.join('?' * len(chunk))})",
                        chunk,
                    )
                    .fetchall()
                )
            except sqlite3.Error as exc:
                self._c.error(logger, "DiskTier %s: index read failed (%s)", self._root, exc)
                rows = []
            for row in rows:
                value = self._decode_row(row[0], row[1:], mmap, now)
                if value is not MISSING:
                    out[row[0]] = value
                    self._note_access(row[0])
        self._c.hits += len(out)
        self._c.misses += len(wanted) - len(out)
        self._c.observe_get(time.perf_counter() - t0)
        return out

    # ---- writes ----------------------------------------------------------------------
    def _prepare(self, key: str, value: Any) -> tuple[str, int, bytes | None, str | None] | None:
        """Encode and, for large entries, write and publish the file. None on failure.

        Returns ``(key, entry bytes, blob for the index or None, file or None)``.
        """
        codec = self._codec
        try:
            enc = codec.encode_unsigned(value)
        except SerializationError as exc:
            self._c.error(logger, "DiskTier %s: cannot encode a value (%s)", self._root, exc)
            return None
        nbytes = enc.nbytes + MAC_BYTES
        if nbytes > self._max_bytes:
            self._c.error(
                logger,
                "DiskTier %s: rejected an entry of %d bytes (max_bytes=%d)",
                self._root,
                nbytes,
                self._max_bytes,
            )
            return None
        hasher = codec.mac_hasher()
        if nbytes < SMALL_ENTRY_BYTES:
            body = enc.tobytes()
            if hasher is not None:
                hasher.update(body)
            return key, nbytes, body + codec.trailer(hasher), None
        rel, final = self._file_for(key)
        tmp = final.parent / f".{final.name}.tmp"
        try:
            final.parent.mkdir(exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                _diskio.write_signed(fd, enc.buffers, hasher)
                _diskio.write_all(fd, [codec.trailer(hasher)])
                if self._fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
            if self._fsync:  # make the rename itself durable
                dir_fd = os.open(final.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            reason = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "write failed"
            self._c.error(logger, "DiskTier %s: %s (%s)", self._root, reason, exc)
            return None
        return key, nbytes, None, rel

    def _commit(self, prepared: list[tuple[str, int, bytes | None, str | None]], ttl: float | None) -> bool:
        now = time.time()
        expires = now + ttl if ttl is not None else None
        stale: list[str | None] = []
        evicted = 0
        try:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                for key, nbytes, blob, rel in prepared:
                    old = conn.execute("SELECT fname FROM entries WHERE key = ?", (key,)).fetchone()
                    if old is not None and old[0] != rel:
                        stale.append(old[0])
                    conn.execute(_UPSERT, (key, nbytes, now, expires, blob, rel))
                self._flush_atimes(conn)
                new_keys = {p[0] for p in prepared}
                total = conn.execute("SELECT bytes FROM totals WHERE id = 0").fetchone()[0]
                while total > self._max_bytes:
                    rows = conn.execute(
                        "SELECT key, size, fname FROM entries ORDER BY atime LIMIT ?",
                        (_EVICT_BATCH + len(new_keys),),
                    ).fetchall()
                    victims = [r for r in rows if r[0] not in new_keys]
                    if not victims:
                        break
                    for vkey, vsize, vrel in victims:
                        if total <= self._max_bytes:
                            break
                        conn.execute("DELETE FROM entries WHERE key = ?", (vkey,))
                        total -= vsize
                        evicted += 1
                        stale.append(vrel)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._c.error(logger, "DiskTier %s: index write failed (%s)", self._root, exc)
            self._unlink_quietly(p[3] for p in prepared)
            return False
        self._unlink_quietly(stale)
        self._c.evictions += evicted
        self._c.sets += len(prepared)
        return True

    def set(self, key: str, value: Any, *, ttl_s: float | None = None) -> bool:
        """Store ``value`` atomically (see :meth:`Tier.set` and the Notes)."""
        check_key(key, "DiskTier")
        ttl = check_ttl(ttl_s, "DiskTier")
        t0 = time.perf_counter()
        prepared = self._prepare(key, value)
        ok = prepared is not None and self._commit([prepared], ttl)
        self._c.set_time_s += time.perf_counter() - t0
        self._c.maybe_sync(0)
        return ok

    def set_many(self, items: Mapping[str, Any], *, ttl_s: float | None = None) -> dict[str, bool]:
        """Store several values with one index transaction; return ``{key: stored}``."""
        ttl = check_ttl(ttl_s, "DiskTier")
        t0 = time.perf_counter()
        result = {check_key(k, "DiskTier"): False for k in items}
        prepared = [p for p in (self._prepare(k, v) for k, v in items.items()) if p is not None]
        if prepared and self._commit(prepared, ttl):
            for p in prepared:
                result[p[0]] = True
        self._c.set_time_s += time.perf_counter() - t0
        return result

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it was present."""
        check_key(key, "DiskTier")
        try:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT fname FROM entries WHERE key = ?", (key,)).fetchone()
                if row is not None:
                    conn.execute("DELETE FROM entries WHERE key = ?", (key,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._c.error(logger, "DiskTier %s: delete failed (%s)", self._root, exc)
            return False
        self._pending.pop(key, None)
        if row is None:
            return False
        self._unlink_quietly([row[0]])
        self._c.deletes += 1
        return True

    def touch(self, key: str, *, ttl_s: float | None = None) -> bool:
        """Mark ``key`` as used now (and reset its expiry if ``ttl_s``); True if present."""
        check_key(key, "DiskTier")
        ttl = check_ttl(ttl_s, "DiskTier")
        now = time.time()
        try:
            conn = self._conn()
            if ttl is None:
                cur = conn.execute("UPDATE entries SET atime = ? WHERE key = ?", (now, key))
            else:
                cur = conn.execute(
                    "UPDATE entries SET atime = ?, expires = ? WHERE key = ?", (now, now + ttl, key)
                )
            return cur.rowcount > 0
        except sqlite3.Error as exc:
            self._c.error(logger, "DiskTier %s: touch failed (%s)", self._root, exc)
            return False

    def clear(self) -> None:
        """Remove every entry, every entry file and temporary file, and reset the counters."""
        try:
            conn = self._conn()
            conn.execute("DELETE FROM entries")
        except sqlite3.Error as exc:
            self._c.error(logger, "DiskTier %s: clear failed (%s)", self._root, exc)
        self._pending.clear()
        self.sweep_temp_files(max_age_s=0.0, include_entries=True)
        self._c.reset()

    def sweep_temp_files(self, *, max_age_s: float = 3600.0, include_entries: bool = False) -> int:
        """Remove files left by killed writers; return how many were removed.

        A writer killed while writing leaves a temporary file; one killed after
        publishing its entry file but before indexing it leaves an entry file
        that no index row names. Both are removed once older than ``max_age_s``.

        Parameters
        ----------
        max_age_s : float, default=3600.0
            Only files older than this are removed, so writes in progress survive.
        include_entries : bool, default=False
            Also remove indexed entry files (used by :meth:`clear`).

        Returns
        -------
        int

        Raises
        ------
        InvalidParameterError
            If ``max_age_s`` is not a number >= 0.
        """
        check_number(max_age_s, "max_age_s", "DiskTier.sweep_temp_files", minimum=0)
        cutoff = time.time() - max_age_s
        candidates: list[tuple[str, str, bool]] = []  # (path, rel, is_tmp)
        try:
            subdirs = list(os.scandir(self._data_dir))
        except OSError:
            return 0
        for sub in subdirs:
            if not sub.is_dir():
                continue
            with contextlib.suppress(OSError), os.scandir(sub.path) as it:
                for entry in it:
                    with contextlib.suppress(OSError):
                        if entry.stat().st_mtime <= cutoff:
                            is_tmp = entry.name.endswith(".tmp")
                            candidates.append((entry.path, f"{sub.name}/{entry.name}", is_tmp))
        indexed: set[str] = set()
        if not include_entries and any(not is_tmp for _, _, is_tmp in candidates):
            try:  # read after listing: a file indexed meanwhile is seen as indexed
                rows = self._conn().execute("SELECT fname FROM entries WHERE fname IS NOT NULL").fetchall()
            except sqlite3.Error as exc:
                self._c.error(logger, "DiskTier %s: cannot list entry files (%s)", self._root, exc)
                return _diskio.unlink_paths([p for p, _, is_tmp in candidates if is_tmp])
            indexed = {r[0] for r in rows}
        return _diskio.unlink_paths(
            [p for p, rel, is_tmp in candidates if is_tmp or include_entries or rel not in indexed]
        )

    def keys(self) -> Iterator[str]:
        """Iterate over a snapshot of the keys in the index."""
        try:
            rows = self._conn().execute("SELECT key FROM entries").fetchall()
        except sqlite3.Error as exc:
            self._c.error(logger, "DiskTier %s: listing keys failed (%s)", self._root, exc)
            rows = []
        return iter([r[0] for r in rows])

    def stats(self) -> TierStats:
        """Return the counters of this process, and the directory's bytes and entry count."""
        try:
            total, entries = self._conn().execute("SELECT bytes, entries FROM totals WHERE id = 0").fetchone()
        except sqlite3.Error:
            total, entries = 0, -1
        return self._c.snapshot(bytes_now=int(total), entries=int(entries), max_bytes=self._max_bytes)

    def close(self) -> None:
        """Write buffered access times and close this object's SQLite connections."""
        if self._pending:
            try:
                conn = self._conn()
                conn.execute("BEGIN IMMEDIATE")
                self._flush_atimes(conn)
                conn.execute("COMMIT")
            except sqlite3.Error:
                pass
        pid = os.getpid()
        with self._conns_lock:
            mine = [c for p, c in self._conns if p == pid]
            self._conns = [(p, c) for p, c in self._conns if p != pid]
        for conn in mine:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()


def _rebuild_disk_tier(
    path: str, max_bytes: int, fsync: bool, compression: str, key: bytes, mac_algorithm: str, name: str
) -> DiskTier:
    return DiskTier(
        path,
        max_bytes=max_bytes,
        fsync=fsync,
        compression=compression,
        key=key,
        mac_algorithm=mac_algorithm,
        name=name,
    )
