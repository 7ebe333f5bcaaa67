r"""Niggli proxy losses: the research note's lattice-space loss and latticesym's Gram-space variant.

Conventions: rows of a lattice are its basis vectors; a basis change is ``L' = N @ L`` with
``N`` unimodular; a rotation is ``L @ Q.T``; :math:`G = L L^T`.  (The research note writes
the same with columns, :math:`L' = L N`.)

``space="lattice"``: the research note's loss, reproduced faithfully
--------------------------------------------------------------------
With :math:`N` the integer transform that Niggli-reduces ``pred.detach()`` (computed without
autograd) and :math:`T_r` the Niggli-reduced target (reduced first when it is not),

.. math:: \ell_{\mathrm{lat}} = \tfrac19 \,\| P - N^{-1} T_r \|_F^2 ,

the canonical target carried into the prediction's basis; the gradient flows through
:math:`P` only (:math:`N` is piecewise constant).  Its measured failure modes, each a test in
``tests/torch/test_proxy_loss.py``:

1. *Symmetric ground truths have several Niggli bases.*  For a cubic target and an exact
   prediction :math:`P = U T` in another basis, :math:`N P` is a Niggli basis of the same
   lattice but not necessarily :math:`T_r` (they differ by an automorphism), so
   :math:`\ell > 0`.
2. *Rotations are not factored out*: :math:`P = U T Q^T` has :math:`\ell > 0` for every
   non-trivial rotation :math:`Q`.
3. *The residual is measured in the prediction's basis*:
   :math:`P - N^{-1} T_r = N^{-1}(N P - T_r)`, so the same error in the reduced cell costs
   :math:`\|N^{-1}\|^2` times more when the prediction comes in a sheared basis (grows like
   the square of the shear).
4. *Handedness*: :math:`N` has det +1, so an exact prediction in a mirrored basis (det -1) of
   a triclinic target lands on :math:`-T_r`: :math:`\ell > 0`.
5. *Training*: in ``examples/loss_experiment.py`` (``docs/experiments/mlp.md``) an MLP
   trained with it on random-basis labels of real cells collapses to flat cells (held-out G6
   error ~100 %, predicted volume ~1e-5 of the true one).

``space="gram"``: basis- and rotation-invariant variant
--------------------------------------------------------
Reduce the prediction (detached) to get :math:`N_p` and the reduced Gram matrix
:math:`G_p = N_p P P^T N_p^T` (differentiable in :math:`P`); reduce the target,
:math:`T_r = N_t T`, :math:`G_t = T_r T_r^T`, :math:`V = N_t^{-1}` (so :math:`T = V T_r`).  With
:math:`R_M = M G_p M^T - G_t` and :math:`M_1 = \arg\min_{M \in S} \|R_M\|_F`,

.. math:: \ell_{\mathrm{gram}} = \frac{1}{9 s^2} \min\Big( \| R_{M_1} \|_F^2,\
          \min_{A \in \mathrm{Aut}_S(G_t)} \| V R_{A M_1} V^T \|_F^2 \Big),
          \qquad s = \tfrac13 \operatorname{tr} G_t ,

with :math:`S` the finite set of unimodular matrices relating two points of the closed Niggli
cone (automorphisms of reduced forms and boundary flips; ``latticesym._tables.niggli_neighbours``,
derived and certified in ``proofs/``, 996 matrices up to sign, see :func:`neighbour_transforms`).
:math:`\mathrm{Aut}_S(G_t) = \{A \in S : A G_t A^T = G_t\}` (to the precision of the target's
dtype).
:math:`R_M` is the residual in the reduced basis; :math:`V R_M V^T` is the same residual written
in the basis the target was given in, minimised over the images :math:`A M_1` that tie with
:math:`M_1` near the target.  So a prediction that is a small perturbation of the target *in the
target's basis* never costs more than the plain Gram MSE of that perturbation
(:func:`gram_mse`), whatever that basis is.  For a target given in a reduced basis (:math:`V` a
signed permutation) the second term is never smaller and is skipped.  :math:`s`, the mean
squared length of the reduced target vectors, is basis-invariant, so the loss is dimensionless
and the same for a cell scaled by any factor.  Properties (tested):

- zero (to rounding) for every exact prediction :math:`U T Q^T`, including targets on Niggli
  boundaries (cubic, hexagonal, fcc, bcc, rhombohedral), because rotations leave :math:`G`
  unchanged and :math:`S` contains the maps between the reduced forms that rounding can reach;
- the same value whatever basis or orientation the prediction comes in (it depends on the
  prediction only through its reduced Gram matrix, up to the flips in :math:`S`);
- continuous across Niggli boundaries: near the target, crossing a boundary swaps
  :math:`G_p` for :math:`W G_p W^T` with :math:`W \in S`, and the minimum absorbs it; a 1e-3
  perturbation of the target, in the target's basis, never costs more than the plain Gram MSE
  :math:`\tfrac19\|P P^T - T T^T\|_F^2 / s^2` of that perturbation;
- gradients through ``pred`` only; the target never receives a gradient;
- degenerate predictions: where the prediction cannot be reduced (singular or numerically
  singular basis) :math:`N_p = I`, i.e. the *unreduced* Gram matrix of the prediction enters the
  same minimum, which is finite with a finite gradient.  Non-finite predictions give NaN for
  that lattice, like :func:`torch.nn.functional.mse_loss`.

Far from the target the minimum over the finite set :math:`S` is an upper bound of the
distance between the two lattices' orbits, not the distance itself.

The minimisers are found without autograd.  With :math:`K_M` the :math:`6\times 6` matrix of
:math:`G \mapsto M G M^T` on G6 vectors and :math:`W` the weights that turn G6 differences into
Frobenius norms, the squared residual of every candidate is
:math:`g_p^T K_M^T W K_M g_p - 2 g_t^T W K_M g_p + g_t^T W g_t`: one product of the ``(n, 57)``
features (the 21 distinct products :math:`g_{p,a} g_{p,b}` and the 36 :math:`g_{t,a} g_{p,b}`)
with a ``(57, |S|)`` table gives :math:`M_1`; the same product with :math:`g_p = g_t` gives the
automorphisms of the targets that need the second term.  The residual of the chosen :math:`M`
(and basis) is then recomputed directly, with autograd.

References
----------
I. Krivy & B. Gruber (1976). Acta Cryst. A32, 297-298. https://doi.org/10.1107/S0567739476000636
L. C. Andrews & H. J. Bernstein (1988). Acta Cryst. A44, 1009-1018 (G6 and the Niggli cone's
boundaries). https://doi.org/10.1107/S0108767388006427
"""

from __future__ import annotations

from functools import lru_cache, partial
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from latticesym._tables.niggli_neighbours import NIGGLI_NEIGHBOUR_TRANSFORMS
from latticesym.errors import LatticeShapeError, OptionError
from latticesym.reduce import _numba as _reduce_numba
from latticesym.torch import _gram_search
from latticesym.torch._reduce import (
    _apply,
    _as_batch,
    _g6_of,
    _int_matmul,
    _reduce_core,
    niggli_reduce,
    unimodular_inverse,
)

__all__ = ["GramNiggliLoss", "LatticeLoss", "NiggliProxyLoss", "gram_mse", "lattice_from_lengths_angles",
           "neighbour_transforms", "niggli_proxy_loss"]

_F64 = torch.float64
_SPACES = ("lattice", "gram")
_REDUCTIONS = ("mean", "sum", "none")
# Frobenius weights of G6 differences: ||dG||_F^2 = sum_k w_k dg_k^2 (off-diagonals are 2 G_ij, twice).
_W = np.array([1.0, 1.0, 1.0, 0.5, 0.5, 0.5])
_CHUNK = 8192
# A candidate M counts as an automorphism of the reduced target when ||M G_t M^T - G_t||_W^2 / s^2 is below
# this, per dtype of the target (float64 rounding gives ~1e-30 and a float64 target 1e-9 off a boundary
# ~1e-18; a float32 target written in a basis with entries up to 3 is exact only to ~1e-6 relative).  Erring
# on the large side is safe: every candidate A M1 compares the two lattices in *some* pair of bases, so a
# larger set can only lower the loss towards the distance it bounds, never below zero or for another
# lattice, and it depends on the target alone (continuity and invariance in the prediction are kept).
_AUT_TOL = {torch.float64: 1e-12, torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 1e-3}


def _canonical_up_to_sign(mats: np.ndarray) -> np.ndarray:
    """Unique matrices up to sign (``M`` and ``-M`` act alike on Gram matrices), identity first."""
    flat = mats.reshape(-1, 9).astype(np.int64)
    first = flat[np.arange(len(flat)), (flat != 0).argmax(1)]
    flat = flat * np.sign(first)[:, None]
    uniq = np.unique(flat, axis=0)
    eye = np.eye(3, dtype=np.int64).reshape(9)
    rest = uniq[~(uniq == eye).all(1)]
    return np.concatenate([eye[None], rest]).reshape(-1, 3, 3)


@lru_cache(maxsize=1)
def neighbour_transforms() -> np.ndarray:
    """The candidate set :math:`S` of the Gram-space loss, ``(|S|, 3, 3)`` int64, up to sign, identity first.

    :math:`S` is the set of unimodular :math:`M` such that some positive-definite :math:`G` and
    :math:`M G M^T` both lie in the closed Niggli cone (automorphisms of reduced forms and
    boundary flips): ``latticesym._tables.niggli_neighbours.NIGGLI_NEIGHBOUR_TRANSFORMS`` (1992
    matrices, enumerated and certified exactly by ``proofs/test_08_boundary_maps.py``), 996 up
    to sign, all with entries in {-1, 0, 1}.

    Examples
    --------
    >>> S = neighbour_transforms()
    >>> S[0].tolist(), bool((abs(S) <= 2).all())
    ([[1, 0, 0], [0, 1, 0], [0, 0, 1]], True)
    """
    mats = np.asarray(NIGGLI_NEIGHBOUR_TRANSFORMS, dtype=np.int64).reshape(-1, 3, 3)
    return _canonical_up_to_sign(mats)


def _congruence_g6_matrices(mats: np.ndarray) -> np.ndarray:
    """``K`` with ``g6(M G M^T) = K @ g6(G)`` for each ``M``, shape ``(c, 6, 6)``."""
    basis = np.eye(6)
    grams = np.zeros((6, 3, 3))
    for k, (i, j) in enumerate(((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))):
        grams[k, i, j] = grams[k, j, i] = 1.0 if i == j else 0.5
    del basis
    m = mats.astype(np.float64)
    img = np.einsum("cij,kjl,cml->ckim", m, grams, m)  # (c, 6, 3, 3)
    g6 = np.stack(
        [img[..., 0, 0], img[..., 1, 1], img[..., 2, 2], 2 * img[..., 1, 2], 2 * img[..., 0, 2], 2 * img[..., 0, 1]],
        axis=-1,
    )  # (c, 6 inputs, 6 outputs)
    return np.transpose(g6, (0, 2, 1))


_IU = np.triu_indices(6)  # the 21 distinct products g_a g_b of the quadratic features


class _SearchTable:
    """Per-device tables of the candidate search: the ``(57, c)`` quadratic-form table and ``S``."""

    def __init__(self, device: torch.device):
        mats = neighbour_transforms()
        K = _congruence_g6_matrices(mats)  # (c, 6, 6)
        W = np.diag(_W)
        Q = np.einsum("cki,kl,clj->cij", K, W, K)  # K^T W K, symmetric
        Q_sym = (Q + np.transpose(Q, (0, 2, 1)) * (1 - np.eye(6)))[:, _IU[0], _IU[1]]  # g_a g_b, a <= b
        P = np.einsum("kl,clj->ckj", W, K)  # W K
        table = np.concatenate([Q_sym, -2 * P.reshape(len(K), 36)], axis=1).T
        self.table = torch.as_tensor(np.ascontiguousarray(table), dtype=_F64, device=device)
        self.mats = torch.as_tensor(mats, dtype=_F64, device=device)
        self.iu = (torch.as_tensor(_IU[0], device=device), torch.as_tensor(_IU[1], device=device))


_TABLES: dict[torch.device, _SearchTable] = {}


def _search_table(device: torch.device) -> _SearchTable:
    tab = _TABLES.get(device)
    if tab is None:
        tab = _TABLES[device] = _SearchTable(device)
    return tab


def _check_pair(pred: Tensor, target: Tensor) -> None:
    for name, x in (("pred", pred), ("target", target)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim < 2 or tuple(x.shape[-2:]) != (3, 3):
            raise LatticeShapeError(f"{name} must have shape (..., 3, 3), got {tuple(x.shape)}")
    if pred.shape != target.shape:
        raise LatticeShapeError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if not pred.is_floating_point():
        raise TypeError(f"pred must be a floating-point tensor, got {pred.dtype}")


def _reduce_pair(pred: Tensor, target: Tensor, eps: float, backend: str) -> tuple[Tensor, Tensor, Tensor]:
    """Transforms reducing ``pred`` and ``target`` (one reducer call), float64 ``(n, 3, 3)``, no autograd.

    Returns ``N_p``, ``N_t`` and the flat float64 target.  ``N_p`` is the identity where the
    prediction cannot be reduced (singular, non-finite) and the best unimodular transform reached
    where the reduction is not certified.  A target that is already reduced gets the identity (the
    reducer takes no step on it); a target that cannot be certified goes through the public
    reducer, which escalates or raises a typed :class:`~latticesym.errors.LatticeError`.
    """
    flat_p, flat_t = _as_batch(pred), _as_batch(target)
    n = flat_p.shape[0]
    T, _, _, ok, _ = _reduce_core(torch.cat([flat_p, flat_t]), eps=eps, max_iter=1000, backend=backend)
    N_p, N_t = T[:n], T[n:]
    if not bool(ok[n:].all()):
        _, T_pub = niggli_reduce(flat_t, eps=eps, backend=backend)
        N_t = T_pub.to(_F64)
    return N_p, N_t, flat_t


def _lattice_space(pred: Tensor, target: Tensor, eps: float, backend: str) -> Tensor:
    """Per-lattice note loss ``mean((P - N^{-1} T_r)^2)``, shape ``(n,)``."""
    flat_pred = pred.reshape(-1, 3, 3)
    with torch.no_grad():
        N_p, N_t, flat_t = _reduce_pair(pred, target, eps, backend)
        # Dot2 products: a sheared cell's transform has entries past 1e12 and the plain products cancel
        t_prime = _int_matmul(unimodular_inverse(N_p), _int_matmul(N_t, flat_t)).to(pred.dtype)
    return ((flat_pred - t_prime) ** 2).mean((-1, -2))


def _scores(gp: Tensor, gt: Tensor, tab: _SearchTable) -> Tensor:
    """Squared reduced-basis residuals (up to the constant ``g_t^T W g_t``) of every candidate, ``(n, c)``."""
    quad = gp[:, tab.iu[0]] * gp[:, tab.iu[1]]
    cross = (gt[:, :, None] * gp[:, None, :]).flatten(1)
    return torch.cat([quad, cross], 1) @ tab.table


def _argmin_rows(scores: Tensor) -> Tensor:
    """First minimiser of each row (``torch.argmin``; through numpy on CPU, several times faster there)."""
    if scores.device.type == "cpu":
        return torch.from_numpy(np.argmin(scores.numpy(), axis=-1))
    return scores.argmin(-1)


def _best_candidates(gp: Tensor, gt: Tensor, tab: _SearchTable) -> Tensor:
    """Index in ``S`` of the candidate with the smallest reduced-basis residual (the first, on ties)."""
    return torch.cat([_argmin_rows(_scores(gp[lo : lo + _CHUNK], gt[lo : lo + _CHUNK], tab))
                      for lo in range(0, len(gp), _CHUNK)])


def _inf_for_nan(x: Tensor) -> Tensor:
    return torch.where(torch.isnan(x), torch.full_like(x, float("inf")), x)


def _gram_space(pred: Tensor, target: Tensor, eps: float, backend: str) -> Tensor:
    """Per-lattice Gram-space loss (module docstring), shape ``(n,)``, computed in float64.

    The candidate searches run in :mod:`latticesym.torch._gram_search`: the compiled kernel with the
    pruned trie (numba, on the host) or the exhaustive tensor path on the input's device, without a host
    synchronisation (``backend="torch"`` / ``"device"``, or no numba).  Same minimisers as the dense
    reference :func:`_gram_space_dense` (tested).
    """
    flat_pred = pred.reshape(-1, 3, 3).to(_F64)
    tol = _AUT_TOL.get(target.dtype, 1e-12)
    with torch.no_grad():
        P = flat_pred.detach()
        N_p, N_t, flat_t = _reduce_pair(pred, target, eps, backend)
        if backend in ("auto", "numba") and _reduce_numba.available():
            p_, t_, np_, nt_ = (np.ascontiguousarray(x.cpu().numpy()) for x in (P, flat_t, N_p, N_t))
            MN, V, G_t, scale = (torch.from_numpy(a).to(pred.device)
                                 for a in _gram_search.prep_numba(p_, t_, np_, nt_, tol))
        else:
            MN, V, G_t, scale = _gram_search.prep_torch(P, flat_t, N_p, N_t, tol)
    Xg = _apply(MN, flat_pred)  # the Dot2 value of M N_p P, the gradient of the plain product
    Rg = V @ (Xg @ Xg.transpose(-1, -2) - G_t) @ V.transpose(-1, -2)
    return ((Rg**2).mean((-1, -2)) / scale**2).to(pred.dtype)


def _gram_space_dense(pred: Tensor, target: Tensor, eps: float, backend: str) -> Tensor:
    """The dense reference of :func:`_gram_space`: one ``(n, 57) x (57, |S|)`` product scores every candidate.

    Kept (private) as the yardstick of the pruned search; same definition, same minimisers up to rounding.
    """
    flat_pred = pred.reshape(-1, 3, 3).to(_F64)
    tab = _search_table(pred.device)
    eye = torch.eye(3, dtype=_F64, device=pred.device)
    with torch.no_grad():
        P = flat_pred.detach()
        N_p, N_t, flat_t = _reduce_pair(pred, target, eps, backend)
        t_red = _int_matmul(N_t, flat_t)
        g_t = _g6_of(t_red)
        scale = g_t[:, :3].sum(-1) / 3
        G_t = t_red @ t_red.transpose(-1, -2)
        X = _int_matmul(N_p, P)
        # finite G6s for the search: a non-finite prediction gets the identity (its loss is NaN anyway)
        g_p = _g6_of(X)
        g_p = torch.where(torch.isfinite(g_p).all(-1)[:, None], g_p, torch.zeros_like(g_p)) / scale[:, None]
        gt = g_t / scale[:, None]
        # term A: the candidate M1 with the smallest residual in the reduced basis
        best = _best_candidates(g_p, gt, tab)
        M1 = tab.mats[best]
        MN = M1 @ N_p
        V = None  # the identity: no term B anywhere
        # term B, the residual in the target's own basis V = inv(N_t), matters only where V is not a
        # signed permutation (else both residuals have the same norm and M1 already minimises it)
        V_t = unimodular_inverse(N_t)  # target = V_t @ t_red
        sub = ((V_t.abs().sum(-1) != 1).any(-1)).nonzero().squeeze(-1)
        if len(sub):
            tol = _AUT_TOL.get(target.dtype, 1e-12)
            MN_b, use_b = _term_b(M1[sub] @ X[sub], MN[sub], V_t[sub], G_t[sub], gt[sub], tab, tol)
            MN = MN.index_copy(0, sub, MN_b)
            V = eye.expand(len(X), 3, 3).index_copy(0, sub, torch.where(use_b[:, None, None], V_t[sub], eye))
    Xg = _apply(MN, flat_pred)
    Rg = Xg @ Xg.transpose(-1, -2) - G_t
    if V is not None:
        Rg = V @ Rg @ V.transpose(-1, -2)
    return ((Rg**2).mean((-1, -2)) / scale**2).to(pred.dtype)


def _term_b(
    Y1: Tensor, MN: Tensor, V: Tensor, G_t: Tensor, gt: Tensor, tab: _SearchTable, tol: float
) -> tuple[Tensor, Tensor]:
    """Best of ``M1`` and its images ``A M1`` (``A`` an automorphism of the reduced target) in the target basis.

    ``Y1 = M1 N_p P`` (from the accurately reduced prediction).  Returns the chosen ``M N_p`` and
    whether the target-basis residual is the smaller one.
    """
    const = (gt * gt * gt.new_tensor(_W)).sum(-1, keepdim=True)
    auts = torch.cat(
        [
            _scores(gt[lo : lo + _CHUNK], gt[lo : lo + _CHUNK], tab) <= tol - const[lo : lo + _CHUNK]
            for lo in range(0, len(Y1), _CHUNK)
        ]
    )
    row, cand = auts.nonzero(as_tuple=True)  # the identity is always among them
    H = tab.mats[cand] @ MN[row]
    Y = tab.mats[cand] @ Y1[row]  # a candidate A M1 gives the basis A Y1 (A has entries in {-1, 0, 1})
    RB = V[row] @ (Y @ Y.transpose(-1, -2) - G_t[row]) @ V[row].transpose(-1, -2)
    val = _inf_for_nan((RB**2).sum((-1, -2)))
    res_a = _inf_for_nan(((Y1 @ Y1.transpose(-1, -2) - G_t) ** 2).sum((-1, -2)))
    best_b = torch.full_like(res_a, float("inf")).scatter_reduce(0, row, val, "amin")
    # the first pair of each row that attains its minimum
    hit = torch.where(val == best_b[row], torch.arange(len(val), device=val.device), len(val))
    first = torch.full((len(Y1),), len(val), dtype=torch.int64, device=Y1.device).scatter_reduce(0, row, hit, "amin")
    use_b = best_b < res_a
    return torch.where(use_b[:, None, None], H[first.clamp_max(len(val) - 1)], MN), use_b


def gram_mse(pred: Tensor, target: Tensor, *, reduction: str = "mean", eps: float = 1e-5) -> Tensor:
    r"""Plain Gram MSE in the bases given, with the normalisation of the Gram-space loss.

    :math:`\tfrac19 \| P P^T - T T^T \|_F^2 / s^2`, :math:`s = \tfrac13 \operatorname{tr} G_t`
    (reduced target).  Not basis-invariant: it is the yardstick of the Gram-space loss's
    continuity property (a perturbation of the target, in the target's basis, never costs the
    Gram-space loss more than this).

    Examples
    --------
    >>> target = torch.eye(3, dtype=torch.float64)
    >>> float(gram_mse(1.1 * target, target))  # (1.21 - 1)^2 * 3 / 9
    0.0147...
    """
    if reduction not in _REDUCTIONS:
        raise OptionError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    _check_pair(pred, target)
    batch = tuple(pred.shape[:-2])
    with torch.no_grad():
        _, N_t, flat_t = _reduce_pair(pred.detach(), target.detach(), eps, "auto")
        scale = _g6_of(_int_matmul(N_t, flat_t))[:, :3].sum(-1) / 3
    p = pred.reshape(-1, 3, 3).to(_F64)
    t = target.detach().reshape(-1, 3, 3).to(_F64)
    per = (((p @ p.transpose(-1, -2) - t @ t.transpose(-1, -2)) ** 2).mean((-1, -2)) / scale**2).to(pred.dtype)
    per = per.reshape(batch)
    return _reduced(per, reduction)


class _Fused(torch.autograd.Function):
    """Loss computed by the compiled kernel together with its gradient; backward scales the stored gradient.

    ``forward(pred, value, grad, again)``: ``value`` (numpy, the reduced loss: 0-d, or the per-lattice
    losses in ``pred``'s batch shape), ``grad`` (numpy, ``pred``'s shape, float64: the gradient of
    ``value.sum()``, already divided by the batch size for ``reduction="mean"``) and ``again`` (the same
    loss as a differentiable graph of ``pred``, built only when asked).  One tensor op each way where
    ``pred`` is float64 on the host.

    A backward that builds a graph itself (``create_graph=True``: Hessian-vector products, gradient
    penalties) differentiates ``again(pred)`` instead, so second derivatives are those of the general
    path (the loss is quadratic in ``pred`` on each piece, so they are not zero) rather than the zero
    of a constant stored gradient.
    """

    @staticmethod
    def forward(ctx: Any, pred: Tensor, value: np.ndarray, grad: np.ndarray, again: Any) -> Tensor:
        ctx.grad = grad
        ctx.again = again
        ctx.meta = (pred.dtype, pred.device)
        ctx.save_for_backward(pred)
        out = torch.from_numpy(value)
        return out if pred.dtype == _F64 and pred.device.type == "cpu" else out.to(pred.device, pred.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None, None, None]:
        if torch.is_grad_enabled():  # create_graph: the differentiable graph of the same loss
            (pred,) = ctx.saved_tensors
            (g_pred,) = torch.autograd.grad(ctx.again(pred), pred, grad_out, create_graph=True)
            return g_pred, None, None, None
        dtype, device = ctx.meta
        g = torch.from_numpy(ctx.grad)
        if device.type != "cpu":
            g = g.to(device)
        if grad_out.ndim:  # reduction "none": one factor per lattice
            grad_out = grad_out[..., None, None]
        g = g * grad_out  # a new tensor also when grad_out is 1: the graph may be run again (retain_graph)
        return (g if g.dtype == dtype else g.to(dtype)), None, None, None


def _fused_space(pred: Tensor, target: Tensor, eps: float, space: str, reduction: str,
                 backend: str) -> Tensor | None:
    """Both losses in one compiled pass (reduce, search, gradient; :func:`_gram_search._fused`), reduced.

    ``None`` where a target cannot be certified in float64 (the caller takes the general path, which
    escalates); the gradient is the closed form of the autograd graph of :func:`_gram_space` /
    :func:`_lattice_space` (tested against them).
    """
    if not (eps >= 0):
        raise OptionError(f"eps must be >= 0, got {eps}")
    p, t = pred.detach(), target
    if p.dtype != _F64 or p.device.type != "cpu":
        p = p.to(device="cpu", dtype=_F64)
    if t.dtype != _F64 or t.device.type != "cpu":
        t = t.to(device="cpu", dtype=_F64)
    p_ = np.ascontiguousarray(p.numpy()).reshape(-1, 3, 3)
    t_ = np.ascontiguousarray(t.numpy()).reshape(-1, 3, 3)
    tol = _AUT_TOL.get(target.dtype, 1e-12)
    n = p_.shape[0]
    gscale = 1.0 / n if reduction == "mean" else 1.0
    loss, grad, bad = _gram_search.fused_run(_gram_search.fused_kernel(), p_, t_, eps, space == "gram", tol, gscale)
    if bad:
        return None
    value = loss.reshape(pred.shape[:-2]) if reduction == "none" else np.asarray(
        np.add.reduce(loss) / n if reduction == "mean" else loss.sum())  # == loss.mean(), bit for bit
    again = partial(_general, target=target, eps=eps, space=space, reduction=reduction, backend=backend)
    out: Tensor = _Fused.apply(pred, value, grad.reshape(pred.shape), again)
    return out


def niggli_proxy_loss(
    pred: Tensor,
    target: Tensor,
    *,
    space: str = "lattice",
    reduction: str = "mean",
    eps: float = 1e-5,
    backend: str = "auto",
) -> Tensor:
    r"""Niggli proxy loss between predicted and target lattices (see the module docstring for the math).

    Parameters
    ----------
    pred : Tensor, shape ``(..., 3, 3)``
        Predicted lattices (rows are basis vectors), float32 or float64, any device.  The only
        input that receives a gradient.
    target : Tensor, shape ``(..., 3, 3)``
        Ground-truth lattices in any basis (they are Niggli-reduced first; a reduced target is
        left as it is).  Never receives a gradient.
    space : {"lattice", "gram"}
        ``"lattice"``: the research note's loss :math:`\tfrac19\|P - N^{-1} T_r\|^2` (Å²), with its
        failure modes.  ``"gram"``: the invariant variant, dimensionless (divided by
        :math:`s^2`, :math:`s = \operatorname{tr} G_t / 3`).
    reduction : {"mean", "sum", "none"}
        Over the batch of per-lattice losses (each a mean over the 9 matrix entries): the mean,
        the sum, or the ``(...)``-shaped tensor itself.  For ``space="lattice"``, ``"mean"`` equals
        ``torch.nn.functional.mse_loss(pred, target')``.
    eps : float
        Relative tolerance of the Niggli reductions (``docs/algorithm.md``).
    backend : {"auto", "torch", "numba"}
        Reducer backend (:func:`latticesym.torch.niggli_reduce`).

    Returns
    -------
    Tensor
        Scalar (``"mean"``, ``"sum"``) or shape ``pred.shape[:-2]`` (``"none"``), dtype of ``pred``.
        Differentiable twice: a backward with ``create_graph=True`` builds the general path's graph
        (second derivatives as for ``backend="torch"``; the transforms are piecewise constant).

    Examples
    --------
    >>> import latticesym.torch as lt
    >>> target = torch.eye(3, dtype=torch.float64)          # simple cubic
    >>> pred = torch.tensor([[0.0, 1, 0], [1, 0, 0], [0, 1, 1]], dtype=torch.float64)  # same lattice
    >>> float(lt.niggli_proxy_loss(pred, target, space="gram"))
    0.0
    >>> float(lt.niggli_proxy_loss(pred, target, space="lattice")) > 0   # another Niggli basis
    True
    """
    if space not in _SPACES:
        raise OptionError(f"space must be one of {_SPACES}, got {space!r}")
    if reduction not in _REDUCTIONS:
        raise OptionError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    _check_pair(pred, target)
    target = target.detach()
    if pred.shape[:-2].numel() == 0:
        return _reduced(pred.new_zeros(tuple(pred.shape[:-2])), reduction)
    if backend in ("auto", "numba") and _reduce_numba.available():
        fused = _fused_space(pred, target, eps, space, reduction, backend)
        if fused is not None:
            return fused
    return _general(pred, target, eps=eps, space=space, reduction=reduction, backend=backend)


def _reduced(per: Tensor, reduction: str) -> Tensor:
    """The per-lattice losses ``per`` reduced as ``reduction`` asks (mean, sum, or as they are)."""
    return per.mean() if reduction == "mean" else per.sum() if reduction == "sum" else per


def _general(pred: Tensor, target: Tensor, *, eps: float, space: str, reduction: str, backend: str) -> Tensor:
    """:func:`niggli_proxy_loss` on the general path: the loss as an autograd graph of ``pred`` (a non-empty batch)."""
    fn = _lattice_space if space == "lattice" else _gram_space
    return _reduced(fn(pred, target, eps, backend).reshape(pred.shape[:-2]), reduction)


class NiggliProxyLoss(nn.Module):
    """``nn.Module`` form of :func:`niggli_proxy_loss` (default: the research note's lattice-space loss).

    Parameters
    ----------
    space : {"lattice", "gram"}
    reduction : {"mean", "sum", "none"}
    eps : float
    backend : {"auto", "torch", "numba"}

    Examples
    --------
    >>> loss_fn = NiggliProxyLoss(space="gram", reduction="none")
    >>> loss_fn(torch.eye(3).expand(2, 3, 3), torch.eye(3).expand(2, 3, 3) * 1.1).shape
    torch.Size([2])
    """

    def __init__(self, space: str = "lattice", reduction: str = "mean", eps: float = 1e-5, backend: str = "auto"):
        super().__init__()
        if space not in _SPACES:
            raise OptionError(f"space must be one of {_SPACES}, got {space!r}")
        if reduction not in _REDUCTIONS:
            raise OptionError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.space = space
        self.reduction = reduction
        self.eps = eps
        self.backend = backend

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Loss of ``pred`` against ``target`` (shapes ``(..., 3, 3)``)."""
        return niggli_proxy_loss(
            pred, target, space=self.space, reduction=self.reduction, eps=self.eps, backend=self.backend
        )

    def extra_repr(self) -> str:
        return f"space={self.space!r}, reduction={self.reduction!r}, eps={self.eps}"


class GramNiggliLoss(NiggliProxyLoss):
    """The invariant Gram-space loss as an ``nn.Module`` (``NiggliProxyLoss(space="gram")``).

    Examples
    --------
    >>> GramNiggliLoss()(torch.eye(3), torch.eye(3)).item()
    0.0
    """

    def __init__(self, reduction: str = "mean", eps: float = 1e-5, backend: str = "auto"):
        super().__init__(space="gram", reduction=reduction, eps=eps, backend=backend)


def lattice_from_lengths_angles(lengths: Tensor, angles: Tensor) -> Tensor:
    r"""Differentiable ``(..., 3, 3)`` lattices (rows a, b, c) from lengths (Å) and angles (degrees).

    ``a`` along x, ``b`` in the xy plane: :math:`b = b(\cos\gamma, \sin\gamma, 0)`,
    :math:`c = c(\cos\beta, (\cos\alpha - \cos\beta\cos\gamma)/\sin\gamma, c_z)`.  The orientation
    differs from DiffCSP's ``lattice_params_to_matrix_torch`` by a rotation, which the Gram-space loss
    does not see.

    Examples
    --------
    >>> L = lattice_from_lengths_angles(torch.tensor([2.0, 2, 2]), torch.tensor([90.0, 90, 90]))
    >>> torch.allclose(L, 2 * torch.eye(3), atol=1e-6)
    True
    """
    al, be, ga = torch.deg2rad(angles).unbind(-1)
    a, b, c = lengths.unbind(-1)
    ca, cb, cg, sg = torch.cos(al), torch.cos(be), torch.cos(ga), torch.sin(ga)
    cy = (ca - cb * cg) / sg
    cz = torch.sqrt(torch.clamp(1 - cb**2 - cy**2, min=0))
    zero = torch.zeros_like(a)
    rows = [torch.stack([a, zero, zero], -1), torch.stack([b * cg, b * sg, zero], -1),
            torch.stack([c * cb, c * cy, c * cz], -1)]
    return torch.stack(rows, -2)


class LatticeLoss(nn.Module):
    """Drop-in for the lattice term of a DiffCSP-style training step (default: the Gram-space loss).

    ``loss_lattice = F.mse_loss(pred_l, tar_l)`` becomes ``loss_lattice = LatticeLoss()(pred_l, tar_l)``
    with ``pred_l``, ``tar_l`` of shape ``(B, 3, 3)``; or, for models that predict cell parameters,
    ``LatticeLoss()((pred_lengths, pred_angles), (lengths, angles))`` with ``(B, 3)`` tensors
    (Å, degrees), converted by :func:`lattice_from_lengths_angles`.

    Parameters
    ----------
    space : {"gram", "lattice"}
    reduction : {"mean", "sum", "none"}
    eps : float
    backend : {"auto", "torch", "numba"}

    Examples
    --------
    >>> loss_fn = LatticeLoss()
    >>> float(loss_fn(torch.eye(3).expand(4, 3, 3), torch.eye(3).expand(4, 3, 3)))
    0.0
    >>> lengths, angles = torch.full((2, 3), 3.0), torch.full((2, 3), 90.0)
    >>> float(loss_fn((lengths, angles), (lengths, angles))) < 1e-12
    True
    """

    def __init__(self, space: str = "gram", reduction: str = "mean", eps: float = 1e-5, backend: str = "auto"):
        super().__init__()
        self.inner = NiggliProxyLoss(space=space, reduction=reduction, eps=eps, backend=backend)

    @staticmethod
    def _as_lattice(x: Any, name: str) -> Tensor:
        if isinstance(x, (tuple, list)):
            if len(x) != 2:
                raise LatticeShapeError(f"{name} as cell parameters must be (lengths, angles), got {len(x)} items")
            lengths, angles = x
            if tuple(lengths.shape[-1:]) != (3,) or lengths.shape != angles.shape:
                raise LatticeShapeError(
                    f"{name} lengths and angles must both have shape (..., 3), got {tuple(lengths.shape)} "
                    f"and {tuple(angles.shape)}")
            return lattice_from_lengths_angles(lengths, angles)
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a tensor (..., 3, 3) or (lengths, angles), got {type(x).__name__}")
        return x

    def forward(self, pred: Any, target: Any) -> Tensor:
        """Loss of ``pred`` against ``target``: lattices ``(B, 3, 3)`` or ``(lengths, angles)`` pairs."""
        out: Tensor = self.inner(self._as_lattice(pred, "pred"), self._as_lattice(target, "target"))
        return out
