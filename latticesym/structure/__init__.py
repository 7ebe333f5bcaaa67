"""Structure-level canonicalization: Niggli lattice, carried coordinates, canonical atom order.

Public surface
--------------
- :func:`canonicalize`: one structure ``(lattice, frac, species)``.
- :func:`canonicalize_batch`: a ragged DiffCSP-style batch ``(lattices, frac, species, n_atoms)``
  with one batched Niggli reduction.
- :class:`CanonicalStructure`, :class:`CanonicalBatch`: the frozen results.

Implementation: ``_layout`` (input checks, ragged layout), ``_frame`` (the rotation-free
parameters frame from the Gram matrix), ``_canonical`` (the canonical form).  See
``docs/structures.md``.
"""

from __future__ import annotations

from latticesym.structure._adapters import (
    RaggedBatch,
    StructureAdapterError,
    as_batch,
    as_structure,
    split_batch,
    to_diffcsp_batch,
    to_structure,
)
from latticesym.structure._canonical import (
    CanonicalBatch,
    CanonicalStructure,
    canonicalize,
    canonicalize_batch,
)
from latticesym.structure._match import MatchBatch, MatchResult, match, match_batch
from latticesym.structure._match_reference import ReferenceResult, reference_match

__all__ = [
    "CanonicalBatch",
    "CanonicalStructure",
    "MatchBatch",
    "MatchResult",
    "RaggedBatch",
    "ReferenceResult",
    "StructureAdapterError",
    "as_batch",
    "as_structure",
    "canonicalize",
    "canonicalize_batch",
    "match",
    "match_batch",
    "reference_match",
    "split_batch",
    "to_diffcsp_batch",
    "to_structure",
]
