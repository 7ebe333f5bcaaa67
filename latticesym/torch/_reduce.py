"""Batched Niggli reduction in torch: masked Krivy-Gruber rounds on ``(..., 3, 3)`` tensors, any device.

The algorithm is ``docs/algorithm.md``, the one every latticesym reducer implements: phase 1
pre-reduces with rounded multiples (sort the vectors by length, then Gauss-Lagrange size
reductions ``v_i <- v_i - round(G_ij / G_jj) v_j`` taken only when they shorten ``v_i`` by more
than ``e``), phase 2 runs Krivy & Gruber's steps A1-A8 (A5-A7 with rounded multiples beyond
their bounds) with the tolerance of Grosse-Kunstleve, Sauter & Adams (2004),
:math:`e = \\epsilon V^{2/3}`, and the comparisons :math:`x < y \\iff x < y - e`.

Vectorisation
-------------
No Python loop runs over the lattices.  Phase 1 works in *sweeps* (three compare-swaps, then the
three size reductions), masked per lattice.  Phase 2 works in *rounds*: each round recomputes the
basis from the original input, ``X = T @ L_in`` (no drift; ``T`` is held as integer-valued
float64, exact below :math:`2^{53}`), applies A1, A2, A1 (a full tolerant sort: A1 and A2 are
signed permutations, exact on the G6) and A3/A4 (sign flips, exact), then the first of A5-A8
that applies, as masked batched tensor operations.  That is the sequential algorithm's path
step for step (after A2 it returns to A1; A3/A4 leave A1/A2 satisfied).  A lattice where none
of A5-A8 applies is reduced; a lattice whose transform equals the one of two rounds before is
cycling (possible when ``e`` is large next to the shortest vector) and stops uncertified.

Backends: ``"torch"`` is this vectorised loop on the tensor's device (the path of CUDA tensors);
``"numba"`` (:mod:`latticesym.torch._numba`) is the same sweeps and rounds compiled per lattice,
which is what CPU tensors use by default, because on CPU eager torch pays ~2 us per operation and
a round is a few hundred small operations.  The two give identical transforms (tested).

Host synchronisations (torch backend): each phase asks "is any lattice still active?" every
``sync_every`` sweeps or rounds (default 4 on CUDA, 1 on CPU where a sync is free), so a call
makes ``ceil(P / k) + ceil(K / k)`` syncs, ``P`` and ``K`` the longest pre-reduction and
Krivy-Gruber runs in the batch (typically 2-3 sweeps and 4-8 rounds, i.e. 2-4 syncs on CUDA);
:func:`niggli_reduce` adds one for its final "all certified?" check.  At each sync the working
set is compacted to the still-active lattices when fewer than half remain.

Precision
---------
Decisions are taken in float64 whatever the input dtype (float32 inputs are converted), so
they match the numpy reducer :func:`latticesym.niggli_reduce` (tested on the stress families).
The result is *certified*: no step applies, ``|T| < 2^{53}``, and the rounding error bound of the
final G6, :math:`8 u\\, r\\, x + 10 u^2 r^2 + 2 u x^2` with :math:`r` the largest row norm of
:math:`|T|\\,|L|` and :math:`x` the longest reduced vector, is below ``e / 4``.  Lattices that
fail (non-finite, singular or near-singular, shears of 1e5 and more in float64 without compensated
products, cycles, the iteration cap) are flagged in :func:`niggli_reduce_info`; the public
:func:`niggli_reduce` re-runs them with the numpy reducer (``precision="auto"``: Dot2 products,
mpmath and exact escalation) or raises typed errors (``precision="float"``).

References
----------
I. Krivy & B. Gruber (1976). Acta Cryst. A32, 297-298. https://doi.org/10.1107/S0567739476000636
R. W. Grosse-Kunstleve, N. K. Sauter & P. D. Adams (2004). Acta Cryst. A60, 1-6.
https://doi.org/10.1107/S010876730302186X
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from latticesym.errors import (
    BatchReductionError,
    LatticeError,
    LatticeShapeError,
    NonFiniteLatticeError,
    PrecisionError,
    SingularLatticeError,
)
from latticesym.torch import _numba

__all__ = [
    "TorchNiggliResult",
    "gram",
    "is_niggli_reduced",
    "niggli_reduce",
    "niggli_reduce_info",
    "unimodular_inverse",
]

_F64 = torch.float64
_EXACT_INT = 2.0**53
# Index of the G6 entries in a flattened Gram matrix: A, B, C, xi/2, eta/2, zeta/2.
_G6_FLAT = (0, 4, 8, 5, 2, 1)


class TorchNiggliResult(NamedTuple):
    """Full result of :func:`niggli_reduce_info` (leading shape ``S`` of the input).

    Attributes
    ----------
    lattice : Tensor, shape ``S + (3, 3)``
        ``transform.to(dtype) @ input``, in the input dtype; differentiable in the input (the
        transform is piecewise constant).
    transform : Tensor, shape ``S + (3, 3)``, int64
        Integer basis change with ``det == +1``.
    g6 : Tensor, shape ``S + (6,)``, float64
        G6 of the reduced basis, computed in float64 from the input.
    iterations : Tensor, shape ``S``, int64
        Pre-reduction steps plus Krivy-Gruber steps.
    ok : Tensor, shape ``S``, bool
        Certified result.  Where ``False`` (non-finite, singular or undecidable in float64, or
        over the iteration cap) the transform is the best unimodular one reached (identity for
        non-finite or singular input) and the lattice is not guaranteed reduced.
    syncs : int
        Host synchronisations the call made.
    """

    lattice: Tensor
    transform: Tensor
    g6: Tensor
    iterations: Tensor
    ok: Tensor
    syncs: int


def gram(lattice: Tensor) -> Tensor:
    """Gram matrix :math:`G = L L^T` of ``(..., 3, 3)`` lattices (rows are basis vectors)."""
    return lattice @ lattice.transpose(-1, -2)


def unimodular_inverse(transform: Tensor) -> Tensor:
    """Exact inverse of integer matrices with ``det == +1``: the adjugate.

    Works on int64 or integer-valued float tensors of shape ``(..., 3, 3)``; the result has
    the input's dtype.  For ``det == -1`` it returns ``-inverse``.

    Examples
    --------
    >>> t = torch.tensor([[1, 2, 0], [0, 1, 0], [0, 0, 1]])
    >>> unimodular_inverse(t)
    tensor([[ 1, -2,  0],
            [ 0,  1,  0],
            [ 0,  0,  1]])
    """
    # adj(M) = [m1 x m2, m2 x m0, m0 x m1]^T for the rows m0, m1, m2 of M
    return torch.linalg.cross(transform.roll(-1, -2), transform.roll(-2, -2)).transpose(-1, -2)


def _det3(m: Tensor) -> Tensor:
    return (
        m[..., 0, 0] * (m[..., 1, 1] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 1])
        - m[..., 0, 1] * (m[..., 1, 0] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 0])
        + m[..., 0, 2] * (m[..., 1, 0] * m[..., 2, 1] - m[..., 1, 1] * m[..., 2, 0])
    )


def _round_away(x: Tensor) -> Tensor:
    """Nearest integer, ties away from zero (``torch.round`` rounds ties to even)."""
    return torch.sign(x) * torch.floor(torch.abs(x) + 0.5)


def _g6_of(basis: Tensor) -> Tensor:
    """G6 ``(A, B, C, xi, eta, zeta)`` of ``(n, 3, 3)`` bases, shape ``(n, 6)``."""
    a, b, c = basis.unbind(-2)
    diag = [(a * a).sum(-1), (b * b).sum(-1), (c * c).sum(-1)]
    off = [2 * (b * c).sum(-1), 2 * (a * c).sum(-1), 2 * (a * b).sum(-1)]
    return torch.stack(diag + off, dim=-1)


# A1 and A2 are signed permutations: new rows = -rows[perm]; on the G6 they permute entries exactly.
_SWAP_AB_ROWS, _SWAP_AB_G6 = [1, 0, 2], [1, 0, 2, 4, 3, 5]  # A1 [[0,-1,0],[-1,0,0],[0,0,-1]]
_SWAP_BC_ROWS, _SWAP_BC_G6 = [0, 2, 1], [0, 2, 1, 3, 5, 4]  # A2 [[-1,0,0],[0,0,-1],[0,-1,0]]


def _swap(cond: Tensor, T: Tensor, g6: Tensor, rows: list[int], entries: list[int]) -> tuple[Tensor, Tensor]:
    T = torch.where(cond[:, None, None], -T[:, rows], T)
    g6 = torch.where(cond[:, None], g6[:, entries], g6)
    return T, g6


def _normalise(T: Tensor, g6: Tensor, e: Tensor, active: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Steps A1, A2, A1 (a full tolerant sort) and A3/A4 (signs), applied exactly to ``T`` and G6.

    A1 and A2 compare the keys (length, |opposite off-diagonal|) of two vectors, which travel with
    the vectors under the swaps, so the three compare-swap stages leave no A1/A2 step applicable:
    they are the sequential algorithm's A1 -> A2 -> A1 loop.  Returns ``T``, G6 and the number of
    steps taken per lattice.
    """
    steps = torch.zeros(T.shape[0], dtype=torch.int64, device=T.device)
    for rows, entries, (x, y, ox, oy) in (
        (_SWAP_AB_ROWS, _SWAP_AB_G6, (0, 1, 3, 4)),  # A1: A > B or (A == B and |xi| > |eta|)
        (_SWAP_BC_ROWS, _SWAP_BC_G6, (1, 2, 4, 5)),  # A2: B > C or (B == C and |eta| > |zeta|)
        (_SWAP_AB_ROWS, _SWAP_AB_G6, (0, 1, 3, 4)),  # back to A1
    ):
        gx, gy = g6[:, x], g6[:, y]
        cond = (gy < gx - e) | (((gx - gy).abs() <= e) & (g6[:, oy].abs() < g6[:, ox].abs() - e))
        cond = cond & active
        T, g6 = _swap(cond, T, g6, rows, entries)
        steps += cond
    # A3 (l*m*n == 1): diag(l, m, n) makes all three positive.  A4 (l*m*n <= 0): flip every
    # positive entry; if that leaves det = -1, flip the first zero entry too.  With i*j*k = 1 the
    # congruence by diag(i, j, k) maps (xi, eta, zeta) -> (i xi, j eta, k zeta).
    off = g6[:, 3:]
    pos = off > e[:, None]
    neg = off < -e[:, None]
    zero = ~pos & ~neg
    is_a3 = (neg.sum(-1) % 2 == 0) & ~zero.any(-1)  # l*m*n == 1
    flips = torch.where(pos, -1.0, 1.0).to(g6.dtype)
    odd = (pos.sum(-1) % 2) == 1
    first_zero = zero & (zero.cumsum(-1) == 1)
    a4 = torch.where(odd[:, None] & first_zero, -flips, flips)
    a3 = torch.where(neg, -1.0, 1.0).to(g6.dtype)
    signs = torch.where(is_a3[:, None], a3, a4)
    apply = active & (signs < 0).any(-1)
    signs = torch.where(apply[:, None], signs, torch.ones_like(signs))
    T = T * signs[:, :, None]
    g6 = torch.cat([g6[:, :3], off * signs], dim=-1)
    return T, g6, steps + apply


def _reduction_step(T: Tensor, g6: Tensor, e: Tensor, active: Tensor) -> tuple[Tensor, Tensor]:
    """First applicable step of A5-A8 on normalised G6s, applied to ``T``; returns ``T`` and "moved".

    Conditions of Krivy & Gruber (1976) with the tolerant comparisons of Grosse-Kunstleve et al.
    (2004); A5-A7 subtract the rounded multiple ``round(x / 2D)`` when ``|x| > D`` (the
    generalised step of ``docs/algorithm.md``) and ``sign(x)`` on the boundary.
    """
    A, B, _, xi, eta, zeta = g6.unbind(-1)
    zero = torch.zeros_like(A)

    def lt(x: Tensor, y: Tensor) -> Tensor:
        return x < y - e

    def eq(x: Tensor, y: Tensor) -> Tensor:
        return (x - y).abs() <= e

    # A5: |xi| > B or (xi == B and 2 eta < zeta) or (xi == -B and zeta < 0)
    beyond5 = lt(B, xi.abs())
    c5 = beyond5 | (eq(xi, B) & lt(2 * eta, zeta)) | (eq(xi, -B) & lt(zeta, zero))
    # A6: |eta| > A or (eta == A and 2 xi < zeta) or (eta == -A and zeta < 0)
    beyond6 = lt(A, eta.abs())
    c6 = beyond6 | (eq(eta, A) & lt(2 * xi, zeta)) | (eq(eta, -A) & lt(zeta, zero))
    # A7: |zeta| > A or (zeta == A and 2 xi < eta) or (zeta == -A and eta < 0)
    beyond7 = lt(A, zeta.abs())
    c7 = beyond7 | (eq(zeta, A) & lt(2 * xi, eta)) | (eq(zeta, -A) & lt(eta, zero))
    # A8: xi + eta + zeta + A + B < 0 or (== 0 and 2 (A + eta) + zeta > 0)
    s = xi + eta + zeta + A + B
    c8 = lt(s, zero) | (eq(s, zero) & lt(zero, 2 * (A + eta) + zeta))
    c5 = c5 & active
    c6 = c6 & active & ~c5
    c7 = c7 & active & ~c5 & ~c6
    c8 = c8 & active & ~c5 & ~c6 & ~c7
    tiny = torch.finfo(g6.dtype).tiny

    def mult(x: Tensor, d: Tensor, beyond: Tensor, cond: Tensor) -> Tensor:
        q = torch.where(beyond, _round_away(x / (2 * d).clamp_min(tiny)), torch.sign(x))
        return torch.where(cond, q, zero)

    q5, q6, q7 = mult(xi, B, beyond5, c5), mult(eta, A, beyond6, c6), mult(zeta, A, beyond7, c7)
    a8 = c8.to(g6.dtype)
    # A5: c <- c - q b;  A6: c <- c - q a;  A7: b <- b - q a;  A8: c <- c + a + b
    t0, t1, t2 = T.unbind(-2)
    t1n = t1 - q7[:, None] * t0
    t2n = t2 + (a8 - q5)[:, None] * t1 + (a8 - q6)[:, None] * t0
    return torch.stack([t0, t1n, t2n], dim=-2), c5 | c6 | c7 | c8


def _pre_sweep(T: Tensor, L: Tensor, e: Tensor, active: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One sweep of phase 1: sort by length, then three rounded size reductions.

    The sort is three compare-swap stages with the det +1 swaps of A1/A2, swapping only when the
    longer vector is longer by more than ``e`` (so a basis sorted within ``e`` is left alone and
    reducing a reduced basis gives the identity).  Each size reduction ``v_i <- v_i - q v_j``, ``q = round(G_ij /
    G_jj)``, is taken only when it shortens ``v_i`` by more than ``e``.  The rows of the basis
    are updated in place within the sweep; the next sweep recomputes them from ``T @ L_in``.
    Returns ``T``, the "took a shortening step" flag and the number of steps per lattice.
    """
    X = T @ L
    for rows in (_SWAP_AB_ROWS, _SWAP_BC_ROWS, _SWAP_AB_ROWS):
        i, j = (0, 1) if rows is _SWAP_AB_ROWS else (1, 2)
        cond = active & ((X[:, j] * X[:, j]).sum(-1) < (X[:, i] * X[:, i]).sum(-1) - e)
        c = cond[:, None, None]
        T = torch.where(c, -T[:, rows], T)
        X = torch.where(c, -X[:, rows], X)
    took = torch.zeros_like(active)
    steps = torch.zeros(active.shape, dtype=torch.int64, device=T.device)
    tiny = torch.finfo(_F64).tiny
    t, x = list(T.unbind(-2)), list(X.unbind(-2))
    for i, j in ((1, 0), (2, 0), (2, 1)):  # reduce the longer v_i by the shorter v_j
        gij = (x[i] * x[j]).sum(-1)
        gjj = (x[j] * x[j]).sum(-1)
        gii = (x[i] * x[i]).sum(-1)
        q = _round_away(gij / gjj.clamp_min(tiny))
        take = active & (gii - 2 * q * gij + q * q * gjj < gii - e)
        q = torch.where(take, q, torch.zeros_like(q))[:, None]
        t[i] = t[i] - q * t[j]
        x[i] = x[i] - q * x[j]
        took |= take
        steps += take
    return torch.stack(t, dim=-2), took, steps


def _as_batch(lattice: Tensor) -> Tensor:
    if not isinstance(lattice, Tensor):
        raise TypeError(f"lattice must be a torch.Tensor, got {type(lattice).__name__}")
    if lattice.is_complex():
        raise TypeError(f"lattice must be real, got complex dtype {lattice.dtype}")
    if lattice.ndim < 2 or tuple(lattice.shape[-2:]) != (3, 3):
        raise LatticeShapeError(f"lattice must have shape (..., 3, 3), got {tuple(lattice.shape)}")
    return lattice.detach().reshape(-1, 3, 3).to(_F64)


def _tolerance(L: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Per-lattice ``e = eps * |det L|^(2/3)`` and the "can be reduced at all" mask."""
    vol = _det3(L).abs()
    finite = torch.isfinite(L).all(-1).all(-1)
    lengths = torch.linalg.vector_norm(L, dim=-1).prod(-1)
    # A zero or numerically zero volume (relative to the edge lengths) spans no 3-D lattice.
    valid = finite & (vol > 1e-300) & (vol > 64 * torch.finfo(_F64).eps * lengths)
    e = eps * vol.pow(2.0 / 3.0)
    return torch.where(valid, e, torch.zeros_like(e)), valid


def _reduce_float64(
    L: Tensor, eps: float, max_iter: int, sync_every: int
) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """Vectorised phases 1 and 2 on a flat float64 batch ``(n, 3, 3)``.

    Returns ``T`` (float64, integer-valued), the final G6, iterations, ``ok`` and the sync count.
    """
    n = L.shape[0]
    device = L.device
    e, valid = _tolerance(L, eps)
    T = torch.eye(3, dtype=_F64, device=device).expand(n, 3, 3).clone()
    iters = torch.zeros(n, dtype=torch.int64, device=device)
    syncs = 0

    # Phase 1: rounded-multiple pre-reduction, sweeps until no vector shortens.
    idx = torch.arange(n, device=device)
    Tw, Lw, ew, active = T, L, e, valid.clone()
    sweeps = 0
    while True:
        Tw, took, steps = _pre_sweep(Tw, Lw, ew, active)
        iters.index_add_(0, idx, steps)
        active = active & took
        sweeps += 1
        if sweeps % sync_every == 0 or sweeps >= max_iter:
            syncs += 1
            n_active = int(active.sum())
            if n_active == 0 or sweeps >= max_iter:
                break
            if 2 * n_active < Tw.shape[0]:
                T[idx] = Tw
                keep = active.nonzero().squeeze(-1)
                idx, Tw, Lw, ew, active = idx[keep], Tw[keep], Lw[keep], ew[keep], active[keep]
    T[idx] = Tw
    unfinished = torch.zeros(n, dtype=torch.bool, device=device)
    unfinished[idx] = active

    # Phase 2: Krivy-Gruber rounds.  A round recomputes the G6 from T @ L_in, applies A1/A2 (sort)
    # and A3/A4 (signs) exactly, then the first applicable step of A5-A8; a lattice where none of
    # A5-A8 applies is reduced and leaves the active set.  A lattice whose transform returns to
    # the one of two rounds before is cycling (possible when e is large next to the shortest
    # vector, as in extreme-aspect cells): it leaves the active set uncertified.
    idx = torch.arange(n, device=device)
    Tw, Lw, ew, active = T, L, e, valid.clone()
    prev1, prev2 = Tw, torch.full_like(Tw, float("nan"))
    k = 0
    while True:
        g6 = _g6_of(Tw @ Lw)
        Tw, g6, steps = _normalise(Tw, g6, ew, active)
        Tw, moved = _reduction_step(Tw, g6, ew, active)
        iters.index_add_(0, idx, steps + moved)
        cycling = moved & (Tw == prev2).all(-1).all(-1)
        prev1, prev2 = Tw, prev1
        active = moved & ~cycling
        unfinished[idx] |= cycling
        k += 1
        if k % sync_every == 0 or k >= max_iter:
            syncs += 1
            n_active = int(active.sum())
            if n_active == 0 or k >= max_iter:
                break
            if 2 * n_active < Tw.shape[0]:
                T[idx] = Tw
                keep = active.nonzero().squeeze(-1)
                idx, Tw, Lw, ew, active = idx[keep], Tw[keep], Lw[keep], ew[keep], active[keep]
                prev1, prev2 = prev1[keep], prev2[keep]
    T[idx] = Tw
    unfinished[idx] |= active

    # Certification: finished, integers exact, rounding error of the G6 below e / 4.
    X = T @ L
    g6 = _g6_of(X)
    # |fl(X) - X| <= 3u |T||L| row-wise (norm r_i), so |fl(G_ij) - G_ij| <~ 3u (r_i |x_j| + r_j |x_i|)
    # + 9u^2 r_i r_j + u |x_i||x_j|; bounded with the largest r and |x|.
    u = torch.finfo(_F64).eps / 2
    r = torch.linalg.vector_norm(T.abs() @ L.abs(), dim=-1).amax(-1)
    x = g6[..., :3].amax(-1).sqrt()
    bound = 8 * u * r * x + 10 * u * u * r * r + 2 * u * x * x
    exact_ints = T.abs().amax((-1, -2)) < _EXACT_INT
    ok = valid & ~unfinished & exact_ints & (bound <= e / 4) & (_det3(T) == 1)
    return T, g6, iters, ok, syncs


_BACKENDS = ("auto", "torch", "numba")


def _reduce_core(
    flat: Tensor, *, eps: float, max_iter: int, sync_every: int | None, backend: str
) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """Reduce a flat float64 batch ``(n, 3, 3)`` (no autograd): ``T`` (float64), G6, iterations, ok, syncs.

    ``T`` is always a finite integer-valued matrix with ``det == +1`` (identity where the
    reduction could not start).
    """
    if not (eps >= 0):
        raise ValueError(f"eps must be >= 0, got {eps}")
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if sync_every is None:
        sync_every = 1 if flat.device.type == "cpu" else 4
    if max_iter < 1 or sync_every < 1:
        raise ValueError(f"max_iter and sync_every must be >= 1, got {max_iter}, {sync_every}")
    n = flat.shape[0]
    if n == 0:
        z = flat.new_zeros(0, dtype=torch.int64)
        return flat.new_zeros(0, 3, 3), flat.new_zeros(0, 6), z, z.bool(), 0
    use_numba = backend == "numba" or (backend == "auto" and flat.device.type == "cpu" and _numba.AVAILABLE)
    if use_numba:
        if not _numba.AVAILABLE:
            raise ImportError("backend='numba' needs numba (the 'fast' extra)")
        # the kernel resets to the identity any transform that is not exactly integer
        arrays = _numba.reduce_batch(flat.cpu().numpy(), eps, max_iter)
        if flat.device.type == "cpu":
            T, g6, iters, ok = (torch.from_numpy(a) for a in arrays)
            return T, g6, iters, ok, 0
        T, g6, iters, ok = (torch.from_numpy(a).to(flat.device) for a in arrays)
        return T, g6, iters, ok, 2
    T, g6, iters, ok, syncs = _reduce_float64(flat, eps, max_iter, sync_every)
    # never hand out a non-integer or non-finite "transform"
    bad = ~torch.isfinite(T).all(-1).all(-1) | (T.abs().amax((-1, -2)) >= _EXACT_INT)
    T = torch.where(bad[..., None, None], torch.eye(3, dtype=_F64, device=T.device), T)
    return T, g6, iters, ok & ~bad, syncs


def niggli_reduce_info(
    lattice: Tensor,
    *,
    eps: float = 1e-5,
    max_iter: int = 1000,
    sync_every: int | None = None,
    backend: str = "auto",
) -> TorchNiggliResult:
    """Niggli reduction that never raises on bad lattices: failures are flagged in ``ok``.

    This is the engine of :func:`niggli_reduce` and of the proxy losses.  Parameters as in
    :func:`niggli_reduce`; the reduction itself runs without autograd, the returned
    ``lattice`` is ``transform @ input`` *with* autograd (piecewise linear in the input).

    Examples
    --------
    A simple cubic lattice sheared by 1000 takes a handful of steps, not a thousand:

    >>> L = torch.tensor([[1.0, 0, 0], [1000.0, 1, 0], [0, 0, 1]])
    >>> r = niggli_reduce_info(L)
    >>> r.g6.tolist(), bool(r.ok), int(r.iterations) < 20
    ([1.0, 1.0, 1.0, 0.0, 0.0, 0.0], True, True)
    """
    flat = _as_batch(lattice)
    shape = tuple(lattice.shape[:-2])
    with torch.no_grad():
        T, g6, iters, ok, syncs = _reduce_core(flat, eps=eps, max_iter=max_iter, sync_every=sync_every, backend=backend)
    transform = T.to(torch.int64).reshape(*shape, 3, 3)
    src = lattice if lattice.is_floating_point() else lattice.to(_F64)
    reduced = T.to(src.dtype).reshape(*shape, 3, 3) @ src
    return TorchNiggliResult(reduced, transform, g6.reshape(*shape, 6), iters.reshape(shape), ok.reshape(shape), syncs)


def niggli_reduce(
    lattice: Tensor,
    *,
    eps: float = 1e-5,
    max_iter: int = 1000,
    sync_every: int | None = None,
    precision: str = "auto",
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """Niggli-reduce a batch of lattices: ``reduced, transform = niggli_reduce(L)``.

    Parameters
    ----------
    lattice : Tensor, shape ``(..., 3, 3)``
        Rows are basis vectors (Angstrom).  float32 or float64 (integer tensors are read as
        float64), on any device.  Decisions are taken in float64 in every case.
    eps : float
        Relative tolerance: comparisons use :math:`e = \\epsilon\\,|\\det L|^{2/3}` (Å²), so the
        result does not depend on the cell's scale.  ``eps = 0`` compares exactly in float64.
    max_iter : int
        Cap on the Krivy-Gruber steps (and, separately, on the pre-reduction sweeps).
    sync_every : int, optional
        Loop iterations between the host synchronisations that test whether all lattices are
        done (torch backend).  Default 1 on CPU (a "sync" costs nothing there) and 4 on CUDA.
    backend : {"auto", "torch", "numba"}
        ``"torch"``: the vectorised masked loop, on the tensor's device.  ``"numba"``: the same
        algorithm compiled per lattice (CPU; :mod:`latticesym.torch._numba`).  ``"auto"``: numba
        for CPU tensors when it is installed, torch otherwise.
    precision : {"auto", "float"}
        What to do with lattices whose float64 result cannot be certified (near-singular cells,
        transforms beyond :math:`2^{53}`, iteration cap): ``"auto"`` re-runs them with the numpy
        reducer :func:`latticesym.niggli_reduce` (which escalates to mpmath and the exact oracle);
        ``"float"`` raises.

    Returns
    -------
    reduced : Tensor, shape ``(..., 3, 3)``
        ``transform.to(lattice.dtype) @ lattice``, same dtype and device, differentiable in the
        input with the transform held constant.
    transform : Tensor, shape ``(..., 3, 3)``, int64
        Integer, ``det == +1``.  The reduced G6 is unique (within ``e``); the transform is the
        algorithm's, unique up to the lattice's automorphisms (equal to the numpy reducer's away
        from Niggli boundaries).

    Raises
    ------
    LatticeShapeError, NonFiniteLatticeError, SingularLatticeError
        Bad input (a single lattice), or :class:`~latticesym.errors.BatchReductionError` naming
        the failed indices of a batch.
    PrecisionError
        With ``precision="float"``, where float64 cannot certify the result.

    Examples
    --------
    >>> import latticesym.torch as lt
    >>> L = torch.tensor([[1.0, 0, 0], [5.0, 1, 0], [3.0, 7, 1]], dtype=torch.float64)
    >>> reduced, transform = lt.niggli_reduce(L)
    >>> reduced
    tensor([[1., 0., 0.],
            [0., 1., 0.],
            [0., 0., 1.]], dtype=torch.float64)
    >>> bool((transform.double() @ L == reduced).all()), int(torch.linalg.det(transform.double()).round())
    (True, 1)
    """
    if precision not in ("auto", "float"):
        raise ValueError(f"precision must be 'auto' or 'float', got {precision!r}")
    info = niggli_reduce_info(lattice, eps=eps, max_iter=max_iter, sync_every=sync_every, backend=backend)
    if lattice.shape[:-2].numel() == 0 or bool(info.ok.all()):
        return info.lattice, info.transform
    return _repair(lattice, info, eps=eps, precision=precision)


def _repair(lattice: Tensor, info: TorchNiggliResult, *, eps: float, precision: str) -> tuple[Tensor, Tensor]:
    """Re-run the uncertified lattices on the host (numpy reducer) or raise typed errors."""
    shape = tuple(lattice.shape[:-2])
    flat_np = lattice.detach().reshape(-1, 3, 3).to(device="cpu", dtype=_F64).numpy()
    bad = (~info.ok).reshape(-1).cpu().numpy().nonzero()[0]
    errors: list[LatticeError] = []
    failed: list[tuple[int, ...]] = []
    transform = info.transform.reshape(-1, 3, 3).clone()
    for i in (int(j) for j in bad):
        L_i = flat_np[i]
        err: LatticeError | None = None
        if not np.all(np.isfinite(L_i)):
            err = NonFiniteLatticeError(f"lattice {_index(i, shape)} has non-finite entries: {L_i.tolist()}")
        elif precision == "float":
            vol = abs(float(np.linalg.det(L_i)))
            if vol == 0.0:
                err = SingularLatticeError(f"lattice {_index(i, shape)} is singular (det = 0): {L_i.tolist()}")
            else:
                err = PrecisionError(
                    f"lattice {_index(i, shape)}: the float64 reduction cannot be certified "
                    f"(near-singular, extreme shear or over max_iter); use precision='auto'. "
                    f"Input: {L_i.tolist()}"
                )
        else:
            try:
                transform[i] = torch.as_tensor(_host_transform(L_i, eps))
            except LatticeError as exc:
                err = exc
        if err is not None:
            errors.append(err)
            failed.append(_index(i, shape))
    if errors:
        if not shape:
            raise errors[0]
        raise BatchReductionError(
            f"{len(errors)} of {len(flat_np)} lattices could not be reduced, first at {failed[0]}: {errors[0]}",
            failed=failed,
            errors=errors,
        )
    transform = transform.reshape(*shape, 3, 3).to(info.transform.device)
    dtype = lattice.dtype if lattice.is_floating_point() else _F64
    src = lattice if lattice.is_floating_point() else lattice.to(_F64)
    return transform.to(dtype) @ src, transform


def _host_transform(lattice: np.ndarray, eps: float) -> np.ndarray:
    """Transform of one lattice from the numpy reducer with ``precision="auto"`` (it escalates to mpmath
    and the exact oracle where float64 cannot decide)."""
    from latticesym.reduce import niggli_reduce as numpy_reduce

    return np.array(numpy_reduce(lattice, eps=eps).transform, dtype=np.int64).reshape(3, 3)


def _index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(x) for x in np.unravel_index(int(flat), shape)) if shape else ()


def is_niggli_reduced(lattice: Tensor, *, eps: float = 1e-5) -> Tensor:
    """Boolean tensor: does no Krivy-Gruber step apply to the lattice (within ``e``)?

    Built from the reducer's own step selection, so the predicate and the reducer cannot drift.

    Examples
    --------
    >>> is_niggli_reduced(torch.eye(3)).item()
    True
    >>> is_niggli_reduced(torch.tensor([[2.0, 0, 0], [0, 1, 0], [0, 0, 3]])).item()  # A > B
    False
    """
    flat = _as_batch(lattice)
    with torch.no_grad():
        e, valid = _tolerance(flat, eps)
        T = torch.eye(3, dtype=_F64, device=flat.device).expand(flat.shape[0], 3, 3)
        T, g6, steps = _normalise(T, _g6_of(flat), e, valid)
        _, moved = _reduction_step(T, g6, e, valid)
        out = valid & (steps == 0) & ~moved
    return out.reshape(lattice.shape[:-2])
