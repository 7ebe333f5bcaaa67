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
results back: one host synchronisation per call.  ``"torch"``: the batch on the tensor's own
device, no per-lattice Python loop; finished lattices leave the working set, which costs a host
synchronisation at every data-dependent branch: :attr:`TorchNiggliResult.syncs` counts the
explicit reads (``any`` / ``nonzero``: 10-30 per pass, a pass being one step of every lattice still
running, 5-30 passes for typical batches; on CUDA, indexing with a boolean mask synchronises as
well).  ``"auto"`` (default): numba when it is installed, whatever the device (one
synchronisation and no kernel launches), else torch.

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
from typing import Any, ClassVar, NamedTuple

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
from latticesym.reduce import _batch, _kg
from latticesym.reduce import _numba as _reduce_numba
from latticesym.reduce._accurate import det3_with_bound

__all__ = [
    "TorchNiggliResult",
    "TorchOps",
    "gram",
    "is_niggli_reduced",
    "niggli_reduce",
    "niggli_reduce_info",
    "unimodular_inverse",
]

_F64 = torch.float64


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
        G6 of the reduced basis (float64, from rows computed accurately from the input and the
        transform: the G6 :func:`latticesym.niggli_reduce` reports); NaN for non-finite input.
    iterations : Tensor, shape ``S``, int64
        Pre-reduction steps plus Krivy-Gruber steps.
    ok : Tensor, shape ``S``, bool
        Certified result.  Where ``False`` (non-finite, singular or undecidable in float64, or
        over the iteration cap) the transform is the best unimodular one reached (identity for
        non-finite, singular or numerically singular input) and the lattice is not guaranteed
        reduced.
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


_BACKENDS = ("auto", "torch", "numba")
#: Batches at least this large use the parallel compiled kernel (as :func:`latticesym.niggli_reduce`).
_PARALLEL_FROM = 4096


def _reduce_core(
    flat: Tensor, *, eps: float, max_iter: int, backend: str
) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """Reduce a flat float64 batch ``(n, 3, 3)`` (no autograd): ``T`` (float64), G6, iterations, ok, syncs.

    ``T`` is always a finite integer-valued matrix with ``det == +1``: the transform reached (the
    certified one where ``ok``), the identity where the lattice could not be reduced at all.
    """
    if not (eps >= 0):
        raise ValueError(f"eps must be >= 0, got {eps}")
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    n = flat.shape[0]
    if n == 0:
        z = flat.new_zeros(0, dtype=torch.int64)
        return flat.new_zeros(0, 3, 3), flat.new_zeros(0, 6), z, z.bool(), 0
    if backend == "numba" and not _reduce_numba.available():
        raise ImportError("backend='numba' needs numba (the 'fast' extra)")
    if backend == "numba" or (backend == "auto" and _reduce_numba.available()):
        from latticesym.reduce._api import output_arrays

        src = np.ascontiguousarray(flat.detach().cpu().numpy(), dtype=np.float64)
        t, _, g6, st, it, _ = arrays = output_arrays(n)
        _reduce_numba.kernel("parallel" if n >= _PARALLEL_FROM else "serial")(
            src, float(eps), int(max_iter), 0, *arrays)
        failed = np.flatnonzero(st != _kg.OK)
        if failed.size:
            reset = failed[_cannot_start(torch.from_numpy(src[failed])).numpy()]
            t[reset] = np.eye(3, dtype=np.int64)
        T, g6_t, it_t, st_t = (torch.from_numpy(a).to(flat.device) for a in (t.astype(np.float64), g6, it, st))
        ok = st_t == _kg.OK
        return T, g6_t, it_t, ok, 0 if flat.device.type == "cpu" else 1
    ops = TorchOps(flat.device)
    t, _, g6_t, st_t, it_t, _ = _batch.reduce_raw(flat, float(eps), int(max_iter), 0, ops)
    ok = st_t == _kg.OK
    reset = ~ok & _cannot_start(flat)
    T = torch.where(reset[:, None, None], torch.eye(3, dtype=_F64, device=t.device), t.to(_F64))
    return T, g6_t, it_t, ok, ops.syncs


def niggli_reduce_info(
    lattice: Tensor,
    *,
    eps: float = 1e-5,
    max_iter: int = 1000,
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
        T, g6, iters, ok, syncs = _reduce_core(flat, eps=eps, max_iter=max_iter, backend=backend)
    transform = T.to(torch.int64).reshape(*shape, 3, 3)
    src = lattice if lattice.is_floating_point() else lattice.to(_F64)
    reduced = T.to(src.dtype).reshape(*shape, 3, 3) @ src
    return TorchNiggliResult(reduced, transform, g6.reshape(*shape, 6), iters.reshape(shape), ok.reshape(shape), syncs)


def niggli_reduce(
    lattice: Tensor,
    *,
    eps: float = 1e-5,
    max_iter: int = 1000,
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
        Relative tolerance: comparisons use :math:`e = \\epsilon\\,|\\det L|^{2/3}` (Å²), capped at
        ``A / 16`` (``docs/algorithm.md``), so the result does not depend on the cell's scale.
        ``eps = 0`` compares exactly (lattices on a boundary then need escalation).
    max_iter : int
        Cap on the Krivy-Gruber steps (and, separately, on the pre-reduction steps).
    backend : {"auto", "torch", "numba"}
        ``"numba"``: latticesym's compiled kernel (:mod:`latticesym.reduce._numba`), on the host
        (one host synchronisation for CUDA tensors).  ``"torch"``: the reducer's vectorised batch
        run on the tensor's device.  ``"auto"``: numba when it is installed, torch otherwise.  The
        two give identical results.
    precision : {"auto", "float"}
        What to do with lattices whose float64 result cannot be certified (near-singular cells,
        transforms beyond :math:`2^{52}`, iteration cap): ``"auto"`` re-runs them with the numpy
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
    info = niggli_reduce_info(lattice, eps=eps, max_iter=max_iter, backend=backend)
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
