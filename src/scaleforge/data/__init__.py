"""Data larger than memory: chunked, memory-mapped processing of arrays.

See :func:`chunks` and :func:`map_chunks` (also ``scaleforge.map_chunks``).
"""

from __future__ import annotations

from scaleforge.data.chunks import chunks, map_chunks

__all__ = ["chunks", "map_chunks"]
