"""Batched Niggli reduction in torch: ``(..., 3, 3)`` tensors, any device, the one latticesym algorithm.

The algorithm is ``docs/algorithm.md``, *as implemented in* :mod:`latticesym.reduce`, and it is
not written again here: a CPU batch runs through latticesym's compiled kernel
(:mod:`latticesym.reduce._numba`), and the vectorised torch backend runs the reducer's own
batch code (:mod:`latticesym.reduce._batch`) on tensors, through the array operations of
:class:`TorchOps`.  Both take the decisions of :func:`latticesym.reduce._kg.kg_decide` on the same
float64 values, so transforms, iteration counts and certification agree bit for bit with
:func:`latticesym.niggli_reduce` (``precision="float"``) on every lattice (tested): pre-reduction
with rounded multiples (iterations grow with ``log(shear)``), Krivy & Gruber with the tolerance
:math:`e = \\epsilon V^{2/3}` of Grosse-Kunstleve, Sauter & Adams (2004) capped at ``A / 16``, rows
recomputed from the input and the integer transform (Dot2 where the plain product cancels), and
certification with rounding-error bounds.

Backends
--------
``"numba"``: the compiled kernel, on the host.  CUDA tensors are copied to the host once and the
results back: one host synchronisation per call.  ``"device"``: the whole batch on the tensor's
own device in fixed-size masked steps (:func:`_dev_step`): every lattice takes the step its own
state selects through ``torch.where``, finished lattices are masked, nothing leaves the device,
and convergence is read back only every ``check_every`` steps, so a call makes
``ceil(steps / check_every)`` host synchronisations whatever the batch size (one step is one
Krivy-Gruber or pre-reduction step of every running lattice; 10-60 steps for typical batches),
and the step itself traces into one graph under ``torch.compile``.  Every lattice finishes within
:func:`step_bound` steps; the backend stops there and flags anything still running as not
converged (``ok`` False: re-run on the host or a typed error, never a silent result).  ``"torch"``:
the same batch with finished lattices removed from the working set, which costs a host
synchronisation at every data-dependent branch (``any`` / ``nonzero``: 10-30 per pass; on CUDA,
indexing with a boolean mask synchronises as well; on CPU, where a read costs nothing, it is the
faster of the two on large batches).  ``"auto"`` (default): numba when it is installed, whatever
the device (one synchronisation and no kernel launches), else ``"torch"`` on CPU and
``"device"`` on other devices.
All backends give the same transforms, G6, iteration counts and flags, bit for bit (tested).
:attr:`TorchNiggliResult.syncs` counts the reads of device data into Python.

Precision
---------
Decisions are taken in float64 whatever the input dtype (float32 inputs are converted).  Lattices
float64 cannot certify (near-singular cells: ``PRECISION``; transforms beyond :math:`2^{52}`;
the iteration cap; cycles) are flagged in :func:`niggli_reduce_info` (``ok`` False);
:func:`niggli_reduce` re-runs them with :func:`latticesym.niggli_reduce` (``precision="auto"``:
mpmath and exact escalation) or raises typed errors (``precision="float"``).

References
----------
I. Krivy & B. Gruber (1976). Acta Cryst. A32, 297-298. https://doi.org/10.1107/S0567739476000636
R. W. Grosse-Kunstleve, N. K. Sauter & P. D. Adams (2004). Acta Cryst. A60, 1-6.
https://doi.org/10.1107/S010876730302186X
"""

from __future__ import annotations

import contextlib
import numbers
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from torch import Tensor

from latticesym.errors import (
    BatchReductionError,
    LatticeError,
    LatticeShapeError,
    NonFiniteLatticeError,
    OptionError,
    PrecisionError,
    SingularLatticeError,
)
from latticesym.reduce import _batch, _kg
from latticesym.reduce import _numba as _reduce_numba
from latticesym.reduce._accurate import UNIT_ROUNDOFF, det3_with_bound, dot2
from latticesym.reduce._accurate import two_product as _two_product
from latticesym.reduce._accurate import two_sum as _two_sum
from latticesym.reduce._api import _check_eps, _check_max_iter, _keep_torch_threads
from latticesym.reduce._context import CANCEL_RATIO_SQ, FLOAT_TINY, MAX_TRANSFORM

__all__ = [
    "TorchNiggliResult",
    "TorchOps",
    "gram",
    "is_niggli_reduced",
    "niggli_reduce",
    "niggli_reduce_info",
    "step_bound",
    "unimodular_det",
    "unimodular_inverse",
]

_F64 = torch.float64


class TorchNiggliResult(NamedTuple):
    """Full result of :func:`niggli_reduce_info` (leading shape ``S`` of the input).

    Attributes
    ----------
    lattice : Tensor, shape ``S + (3, 3)``
        ``transform @ input`` formed in float64 and rounded once to the input dtype (see
        :func:`_apply`); differentiable in the input (the transform is piecewise constant).
    transform : Tensor, shape ``S + (3, 3)``, int64
        Integer basis change with ``det == +1``.
    g6 : Tensor, shape ``S + (6,)``, float64
        G6 of the reduced basis (float64, from rows computed accurately from the input and the
        transform: the G6 :func:`latticesym.niggli_reduce` reports); NaN for non-finite input.
    iterations : Tensor, shape ``S``, int64
        Pre-reduction steps plus Krivy-Gruber steps.
    ok : Tensor, shape ``S``, bool
        Certified result.  Where ``False`` (non-finite, singular or undecidable in float64, or
        over the iteration cap) the transform is the best unimodular one reached (identity for
        non-finite, singular or numerically singular input) and the lattice is not guaranteed
        reduced.  Also ``False`` where the reduced cell is not representable in the input dtype
        (an entry beyond float16's 65504, say): ``lattice`` then has infinite entries.
    syncs : int
        Host synchronisations the call made (reads of device data into Python; see the module
        docstring).
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
    r"""Exact inverse of integer matrices with ``det == +1``: the adjugate.

    Works on int64 or integer-valued float tensors of shape ``(..., 3, 3)``; the result has
    the input's dtype.  For ``det == -1`` it returns ``-inverse``.

    Every entry of the adjugate is one 2x2 minor :math:`ad - bc`.  In float64 the two products
    round once they pass :math:`2^{53}`, i.e. for entries past about :math:`9.5 \cdot 10^7`, which the
    reducer's transforms of sheared cells reach (up to :math:`10^{12}`); the minor itself, an entry of
    the inverse, is small, so the rounding is all that is left of it.  Hence:

    * matrices whose entries are all below :math:`2^{31}` go through int64, where both products
      (below :math:`2^{62}`) and their difference are exact;
    * larger ones go through float64 error-free products (Dekker's TwoProduct with Veltkamp's
      split: :math:`ad = p + e` exactly) and :math:`ad - bc = (p_1 - p_2) + (e_1 - e_2)`: when the
      minor is below :math:`2^{53}`, :math:`p_1, p_2` are within a factor 2 of each other
      (Sterbenz), so :math:`p_1 - p_2` is exact, and so is the integer sum.  Exact for entries and
      inverse entries below :math:`2^{53}` (every integer-valued float64 matrix of a basis change
      the float reducer can return); NaN or inf entries propagate.

    On the CPU the large matrices are picked out on the host (free there); on other devices both
    forms are computed and selected with ``torch.where``, so the call never synchronises.

    Examples
    --------
    >>> t = torch.tensor([[1, 2, 0], [0, 1, 0], [0, 0, 1]])
    >>> unimodular_inverse(t)
    tensor([[ 1, -2,  0],
            [ 0,  1,  0],
            [ 0,  0,  1]])
    >>> a = torch.tensor([[1.0, 0, 0], [1e5, 1, 0], [0, 0, 1]], dtype=torch.float64)
    >>> big = a @ a.T                              # entries 1e10: their products pass 2**53
    >>> bool((unimodular_inverse(big) @ big == torch.eye(3, dtype=torch.float64)).all())
    True
    """
    return _unimodular_inverse(transform, host_select=transform.device.type == "cpu")


def _unimodular_inverse(transform: Tensor, *, host_select: bool) -> Tensor:
    if transform.numel() == 0:
        return transform.clone()
    flat = transform.reshape(-1, 3, 3)
    small = flat.abs().amax((-1, -2)) < 2.0**31  # NaN/inf: False, the float path propagates them
    out = _adjugate(flat.to(torch.int64)).to(flat.dtype)
    if host_select:
        big = (~small).nonzero().flatten()
        if len(big):
            out[big] = _adjugate_eft(flat[big].to(_F64)).to(flat.dtype)
    else:
        out = torch.where(small[:, None, None], out, _adjugate_eft(flat.to(_F64)).to(flat.dtype))
    return out.reshape(transform.shape)


def _adjugate(m: Tensor) -> Tensor:
    # adj(M) = [m1 x m2, m2 x m0, m0 x m1]^T for the rows m0, m1, m2 of M
    return torch.linalg.cross(m.roll(-1, -2), m.roll(-2, -2)).transpose(-1, -2)


def _adjugate_eft(m: Tensor) -> Tensor:
    """The adjugate of integer-valued float64 matrices with error-free products (see above)."""
    u, v = m.roll(-1, -2), m.roll(-2, -2)  # cross(u, v)_k = u_{k+1} v_{k+2} - u_{k+2} v_{k+1}
    p, e = _two_product(torch.stack((u.roll(-1, -1), u.roll(-2, -1))), torch.stack((v.roll(-2, -1), v.roll(-1, -1))))
    s, t = _two_sum(p[0], -p[1])
    return (s + (t + (e[0] - e[1]))).transpose(-1, -2)


def unimodular_det(transform: Tensor, adjugate: Tensor | None = None) -> Tensor:
    r"""Exact determinant (``+1`` or ``-1``) of integer matrices with ``|det| == 1``, as float64.

    The plain float64 determinant of a reducer transform with entries past about :math:`10^5`
    rounds (its products pass :math:`2^{53}`) and can land anywhere.  Here
    :math:`\det M = \sum_j M_{0j}\, \mathrm{adj}(M)_{j0}` with the exact adjugate
    (:func:`unimodular_inverse`), error-free products and a compensated sum (Ogita, Rump and
    Oishi's Dot2, SIAM J. Sci. Comput. 26, 2005): the computed value is within
    :math:`u + \gamma_3^2 \sum_j |M_{0j}\, \mathrm{adj}_{j0}|` of the exact one, so rounding it is
    exact for entries below :math:`2^{53}`.

    Examples
    --------
    >>> m = torch.tensor([[0.0, 1, 0], [1, 0, 0], [0, 0, 1]])
    >>> unimodular_det(m)
    tensor(-1., dtype=torch.float64)
    """
    m = transform.to(_F64)
    adj = unimodular_inverse(m) if adjugate is None else adjugate.to(_F64)
    p, e = _two_product(m[..., 0, :], adj[..., :, 0])
    s, t1 = _two_sum(p[..., 0], p[..., 1])
    s, t2 = _two_sum(s, p[..., 2])
    return (s + ((t1 + t2) + e.sum(-1))).round()


def _det3(m: Tensor) -> Tensor:
    return (
        m[..., 0, 0] * (m[..., 1, 1] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 1])
        - m[..., 0, 1] * (m[..., 1, 0] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 0])
        + m[..., 0, 2] * (m[..., 1, 0] * m[..., 2, 1] - m[..., 1, 1] * m[..., 2, 0])
    )


def _g6_of(basis: Tensor) -> Tensor:
    """G6 ``(A, B, C, xi, eta, zeta)`` of ``(n, 3, 3)`` bases, shape ``(n, 6)``."""
    a, b, c = basis.unbind(-2)
    diag = [(a * a).sum(-1), (b * b).sum(-1), (c * c).sum(-1)]
    off = [2 * (b * c).sum(-1), 2 * (a * c).sum(-1), 2 * (a * b).sum(-1)]
    return torch.stack(diag + off, dim=-1)


def _as_batch(lattice: Tensor) -> Tensor:
    if not isinstance(lattice, Tensor):
        raise TypeError(f"lattice must be a torch.Tensor, got {type(lattice).__name__}")
    if lattice.is_complex():
        raise TypeError(f"lattice must be real, got complex dtype {lattice.dtype}")
    if lattice.ndim < 2 or tuple(lattice.shape[-2:]) != (3, 3):
        raise LatticeShapeError(f"lattice must have shape (..., 3, 3), got {tuple(lattice.shape)}")
    return lattice.detach().reshape(-1, 3, 3).to(_F64)


class TorchOps:
    """The array operations of :mod:`latticesym.reduce._batch` for torch tensors on ``device``.

    Elementwise IEEE operations only, each its own kernel (no fused multiply-add, no reordered
    reduction), and exact power-of-two scalings, so the batch rounds as it does in numpy.
    ``syncs`` counts the reads of tensor contents into Python (host synchronisations on a GPU).
    """

    name = "torch"
    _DTYPES: ClassVar[dict[str, torch.dtype]] = {"f": torch.float64, "i": torch.int64, "b": torch.bool,
                                                 "i8": torch.int8}

    def __init__(self, device: torch.device):
        self.device = device
        self.syncs = 0
        self.pi = torch.tensor([p[0] for p in _kg.PRE_PAIRS], device=device)
        self.pj = torch.tensor([p[1] for p in _kg.PRE_PAIRS], device=device)

    def zeros(self, shape: Any, kind: str = "f") -> Tensor:
        return torch.zeros(shape, dtype=self._DTYPES[kind], device=self.device)

    def full(self, shape: Any, value: Any, kind: str = "f") -> Tensor:
        return torch.full(shape, value, dtype=self._DTYPES[kind], device=self.device)

    def arange(self, n: int) -> Tensor:
        return torch.arange(n, device=self.device)

    def eye(self, n: int) -> Tensor:
        return torch.eye(3, dtype=_F64, device=self.device).expand(n, 3, 3).clone()

    def like_float(self, v: Any, like: Tensor) -> Tensor:
        return torch.broadcast_to(torch.as_tensor(v, device=self.device), like.shape).to(_F64)

    def like_bool(self, v: Any, like: Tensor) -> Tensor:
        return torch.broadcast_to(torch.as_tensor(v, device=self.device), like.shape).to(torch.bool)

    def any(self, mask: Tensor) -> bool:
        self.syncs += 1
        return bool(mask.any())

    def nonzero(self, mask: Tensor) -> Tensor:
        self.syncs += 1
        return torch.nonzero(mask).flatten()

    @staticmethod
    def size(a: Tensor) -> int:
        return int(a.shape[0])

    @staticmethod
    def where(cond: Tensor, a: Any, b: Any) -> Tensor:
        return torch.where(cond, a, b)

    @staticmethod
    def minimum(a: Tensor, b: Tensor) -> Tensor:
        return torch.minimum(a, b)

    @staticmethod
    def floor(a: Tensor) -> Tensor:
        return torch.floor(a)

    @staticmethod
    def sqrt(a: Tensor) -> Tensor:
        return torch.sqrt(a)

    @staticmethod
    def isfinite(a: Tensor) -> Tensor:
        return torch.isfinite(a)

    @staticmethod
    def frexp(a: Tensor) -> tuple[Tensor, Tensor]:
        m, e = torch.frexp(a)
        return m, e.to(torch.int64)

    @staticmethod
    def ldexp(x: Tensor, n: Any) -> Tensor:
        """``x * 2**n`` by exact powers of two (built from their bits; ``torch.ldexp`` goes through
        ``pow`` in the default dtype).  One rounding whenever ``n >= -1022``."""
        n = torch.as_tensor(n, device=x.device).to(torch.int64)
        out = x
        for _ in range(3):  # 2**n as up to three normal powers (|n| <= 3066 covers every float64 case)
            step = n.clamp(-1022, 1023)
            out = out * ((step + 1023) << 52).view(_F64)
            n = n - step
        return out

    @staticmethod
    def stack(arrays: list[Tensor], axis: int = -1) -> Tensor:
        return torch.stack(arrays, dim=axis)

    @staticmethod
    def all(a: Tensor, axis: Any) -> Tensor:
        if isinstance(axis, tuple):
            return a.flatten(axis[0], axis[-1]).all(axis[0])
        return a.all(axis)

    @staticmethod
    def amax(a: Tensor, axis: Any) -> Tensor:
        return a.amax(dim=axis)

    @staticmethod
    def argmax(a: Tensor, axis: int) -> Tensor:
        return torch.argmax(a, dim=axis)  # first maximum, as numpy

    @staticmethod
    def copy(a: Tensor) -> Tensor:
        return a.clone()

    @staticmethod
    def setdiff(a: Tensor, b: Tensor) -> Tensor:
        return a[~torch.isin(a, b)]

    def to_int(self, a: Tensor, kind: str = "i") -> Tensor:
        return a.to(self._DTYPES[kind])

    @staticmethod
    def errstate() -> Any:
        return contextlib.nullcontext()



# --------------------------------------------------------------------------- device backend
class _DevState(NamedTuple):
    """The whole batch's state between fixed-size steps (first axis: lattice; nothing is ever dropped)."""

    x: Tensor  # normalised input (n, 3, 3) and its Veltkamp halves, row norms
    h: Tensor
    lo: Tensor
    nl: Tensor
    t: Tensor  # float64 integer transform
    r: Tensor  # rows of t @ x
    g: Tensor  # their Gram matrix
    sv: Tensor  # Brent's saved transform
    power: Tensor
    lam: Tensor
    n_pre: Tensor
    n_kg: Tensor
    extra: Tensor  # 1 where a shear made a row vanish (counted as an iteration, as the other paths)
    accurate: Tensor
    pre: Tensor
    v_used: Tensor
    e: Tensor
    active: Tensor
    status: Tensor


def _dot3(a: Tensor, b: Tensor) -> Tensor:
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def _take_row(m: Tensor, i: Tensor) -> Tensor:
    """Row ``i[n]`` of each ``m[n]`` (``(n, 3, 3)`` -> ``(n, 3)``), by gather: no host synchronisation."""
    return m.gather(1, i[:, None, None].expand(-1, 1, 3))[:, 0]


def _put_row(m: Tensor, where: Tensor, i: Tensor, row: Tensor) -> Tensor:
    """``m`` with row ``i[n]`` replaced by ``row[n]`` where ``where[n]``."""
    sel = where[:, None] & (torch.arange(3, device=m.device)[None, :] == i[:, None])
    return torch.where(sel[:, :, None], row[:, None, :], m)


def _plain_and_need(tr: Tensor, x: Tensor, nl: Tensor) -> tuple[Tensor, Tensor]:
    """Row ``tr @ x`` in plain float64 and whether it cancels too much for it (``_batch._rows``).

    The three entries at once, each with the elementwise operations (and their order) of
    ``_batch._rows``, so the rounding is the same.
    """
    t0, t1, t2 = tr[:, 0:1], tr[:, 1:2], tr[:, 2:3]
    r = t0 * x[:, 0] + t1 * x[:, 1] + t2 * x[:, 2]
    sz = abs(tr[:, 0]) * nl[:, 0] + abs(tr[:, 1]) * nl[:, 1] + abs(tr[:, 2]) * nl[:, 2]
    r0, r1, r2 = r[:, 0], r[:, 1], r[:, 2]
    return r, sz * sz > CANCEL_RATIO_SQ * (r0 * r0 + r1 * r1 + r2 * r2)


def _dot2_rows(tr: Tensor, x: Tensor, h: Tensor, lo: Tensor) -> Tensor:
    """Dot2 rows ``tr @ x`` for ``tr`` of shape ``(n, 3)`` (one row) or ``(n, 3, 3)`` (all three).

    One elementwise :func:`~latticesym.reduce._accurate.dot2` over every entry at once: the same
    operations per entry as the scalar and batch paths, so the same bits.
    """
    if tr.ndim == 2:
        t0, t1, t2 = tr[:, 0:1], tr[:, 1:2], tr[:, 2:3]
        xs = [x[:, i] for i in range(3)]
        hs = [h[:, i] for i in range(3)]
        ls = [lo[:, i] for i in range(3)]
    else:
        t0, t1, t2 = tr[:, :, 0:1], tr[:, :, 1:2], tr[:, :, 2:3]
        xs = [x[:, i:i + 1] for i in range(3)]
        hs = [h[:, i:i + 1] for i in range(3)]
        ls = [lo[:, i:i + 1] for i in range(3)]
    return dot2(t0, t1, t2, xs[0], hs[0], ls[0], xs[1], hs[1], ls[1], xs[2], hs[2], ls[2])


def _row_of(tr: Tensor, accurate: Tensor, s: _DevState) -> Tensor:
    """``FloatContext.row``: Dot2 where ``accurate`` or where the plain row cancels, else plain."""
    plain, need = _plain_and_need(tr, s.x, s.nl)
    return torch.where((need | accurate)[:, None], _dot2_rows(tr, s.x, s.h, s.lo), plain)


def _gram_full(r: Tensor) -> Tensor:
    """``r r^T`` entry by entry as ``_batch._gram_row`` (exactly symmetric: the products commute)."""
    a, b = r[:, :, None, :], r[:, None, :, :]
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def _gram_put_row(g: Tensor, r: Tensor, where: Tensor, i: Tensor) -> Tensor:
    """``g`` with row and column ``i[n]`` recomputed from the rows ``r`` where ``where[n]`` (``_batch._gram_row``)."""
    d = _dot3(_take_row(r, i)[:, None, :], r)  # d_k = r_i . r_k
    sel = where[:, None] & (torch.arange(3, device=g.device)[None, :] == i[:, None])
    return torch.where(sel[:, :, None], d[:, None, :], torch.where(sel[:, None, :], d[:, :, None], g))


def _dev_start(x: Tensor, h: Tensor, lo: Tensor, nl: Tensor, eps: float) -> _DevState:
    """First rows, Gram matrix, tolerance and phase of every lattice (the set-up of ``_batch.reduce_batch``)."""
    n, dev = x.shape[0], x.device
    t = torch.eye(3, dtype=_F64, device=dev).expand(n, 3, 3).clone()
    zf = torch.zeros(n, dtype=_F64, device=dev)
    zi = torch.zeros(n, dtype=torch.int64, device=dev)
    no = torch.zeros(n, dtype=torch.bool, device=dev)
    s = _DevState(x, h, lo, nl, t, t, t, t, zi + 1, zi, zi, zi, zi, no, no, zf, zf, ~no, zi + _kg.OK)
    r = torch.stack([_row_of(t[:, i], no, s) for i in range(3)], -2)
    g = _gram_full(r)
    bad = ~((g[:, 0, 0] > 0) & (g[:, 1, 1] > 0) & (g[:, 2, 2] > 0))
    v_used = _batch._volume(r)[0]
    e = torch.where(bad, float("nan"), _batch._tol(v_used, eps, TorchOps))
    code = _kg.kg_decide_fast(*_batch._g6_args(g), zf, zf, zf, zf, zf, zf, e, 0.0)[0]
    return s._replace(r=r, g=g, v_used=v_used, e=e, pre=code != _kg.REDUCED, active=~bad,
                      status=torch.where(bad, _kg.PRECISION, s.status))


_SWAPS = ((_kg.A1, [1, 0, 2]), (_kg.A2, [0, 2, 1]))


def _dev_step(s: _DevState, eps: float, max_iter: int, skip: int = 0) -> _DevState:
    """One step of every running lattice, branch-free: the pass of ``_batch.reduce_batch`` on masks.

    Every lattice takes the step its own state selects (a pre-reduction shear, a certification,
    a Krivy-Gruber step) through ``torch.where``; finished lattices are masked and keep their
    state.  No value is read into Python, so the step runs without a host synchronisation (and
    traces under ``torch.compile`` in one graph).
    """
    n, dev = s.t.shape[0], s.t.device
    pi = torch.tensor([p[0] for p in _kg.PRE_PAIRS], device=dev)
    pj = torch.tensor([p[1] for p in _kg.PRE_PAIRS], device=dev)
    act = s.active
    pre0, kg0 = act & s.pre, act & ~s.pre
    t, r, g = s.t, s.r, s.g
    acc_rows = _dot2_rows(t, s.x, s.h, s.lo)

    # ---- phase 1: pre-reduction, greedy on the largest relative decrease
    gij, gjj = g[:, pi, pj], g[:, pj, pj]
    y = gij / gjj
    q = torch.floor(abs(y) + 0.5)
    q = torch.where(y < 0, -q, q)
    dec = (2 * q * gij - q * q * gjj) / g[:, pi, pi]
    k = torch.argmax(dec, 1)
    best = dec.gather(1, k[:, None])[:, 0]
    stop = pre0 & ~(best > _kg.PRE_TAU)
    go = pre0 & ~stop
    over = go & (s.n_pre >= max_iter)
    go = go & ~over
    bi, bj, bq = pi[k], pj[k], q.gather(1, k[:, None])[:, 0]
    ti, tj = _take_row(t, bi), _take_row(t, bj)
    ovf = go & ~(abs(ti) + abs(bq)[:, None] * abs(tj) <= MAX_TRANSFORM).all(1)
    go = go & ~ovf
    new_pre = ti - bq[:, None] * tj

    # ---- phase 2: the step decision on g and the certifying decision on g_c (accurate rows for the
    # lattices no step changes), in one call of kg_decide on both halves.  kg_decide's code does not
    # depend on the error bounds (fl(y - e - x) > 0 iff x < y - e in IEEE arithmetic), so the first
    # half is kg_decide_fast's decision bit for bit.
    c_maybe = kg0 & ~s.accurate
    g_acc = _gram_full(acc_rows)
    one = 1.0 + 8.0 * UNIT_ROUNDOFF
    nl = s.nl
    sz = [abs(t[:, i, 0]) * nl[:, 0] + abs(t[:, i, 1]) * nl[:, 1] + abs(t[:, i, 2]) * nl[:, 2] for i in range(3)]

    def bounds(gm: Tensor) -> tuple[Tensor, ...]:
        return _kg.g6_error_bounds(torch.sqrt(gm[:, 0, 0]) * one, torch.sqrt(gm[:, 1, 1]) * one,
                                   torch.sqrt(gm[:, 2, 2]) * one, sz[0], sz[1], sz[2], UNIT_ROUNDOFF, FLOAT_TINY)

    g_both = torch.cat([g, torch.where(c_maybe[:, None, None], g_acc, g)])
    d_half = bounds(g_both[n:])
    d = [torch.cat([v, v]) for v in d_half]
    ga = _batch._g6_args(g_both)
    code_b, unsure_b, si, sj, sk = _kg.kg_decide(ga[0], ga[1], ga[2], ga[3], ga[4], ga[5], d[0], d[1], d[2], d[3],
                                                 d[4], d[5], torch.cat([s.e, s.e]), UNIT_ROUNDOFF, skip)
    code, code2 = code_b[:n], code_b[n:]
    unsure = torch.broadcast_to(torch.as_tensor(unsure_b, device=dev), code_b.shape)[n:]
    si, sj, sk = (torch.broadcast_to(torch.as_tensor(v, device=dev), code_b.shape)[:n].to(_F64) for v in (si, sj, sk))
    c = kg0 & (code == _kg.REDUCED)
    fast = c & ~s.accurate
    r_c = torch.where(fast[:, None, None], acc_rows, r)
    g_c = torch.where(fast[:, None, None], g_acc, g)
    v_fin, reliable = _batch._volume(r_c)
    unrel = c & ~reliable
    incons = c & reliable & (abs(v_fin - s.v_used) > _kg.VOLUME_RTOL * v_fin)
    cc = c & reliable & ~incons
    moved = code2 != _kg.REDUCED
    fail = cc & moved & s.accurate
    redo = cc & moved & ~s.accurate
    cert_unsure = cc & ~moved & unsure
    cert_ok = cc & ~moved & ~unsure

    # ---- phase 2: one Krivy-Gruber step for the others
    act2 = kg0 & (code != _kg.REDUCED)
    capped = act2 & (s.n_kg >= max_iter)
    act2 = act2 & ~capped
    t1, r1, g1 = t, r_c, g_c
    for swap_code, perm in _SWAPS:  # A1 swaps a, b; A2 swaps b, c; all three rows negated (det +1)
        m = (act2 & (code == swap_code))[:, None, None]
        t1 = torch.where(m, 0.0 - t1[:, perm], t1)  # 0 - v: canonical +0.0 in the transform
        r1 = torch.where(m, -r1[:, perm], r1)
        g1 = torch.where(m, g1[:, perm][:, :, perm], g1)
    m34 = (act2 & ((code == _kg.A3) | (code == _kg.A4)))[:, None, None]
    sg = torch.stack([si, sj, sk], -1)
    t1 = torch.where(m34, sg[:, :, None] * t1 + 0.0, t1)
    r1 = torch.where(m34, sg[:, :, None] * r1, r1)
    g1 = torch.where(m34, (sg[:, :, None] * sg[:, None, :]) * g1, g1)
    shear = act2 & (code >= _kg.A5)
    ri = torch.where(code == _kg.A7, 1, 2)
    rj = torch.where(code == _kg.A5, 1, 0)
    a8 = code == _kg.A8
    ar = torch.arange(n, device=dev)
    y = g[ar, ri, rj] / g[ar, rj, rj]
    q = torch.floor(abs(y) + 0.5)
    q = torch.where(y < 0, -q, q)
    q = torch.where(q == 0, si, q)
    ti, tj = _take_row(t, ri), _take_row(t, rj)
    fits = torch.where(a8, (abs(t[:, 2]) + abs(t[:, 0]) + abs(t[:, 1]) <= MAX_TRANSFORM).all(1),
                       (abs(ti) + abs(q)[:, None] * abs(tj) <= MAX_TRANSFORM).all(1))
    ovf2 = shear & ~fits
    shear = shear & fits
    new_sh = torch.where(a8[:, None], t[:, 2] + t[:, 0] + t[:, 1], ti - q[:, None] * tj)

    # ---- the one row that a shear (of either phase) changes
    moves = go | shear
    row_i = torch.where(go, bi, ri)
    t1 = _put_row(t1, moves, row_i, torch.where(go[:, None], new_pre, new_sh))
    r1 = _put_row(r1, moves, row_i, _row_of(_take_row(t1, row_i), s.accurate, s))
    g1 = _gram_put_row(g1, r1, moves, row_i)
    nonpos = moves & ~(g1.diagonal(0, 1, 2).gather(1, row_i[:, None])[:, 0] > 0)

    # ---- end of the pre-reduction: tolerance from accurate rows, Brent's cycle detection restarts
    v_stop = _batch._volume(acc_rows)[0]
    v_new = torch.where(incons, v_fin, v_stop)
    e_new = _batch._tol(v_new, eps, TorchOps)
    renew = stop | incons
    restart = stop | redo
    stepped = act2 & ~ovf2 & ~(nonpos & shear)
    n_kg = s.n_kg + stepped
    same = stepped & (t1 == s.sv).all(2).all(1)
    w = stepped & ~same
    lam = s.lam + w
    save = w & (lam == s.power)
    sv = torch.where(save[:, None, None] | restart[:, None, None], t1, s.sv)
    power = torch.where(restart, 1, torch.where(save, 2 * s.power, s.power))
    lam = torch.where(restart | save, 0, lam)

    status = s.status
    for done, st in ((over | capped, _kg.NOT_CONVERGED), (ovf | ovf2, _kg.OVERFLOW),
                     (nonpos | unrel | fail | cert_unsure, _kg.PRECISION), (cert_ok, _kg.OK), (same, _kg.CYCLE)):
        status = torch.where(done, st, status)
    finished = over | capped | ovf | ovf2 | nonpos | unrel | fail | cert_unsure | cert_ok | same
    return s._replace(
        t=t1, r=r1, g=g1, sv=sv, power=power, lam=lam, n_pre=s.n_pre + go, n_kg=n_kg,
        extra=s.extra + (nonpos & shear), accurate=s.accurate | incons | redo, pre=s.pre & ~stop,
        v_used=torch.where(renew, v_new, s.v_used), e=torch.where(renew, e_new, s.e),
        active=act & ~finished, status=status,
    )


#: Steps between two convergence checks of the device backend (one host synchronisation each).
CHECK_EVERY = 8


def step_bound(max_iter: int) -> int:
    """Fixed-size steps after which every lattice of the device backend has finished.

    A lattice spends at most ``max_iter + 1`` steps in the pre-reduction (at most ``max_iter``
    shears, then the step that ends it or finds the cap), at most ``max_iter`` Krivy-Gruber
    steps, and certification steps.  A certification step that does not finish the lattice
    either recomputes the tolerance from accurate rows or switches to accurate rows; after
    either, the rows are accurate and the tolerance agrees with them, so the next certification
    with the same transform finishes the lattice.  Hence at most one non-finishing certification
    precedes each Krivy-Gruber step and one the final certification: at most ``max_iter + 1``,
    plus the finishing step.  In all ``3 max_iter + 3``; the cap is ``3 max_iter + 4``.  The
    backend stops there and flags what is still running as not converged (never reached when
    the bound holds: with ``max_iter`` 1, 2, 5 the results equal the batch path's; tested).
    """
    return 3 * max_iter + 4


_CONSTANT_FIELDS = frozenset(("x", "h", "lo", "nl"))


def _scatter_state(full: _DevState, ids: Tensor | None, part: _DevState) -> _DevState:
    """``full`` with the rows ``ids`` replaced by the working set ``part`` (``ids is None``: all rows)."""
    if ids is None:
        return part
    return full._replace(**{f: getattr(full, f).index_copy(0, ids, getattr(part, f))
                            for f in _DevState._fields if f not in _CONSTANT_FIELDS})


def _reduce_device(flat: Tensor, eps: float, max_iter: int, *, skip: int = 0, check_every: int = CHECK_EVERY,
                   max_steps: int | None = None, step: Any = None, compact: bool = True
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor, int, int]:
    """Device backend on a flat float64 batch: ``t`` (float64), G6, status, iterations, syncs, steps.

    Fixed-size masked steps (:func:`_dev_step`) for the whole batch, ``check_every`` of them
    between two convergence checks.  Each check is the call's only read of device data into
    Python (the indices of the running lattices, ``torch.nonzero``), so a call makes
    ``ceil(steps / check_every)`` host synchronisations.  With ``compact`` the working set is cut
    to the running lattices at a check once at most half of it is still running (the read is the
    same one, so no extra synchronisation; the step sees a new shape at most
    ``log2(n)`` times: leave ``compact`` off for a step compiled with static shapes).
    """
    if isinstance(check_every, bool) or not isinstance(check_every, numbers.Integral) or check_every < 1:
        raise OptionError(f"check_every must be an int >= 1, got {check_every!r}")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, numbers.Integral)):
        raise OptionError(f"max_steps must be an int >= 1 or None, got {max_steps!r}")
    cap = step_bound(max_iter) if max_steps is None else int(max_steps)
    if cap < 1:
        raise OptionError(f"max_steps must be >= 1, got {max_steps}")
    n, dev = flat.shape[0], flat.device
    eye = torch.eye(3, dtype=_F64, device=dev).expand(n, 3, 3)
    finite = torch.isfinite(flat).all(-1).all(-1)
    src = torch.where(finite[:, None, None], flat, eye)
    x, h, lo, nl, k = _batch.prepare(src, TorchOps(dev))
    full = s = _dev_start(x, h, lo, nl, eps)
    ids: Tensor | None = None  # rows of ``full`` that the working set ``s`` holds (None: all, in order)
    run = step if step is not None else _dev_step
    steps = syncs = 0
    while steps < cap:
        for _ in range(min(check_every, cap - steps)):
            s = run(s, eps, max_iter, skip)
            steps += 1
        syncs += 1
        running = torch.nonzero(s.active).flatten()  # the check: the call's only host synchronisation
        if running.numel() == 0:
            break
        if compact and 2 * running.numel() <= s.t.shape[0]:
            full = _scatter_state(full, ids, s)
            ids = running if ids is None else ids[running]
            s = _DevState(*(f[running] for f in s))
    s = _scatter_state(full, ids, s)
    status = torch.where(s.active, _kg.NOT_CONVERGED, s.status)  # over the step cap: flagged, never silent
    g6n = torch.stack([s.g[:, 0, 0], s.g[:, 1, 1], s.g[:, 2, 2], 2 * s.g[:, 1, 2], 2 * s.g[:, 0, 2],
                       2 * s.g[:, 0, 1]], -1)
    t, _, g6, st, it, _ = _batch.finalize(s.t, s.r, g6n, status, s.n_pre + s.n_kg + s.extra, s.e, k, TorchOps(dev))
    g6 = torch.where(finite[:, None], g6, float("nan"))
    st = torch.where(finite, st.to(torch.int64), _kg.NONFINITE)
    it = torch.where(finite, it, 0)
    return t.to(_F64), g6, st, it, syncs, steps


def _cannot_start(flat: Tensor) -> Tensor:
    """Non-finite, singular or numerically singular lattices: ``|det| <= 64 eps |a| |b| |c|``.

    Where such a lattice is not certified, the transform reported is the identity (not the partial
    transform the reducer reached before it found a zero-length vector).
    """
    finite = torch.isfinite(flat).all(-1).all(-1)
    x = torch.where(finite[:, None, None], flat, torch.ones_like(flat))
    vol = _det3(x).abs()
    lengths = torch.linalg.vector_norm(x, dim=-1).prod(-1)
    return ~finite | ~(vol > 1e-300) | ~(vol > 64 * torch.finfo(_F64).eps * lengths)


_BACKENDS = ("auto", "device", "torch", "numba")
#: Batches at least this large use the parallel compiled kernel (as :func:`latticesym.niggli_reduce`).
_PARALLEL_FROM = 4096


def _reduce_core(
    flat: Tensor, *, eps: float, max_iter: int, backend: str, check_every: int = CHECK_EVERY
) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """Reduce a flat float64 batch ``(n, 3, 3)`` (no autograd): ``T`` (float64), G6, iterations, ok, syncs.

    ``T`` is always a finite integer-valued matrix with ``det == +1``: the transform reached (the
    certified one where ``ok``), the identity where the lattice could not be reduced at all.
    """
    eps, max_iter = _check_eps(eps), _check_max_iter(max_iter)
    if not isinstance(backend, str) or backend not in _BACKENDS:
        raise OptionError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    n = flat.shape[0]
    if n == 0:
        z = flat.new_zeros(0, dtype=torch.int64)
        return flat.new_zeros(0, 3, 3), flat.new_zeros(0, 6), z, z.bool(), 0
    if backend == "numba" and not _reduce_numba.available():
        raise ImportError("backend='numba' needs numba (the 'fast' extra)")
    if backend == "auto" and not _reduce_numba.available():
        backend = "torch" if flat.device.type == "cpu" else "device"
    if backend == "numba" or backend == "auto":
        from latticesym.reduce._api import output_arrays

        src = np.ascontiguousarray(flat.detach().cpu().numpy(), dtype=np.float64)
        t, _, g6, st, it, _ = arrays = output_arrays(n)
        if n >= _PARALLEL_FROM:
            # numba's OpenMP layer shares the runtime with torch and leaves the calling thread's OpenMP
            # thread count at numba's (measured: torch.get_num_threads() 1 -> 2 after one call), so a user's
            # torch.set_num_threads(1) would silently stop holding: every later torch op ran on 2 threads,
            # costing 2x CPU time for the same wall time.  Restored here (the guard the numpy API uses too).
            with _keep_torch_threads():
                _reduce_numba.kernel("parallel")(src, float(eps), int(max_iter), 0, *arrays)
        else:
            _reduce_numba.kernel("serial")(src, float(eps), int(max_iter), 0, *arrays)
        failed = np.flatnonzero(st != _kg.OK)
        if failed.size:
            reset = failed[_cannot_start(torch.from_numpy(src[failed])).numpy()]
            t[reset] = np.eye(3, dtype=np.int64)
        T, g6_t, it_t, st_t = (torch.from_numpy(a).to(flat.device) for a in (t.astype(np.float64), g6, it, st))
        ok = st_t == _kg.OK
        return T, g6_t, it_t, ok, 0 if flat.device.type == "cpu" else 1
    if backend == "device":
        t_dev, g6_t, st_t, it_t, syncs, _ = _reduce_device(flat, float(eps), int(max_iter), check_every=check_every)
        ok = st_t == _kg.OK
        reset = ~ok & _cannot_start(flat)
        T = torch.where(reset[:, None, None], torch.eye(3, dtype=_F64, device=flat.device), t_dev)
        return T, g6_t, it_t, ok, syncs
    ops = TorchOps(flat.device)
    t, _, g6_t, st_t, it_t, _ = _batch.reduce_raw(flat, float(eps), int(max_iter), 0, ops)
    ok = st_t == _kg.OK
    reset = ~ok & _cannot_start(flat)
    T = torch.where(reset[:, None, None], torch.eye(3, dtype=_F64, device=t.device), t.to(_F64))
    return T, g6_t, it_t, ok, ops.syncs


def _apply(T: Tensor, lattice: Tensor) -> Tensor:
    """``T @ lattice`` formed in float64 and rounded once to the input's dtype (float64 for integer
    input), differentiable in ``lattice``.

    The product in a narrower dtype fails on valid input (fuzz findings, issue 13): float16 and
    bfloat16 hold integers exactly only up to 2048 resp. 256 and float16 overflows at 65504,
    while the transforms of sheared cells reach 1e5-1e6 (inf and NaN rows); float32 cells near
    its largest value (3.4e38) overflow in the intermediate sums although the reduced cell, whose
    rows are shorter, is representable; and a dot product of three terms rounded in float16 errs
    by up to :math:`3u\\,|T|\\,|L|` with :math:`u = 2^{-11}`.  In float64 the transform is exact
    (below :math:`2^{53}`), the product errs by at most :math:`3 \\cdot 2^{-53} |T||L|`, and the one
    final rounding adds :math:`u\\,|T L|`.  A reduced cell beyond the dtype's range becomes inf
    (flagged by :func:`niggli_reduce_info`, a typed error in :func:`niggli_reduce`).
    """
    x = lattice if lattice.dtype == _F64 else lattice.to(_F64)
    t = T.to(_F64)
    plain = t @ x
    exact = _accurate_matmul(t, x.detach())
    # the value of Dot2 (faithful unless the cancellation ratio passes ~1e16), the gradient of T @ L
    # (``value - 0.0`` keeps every bit); non-finite entries (NaN input, |L| > 2**996) keep the plain product
    out = torch.where(torch.isfinite(exact), exact, plain.detach()) - (plain.detach() - plain)
    return out.to(lattice.dtype) if lattice.is_floating_point() else out


def _accurate_matmul(t: Tensor, x: Tensor) -> Tensor:
    r"""``t @ x`` in float64 with every entry computed by Dot2 (Ogita, Rump & Oishi 2005).

    The same error-free transformations as :func:`latticesym.reduce._accurate.accurate_matmul` (the
    numpy reducer's reduced cell), on tensors: :math:`|\mathrm{dot2}(t, x) - t^T x| \le u |t^T x| +
    \gamma_3^2 |t|^T |x|`.  A plain product of a sheared cell's transform (entries near 1e11) with its
    basis (entries near 1e6) loses every digit of the short reduced vectors (fuzz finding, issue 13:
    a zero row in place of a vector of length 2.3).
    """
    t, x = torch.broadcast_tensors(t, x)
    shape = x.shape
    x = x.reshape(-1, 3, 3)
    c = 134217729.0 * x  # Veltkamp split, as latticesym.reduce._accurate.split
    h = c - (c - x)
    return _dot2_rows(t.reshape(-1, 3, 3), x, h, x - h).reshape(shape)


def _int_matmul(t: Tensor, x: Tensor) -> Tensor:
    r"""``t @ x`` for an integer-valued float64 ``t`` (entries below :math:`2^{53}`), without autograd.

    Every entry by Dot2 (:func:`_accurate_matmul`); where that is not finite (a non-finite input, or
    an entry past :math:`2^{996}` whose Veltkamp split overflows) the plain product
    :math:`\sum_j t_{ij} x_{jk}`, summed left to right as the compiled kernels do
    (``latticesym.torch._gram_search._imatmul3`` is the same operation, bit for bit).  The
    transforms of sheared and near-singular cells have entries past :math:`10^{12}` and a plain
    ``N @ L`` then cancels to nothing (fuzz finding, issue 13: a reduced target of zeros).
    """
    from latticesym.torch._gram_search import _mm3  # the kernels' order of the plain sums

    exact = _accurate_matmul(t, x)
    return torch.where(torch.isfinite(exact), exact, _mm3(t, x))


def niggli_reduce_info(
    lattice: Tensor,
    *,
    eps: float = 1e-5,
    max_iter: int = 1000,
    backend: str = "auto",
    check_every: int = CHECK_EVERY,
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
        T, g6, iters, ok, syncs = _reduce_core(flat, eps=eps, max_iter=max_iter, backend=backend,
                                               check_every=check_every)
    transform = T.to(torch.int64).reshape(*shape, 3, 3)
    reduced = _apply(T.reshape(*shape, 3, 3), lattice)
    if lattice.dtype != _F64:  # a reduced cell beyond the input dtype's range is not a result
        ok = ok & torch.isfinite(reduced.detach()).reshape(-1, 9).all(-1)
    return TorchNiggliResult(reduced, transform, g6.reshape(*shape, 6), iters.reshape(shape), ok.reshape(shape), syncs)


def niggli_reduce(
    lattice: Tensor,
    *,
    eps: float = 1e-5,
    max_iter: int = 1000,
    precision: str = "auto",
    backend: str = "auto",
    check_every: int = CHECK_EVERY,
) -> tuple[Tensor, Tensor]:
    """Niggli-reduce a batch of lattices: ``reduced, transform = niggli_reduce(L)``.

    Parameters
    ----------
    lattice : Tensor, shape ``(..., 3, 3)``
        Rows are basis vectors (Angstrom).  float16, bfloat16, float32 or float64 (integer
        tensors are read as float64), on any device.  Decisions are taken in float64 in every case.
    eps : float
        Relative tolerance: comparisons use :math:`e = \\epsilon\\,|\\det L|^{2/3}` (Å²), capped at
        ``A / 16`` (``docs/algorithm.md``), so the result does not depend on the cell's scale.
        ``eps = 0`` compares exactly (lattices on a boundary then need escalation).
    max_iter : int
        Cap on the Krivy-Gruber steps (and, separately, on the pre-reduction steps).
    backend : {"auto", "device", "torch", "numba"}
        ``"numba"``: latticesym's compiled kernel (:mod:`latticesym.reduce._numba`), on the host
        (one host synchronisation for CUDA tensors).  ``"device"``: fixed-size masked steps of the
        whole batch on the tensor's device, ``ceil(steps / check_every)`` host synchronisations
        (for a GPU training step and ``torch.compile``).  ``"torch"``: the reducer's vectorised
        batch with a shrinking working set (many synchronisations).  ``"auto"``: numba when it is
        installed, else ``"torch"`` on CPU and ``"device"`` elsewhere.  All give identical results.
    check_every : int
        ``backend="device"`` only: fixed-size steps between two convergence checks (each check is
        one host synchronisation; a larger value syncs less and may run up to ``check_every - 1``
        steps after the last lattice has finished; the steps of finished lattices are no-ops).
    precision : {"auto", "float"}
        What to do with lattices whose float64 result cannot be certified (near-singular cells,
        transforms beyond :math:`2^{52}`, iteration cap): ``"auto"`` re-runs them with the numpy
        reducer :func:`latticesym.niggli_reduce` (which escalates to mpmath and the exact oracle);
        ``"float"`` raises.

    Returns
    -------
    reduced : Tensor, shape ``(..., 3, 3)``
        ``transform @ lattice`` (formed in float64, rounded once to the input dtype), same dtype
        and device, differentiable in the input with the transform held constant.
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
    if not isinstance(precision, str) or precision not in ("auto", "float"):
        raise OptionError(f"precision must be 'auto' or 'float', got {precision!r}")
    info = niggli_reduce_info(lattice, eps=eps, max_iter=max_iter, backend=backend, check_every=check_every)
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
    lat_np = info.lattice.detach().reshape(-1, 3, 3).to(device="cpu", dtype=_F64).numpy()
    for i in (int(j) for j in bad):
        L_i = flat_np[i]
        err: LatticeError | None = None
        if not np.all(np.isfinite(L_i)):
            err = NonFiniteLatticeError(f"lattice {_index(i, shape)} has non-finite entries: {L_i.tolist()}")
        elif precision == "float" and not np.all(np.isfinite(lat_np[i])):
            err = _unrepresentable(_index(i, shape), info.transform.reshape(-1, 3, 3)[i].cpu().numpy(), L_i,
                                   lattice.dtype)
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
            else:  # the certified transform: does the reduced cell fit the input dtype?
                row = _apply(transform[i].cpu(), lattice.detach().reshape(-1, 3, 3)[i].cpu())
                if not bool(torch.isfinite(row).all()):
                    err = _unrepresentable(_index(i, shape), transform[i].cpu().numpy(), L_i, lattice.dtype)
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
    return _apply(transform, lattice), transform


def _unrepresentable(index: tuple[int, ...], transform: np.ndarray, lattice: np.ndarray, dtype: torch.dtype
                     ) -> PrecisionError:
    """The reduced cell does not fit the input dtype (its largest entry is above the dtype's maximum)."""
    prod = transform.astype(np.float64) @ lattice
    top = float(torch.finfo(dtype).max) if dtype.is_floating_point else float("inf")
    return PrecisionError(
        f"lattice {index}: the reduced cell is not representable in {dtype}: largest |entry| "
        f"{float(np.abs(prod).max()):.6g} > {top:.6g} (reduced rows {prod.tolist()}, transform "
        f"{transform.astype(np.int64).tolist()}); reduce it in a wider dtype"
    )


def _host_transform(lattice: np.ndarray, eps: float) -> np.ndarray:
    """Transform of one lattice from the numpy reducer with ``precision="auto"`` (it escalates to mpmath
    and the exact oracle where float64 cannot decide)."""
    from latticesym.reduce import niggli_reduce as numpy_reduce

    return np.array(numpy_reduce(lattice, eps=eps).transform, dtype=np.int64).reshape(3, 3)


def _index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(x) for x in np.unravel_index(int(flat), shape)) if shape else ()


def is_niggli_reduced(lattice: Tensor, *, eps: float = 1e-5) -> Tensor:
    """Boolean tensor: does no Krivy-Gruber step apply to the lattice (within ``e``)?

    The reducer's own first decision (:func:`latticesym.reduce._kg.kg_decide` on the G6 of the
    normalised input, ``e = eps V^(2/3)`` capped at ``A / 16``), on the tensor's device: a lattice is
    reduced iff the reducer would take no step.  Non-finite and singular lattices are not reduced.

    Examples
    --------
    >>> is_niggli_reduced(torch.eye(3)).item()
    True
    >>> is_niggli_reduced(torch.tensor([[2.0, 0, 0], [0, 1, 0], [0, 0, 3]])).item()  # A > B
    False
    """
    flat = _as_batch(lattice)
    eps = _check_eps(eps)
    with torch.no_grad():
        ops = TorchOps(flat.device)
        finite = torch.isfinite(flat).all(-1).all(-1)
        x, _, _, _, k = _batch.prepare(torch.where(finite[:, None, None], flat, torch.ones_like(flat)), ops)
        g = [[x[:, i, 0] * x[:, j, 0] + x[:, i, 1] * x[:, j, 1] + x[:, i, 2] * x[:, j, 2] for j in range(3)]
             for i in range(3)]
        det, _ = det3_with_bound(*(x[:, i, j] for i in range(3) for j in range(3)))
        e = _batch._tol(det.abs(), eps, ops)
        zero = torch.zeros_like(e)
        code = _kg.kg_decide_fast(g[0][0], g[1][1], g[2][2], 2 * g[1][2], 2 * g[0][2], 2 * g[0][1],
                                  zero, zero, zero, zero, zero, zero, e, 0.0)[0]
        out = finite & (k != _batch.NO_SCALE) & ~_cannot_start(flat) & (code == _kg.REDUCED)
    return out.reshape(lattice.shape[:-2])
