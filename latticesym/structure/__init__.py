"""Structure-level canonicalization: Niggli lattice, carried coordinates, canonical atom order.

Public surface
--------------
- :func:`canonicalize`: one structure ``(lattice, frac, species)``.
- :func:`canonicalize_batch`: a ragged DiffCSP-style batch ``(lattices, frac, species, n_atoms)``
  with one batched Niggli reduction.
- :class:`CanonicalStructure`, :class:`CanonicalBatch`: the frozen results.
- :func:`csp_metrics`: match rate and RMSE as DiffCSP computes them, best of ``k``, basis-free
  lattice errors (also ``latticesym.metrics.csp_metrics``); :func:`assert_csp_metrics` and
  ``latticesym gate --metrics``: the regression gate on them.

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
from latticesym.structure._convert import ConversionReport, FileConversion, canonicalize_files
from latticesym.structure._gate_metrics import (
    MetricsGateResult,
    MetricsRegressionError,
    assert_csp_metrics,
    compare_metrics,
    load_metrics_baseline,
    load_predictions,
    load_references,
    write_metrics_baseline,
)
from latticesym.structure._match import MatchBatch, MatchResult, match, match_batch
from latticesym.structure._match_reference import ReferenceResult, reference_match
from latticesym.structure._metrics import (
    CSPMetrics,
    LatticeErrors,
    csp_metrics,
    lattice_errors,
    ragged_to_structures,
    structure_validity,
)

__all__ = [
    "CSPMetrics",
    "CanonicalBatch",
    "CanonicalStructure",
    "ConversionReport",
    "FileConversion",
    "LatticeErrors",
    "MatchBatch",
    "MatchResult",
    "MetricsGateResult",
    "MetricsRegressionError",
    "RaggedBatch",
    "ReferenceResult",
    "StructureAdapterError",
    "as_batch",
    "as_structure",
    "assert_csp_metrics",
    "canonicalize",
    "canonicalize_batch",
    "canonicalize_files",
    "compare_metrics",
    "csp_metrics",
    "lattice_errors",
    "load_metrics_baseline",
    "load_predictions",
    "load_references",
    "match",
    "match_batch",
    "ragged_to_structures",
    "reference_match",
    "split_batch",
    "structure_validity",
    "to_diffcsp_batch",
    "to_structure",
    "write_metrics_baseline",
]
