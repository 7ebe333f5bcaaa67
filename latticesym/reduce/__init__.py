"""Robust float64 and mpmath Niggli reduction: batched, certified, never silently wrong.

Public surface
--------------
- :func:`niggli_reduce`: float64, one lattice ``(3, 3)`` or a batch ``(..., 3, 3)``; numba kernel
  when numba is installed, vectorised numpy otherwise; escalates undecidable lattices to mpmath and
  exact arithmetic (``precision="auto"``).
- :func:`mp_niggli_reduce`: the same algorithm in mpmath at a chosen precision.
- :func:`is_niggli_reduced`: the reducer's own step logic as a predicate.
- :func:`warmup`: compile / load the numba kernels now (first-call latency).
- :class:`NiggliResult`, :class:`ReduceStatus` (per-lattice status of ``errors="mask"``),
  :class:`Arithmetic` (which arithmetic certified a result).

Implementation: ``_kg`` (the step logic, written once), ``_context`` (float64 / mpmath / exact
arithmetic), ``_accurate`` (Dot2 products), ``_batch`` (numpy), ``_numba`` (compiled kernel),
``_certify`` (independent exact checks), ``_api`` (this surface).  See ``docs/algorithm.md``.
"""

from __future__ import annotations

from latticesym.reduce._accurate import accurate_matmul
from latticesym.reduce._api import (
    Arithmetic,
    NiggliResult,
    ReduceStatus,
    is_niggli_reduced,
    mp_niggli_reduce,
    niggli_reduce,
)
from latticesym.reduce._warmup import warmup

__all__ = [
    "Arithmetic",
    "NiggliResult",
    "ReduceStatus",
    "accurate_matmul",
    "is_niggli_reduced",
    "mp_niggli_reduce",
    "niggli_reduce",
    "warmup",
]
