"""Typed errors of latticesym: every failure is a :class:`LatticeError` (a ``ValueError``).

No function of latticesym signals failure by returning ``None``.  Each subclass
names one kind of problem, and its message carries the numbers that caused it
(shape, offending entries, volume, iteration count, ...), so that a failing CI
log in a downstream repository is readable without re-running anything.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BatchReductionError",
    "LatticeError",
    "LatticeShapeError",
    "MatchBudgetError",
    "MetricsBaselineError",
    "NonFiniteLatticeError",
    "NotExactError",
    "OptionError",
    "PrecisionError",
    "ReductionCycleError",
    "ReductionError",
    "SingularLatticeError",
]


class LatticeError(ValueError):
    """Root of every error latticesym raises on bad lattices or failed reductions."""


class LatticeShapeError(LatticeError):
    """The input does not have shape ``(3, 3)`` (or ``(..., 3, 3)`` for batched calls)."""


class NonFiniteLatticeError(LatticeError):
    """The input contains NaN or an infinity."""


class SingularLatticeError(LatticeError):
    """The basis is linearly dependent (zero volume), so it spans no 3-D lattice."""


class NotExactError(LatticeError):
    """The exact oracle was given input whose metric is not rational (e.g. ``sqrt(2)``).

    The oracle decides every comparison exactly, which needs a rational Gram
    matrix ``L @ L.T``; an irrational one could only be compared approximately.
    """


class PrecisionError(LatticeError):
    """A tolerance comparison cannot be decided in the chosen arithmetic.

    Raised by float reducers called with ``precision="float"`` on cells whose
    decisions would need more digits than float64 carries (near-singular cells).
    """


class ReductionError(LatticeError):
    """A reduction did not reach a reduced form within its iteration cap or cycled.

    Attributes
    ----------
    iterations : int
        Steps taken before giving up.
    g6 : tuple
        The G6 vector of the last state.
    transform : object
        The integer transform of the last state (``transform @ L_in`` gives it).
    """

    def __init__(self, message: str, *, iterations: int = 0, g6: Any = None, transform: Any = None):
        super().__init__(message)
        self.iterations = iterations
        self.g6 = g6
        self.transform = transform


class ReductionCycleError(PrecisionError, ReductionError):
    """A float reduction revisited a state: its tolerant comparisons contradict each other.

    Exact Krivy-Gruber always terminates, so a cycle means the chosen arithmetic could not
    decide consistently.  It is both a :class:`PrecisionError` (escalate, or use more digits)
    and a :class:`ReductionError` (it carries ``iterations``, ``g6`` and ``transform``).
    """


class BatchReductionError(LatticeError):
    """Some lattices of a batched call failed; ``failed`` lists their (flat) indices.

    Attributes
    ----------
    failed : list of tuple
        Index tuples into the batch's leading shape, one per failed lattice.
    errors : list of LatticeError
        The error each failed lattice raised, in the same order.
    """

    def __init__(self, message: str, *, failed: list[tuple[int, ...]], errors: list[LatticeError]):
        super().__init__(message)
        self.failed = failed
        self.errors = errors


class MatchBudgetError(LatticeError):
    """A structure match needs more work than its per-pair bounds allow (the message has the counts).

    Raised by :func:`latticesym.structure.match` instead of running for minutes on a degenerate
    pair (a needle-like cell with thousands of lattice vectors in the search sphere, ...).
    """


class MetricsBaselineError(LatticeError):
    """A gate baseline is malformed, or was written with other settings than this run.

    Raised by :func:`latticesym.structure.load_metrics_baseline`, the metrics gate and
    :func:`latticesym.gate.load_baseline`; the message names the file, the field and the values.
    """


class OptionError(LatticeError):
    """A keyword option has a value outside its domain (``eps=-1``, ``backend='gpu'``, ``band=2``, ...).

    The message names the option, the value given and the allowed values.  Being a
    :class:`LatticeError`, it is a ``ValueError`` as well, so ``except ValueError`` keeps working;
    per-item error handlers in latticesym (batch masks, metrics, audits) re-raise it instead of
    recording it against one item, since a bad option is the caller's, not the data's.
    """
