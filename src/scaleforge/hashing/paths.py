"""Hashing of file-system paths: by path string, or by file content with :class:`ContentPath`.

A plain :class:`pathlib.Path` is hashed by its path string: a cached function
that takes a path is keyed by *which* file it was given. Wrap the path in
:class:`ContentPath` to key by *what the file contains* instead. Reading a large
file on every call would defeat a cache, so content digests are memoised by
``(device, inode, size, mtime_ns, ctime_ns)``: an unchanged file is not read
again, and any write (which moves mtime/ctime) or replacement (a new inode)
makes it be read again.
"""

from __future__ import annotations

import os
import pathlib
import stat
import threading
from collections import OrderedDict

import xxhash

from scaleforge.errors import InvalidParameterError
from scaleforge.hashing._encoding import _Encoder, _HashFailure, _register_builtin, lp

__all__ = ["ContentPath"]

_READ_CHUNK = 1 << 22  # 4 MiB reads: large enough that xxh3 runs at memory speed
_MEMO_MAX = 4096
_MEMO: OrderedDict[tuple[str, int, int, int, int, int], bytes] = OrderedDict()
_MEMO_LOCK = threading.Lock()


class ContentPath(os.PathLike[str]):
    """A path whose cache key is the content of the file (or directory tree) it names.

    Parameters
    ----------
    path : str or os.PathLike
        A file or a directory. A directory is hashed by the sorted relative
        paths and contents of the regular files below it (symbolic links to
        directories are not followed).

    Raises
    ------
    InvalidParameterError
        If ``path`` is not a ``str`` or ``os.PathLike`` naming a text path.

    See Also
    --------
    hash_value : Hashes a ``ContentPath`` by content, a ``pathlib.Path`` by its string.

    Notes
    -----
    The file is read when the value is hashed, not when it is constructed.
    Renaming or moving a file keeps its digest; only the bytes count.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from scaleforge.hashing import ContentPath, hash_value
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d) / "x.txt"
    ...     _ = p.write_text("hello")
    ...     before = hash_value(ContentPath(p))
    ...     _ = p.write_text("hello, world")
    ...     before == hash_value(ContentPath(p))
    False
    """

    __slots__ = ("_path",)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        try:
            text = os.fspath(path)
        except TypeError:
            text = None
        if not isinstance(text, str):
            raise InvalidParameterError(
                f"The 'path' parameter of ContentPath must be a str or os.PathLike naming a file. "
                f"Got {path!r} ({type(path).__name__}) instead."
            )
        self._path = text

    def __fspath__(self) -> str:
        return self._path

    @property
    def path(self) -> pathlib.Path:
        """The wrapped path as a :class:`pathlib.Path`."""
        return pathlib.Path(self._path)

    def __repr__(self) -> str:
        return f"ContentPath({self._path!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ContentPath) and other._path == self._path

    def __hash__(self) -> int:
        return hash((ContentPath, self._path))

    def hexdigest(self) -> str:
        """Return the xxh3-128 digest of the content as 32 hexadecimal characters.

        Returns
        -------
        str
            The digest of the file's bytes (or of the directory tree).

        Raises
        ------
        InvalidParameterError
            If the path cannot be read.
        """
        try:
            return _content_digest(self._path)[1:].hex()
        except OSError as exc:
            raise InvalidParameterError(_unreadable(self._path, exc)) from exc


def _unreadable(path: str, exc: OSError) -> str:
    return (
        f"ContentPath({path!r}) cannot be read ({exc.strerror or exc}). Check that the file exists "
        f"and is readable, or pass a pathlib.Path to key by the path string only."
    )


def _file_digest(path: str, st: os.stat_result) -> bytes:
    key = (os.path.abspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _MEMO_LOCK:
        digest = _MEMO.get(key)
        if digest is not None:
            _MEMO.move_to_end(key)
            return digest
    state = xxhash.xxh3_128()
    buffer = bytearray(min(_READ_CHUNK, max(st.st_size, 1)))
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buffer)
            if not n:
                break
            state.update(view[:n])
        after = os.fstat(f.fileno())
    digest = bytes(state.digest())
    unchanged = (after.st_size, after.st_mtime_ns, after.st_ctime_ns) == (
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
    )
    if unchanged:  # a file written while we read it is not memoised
        with _MEMO_LOCK:
            _MEMO[key] = digest
            if len(_MEMO) > _MEMO_MAX:
                _MEMO.popitem(last=False)
    return digest


def _content_digest(path: str) -> bytes:
    """A kind byte (``f`` file, ``d`` directory) followed by the 16-byte digest."""
    st = os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        state = xxhash.xxh3_128()
        for root, dirs, files in os.walk(path, onerror=_raise):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                file_st = os.stat(full)
                if not stat.S_ISREG(file_st.st_mode):
                    continue
                state.update(lp(os.path.relpath(full, path).replace(os.sep, "/")))
                state.update(_file_digest(full, file_st))
        return b"d" + bytes(state.digest())
    return b"f" + _file_digest(path, st)


def _raise(exc: OSError) -> None:
    raise exc


def _h_content_path(obj: ContentPath, encoder: _Encoder) -> None:
    try:
        digest = _content_digest(obj.__fspath__())
    except OSError as exc:
        raise _HashFailure("invalid", type(obj), _unreadable(obj.__fspath__(), exc)) from exc
    encoder.out.append(b"c" + digest)


def _h_path(obj: pathlib.PurePath, encoder: _Encoder) -> None:
    encoder.out.append(b"p" + lp(str(obj)))


_register_builtin(ContentPath, _h_content_path)
_register_builtin(pathlib.PurePath, _h_path)
