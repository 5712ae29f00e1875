"""Cross-process locks on local files (``fcntl.flock``): single flight without Redis.

:meth:`DiskTier.lock <scaleforge.cache.disk.DiskTier.lock>` returns a
:class:`FileLock` on ``<cache dir>/locks/ab/<digest>.lock``, so the processes
of one machine that share a disk cache compute each key once.

Protocol
--------
* **Acquire**: open (creating) the lock file, ``flock(LOCK_EX)`` it, then check
  that the path still names the inode that was locked. If it does not, the
  previous holder removed the file while this process waited: close it and
  start again on the new file.
* **Release**: unlink the file *while still holding the lock*, then unlock and
  close. Lock files therefore do not accumulate (one per key ever computed);
  the inode check above is what keeps that removal race-free.
* **A dead holder** (``kill -9``, a crash) frees the lock at once: the kernel
  drops ``flock`` locks when the last descriptor of the open file goes away.
  Its lock file stays behind and is reused (then removed) by the next holder.

``flock`` locks belong to the open file description, which a ``fork``\\ ed
child shares. So that a worker forked while its parent holds locks does not
keep them alive after the parent dies, children close their inherited copies
right after the fork (``os.register_at_fork``); the parent keeps its locks.
``flock`` is reliable on local file systems only (not across NFS clients).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
import weakref
from pathlib import Path

__all__ = ["FileLock"]

logger = logging.getLogger(__name__)

# Polling of a bounded wait: first retry after 1 ms, growing to 20 ms, so a waiter
# notices a released (or dead) holder within ~20 ms without spinning.
_POLL_FIRST_S = 0.001
_POLL_MAX_S = 0.02

_held: weakref.WeakSet[FileLock] = weakref.WeakSet()
_held_guard = threading.Lock()


def _close_inherited_locks() -> None:
    # In a forked child: drop the copies of the parent's lock descriptors without
    # unlocking (LOCK_UN would release the parent's lock too).
    global _held_guard
    _held_guard = threading.Lock()
    for lock in list(_held):
        fd, lock._fd = lock._fd, -1
        lock.acquired = False
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


class FileLock:
    """An exclusive lock between processes on one machine, held on a lock file.

    Parameters
    ----------
    path : path-like
        The lock file (created on demand, with its directory; removed on release).
    blocking_timeout_s : float or None, default=None
        Longest wait in :meth:`acquire`: 0 tries once, None waits until the
        holder releases the lock or dies.

    Notes
    -----
    Not re-entrant, and two ``FileLock`` objects on the same path exclude each
    other even within one process (single flight takes its in-process key
    lock first, so threads never race for the file). :meth:`acquire` never
    raises an ``OSError``: a lock file that cannot be created makes it return
    False with :attr:`unavailable` set.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "k.lock"
    >>> with FileLock(path, blocking_timeout_s=0) as held:
    ...     held, path.exists()
    (True, True)
    >>> path.exists()
    False
    """

    __slots__ = ("__weakref__", "_fd", "_path", "_wait", "acquired", "unavailable")

    def __init__(self, path: str | os.PathLike[str], *, blocking_timeout_s: float | None = None) -> None:
        self._path = Path(path)
        self._wait = blocking_timeout_s
        self._fd = -1
        #: True while this object holds the lock.
        self.acquired = False
        #: True if the last ``acquire`` failed because the lock file could not be opened.
        self.unavailable = False

    def __repr__(self) -> str:
        return f"FileLock({str(self._path)!r}, acquired={self.acquired})"

    @property
    def path(self) -> Path:
        """The lock file."""
        return self._path

    def _open(self) -> int:
        try:
            return os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _lock_fd(self, fd: int, deadline: float | None) -> bool:
        """Take ``flock`` on ``fd``, waiting until ``deadline`` (None: forever)."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        if deadline is None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # the kernel wakes us when the holder releases or dies
            return True
        delay = _POLL_FIRST_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(delay, left))
            delay = min(delay * 2, _POLL_MAX_S)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                continue

    def acquire(self) -> bool:
        """Take the lock, waiting up to ``blocking_timeout_s``; True if taken.

        Returns
        -------
        bool
            False if the wait timed out or the lock file could not be opened.
        """
        if self.acquired:
            return True
        wait = self._wait
        deadline = None if wait is None else time.monotonic() + max(0.0, wait)
        self.unavailable = False
        while True:
            try:
                fd = self._open()
            except OSError as exc:
                logger.warning("cannot open the lock file %s (%s); going on without it", self._path, exc)
                self.unavailable = True
                return False
            try:
                if not self._lock_fd(fd, deadline):
                    os.close(fd)
                    return False
                try:
                    current = os.stat(self._path)
                except FileNotFoundError:
                    current = None
                mine = os.fstat(fd)
            except OSError as exc:
                os.close(fd)
                logger.warning("cannot lock %s (%s); going on without it", self._path, exc)
                self.unavailable = True
                return False
            if current is not None and (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev):
                self._fd = fd
                self.acquired = True
                with _held_guard:
                    _held.add(self)
                return True
            # The holder we waited for removed this file on release: lock the new one.
            os.close(fd)

    def release(self) -> None:
        """Release the lock if held (removing the lock file first)."""
        if not self.acquired:
            return
        fd, self._fd = self._fd, -1
        self.acquired = False
        with _held_guard:
            _held.discard(self)
        if fd < 0:
            return
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as exc:  # closing below releases the lock anyway
            logger.debug("releasing the lock file %s: %s", self._path, exc)
        finally:
            os.close(fd)

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        # An abandoned held lock: closing the descriptor frees it (the file stays, reusable).
        fd = getattr(self, "_fd", -1)
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
