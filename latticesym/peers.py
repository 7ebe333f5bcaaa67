"""Uniform, time-limited wrappers around the peer Niggli reducers, and the judge of their answers.

:func:`peer_niggli` runs one peer (spglib, gemmi, ASE, pymatgen, cctbx, moyopy) on one lattice
in a persistent worker subprocess with a deadline, converts the answer to latticesym's
conventions (rows are basis vectors, ``transform @ L_in == L_out``, G6 order of
``CONVENTIONS.md``) and judges it against the exact oracle :mod:`latticesym.reference`.

No peer is imported by this module, in this process: each peer lives in its own worker
process (one per peer, started on first use, restarted after a timeout or a crash), which
also keeps ``import gemmi`` and ``from cctbx import uctbx`` apart (together they segfault).

How each peer is called (``eps`` is passed as the peer's own tolerance argument, in the
peer's own units, as a user would call it):

=========  ===================================================================  ==============
peer       call                                                                 transform
=========  ===================================================================  ==============
spglib     ``spglib.niggli_reduce(L, eps=eps)`` (absolute, A^2); ``None``=fail  recovered
gemmi      ``GruberVector(g6).niggli_reduce(epsilon=eps, iteration_limit=100)``  searched
ase        ``ase.build.tools.niggli_reduce_cell(L, epsfactor=eps)``              ``C.T``
pymatgen   ``Lattice(L).get_niggli_reduced_lattice(tol=eps)``                    recovered
cctbx      ``unit_cell(metrical_matrix=...).niggli_reduction(relative_epsilon)``  ``r_inv().T``
moyopy     ``rows, T = moyopy.niggli_reduce(L)`` with ``rows = T.T @ L``         ``T.T``
=========  ===================================================================  ==============

"recovered": ``round(L_out @ inv(L_in))`` computed exactly in rationals; "searched": gemmi
returns a G6 only, so the judge reduces that G6 exactly and compares it with the input's reduced
G6 (and, failing that, looks for an integer basis change with entries up to 2 of the oracle's
reduced basis that has that metric).  ASE returns its cell re-oriented (a along x), so its
``lattice`` is in ASE's frame; compare metrics.

Judging an answer (:func:`judge_answer`), with ``e = eps_judge * V**(2/3)`` (the project's
scale-relative tolerance) and ``tol = rel_tol * max(A, B, C)`` of the oracle's reduced G6:

- ``"wrong"`` when the peer returned a cell for an input the oracle rejects (NaN, inf,
  singular, wrong shape); when its transform is not integral with ``det = +-1``, or the
  output metric differs from ``transform @ L_in``'s by more than ``tol`` (also when the
  transform is right and only the returned cell is inaccurate); when the output metric is
  not that of the input lattice (its exact reduction differs from the input's); or when the
  exact G6 of the answer violates a Niggli condition by more than ``e``
  (:func:`niggli_violations_tol`).
- ``"ok"`` otherwise; ``agrees`` says whether the G6 is within ``tol`` of the oracle's.  An ``ok``
  answer that does not agree is a legitimate tolerant choice near a Niggli boundary (the
  message says how far).

Examples
--------
>>> from latticesym.peers import available_peers, peer_niggli
>>> r = peer_niggli("spglib", [[3, 0, 0], [1, 4, 0], [7, 2, 5]])  # doctest: +SKIP
>>> r.status, [round(x, 6) for x in r.g6]  # doctest: +SKIP
('ok', [9.0, 17.0, 29.0, -16.0, 0.0, -6.0])
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import itertools
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from latticesym.errors import LatticeError, OptionError

__all__ = [
    "PEERS",
    "PeerResult",
    "Verdict",
    "available_peers",
    "boundary_margin",
    "judge_answer",
    "niggli_violations_tol",
    "oracle_reference",
    "peer_function",
    "peer_niggli",
    "shutdown_workers",
]

PEERS: tuple[str, ...] = ("spglib", "gemmi", "ase", "pymatgen", "cctbx", "moyopy")
"""Names accepted by :func:`peer_niggli`, in a fixed order."""

_MODULE = {"spglib": "spglib", "gemmi": "gemmi", "ase": "ase", "pymatgen": "pymatgen",
           "cctbx": "cctbx", "moyopy": "moyopy"}

Status = Literal["ok", "none", "error", "timeout", "wrong"]

# Peers' workers get at most this much address space, so that a peer that tries to allocate
# hundreds of GiB (pymatgen on extreme cells) fails fast with MemoryError instead of swapping.
WORKER_MEMORY_BYTES = 4 << 30
STARTUP_TIMEOUT = 180.0


@dataclass(frozen=True)
class PeerResult:
    """One peer's answer on one lattice, in latticesym's conventions, judged.

    Attributes
    ----------
    g6 : tuple of 6 float or None
        The peer's reduced G6 ``(A, B, C, xi, eta, zeta)``; ``None`` if it gave no answer.
    lattice : numpy.ndarray or None
        The peer's reduced basis, rows (ASE: in ASE's re-oriented frame); ``None`` for gemmi
        (G6 only) and when there is no answer.
    transform : numpy.ndarray or None
        int64 ``T`` with ``T @ L_in`` having the peer's metric (given by the peer, recovered or
        searched, see the module docstring); ``det`` may be -1 (moyopy, pymatgen on
        left-handed input).  ``None`` when none could be found.
    status : {"ok", "none", "error", "timeout", "wrong"}
        ``none``: the peer signalled failure without raising (spglib's ``None``);
        ``error``: it raised (or its worker died); ``timeout``: no answer before the deadline;
        ``wrong``: it answered, and the answer failed :func:`judge_answer`.
    message : str
        Why (the error, the violated condition, the distance to the oracle, ...).
    seconds : float
        Wall time of the peer call itself, measured in the worker (the deadline for timeouts).
    peer : str
        Which peer.
    agrees : bool or None
        Whether ``g6`` is within ``rel_tol * max(A, B, C)`` of the exact oracle's; ``None`` when
        not judged or no answer.
    reason : str
        The judge's :attr:`Verdict.reason` (``""`` when it agrees or there is no answer).
    margin_over_e : float or None
        :attr:`Verdict.margin_over_e`.
    """

    g6: tuple[float, ...] | None
    lattice: NDArray[np.float64] | None
    transform: NDArray[np.int64] | None
    status: Status
    message: str
    seconds: float
    peer: str = ""
    agrees: bool | None = None
    reason: str = ""
    margin_over_e: float | None = None

    @property
    def answered(self) -> bool:
        """Whether the peer returned a cell (``ok`` or ``wrong``)."""
        return self.status in ("ok", "wrong")


def available_peers() -> list[str]:
    """The peers whose Python package is installed (found without importing it).

    Examples
    --------
    >>> set(available_peers()) <= set(PEERS)
    True
    """
    out = []
    for name in PEERS:
        try:
            found = importlib.util.find_spec(_MODULE[name]) is not None
        except (ImportError, ValueError):
            found = False
        if found:
            out.append(name)
    return out


# =========================================================================== the judge
def _frac(x: Any) -> Fraction:
    return x if isinstance(x, Fraction) else Fraction(x)


def niggli_violations_tol(g6: Sequence[Any], e: Any) -> list[tuple[str, Fraction]]:
    """Niggli conditions that a G6 violates by more than ``e``, with the excess, exactly.

    Every inequality of International Tables A §3.1.3 is relaxed by ``e`` (a number in the
    units of G6, Angstrom^2); the sign classification accepts off-diagonal entries within
    ``e`` of zero as either sign; a special (boundary) condition applies when its equality
    holds within ``e``, and its consequence is then relaxed by ``e`` too.  With ``e = 0`` this
    is exactly :func:`latticesym.reference.niggli_violations`.  All arithmetic is in
    ``Fraction``; floats are converted exactly.

    Parameters
    ----------
    g6 : sequence of 6 numbers
        ``(A, B, C, xi, eta, zeta)``.
    e : number
        Tolerance (>= 0), Angstrom^2.

    Returns
    -------
    list of (str, Fraction)
        The violated conditions and by how much they are violated beyond ``e``.

    Examples
    --------
    >>> niggli_violations_tol((4, 9, 9, 9, 3, 4), 0)
    []
    >>> niggli_violations_tol((9.5, 9, 9, 0, 0, 0), 1)
    []
    >>> niggli_violations_tol((11, 9, 9, 0, 0, 0), 1)
    [('A <= B', Fraction(1, 1))]
    """
    A, B, C, xi, eta, zeta = (_frac(x) for x in g6)
    e = _frac(e)
    if e < 0:
        raise OptionError(f"e must be >= 0, got {e}")
    bad: list[tuple[str, Fraction]] = []

    def need(name: str, lhs: Fraction, rhs: Fraction) -> None:  # lhs <= rhs + e
        if lhs > rhs + e:
            bad.append((name, lhs - rhs - e))

    def near(x: Fraction, y: Fraction) -> bool:
        return abs(x - y) <= e

    for name, v in (("A > 0", A), ("B > 0", B), ("C > 0", C)):
        if v <= 0:
            bad.append((name, -v))
    need("A <= B", A, B)
    need("B <= C", B, C)
    need("|xi| <= B", abs(xi), B)
    need("|eta| <= A", abs(eta), A)
    need("|zeta| <= A", abs(zeta), A)
    off = (xi, eta, zeta)
    type_one = all(v > -e for v in off)
    type_two = all(v <= e for v in off)
    if not (type_one or type_two):
        bad.append(("signs: all > 0 (type I) or all <= 0 (type II)", min(max(off), -min(off)) - e))
        return bad
    if near(A, B):
        need("A == B -> |xi| <= |eta|", abs(xi), abs(eta))
    if near(B, C):
        need("B == C -> |eta| <= |zeta|", abs(eta), abs(zeta))
    if type_one:
        if near(xi, B):
            need("xi == B -> zeta <= 2 eta", zeta, 2 * eta)
        if near(eta, A):
            need("eta == A -> zeta <= 2 xi", zeta, 2 * xi)
        if near(zeta, A):
            need("zeta == A -> eta <= 2 xi", eta, 2 * xi)
    if type_two:
        s = -(xi + eta + zeta)
        need("|xi| + |eta| + |zeta| <= A + B", s, A + B)
        if near(xi, -B):
            need("xi == -B -> zeta == 0", abs(zeta), Fraction(0))
        if near(eta, -A):
            need("eta == -A -> zeta == 0", abs(zeta), Fraction(0))
        if near(zeta, -A):
            need("zeta == -A -> eta == 0", abs(eta), Fraction(0))
        if near(s, A + B):
            need("|xi|+|eta|+|zeta| == A+B -> 2A <= 2|eta| + |zeta|", 2 * A, 2 * abs(eta) + abs(zeta))
    return bad


def boundary_margin(g6: Sequence[Any]) -> Fraction:
    """Distance (in G6 units) of a reduced G6 from the nearest Niggli boundary, exactly.

    The smallest of ``B - A``, ``C - B``, ``B - |xi|``, ``A - |eta|``, ``A - |zeta|``, ``|xi|``,
    ``|eta|``, ``|zeta|`` and ``|A + B + xi + eta + zeta|``: where one of these is small, an
    ``eps``-tolerant reducer may legitimately choose another reduced form than the exact one.

    Examples
    --------
    >>> boundary_margin((4, 9, 9, 9, 3, 4))
    Fraction(0, 1)
    >>> boundary_margin((4, 6, 9, 1, 2, 3))
    Fraction(1, 1)
    """
    A, B, C, xi, eta, zeta = (_frac(x) for x in g6)
    return min(B - A, C - B, B - abs(xi), A - abs(eta), A - abs(zeta), abs(xi), abs(eta), abs(zeta),
               abs(A + B + xi + eta + zeta))


def oracle_reference(lattice: Any) -> Any:
    """The exact oracle's reduction of ``lattice``, or the :class:`LatticeError` it raised.

    Pass it as ``reference=`` to :func:`peer_niggli` to judge several peers on one lattice
    without reducing it again.
    """
    from latticesym.reference import niggli_reduce as exact_reduce

    try:
        return exact_reduce(np.asarray(lattice, dtype=np.float64) if _is_float_array(lattice) else lattice)
    except LatticeError as exc:
        return exc
    except (TypeError, OverflowError) as exc:  # e.g. an object the oracle cannot read
        return LatticeError(f"{type(exc).__name__}: {exc}")


def _is_float_array(x: Any) -> bool:
    try:
        return np.asarray(x).dtype.kind in "biuf"
    except Exception:
        return False


def _exact_rows(lattice: NDArray[np.float64]) -> list[list[Fraction]]:
    return [[Fraction(float(v)) for v in row] for row in lattice]


def _exact_product(t: NDArray[np.int64], rows: list[list[Fraction]]) -> list[list[Fraction]]:
    return [[sum((int(t[i, k]) * rows[k][j] for k in range(3)), Fraction(0)) for j in range(3)] for i in range(3)]


def _exact_g6_rows(rows: list[list[Fraction]]) -> tuple[Fraction, ...]:
    def dot(u: list[Fraction], v: list[Fraction]) -> Fraction:
        return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]

    a, b, c = rows
    return (dot(a, a), dot(b, b), dot(c, c), 2 * dot(b, c), 2 * dot(a, c), 2 * dot(a, b))


def _det3(m: Sequence[Sequence[Any]]) -> Any:
    return (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))


def _recover_transform(lattice: NDArray[np.float64], out: NDArray[np.float64]) -> NDArray[np.int64] | None:
    """``round(out @ inv(lattice))``, computed in exact rationals (``lattice`` may be ill-conditioned)."""
    rows = _exact_rows(lattice)
    det = _det3(rows)
    if det == 0:
        return None
    # adjugate / det
    adj = [[(rows[(j + 1) % 3][(i + 1) % 3] * rows[(j + 2) % 3][(i + 2) % 3]
             - rows[(j + 1) % 3][(i + 2) % 3] * rows[(j + 2) % 3][(i + 1) % 3]) for j in range(3)] for i in range(3)]
    o = _exact_rows(out)
    t = np.zeros((3, 3), dtype=object)
    for i in range(3):
        for j in range(3):
            t[i, j] = round(sum((o[i][k] * adj[k][j] for k in range(3)), Fraction(0)) / det)
    if max(abs(int(v)) for v in t.flat) >= 2**62:
        return None
    return t.astype(np.int64)


def _search_transform(ref: Any, g6: Any, tol: float) -> NDArray[np.int64] | None:
    """An integer ``S`` (entries in [-2, 2]) with ``S G_ref S^T`` equal to ``g6``'s Gram within ``tol``.

    Returns the transform of the *input* (``S @ ref.transform``), or ``None``.
    """
    g = np.array([[float(x) for x in row] for row in ref.gram])
    want = np.array(g6, dtype=np.float64)
    ks = np.array([k for k in itertools.product(range(-2, 3), repeat=3) if any(k)], dtype=np.float64)
    norms = np.einsum("ni,ij,nj->n", ks, g, ks)
    cand = [ks[np.abs(norms - want[i]) <= tol] for i in range(3)]
    cross = {(0, 1): want[5] / 2, (0, 2): want[4] / 2, (1, 2): want[3] / 2}
    for u in cand[0]:
        for v in cand[1]:
            if abs(u @ g @ v - cross[0, 1]) > tol:
                continue
            for w in cand[2]:
                if abs(u @ g @ w - cross[0, 2]) > tol or abs(v @ g @ w - cross[1, 2]) > tol:
                    continue
                s = np.rint(np.stack([u, v, w])).astype(np.int64)
                if abs(round(np.linalg.det(s))) == 1:
                    t = s @ np.array(ref.transform, dtype=np.int64)
                    return t
    return None


def _fmt(x: Any) -> str:
    return f"{float(x):.3g}"


@dataclass(frozen=True)
class Verdict:
    """The judge's finding on one answer (see :func:`judge_answer`).

    Attributes
    ----------
    status : {"ok", "wrong"}
    reason : str
        ``""`` (agrees with the oracle), ``"boundary"`` (a tolerant choice near a Niggli
        boundary: reduced within ``e``, equivalent, different from the exact form), or why it
        is wrong: ``"invalid_input"``, ``"non_finite"``, ``"bad_transform"``, ``"inconsistent"``
        (output metric is not that of its own transform applied to the input),
        ``"inaccurate"`` (the same, but the transform itself is right), ``"not_equivalent"``,
        ``"not_reduced"``.
    message : str
        Human-readable details with the numbers.
    transform : numpy.ndarray or None
        The verified (given, recovered or searched) int64 transform, if any.
    agrees : bool or None
        G6 within ``rel_tol`` of the oracle's (``None`` for an invalid input).
    margin_over_e : float or None
        The exact form's :func:`boundary_margin` divided by ``e`` (for ``boundary`` and
        ``not_reduced`` verdicts).
    """

    status: Status
    reason: str
    message: str
    transform: NDArray[np.int64] | None = None
    agrees: bool | None = None
    margin_over_e: float | None = None


def judge_answer(
    lattice: Any,
    *,
    g6: Sequence[float] | None,
    transform: Any = None,
    out_lattice: Any = None,
    reference: Any = None,
    eps_judge: float = 1e-5,
    rel_tol: float = 1e-6,
) -> Verdict:
    """Judge one reducer's answer on ``lattice`` against the exact oracle.

    Parameters
    ----------
    lattice : array_like, shape (3, 3)
        The input that was reduced.
    g6 : sequence of 6 float or None
        The answer's G6 (computed from ``out_lattice`` when ``None``).
    transform : array_like or None
        The answer's integer ``T`` (``T @ lattice`` is the answer), if it gave one.
    out_lattice : array_like or None
        The answer's basis (any orientation), used for ``g6`` and to recover ``T``.
    reference : ExactNiggliResult or LatticeError or None
        :func:`oracle_reference` of ``lattice`` (computed when ``None``).
    eps_judge : float
        Relative tolerance of the Niggli conditions: ``e = eps_judge * V**(2/3)``.
    rel_tol : float
        G6 agreement tolerance, relative to ``max(A, B, C)`` of the oracle's G6.

    Returns
    -------
    Verdict

    Examples
    --------
    >>> L = [[3.0, 0, 0], [1, 4, 0], [7, 2, 5]]
    >>> v = judge_answer(L, g6=(9, 17, 29, -16, 0, -6))
    >>> v.status, v.reason, v.agrees
    ('ok', '', True)
    >>> v = judge_answer(L, g6=(9, 17, 29, 16, 0, 6))  # b negated: eta = 0 is within e of either sign
    >>> v.status, v.reason, v.margin_over_e
    ('ok', 'boundary', 0.0)
    >>> judge_answer(L, g6=(9, 29, 17, -16, -6, 0)).message
    'not Niggli reduced within e = 0.000153: B <= C (by 12); differs from the exact form by 12'
    >>> v = judge_answer(L, g6=(9, 17, 29, 0, 0, 0))
    >>> v.status, v.reason
    ('wrong', 'not_equivalent')
    >>> v.message  # doctest: +NORMALIZE_WHITESPACE
    'not equivalent: the output metric reduces to [9.0, 17.0, 29.0, 0.0, 0.0, 0.0],
     the input to [9.0, 17.0, 29.0, -16.0, 0.0, -6.0]'

    """
    if reference is None:
        reference = oracle_reference(lattice)
    if isinstance(reference, LatticeError):
        what = f"{type(reference).__name__}: {reference}"
        return Verdict("wrong", "invalid_input", f"returned a cell for an invalid input ({what})")
    lat = np.asarray(lattice, dtype=np.float64)
    if g6 is None:
        if out_lattice is None:
            raise OptionError("judge_answer needs g6 or out_lattice")
        o = np.asarray(out_lattice, dtype=np.float64)
        if o.shape != (3, 3) or not np.all(np.isfinite(o)):
            return Verdict("wrong", "non_finite", f"output lattice is not a finite (3, 3) array: {o.tolist()}",
                           agrees=False)
        g = o @ o.T
        g6 = (g[0, 0], g[1, 1], g[2, 2], 2 * g[1, 2], 2 * g[0, 2], 2 * g[0, 1])
    g6f = np.asarray(g6, dtype=np.float64)
    if g6f.shape != (6,) or not np.all(np.isfinite(g6f)):
        return Verdict("wrong", "non_finite", f"output G6 is not 6 finite numbers: {list(np.ravel(g6f))}", agrees=False)
    ref_g6 = np.array([float(x) for x in reference.g6])
    tol = rel_tol * float(max(reference.g6[:3]))
    diff = float(np.max(np.abs(g6f - ref_g6)))
    agrees = diff <= tol
    rows = _exact_rows(lat)

    t: NDArray[np.int64] | None = None
    how = ""
    if transform is not None:
        raw = np.asarray(transform)
        if raw.shape == (3, 3) and (raw.dtype.kind in "iu" or all(isinstance(x, int | np.integer) for x in raw.flat)):
            t = raw.astype(np.int64)  # integer transforms are read exactly, never through float64
        else:
            tr = np.asarray(transform, dtype=np.float64)
            if tr.shape != (3, 3) or not np.all(np.isfinite(tr)) or np.any(np.abs(tr - np.rint(tr)) > 1e-9):
                return Verdict("wrong", "bad_transform", f"transform is not an integer (3, 3) matrix: {tr.tolist()}",
                               agrees=agrees)
            t = np.rint(tr).astype(np.int64)
        det = _det3(t.tolist())
        if abs(det) != 1:
            return Verdict("wrong", "bad_transform", f"transform has det {det}, not +-1: {t.tolist()}", agrees=agrees)
        how = "given"
    elif out_lattice is not None:
        t = _recover_transform(lat, np.asarray(out_lattice, dtype=np.float64))
        if t is not None and abs(_det3(t.tolist())) != 1:
            t = None
        how = "recovered"
    exact = None
    if t is not None:
        exact = _exact_g6_rows(_exact_product(t, rows))
        gap = max(abs(float(x) - float(y)) for x, y in zip(exact, g6f))
        if gap > tol:
            if how == "given":
                right = max(abs(float(x) - y) for x, y in zip(exact, ref_g6)) <= tol
                why = " (its transform is right: the returned cell is inaccurate)" if right else ""
                return Verdict("wrong", "inaccurate" if right else "inconsistent",
                               f"output metric differs from that of transform @ input by {_fmt(gap)} "
                               f"(tolerance {_fmt(tol)}){why}; transform {t.tolist()}", t, agrees)
            t, exact = None, None
    if agrees:
        return Verdict("ok", "", "", t, True)
    if t is None:
        # No usable transform: is the answer's own metric that of the input lattice?
        from latticesym.reference import niggli_reduce_g6

        mine = tuple(Fraction(float(x)) for x in g6f)
        try:
            own = niggli_reduce_g6(mine)
        except (LatticeError, TypeError) as exc:
            return Verdict("wrong", "not_equivalent", f"output G6 is not a positive definite metric ({exc})",
                           agrees=False)
        own_diff = max(abs(float(x) - y) for x, y in zip(own.g6, ref_g6))
        if own_diff > tol:
            t = _search_transform(reference, g6f, tol)
            if t is None:
                return Verdict("wrong", "not_equivalent", f"not equivalent: the output metric reduces to "
                               f"{[float(f'{float(x):.6g}') for x in own.g6]}, the input to "
                               f"{[float(f'{x:.6g}') for x in ref_g6]}", agrees=False)
            exact = _exact_g6_rows(_exact_product(t, rows))
        else:
            exact = mine
    assert exact is not None
    vol = abs(float(_det3(rows)))
    e = Fraction(eps_judge) * Fraction(vol ** (2.0 / 3.0))
    bad = niggli_violations_tol(exact, e)
    margin = boundary_margin(reference.g6)
    ratio = float(margin / e) if e > 0 else float("inf")
    if bad:
        what = "; ".join(f"{name} (by {_fmt(x)})" for name, x in bad)
        return Verdict("wrong", "not_reduced", f"not Niggli reduced within e = {_fmt(e)}: {what}; differs from the "
                       f"exact form by {_fmt(diff)}", t, False, ratio)
    return Verdict("ok", "boundary", f"near a boundary: reduced within e = {_fmt(e)} but differs from the exact "
                   f"form by {_fmt(diff)} (exact form's boundary margin {_fmt(margin)} = {ratio:.3g} e)",
                   t, False, ratio)


# =========================================================================== peer calls (in workers)
def _g6_of(m: Any) -> list[float]:
    a = np.asarray(m, dtype=np.float64)
    g = a @ a.T
    return [g[0, 0], g[1, 1], g[2, 2], 2 * g[1, 2], 2 * g[0, 2], 2 * g[0, 1]]


def _raw_spglib(lattice: NDArray[np.float64], eps: float) -> dict[str, Any]:
    import spglib

    out = spglib.niggli_reduce(lattice, eps=eps)
    if out is None:
        return {"none": "spglib.niggli_reduce returned None"}
    return {"lattice": np.asarray(out, dtype=np.float64)}


def _raw_gemmi(lattice: NDArray[np.float64], eps: float) -> dict[str, Any]:
    import gemmi

    gv = gemmi.GruberVector([float(x) for x in _g6_of(lattice)])
    iterations = gv.niggli_reduce(epsilon=eps, iteration_limit=100)
    note = "" if gv.is_niggli() else f"gemmi stopped after {iterations} iterations; is_niggli() is False"
    return {"g6": [float(x) for x in gv.parameters], "note": note}


def _raw_ase(lattice: NDArray[np.float64], eps: float) -> dict[str, Any]:
    from ase.build.tools import niggli_reduce_cell

    cell, c = niggli_reduce_cell(lattice, epsfactor=eps)
    return {"lattice": np.asarray(cell, dtype=np.float64), "transform": np.asarray(c).T}


def _raw_pymatgen(lattice: NDArray[np.float64], eps: float) -> dict[str, Any]:
    from pymatgen.core import Lattice

    out = Lattice(lattice).get_niggli_reduced_lattice(tol=eps)
    return {"lattice": np.asarray(out.matrix, dtype=np.float64)}


def _raw_cctbx(lattice: NDArray[np.float64], eps: float) -> dict[str, Any]:
    from cctbx import uctbx

    g = lattice @ lattice.T
    uc = uctbx.unit_cell(metrical_matrix=(g[0, 0], g[1, 1], g[2, 2], g[0, 1], g[0, 2], g[1, 2]))
    red = uc.niggli_reduction(relative_epsilon=eps)
    m = red.as_unit_cell().metrical_matrix()  # (g11, g22, g33, g12, g13, g23)
    g6 = [m[0], m[1], m[2], 2 * m[5], 2 * m[4], 2 * m[3]]
    t = np.array(red.r_inv().elems, dtype=np.int64).reshape(3, 3).T  # cctbx: columns
    return {"g6": g6, "transform": t}


def _raw_moyopy(lattice: NDArray[np.float64], eps: float) -> dict[str, Any]:
    import moyopy

    rows, t = moyopy.niggli_reduce(lattice.tolist())
    return {"lattice": np.asarray(rows, dtype=np.float64), "transform": np.asarray(t, dtype=np.int64).T}


_RAW: dict[str, Callable[[NDArray[np.float64], float], dict[str, Any]]] = {
    "spglib": _raw_spglib,
    "gemmi": _raw_gemmi,
    "ase": _raw_ase,
    "pymatgen": _raw_pymatgen,
    "cctbx": _raw_cctbx,
    "moyopy": _raw_moyopy,
}


def peer_function(name: str) -> Callable[[NDArray[np.float64], float], dict[str, Any]]:
    """The raw in-process call of peer ``name``: ``f(lattice, eps) -> dict`` (for benchmarks).

    The dict holds the peer's answer converted to latticesym's conventions (``lattice`` rows,
    ``transform`` with ``T @ L_in == L_out`` where the peer gives one, ``g6`` for gemmi and cctbx),
    or ``none`` when the peer returned ``None``; exceptions propagate.  Calling it imports the peer
    into *this* process: import cctbx before gemmi (the other order segfaults), and expect no
    deadline - :func:`peer_niggli` is the safe wrapper.
    """
    if name not in _RAW:
        raise OptionError(f"unknown peer {name!r}; choose from {PEERS}")
    return _RAW[name]


def _run_raw(name: str, lattice: Any, eps: float) -> dict[str, Any]:
    """Call a peer in this process; never raises (errors are returned as ``{"error": ...}``)."""
    t0 = time.perf_counter()
    try:
        out = _RAW[name](lattice, eps)
    except BaseException as exc:  # pyo3 PanicException derives from BaseException
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        out = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    out["seconds"] = time.perf_counter() - t0
    return out


def _send(fd: int, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    msg = struct.pack(">Q", len(data)) + data
    while msg:
        n = os.write(fd, msg)
        msg = msg[n:]


def _recv(fd: int, deadline: float | None) -> Any:
    def read(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                ready, _, _ = select.select([fd], [], [], remaining)
                if not ready:
                    raise TimeoutError
            chunk = os.read(fd, n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    (size,) = struct.unpack(">Q", read(8))
    return pickle.loads(read(size))


def _worker_main(name: str) -> None:  # pragma: no cover - runs in the worker subprocess
    """Serve ``(lattice, eps)`` requests for one peer over stdin/stdout until stdin closes."""
    import resource
    import warnings

    proto_out = os.dup(1)
    os.dup2(2, 1)  # whatever the peer prints must not corrupt the protocol
    proto_in = sys.stdin.fileno()
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_BYTES, WORKER_MEMORY_BYTES))
    warnings.simplefilter("ignore")
    warm = _run_raw(name, np.diag([3.0, 4.0, 5.0]), 1e-5)  # import the peer now, not in the first call
    _send(proto_out, {"ready": "error" not in warm, "warm": warm})
    while True:
        try:
            lattice, eps = _recv(proto_in, None)
        except EOFError:
            return
        _send(proto_out, _run_raw(name, lattice, eps))


class _Worker:
    """A persistent subprocess serving one peer."""

    def __init__(self, name: str):
        self.name = name
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS",
                    "NUMBA_NUM_THREADS"):
            env[var] = "1"
        code = f"import latticesym.peers as p; p._worker_main({name!r})"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=env, start_new_session=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.wfd = self.proc.stdin.fileno()
        self.rfd = self.proc.stdout.fileno()
        try:
            hello = _recv(self.rfd, time.monotonic() + STARTUP_TIMEOUT)
        except (TimeoutError, EOFError) as exc:
            self.kill()
            raise RuntimeError(f"{name} worker did not start: {type(exc).__name__}") from exc
        if not hello.get("ready"):
            self.kill()
            raise RuntimeError(f"{name} worker could not run {name}: {hello['warm'].get('error')}")

    def call(self, lattice: Any, eps: float, timeout: float) -> dict[str, Any]:
        _send(self.wfd, (lattice, eps))
        return dict(_recv(self.rfd, time.monotonic() + timeout))

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        for f in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                f.close()  # type: ignore[union-attr]

    def describe_death(self) -> str:
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=1)
        rc = self.proc.returncode
        if rc is not None and rc < 0:
            return f"worker died with signal {signal.Signals(-rc).name}"
        return f"worker exited with code {rc}"


_WORKERS: dict[str, _Worker] = {}


def shutdown_workers() -> None:
    """Stop every peer worker this process started (also run at interpreter exit)."""
    for name in list(_WORKERS):
        _WORKERS.pop(name).kill()


atexit.register(shutdown_workers)


@dataclass
class _Raw:
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)


def _call_worker(name: str, lattice: Any, eps: float, timeout: float) -> _Raw:
    worker = _WORKERS.get(name)
    if worker is None or worker.proc.poll() is not None:
        if worker is not None:
            worker.kill()
        worker = _WORKERS[name] = _Worker(name)
    try:
        out = worker.call(lattice, eps, timeout)
    except TimeoutError:
        worker.kill()
        del _WORKERS[name]
        return _Raw("timeout", {"seconds": timeout})
    except (EOFError, BrokenPipeError, OSError):
        why = worker.describe_death()
        worker.kill()
        _WORKERS.pop(name, None)
        return _Raw("error", {"error": why, "seconds": float("nan")})
    if "error" in out:
        return _Raw("error", out)
    if "none" in out:
        return _Raw("none", out)
    return _Raw("answer", out)


def peer_niggli(
    name: str,
    lattice: Any,
    *,
    eps: float = 1e-5,
    timeout: float = 2.0,
    reference: Any = None,
    judge: bool = True,
    eps_judge: float | None = None,
    rel_tol: float = 1e-6,
) -> PeerResult:
    """Niggli-reduce ``lattice`` with peer ``name`` under a deadline, and judge the answer.

    Parameters
    ----------
    name : str
        One of :data:`PEERS`.
    lattice : array_like
        Normally ``(3, 3)``, rows are basis vectors; anything else is passed to the peer as is
        (to record what it does with invalid input).
    eps : float
        The peer's own tolerance argument (see the module docstring for its units).
    timeout : float
        Seconds the peer call may take (the worker's start-up, which imports the peer, is not
        counted); on expiry the worker is killed and ``status == "timeout"``.
    reference : ExactNiggliResult or LatticeError or None
        :func:`oracle_reference` of ``lattice``, to share between peers (computed if ``None``
        and ``judge``).
    judge : bool
        Judge the answer against the oracle (otherwise an answer is reported ``ok`` unjudged).
    eps_judge : float or None
        Relative tolerance of the Niggli-condition check; defaults to ``eps``.
    rel_tol : float
        G6 agreement tolerance relative to the largest of ``A, B, C``.

    Returns
    -------
    PeerResult
    """
    if name not in _RAW:
        raise OptionError(f"unknown peer {name!r}; choose from {PEERS}")
    if not timeout > 0:
        raise OptionError(f"timeout must be > 0, got {timeout}")
    arr = np.array(lattice, dtype=np.float64) if _is_float_array(lattice) else lattice
    raw = _call_worker(name, arr, float(eps), float(timeout))
    secs = float(raw.payload.get("seconds", float("nan")))
    if raw.kind == "timeout":
        return PeerResult(None, None, None, "timeout", f"no answer within {timeout} s", secs, name)
    if raw.kind in ("error", "none"):
        msg = str(raw.payload.get("error") or raw.payload.get("none"))
        return PeerResult(None, None, None, raw.kind, msg, secs, name)  # type: ignore[arg-type]
    p = raw.payload
    out_lattice = p.get("lattice")
    g6 = p.get("g6")
    if g6 is None and out_lattice is not None:
        g6 = _g6_of(out_lattice) if np.shape(out_lattice) == (3, 3) else None
    g6t = tuple(float(x) for x in g6) if g6 is not None else None
    transform = p.get("transform")
    note = str(p.get("note", ""))
    if not judge:
        t = np.asarray(transform, dtype=np.int64) if transform is not None else None
        return PeerResult(g6t, out_lattice, t, "ok", note, secs, name)
    if reference is None:
        reference = oracle_reference(arr)
    if g6t is None and out_lattice is None:
        return PeerResult(None, None, None, "wrong", "answer has neither a G6 nor a lattice", secs, name)
    v = judge_answer(
        arr, g6=g6t, transform=transform, out_lattice=out_lattice, reference=reference,
        eps_judge=eps if eps_judge is None else eps_judge, rel_tol=rel_tol,
    )
    status, msg, t, agrees = v.status, v.message, v.transform, v.agrees
    if note:
        msg = f"{note}; {msg}" if msg else note
    if t is not None and status != "wrong" and round(np.linalg.det(t)) == -1:
        msg = f"{msg}; transform has det -1" if msg else "transform has det -1"
    lat = np.asarray(out_lattice, dtype=np.float64) if out_lattice is not None else None
    return PeerResult(g6t, lat, t, status, msg, secs, name, agrees, v.reason, v.margin_over_e)
