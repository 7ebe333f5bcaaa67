r"""Frame averaging over the near-reduced bases of a lattice: :class:`BasisInvariant`.

Conventions: rows of a lattice are its basis vectors; a basis change is ``L' = U @ L`` with ``U``
unimodular and ``frac' = frac @ inv(U)``; rotations act as ``L @ Q.T``; :math:`G = L L^T`; G6 is
:math:`(A, B, C, \xi, \eta, \zeta) = (a\cdot a, b\cdot b, c\cdot c, 2 b\cdot c, 2 a\cdot c, 2 a\cdot b)`.

Construction
------------
A model ``f(lattice, frac, species)`` that reads the basis is not a function of the crystal: the
same crystal in another basis gives another output.  Evaluating ``f`` on the Niggli-reduced
structure fixes the basis but not the problem: the reduced *basis* jumps where the lattice crosses
a boundary of the Niggli cone (and is not unique on it), so ``f(reduce(x))`` jumps there.
:class:`BasisInvariant` replaces the single reduced basis by a weighted set.  Let

.. math:: d(g) = \max\Big(0,\ \max(A-B,\ B-C,\ |\xi|-B,\ |\eta|-A,\ |\zeta|-A),\
          \min\big(\max(-\xi,-\eta,-\zeta),\ \max(\xi,\eta,\zeta,-(A+B+\xi+\eta+\zeta))\big)\Big)
          \,/\, s,\qquad s = \min_{u \in \{-1,0,1\}^3 \setminus 0} u^T G u

be the largest violation of the conditions of the *closed* Niggli cone (type-I piece
:math:`\xi,\eta,\zeta \ge 0` or type-II piece :math:`\xi,\eta,\zeta \le 0,\ A+B+\xi+\eta+\zeta\ge 0`,
each with :math:`A\le B\le C,\ |\xi|\le B,\ |\eta|\le A,\ |\zeta|\le A`), relative to the squared
length :math:`s` of the lattice's shortest vector (the minimum of :math:`u^T G u` over the 13
combinations :math:`u` of the rows with coefficients in {-1, 0, 1}, up to sign, which contain the
shortest vector of any near-reduced basis; a lattice invariant, so the band does not depend on the
cell's size or on the basis): :math:`d = 0` exactly on the closed cone, and it grows linearly away
from it.  The scale matters: with the volume scale :math:`V^{2/3}` that the reducers' tolerance
uses, a needle or plate cell (one length far from the others) has :math:`V^{2/3} \gg s`, the band
reaches bases far outside the reach of :math:`S` below, and the enumeration misses members of the
band (measured before this module was written: 60 of 60 extreme-aspect cells); with :math:`s`, no
miss was found for bands up to 0.2 (``tests/torch/test_basis_invariant.py`` re-measures it).
With the *band* :math:`\beta`,

.. math:: w(g) = s\big(\operatorname{clip}(1 - d(g)/\beta,\ 0,\ 1)\big),\qquad
          s(t) = t^3 (6t^2 - 15t + 10)

(``smootherstep``: :math:`w = 1` on the cone, :math:`w = 0` for :math:`d \ge \beta`, and
:math:`w, w', w''` continuous in :math:`d`, so the weights vanish smoothly at the band's edge).
The output is the weighted average over the right-handed bases :math:`B` of the lattice with
:math:`w(g_6(B)) > 0`,

.. math:: F(x) = \frac{\sum_B w(B)\, f(\mathrm{orient}(B),\ \mathrm{wrap}(\mathrm{frac}_B),\ \mathrm{species})}
                      {\sum_B w(B)} ,

with the atoms of each candidate in the canonical order (species, then the wrapped fractional
x, y, z).  The bases are enumerated from the reducer's output :math:`R = T L` (made right-handed by
:math:`-I` when :math:`\det R < 0`; :math:`-I` is a basis change that keeps every Cartesian
position, ``(-frac) @ (-L) == frac @ L``) as :math:`M R` for :math:`M` in the det +1 half of the
proven boundary set :math:`S` (:func:`latticesym.torch.neighbour_transforms`: the 996 maps
between two points of the closed Niggli cone, closed under :math:`M \to -M`, so its det +1 half
has every Gram action of :math:`S`).  Right-handed bases only: the rotation-free frame
(``orientation="parameters"``) is always right-handed, so a left-handed basis there would be a
*mirror* of the crystal, which a chiral structure distinguishes.

Why this is basis-invariant, and the assumption it rests on
-----------------------------------------------------------
Each term depends only on its basis :math:`B` (the weight through :math:`g_6(B)`, the model input
through :math:`B`, ``frac @ inv(U)`` and the canonical atom order), so :math:`F` depends only on the
*set* :math:`N_\beta` of right-handed bases of the lattice with :math:`d < \beta`: a set the lattice
determines, whatever basis the input came in.  The enumeration finds all of :math:`N_\beta` iff
every map :math:`B R^{-1}` between the reducer's basis and another near-cone basis lies in
:math:`S`.  For :math:`\beta = 0` this is what :math:`S` is (proved in ``proofs/``, exactly); for
:math:`\beta > 0` it holds when the band is small against the cell's own gaps (the map between two
near-cone bases is then close to a map between two cone points, and the small integer maps are
isolated).  It is an *assumption* for the band used, tested empirically in
``tests/torch/test_basis_invariant.py``: on exact boundary cells of the 44 lattice characters (made
exactly with the oracle :mod:`latticesym.reference`), on the boundary family and on real cells,
every unimodular matrix with entries in {-2, ..., 2} that maps the reduced basis into the band is
in :math:`S`.  Where it fails (cells far more anisotropic than :math:`\beta` allows) the output is
still a continuous function of the input basis, but no longer exactly invariant.  Rotations:
with ``orientation="parameters"`` each basis is written in the rotation-free frame built from its
Gram matrix (c along z, a in the xz-plane, pymatgen's ``Lattice.from_parameters``), which a
rotation of the input does not change.

Tolerances and resolution (honest limits)
-----------------------------------------
- Invariance holds to rounding (about ``1e-12`` relative in float64 for a smooth model), not
  bit for bit: the same basis reached from two inputs has its G6, frame and coordinates computed
  along different paths.
- A basis whose :math:`d` sits within rounding of :math:`\beta` may be counted from one input and
  not from another; its weight there is :math:`s(t) \le 10 t^3` with :math:`t \approx 10^{-16}/\beta`,
  i.e. nothing measurable.
- The reducer itself decides with the tolerance ``eps`` (:math:`\epsilon V^{2/3}`), so its basis
  may lie about ``eps`` :math:`V^{2/3}/s` outside the cone (in :math:`d`); that costs nothing (every
  basis is weighed by its own :math:`d`, the reducer only chooses where the enumeration starts)
  as long as it stays well inside the band: ``band >= 100 * eps`` is required, and a reducer's
  basis with :math:`d > \beta/4` (needle and plate cells, :math:`V^{2/3} \gg s`) is reduced again
  with the tolerance :math:`\epsilon s`; a basis still more than :math:`\beta/2` outside (or one
  from a custom ``reduce``) raises :class:`~latticesym.errors.ReductionError` with the numbers
  instead of averaging over an incomplete set.
- Continuity: crossing a boundary, the output moves from ``f`` on one reduced form to ``f`` on the
  other over a band of relative width :math:`\beta` (in :math:`d`), so its Lipschitz constant is
  about ``jump / band`` (measured in the tests and the docs' plot).  :math:`d` is a max of linear
  functions, so :math:`F` is Lipschitz-continuous and piecewise smooth, not :math:`C^1`
  everywhere.
- Cost: away from every boundary (:math:`d > \beta` for every candidate but the identity) ``f``
  runs once, on the canonical structure; cells in the band, and cells with lattice symmetry
  (a cubic cell has 24 right-handed reduced bases, all of weight 1), run it once per basis.
  :attr:`BasisInvariant.last_plan` counts the evaluations.

References
----------
I. Krivy & B. Gruber (1976). Acta Cryst. A32, 297-298. https://doi.org/10.1107/S0567739476000636
L. C. Andrews & H. J. Bernstein (1988). Acta Cryst. A44, 1009-1018 (the Niggli cone's boundaries).
https://doi.org/10.1107/S0108767388006427
O. Puny, M. Atzmon, H. Ben-Hamu, I. Misra, A. Grover, E. Smith & Y. Lipman (2022). Frame averaging
for invariant and equivariant network design. ICLR. https://arxiv.org/abs/2110.03336
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from latticesym.errors import LatticeShapeError, NonFiniteLatticeError, OptionError, PrecisionError, ReductionError
from latticesym.torch._loss import _congruence_g6_matrices, neighbour_transforms
from latticesym.torch._reduce import _apply, _det3, _g6_of, niggli_reduce, unimodular_det, unimodular_inverse

__all__ = [
    "BasisInvariant",
    "FrameAveragePlan",
    "cone_distance",
    "orient_parameters",
    "positive_neighbour_transforms",
    "shortest_vector_sq",
    "smootherstep",
]

_F64 = torch.float64
_ORIENTATIONS = ("parameters", "keep")


# --------------------------------------------------------------------------- the set S+
class _Table:
    """The det +1 half of ``S`` (identity first) and its G6 congruence matrices, per device."""

    def __init__(self, device: torch.device):
        mats = neighbour_transforms()  # 996 up to sign, identity first
        det = np.rint(np.linalg.det(mats.astype(np.float64))).astype(np.int64)
        mats = mats * det[:, None, None]  # det(-M) = -det(M) in 3-D: every member now has det +1
        self.mats_np = mats
        self.mats = torch.as_tensor(mats, dtype=_F64, device=device)
        k = _congruence_g6_matrices(mats)  # g6(M G M^T) = K g6(G), (m, 6, 6)
        self.k = torch.as_tensor(k, dtype=_F64, device=device)
        # g6 (B, 6) @ k_flat (6, m * 6) gives every candidate's G6 at once, (B, m, 6) after a reshape
        self.k_flat = torch.as_tensor(np.ascontiguousarray(k.transpose(2, 0, 1).reshape(6, -1)), dtype=_F64,
                                      device=device)


_TABLES: dict[torch.device, _Table] = {}


def _table(device: torch.device) -> _Table:
    tab = _TABLES.get(device)
    if tab is None:
        tab = _TABLES[device] = _Table(device)
    return tab


def positive_neighbour_transforms() -> np.ndarray:
    """The det +1 half of ``S`` as ``(996, 3, 3)`` int64, identity first (one of ``M``, ``-M`` each)."""
    return _table(torch.device("cpu")).mats_np.copy()


# --------------------------------------------------------------------------- weights
def cone_distance(g6: Tensor, scale: Tensor | None = None) -> Tensor:
    r"""Largest violation of the closed Niggli cone's conditions, :math:`d(g)` of the module docstring.

    Parameters
    ----------
    g6 : Tensor, shape ``(..., 6)``
        G6 vectors :math:`(A, B, C, \xi, \eta, \zeta)`.
    scale : Tensor, shape ``(...)``, optional
        Divide by this (the frame averaging passes :func:`shortest_vector_sq`); default 1
        (Å², absolute).

    Returns
    -------
    Tensor, shape ``(...)``
        0 exactly on the closed cone (both pieces, boundaries included), positive outside.

    Examples
    --------
    >>> cone_distance(torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])).item()   # simple cubic: on the cone
    0.0
    >>> cone_distance(torch.tensor([1.0, 1.2, 1.5, 0.1, 0.1, -0.1])).item()  # mixed signs: off by 0.1
    0.1
    """
    A, B, C, xi, eta, zeta = g6.unbind(-1)
    common = torch.stack([A - B, B - C, xi.abs() - B, eta.abs() - A, zeta.abs() - A], -1).amax(-1)
    type_one = torch.stack([-xi, -eta, -zeta], -1).amax(-1)
    type_two = torch.stack([xi, eta, zeta, -(A + B + xi + eta + zeta)], -1).amax(-1)
    d = torch.maximum(common, torch.minimum(type_one, type_two)).clamp_min(0.0)
    return d if scale is None else d / scale


def smootherstep(t: Tensor) -> Tensor:
    r""":math:`s(t) = t^3(6t^2 - 15t + 10)` on ``clip(t, 0, 1)``: 0 and 1 at the ends, flat to second order.

    Examples
    --------
    >>> smootherstep(torch.tensor([-1.0, 0.0, 0.5, 1.0, 2.0])).tolist()
    [0.0, 0.0, 0.5, 1.0, 1.0]
    """
    t = t.clamp(0.0, 1.0)
    return t * t * t * (t * (6.0 * t - 15.0) + 10.0)


# The 13 combinations u (up to sign) of the rows with coefficients in {-1, 0, 1}, as coefficients of
# (A, B, C, xi, eta, zeta) in u G u^T = A u0^2 + B u1^2 + C u2^2 + xi u1 u2 + eta u0 u2 + zeta u0 u1.
_ALL = np.array(list(np.ndindex(3, 3, 3)), dtype=np.int64) - 1
_COMBOS = _ALL[[bool(u.any() and u[(u != 0).argmax()] > 0) for u in _ALL]]
_SHORT = np.stack([_COMBOS[:, 0] ** 2, _COMBOS[:, 1] ** 2, _COMBOS[:, 2] ** 2, _COMBOS[:, 1] * _COMBOS[:, 2],
                   _COMBOS[:, 0] * _COMBOS[:, 2], _COMBOS[:, 0] * _COMBOS[:, 1]], 1).astype(np.float64)  # (13, 6)


def shortest_vector_sq(g6: Tensor) -> Tensor:
    r"""Squared length of the shortest of the 13 vectors :math:`u \cdot (a, b, c)`, :math:`u \in \{-1,0,1\}^3`.

    :math:`s = \min_u u^T G u`.  For a basis on or near the Niggli cone this is the squared length
    of the lattice's shortest vector (:math:`A` itself on the cone), so it is a lattice invariant
    and the band of :class:`BasisInvariant` is measured in it.  Differentiable (a minimum of
    linear functions of the G6 vector).

    Parameters
    ----------
    g6 : Tensor, shape ``(..., 6)``

    Returns
    -------
    Tensor, shape ``(...)``

    Examples
    --------
    >>> shortest_vector_sq(torch.tensor([4.0, 9.0, 16.0, 0.0, 0.0, 0.0])).item()
    4.0
    >>> shortest_vector_sq(torch.tensor([4.0, 4.0, 16.0, 0.0, 0.0, -6.0])).item()   # a + b is shorter
    2.0
    """
    coeff = torch.as_tensor(_SHORT, dtype=g6.dtype, device=g6.device)
    return (g6 @ coeff.T).amin(-1)


# --------------------------------------------------------------------------- orientation
def orient_parameters(basis: Tensor) -> Tensor:
    r"""The same bases in the rotation-free frame of their cell parameters (CDVAE / DiffCSP / pymatgen).

    Rows :math:`a = (a_x, 0, a_z)`, :math:`b = (b_x, b_y, b_z)`, :math:`c = (0, 0, c)` with
    :math:`a_x, b_y, c > 0`: pymatgen's ``Lattice.from_parameters(a, b, c, alpha, beta, gamma)``,
    built here from the Gram matrix only (:math:`c_z = \sqrt{C}`, :math:`a_z = G_{02}/c_z`,
    :math:`a_x = \sqrt{A - a_z^2}`, :math:`b_z = G_{12}/c_z`, :math:`b_x = (G_{01} - a_z b_z)/a_x`,
    :math:`b_y = \sqrt{B - b_x^2 - b_z^2}`), so it is exactly what a rotation leaves unchanged.
    The frame is right-handed: for a left-handed ``basis`` it is a mirror image, not a rotation.
    Differentiable.

    Parameters
    ----------
    basis : Tensor, shape ``(..., 3, 3)``

    Examples
    --------
    >>> L = torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 3.0], [4.0, 0.0, 0.0]], dtype=torch.float64)
    >>> orient_parameters(L)
    tensor([[2., 0., 0.],
            [0., 3., 0.],
            [0., 0., 4.]], dtype=torch.float64)
    """
    G = basis @ basis.transpose(-1, -2)
    cz = G[..., 2, 2].sqrt()
    az = G[..., 0, 2] / cz
    ax = (G[..., 0, 0] - az * az).clamp_min(0.0).sqrt()
    bz = G[..., 1, 2] / cz
    bx = (G[..., 0, 1] - az * bz) / ax
    by = (G[..., 1, 1] - bx * bx - bz * bz).clamp_min(0.0).sqrt()
    zero = torch.zeros_like(cz)
    rows = [torch.stack([ax, zero, az], -1), torch.stack([bx, by, bz], -1), torch.stack([zero, zero, cz], -1)]
    return torch.stack(rows, -2)


# --------------------------------------------------------------------------- plan
class FrameAveragePlan(NamedTuple):
    """Which bases :class:`BasisInvariant` evaluates the model on (all tensors on the input's device).

    Attributes
    ----------
    structure : Tensor, shape ``(K,)``, int64
        Index of the input structure each candidate belongs to (sorted, the identity candidate first).
    transform : Tensor, shape ``(K, 3, 3)``, int64
        ``U`` with candidate basis ``U @ lattice_in`` (``det U = sign(det lattice_in)``: right-handed).
    weight : Tensor, shape ``(K,)``
        :math:`w` of each candidate (float64; differentiable in the lattice).
    distance : Tensor, shape ``(K,)``, float64
        :math:`d` of each candidate (detached).
    n_structures : int
        ``B``.
    n_evaluations : int
        ``K``, the rows the model is evaluated on.
    n_extra : int
        ``K - B``: evaluations beyond one per structure.
    n_averaged : int
        Structures with more than one candidate (in the band of a boundary, or with symmetry).
    """

    structure: Tensor
    transform: Tensor
    weight: Tensor
    distance: Tensor
    n_structures: int
    n_evaluations: int
    n_extra: int
    n_averaged: int


def _default_reduce(eps: float, band: float) -> Callable[[Tensor], Tensor]:
    r""":func:`latticesym.torch.niggli_reduce`, with the tolerance tightened where it is too loose for the band.

    The reducer's tolerance is :math:`\epsilon V^{2/3}`, the band is measured in :math:`s` (the
    shortest vector squared).  On needle / plate cells :math:`V^{2/3} \gg s` and the reducer may stop
    more than ``band / 4`` outside the cone; those rows are reduced again from that basis with the
    tolerance :math:`\epsilon\, s / V^{2/3}` (i.e. :math:`\epsilon s`), one row at a time (rare).
    """

    def reduce(lattices: Tensor) -> Tensor:
        T = niggli_reduce(lattices, eps=eps)[1].to(_F64)
        R = _apply(T, lattices)
        g6 = _g6_of(R)
        s = shortest_vector_sq(g6)
        d0 = cone_distance(g6, s)
        for i in (d0 > 0.25 * band).nonzero().flatten().tolist():
            si, vol = float(s[i]), float(_det3(R[i]).abs())
            ratio = si / vol ** (2.0 / 3.0) if vol > 0.0 else math.nan
            if not math.isfinite(ratio):
                raise PrecisionError(f"cell {i}: shortest vector squared {si:.6g} and volume {vol:.6g} of its "
                                     "reduced basis give no finite band tolerance (numerically singular)")
            T[i] = niggli_reduce(R[i], eps=eps * min(ratio, 1.0))[1].to(_F64) @ T[i]
        return T

    return reduce


# --------------------------------------------------------------------------- the wrapper
class BasisInvariant(nn.Module):
    r"""Make a model of ``(lattice, frac, species)`` exactly basis-invariant and continuous across Niggli boundaries.

    See the module docstring for the construction, the invariance argument and its assumption.

    Parameters
    ----------
    module : callable
        The model or featurizer.  Single structures: ``module(lattice (3, 3), frac (n, 3), species (n,))``
        returning a tensor of any fixed shape.  With ``batched=True`` (DiffCSP layout):
        ``module(lattices (K, 3, 3), frac (N, 3), species (N,), n_atoms (K,))`` returning a tensor
        with one row per structure, shape ``(K, ...)``.
    reduce : "niggli" or callable
        Where the enumeration starts: ``"niggli"`` (default) is :func:`latticesym.torch.niggli_reduce`
        with ``eps`` (tightened to :math:`\epsilon s` on the rare needle / plate cell whose reduced
        basis would otherwise stop more than ``band / 4`` outside the cone); a callable takes float64
        lattices ``(B, 3, 3)`` and returns integer transforms ``T`` ``(B, 3, 3)`` with ``T @ L``
        Niggli-reduced; its basis must lie within ``band / 2`` of the cone, else
        :class:`~latticesym.errors.ReductionError`.
    band : float
        :math:`\beta`, the width of the blending band in :math:`d` (relative to the squared length
        of the shortest lattice vector).
        Smaller: fewer extra evaluations and a sharper (still continuous) transition; larger: a
        smoother transition, more evaluations, and a stronger completeness assumption.
    eps : float
        Tolerance of the default reducer (must satisfy ``band >= 100 * eps``).
    orientation : {"parameters", "keep"}
        ``"parameters"``: each basis in the rotation-free frame of its cell parameters (invariant to
        rotations of the input too); ``"keep"``: ``U @ lattice_in`` in the input's orientation.
    sort : bool
        Pass the atoms of each candidate in the canonical order (species, then the wrapped x, y, z
        on a ``frac_eps`` grid), which makes the output invariant to the input's atom order for any
        model.  ``False`` keeps the input order.
    frac_eps : float
        Wrapped coordinates within ``frac_eps`` of an integer are put on it (so rounding never moves
        an atom by a whole cell), and the grid of the sort keys.
    batched : bool
        The calling convention of ``module`` (and of :meth:`forward`).

    Examples
    --------
    >>> import torch
    >>> from latticesym.torch import BasisInvariant
    >>> def first_length(lattice, frac, species):       # not basis-invariant
    ...     return lattice[0].norm()
    >>> f = BasisInvariant(first_length)
    >>> L = torch.tensor([[3.0, 0, 0], [0, 4.0, 0], [0, 0, 5.0]], dtype=torch.float64)
    >>> frac, species = torch.zeros(1, 3, dtype=torch.float64), torch.tensor([6])
    >>> U = torch.tensor([[1.0, 2, 0], [0, 1, 0], [1, 1, 1]], dtype=torch.float64)
    >>> float(first_length(U @ L, frac, species)), float(f(U @ L, frac, species)), float(f(L, frac, species))
    (8.54400374531753, 3.0, 3.0)
    """

    def __init__(
        self,
        module: Callable[..., Tensor],
        *,
        reduce: str | Callable[[Tensor], Tensor] = "niggli",
        band: float = 0.02,
        eps: float = 1e-5,
        orientation: str = "parameters",
        sort: bool = True,
        frac_eps: float = 1e-8,
        batched: bool = False,
    ):
        super().__init__()
        if not callable(module):
            raise TypeError(f"module must be callable, got {type(module).__name__}")
        if orientation not in _ORIENTATIONS:
            raise OptionError(f"orientation must be one of {_ORIENTATIONS}, got {orientation!r}")
        if not (0.0 < band < 1.0):
            raise OptionError(f"band must be in (0, 1), got {band}")
        if not (eps >= 0.0 and 100.0 * eps <= band):
            raise OptionError(f"need 0 <= eps and band >= 100 * eps so the reducer's tolerance is inside the band, "
                             f"got eps={eps}, band={band}")
        if not (0.0 <= frac_eps < 1e-3):
            raise OptionError(f"frac_eps must be in [0, 1e-3), got {frac_eps}")
        if reduce == "niggli":
            self._reduce: Callable[[Tensor], Tensor] = _default_reduce(eps, band)
        elif callable(reduce):
            self._reduce = reduce
        else:
            raise OptionError(f"reduce must be 'niggli' or a callable, got {reduce!r}")
        if isinstance(module, nn.Module):
            self.module = module
        else:
            self.fn = module
        self.band = float(band)
        self.eps = float(eps)
        self.orientation = orientation
        self.sort = bool(sort)
        self.frac_eps = float(frac_eps)
        self.batched = bool(batched)
        self.last_plan: FrameAveragePlan | None = None

    def _model(self) -> Callable[..., Tensor]:
        return self.module if "module" in self._modules else self.fn

    def extra_repr(self) -> str:
        return (f"band={self.band}, eps={self.eps}, orientation={self.orientation!r}, sort={self.sort}, "
                f"batched={self.batched}")

    # ----------------------------------------------------------------------- planning
    def plan(self, lattices: Tensor) -> FrameAveragePlan:
        """The candidate bases of ``(B, 3, 3)`` lattices (no model call); see :class:`FrameAveragePlan`."""
        plan, _ = self._plan(lattices)
        return plan

    def _plan(self, lattices: Tensor) -> tuple[FrameAveragePlan, Tensor]:
        if not isinstance(lattices, Tensor):
            raise TypeError(f"lattices must be a torch.Tensor, got {type(lattices).__name__}")
        if lattices.ndim != 3 or tuple(lattices.shape[-2:]) != (3, 3):
            raise LatticeShapeError(f"lattices must have shape (B, 3, 3), got {tuple(lattices.shape)}")
        if not bool(torch.isfinite(lattices).all()):
            bad = (~torch.isfinite(lattices).flatten(1).all(1)).nonzero().flatten().tolist()
            raise NonFiniteLatticeError(f"lattices {bad} contain NaN or inf")
        device = lattices.device
        tab = _table(device)
        n = lattices.shape[0]
        with torch.no_grad():
            T = torch.as_tensor(self._reduce(lattices.detach().to(_F64)), device=device).to(_F64)
            if tuple(T.shape) != (n, 3, 3) or not bool((T.round() == T).all()):
                raise ReductionError(f"reduce must return integer transforms of shape ({n}, 3, 3), got "
                                     f"{tuple(T.shape)}")
            sign = torch.sign(_det3(_apply(T, lattices.detach().to(_F64))))
            if not bool((sign != 0).all()):
                bad = (sign == 0).nonzero().flatten().tolist()
                raise ReductionError(f"reduce returned singular bases for lattices {bad}")
            T = T * sign[:, None, None]  # right-handed reduced bases
        R = _apply(T, lattices.to(_F64))  # differentiable, accurate (Dot2) value
        g6 = _g6_of(R)
        scale = shortest_vector_sq(g6)
        g6c = (g6 @ tab.k_flat).reshape(n, -1, 6)  # (B, |S+|, 6): K_m g6 for every candidate m
        d = cone_distance(g6c, scale[:, None])
        with torch.no_grad():
            d0 = d[:, 0]
            if not bool((d0 <= 0.5 * self.band).all()):
                i = int(d0.argmax())
                raise ReductionError(
                    f"the reducer's basis of lattice {i} is {float(d0[i]):.3g} (relative to its shortest vector "
                    f"squared) outside the closed Niggli cone, more than band/2 = {0.5 * self.band:.3g}: "
                    f"g6 {g6[i].tolist()}",
                    g6=tuple(g6[i].tolist()), transform=T[i].to(torch.int64).tolist(),
                )
            mask = d < self.band
            b_idx, m_idx = mask.nonzero(as_tuple=True)  # row-major: sorted by structure, identity first
        w = smootherstep(1.0 - d[b_idx, m_idx] / self.band)
        U = tab.mats[m_idx] @ T[b_idx]
        counts = torch.bincount(b_idx, minlength=n) if n else torch.zeros(0, dtype=torch.int64, device=device)
        plan = FrameAveragePlan(
            structure=b_idx,
            transform=U.round().to(torch.int64),
            weight=w,
            distance=d[b_idx, m_idx].detach(),
            n_structures=n,
            n_evaluations=len(b_idx),
            n_extra=len(b_idx) - n,
            n_averaged=int((counts > 1).sum()),
        )
        return plan, U

    # ----------------------------------------------------------------------- forward
    def forward(self, lattice: Tensor, frac: Tensor, species: Any, n_atoms: Any = None) -> Tensor:
        """The frame average of the model (see the class docstring for the calling convention).

        Single structures (``batched=False``): ``lattice (3, 3)``, ``frac (n, 3)``, ``species (n,)``
        (a tensor, array or list) give the averaged output, shape of one model output.  Batched:
        ``lattices (B, 3, 3)``, ``frac (N, 3)``, ``species (N,)``, ``n_atoms (B,)`` give ``(B, ...)``.
        """
        if self.batched:
            if n_atoms is None:
                raise TypeError("batched=True: call with (lattices, frac, species, n_atoms)")
            lattices = lattice
        else:
            if n_atoms is not None:
                raise TypeError("batched=False: call with (lattice, frac, species); pass batched=True for n_atoms")
            if not isinstance(lattice, Tensor) or tuple(lattice.shape) != (3, 3):
                raise LatticeShapeError(f"lattice must be a (3, 3) tensor, got {getattr(lattice, 'shape', lattice)!r}")
            lattices = lattice[None]
        if not isinstance(frac, Tensor) or frac.ndim != 2 or frac.shape[-1] != 3:
            raise LatticeShapeError(f"frac must be an (N, 3) tensor, got {getattr(frac, 'shape', frac)!r}")
        n_struct = lattices.shape[0] if isinstance(lattices, Tensor) else 0
        counts = torch.as_tensor([frac.shape[0]] if n_atoms is None else n_atoms, dtype=torch.int64).to(frac.device)
        bad_counts = counts.ndim != 1 or len(counts) != n_struct or bool((counts < 0).any())
        if bad_counts or int(counts.sum()) != frac.shape[0]:
            raise LatticeShapeError(f"n_atoms {counts.tolist()} must be {n_struct} non-negative counts summing to "
                                    f"frac's {frac.shape[0]} rows")
        if len(species) != frac.shape[0]:
            raise LatticeShapeError(f"species has {len(species)} entries but frac has {frac.shape[0]} rows")
        if getattr(species, "ndim", 1) != 1:
            raise LatticeShapeError(f"species must be one entry per site, shape ({frac.shape[0]},), got "
                                    f"{tuple(species.shape)}")
        if not bool(torch.isfinite(frac).all()):
            raise NonFiniteLatticeError("frac contains NaN or inf")

        plan, U = self._plan(lattices)
        self.last_plan = plan
        b = plan.structure
        dtype = lattices.dtype if lattices.is_floating_point() else _F64
        # candidate lattices, differentiable in the input lattice
        basis = _apply(U, lattices[b]).to(dtype)
        if self.orientation == "parameters":
            basis = orient_parameters(basis)
        # atoms of every candidate: frac @ inv(U), wrapped, in canonical order
        # (index bookkeeping on the host: the counts are known there, and it is cheaper than device ops)
        counts_np = counts.cpu().numpy()
        b_np = b.cpu().numpy()
        n_k_np = counts_np[b_np]
        total = int(n_k_np.sum())
        offsets = np.cumsum(counts_np) - counts_np
        starts = np.cumsum(n_k_np) - n_k_np
        cand_np = np.repeat(np.arange(len(b_np)), n_k_np)
        atom_np = np.repeat(offsets[b_np] - starts, n_k_np) + np.arange(total)
        cand_of_atom = torch.as_tensor(cand_np, device=frac.device)
        atom = torch.as_tensor(atom_np, device=frac.device)
        n_k = torch.as_tensor(n_k_np, device=frac.device)
        U64 = U.detach()
        adj = unimodular_inverse(U64)  # exact, and so is the determinant: entries reach 1e12 on sheared cells
        inv = adj * unimodular_det(U64, adj).to(adj.dtype)[:, None, None]
        f = (frac.to(dtype)[atom][:, None, :] @ inv.to(dtype)[cand_of_atom]).squeeze(1)
        f = self._wrap(f)
        key_species = _species_key(species, frac.device)[atom]
        order = self._order(f, key_species, cand_of_atom) if self.sort else torch.arange(total, device=frac.device)
        f = f[order]
        atom = atom[order]
        spec = _gather_species(species, atom)
        out = self._evaluate(basis, f, spec, n_k, len(b))
        res = _weighted_mean(out, plan.weight.to(out.dtype), b, n_struct)
        return res if self.batched else res[0]

    def _wrap(self, f: Tensor) -> Tensor:
        eps = self.frac_eps
        if eps > 0:
            r = f.detach().round()
            f = torch.where((f.detach() - r).abs() <= eps, f + (r - f).detach(), f)
        y = f - f.detach().floor()
        return torch.where(y.detach() >= 1.0, y - 1.0, y)

    def _order(self, f: Tensor, key_species: Tensor, cand: Tensor) -> Tensor:
        grid = max(self.frac_eps, 1e-12)
        q = (f.detach().to(_F64) / grid).round().to(torch.int64)
        order = torch.arange(len(f), device=f.device)
        for key in (q[:, 2], q[:, 1], q[:, 0], key_species, cand):  # least significant first, stable sorts
            order = order[torch.sort(key[order], stable=True).indices]
        return order

    def _evaluate(self, basis: Tensor, f: Tensor, spec: Any, n_k: Tensor, k: int) -> Tensor:
        model = self._model()
        if self.batched:
            out = model(basis, f, spec, n_k)
            if not isinstance(out, Tensor) or out.ndim < 1 or out.shape[0] != k:
                raise TypeError(f"a batched module must return a tensor with one row per structure ({k}), got "
                                f"{type(out).__name__} of shape {tuple(getattr(out, 'shape', ()))}")
            return out
        outs = []
        lo = 0
        for i, n in enumerate(n_k.tolist()):
            o = model(basis[i], f[lo:lo + n], _slice_species(spec, lo, lo + n))
            if not isinstance(o, Tensor):
                o = torch.as_tensor(o)
            outs.append(o)
            lo += n
        return torch.stack(outs)


def _weighted_mean(out: Tensor, w: Tensor, owner: Tensor, n: int) -> Tensor:
    r"""Per structure :math:`\sum_k w_k\, out_k / \sum_k w_k` over the candidates ``k`` it owns."""
    shape = (n, *out.shape[1:])
    expand = (-1, *([1] * (out.ndim - 1)))
    num = out.new_zeros(shape).index_add(0, owner, w.reshape(expand) * out)
    den = out.new_zeros(n).index_add(0, owner, w)
    return num / den.reshape(expand)


# --------------------------------------------------------------------------- species helpers
def _species_key(species: Any, device: torch.device) -> Tensor:
    """int64 sort keys: the numbers themselves, or the rank of each symbol in sorted(set(symbols))."""
    if isinstance(species, Tensor):
        return species.detach().to(device).to(torch.int64) if not species.is_floating_point() else \
            torch.as_tensor(np.unique(species.detach().cpu().numpy(), return_inverse=True)[1], device=device)
    arr = np.asarray(species)
    if arr.dtype.kind in "iu":
        return torch.as_tensor(arr.astype(np.int64), device=device)
    _, inverse = np.unique(arr.astype(str), return_inverse=True)
    return torch.as_tensor(inverse.astype(np.int64).reshape(-1), device=device)


def _gather_species(species: Any, idx: Tensor) -> Any:
    if isinstance(species, Tensor):
        return species[idx.to(species.device)]
    if isinstance(species, np.ndarray):
        return species[idx.cpu().numpy()]
    seq: Sequence[Any] = species
    return [seq[int(i)] for i in idx.tolist()]


def _slice_species(spec: Any, lo: int, hi: int) -> Any:
    return spec[lo:hi]
