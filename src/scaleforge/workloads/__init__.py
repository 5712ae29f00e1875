"""Built-in scientific workloads built on the platform's layers.

Import each on its own: ``from scaleforge.workloads import pde, operators, clustering, habitat``.
"""

from __future__ import annotations

__all__ = ["clustering", "habitat", "operators", "pde"]
