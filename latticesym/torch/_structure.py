r"""Torch twin of :func:`latticesym.structure.canonicalize_batch`: tensors in, tensors out, gradients.

The discrete part of the canonical form (the integer transform :math:`T`, the atom order and the
wrap offsets :math:`\lfloor f\rfloor`) is decided by the numpy path
(:func:`latticesym.structure.canonicalize_batch`, float64) on a detached host copy: one host
synchronisation per call, like :func:`latticesym.torch.niggli_reduce` with its default backend.
The values returned are the numpy values (cast to the input dtype), hence bit-identical to the
numpy path in float64; the gradients are those of the continuous map with :math:`T`, the order
and the offsets fixed:

.. math::

    L_{\rm out} = P(T L)\ \text{(parameters frame) or } T L, \qquad
    F_{\rm out} = F_{\rm order}\, T^{-1} - \lfloor F_{\rm order}\, T^{-1} \rfloor,

so :math:`\partial F_{\rm out} / \partial F = T^{-1}` row by row and :math:`L_{\rm out}` is
differentiated through the Gram-matrix frame.  This is implemented as
``value - (expr.detach() - expr)``: the forward value is exactly ``value`` (``x - 0.0`` keeps
every bit, the sign of zero included), the backward pass is that of ``expr`` (computed with
torch ops on the input's device).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from latticesym.errors import LatticeShapeError, PrecisionError
from latticesym.structure._canonical import canonicalize_batch as _np_canonicalize_batch
from latticesym.structure._canonical import integer_inverse
from latticesym.torch._reduce import _apply

__all__ = ["TorchCanonicalBatch", "canonicalize"]


class TorchCanonicalBatch(NamedTuple):
    """Result of :func:`canonicalize`: the fields of :class:`latticesym.structure.CanonicalBatch`.

    ``lattices (B, 3, 3)``, ``frac (N, 3)``, ``rotations (B, 3, 3)`` and ``g6 (B, 6)`` are tensors in
    the input's dtype and device (differentiable); ``transforms (B, 3, 3)``, ``order (N,)`` and
    ``n_atoms (B,)`` int64 tensors, ``near_boundary (B,)`` bool; ``species`` is ``species[order]``,
    a tensor when a tensor was given, else a numpy array (element symbols cannot be tensors).
    """

    lattices: torch.Tensor
    frac: torch.Tensor
    species: Any
    n_atoms: torch.Tensor
    transforms: torch.Tensor
    rotations: torch.Tensor
    order: torch.Tensor
    g6: torch.Tensor
    near_boundary: torch.Tensor


def _g6(lat: torch.Tensor) -> torch.Tensor:
    a, b, c = lat[:, 0], lat[:, 1], lat[:, 2]
    return torch.stack([(a * a).sum(-1), (b * b).sum(-1), (c * c).sum(-1), 2 * (b * c).sum(-1),
                        2 * (a * c).sum(-1), 2 * (a * b).sum(-1)], dim=-1)


def _frame(g6: torch.Tensor) -> torch.Tensor:
    """Parameters frame from G6 (same formula as :func:`latticesym.structure._frame.frame_from_g6`)."""
    a, b, c = g6[:, 0].sqrt(), g6[:, 1].sqrt(), g6[:, 2].sqrt()
    cos_al = (g6[:, 3] / (2.0 * b * c)).clamp(-1.0, 1.0)
    cos_be = (g6[:, 4] / (2.0 * a * c)).clamp(-1.0, 1.0)
    cos_ga = (g6[:, 5] / (2.0 * a * b)).clamp(-1.0, 1.0)
    sin_al = (1.0 - cos_al * cos_al).sqrt()
    sin_be = (1.0 - cos_be * cos_be).sqrt()
    cos_gs = ((cos_al * cos_be - cos_ga) / (sin_al * sin_be)).clamp(-1.0, 1.0)
    sin_gs = (1.0 - cos_gs * cos_gs).sqrt()
    zero = torch.zeros_like(a)
    return torch.stack([
        torch.stack([a * sin_be, zero, a * cos_be], -1),
        torch.stack([-b * sin_al * cos_gs, b * sin_al * sin_gs, b * cos_al], -1),
        torch.stack([zero, zero, c], -1),
    ], dim=1)


def _straight_through(value: np.ndarray, expr: torch.Tensor) -> torch.Tensor:
    # value - (+0.0) keeps every bit of value, the sign of zero included (value + 0.0 would not).
    return torch.as_tensor(value, device=expr.device).to(expr.dtype) - (expr.detach() - expr)


def canonicalize(lattices: torch.Tensor, frac: torch.Tensor, species: Any, n_atoms: Any = None, *,
                 eps: float = 1e-5, frac_eps: float = 1e-8, orientation: str = "parameters",
                 sort: bool = True) -> TorchCanonicalBatch:
    r"""Canonicalize structures given as tensors (the torch twin of the numpy canonical form).

    Parameters
    ----------
    lattices : Tensor, shape (3, 3) or (B, 3, 3)
        Rows a, b, c; float32 or float64, any device.  A (3, 3) lattice is a batch of one.
    frac : Tensor, shape (N, 3)
        Fractional coordinates, same dtype and device.
    species : Tensor, array_like or sequence, shape (N,)
        Atomic numbers or element symbols.
    n_atoms : Tensor or array_like of int, shape (B,), optional
        Required for a batch; ``[N]`` for a single (3, 3) lattice.
    eps, frac_eps, orientation, sort
        As in :func:`latticesym.structure.canonicalize_batch`.

    Returns
    -------
    TorchCanonicalBatch
        Values bit-identical to :func:`latticesym.structure.canonicalize_batch` (float64; cast for
        float32), gradients through ``lattices`` and ``frac`` with the transform, the order and
        the wrap offsets fixed.

    Raises
    ------
    LatticeShapeError, NonFiniteLatticeError, BatchReductionError, TypeError
        As the numpy path.

    Examples
    --------
    >>> import torch
    >>> L = torch.tensor([[1.0, 0, 0], [3, 1, 0], [0, 0, 2]], dtype=torch.float64, requires_grad=True)
    >>> f = torch.tensor([[0.0, 0.5, 0.0]], dtype=torch.float64, requires_grad=True)
    >>> r = canonicalize(L, f, [6], orientation="keep")
    >>> r.transforms[0].tolist(), r.frac.tolist()
    ([[1, 0, 0], [-3, 1, 0], [0, 0, 1]], [[0.5, 0.5, 0.0]])
    >>> r.frac.sum().backward(); f.grad.tolist()
    [[1.0, 4.0, 1.0]]
    """
    if not isinstance(lattices, torch.Tensor) or not isinstance(frac, torch.Tensor):
        raise TypeError("lattices and frac must be torch tensors (use latticesym.structure for arrays)")
    if not (lattices.is_floating_point() and frac.is_floating_point()):
        raise TypeError(f"lattices and frac must be floating point, got {lattices.dtype} and {frac.dtype}")
    narrow = {torch.float16, torch.bfloat16}
    if lattices.dtype in narrow or frac.dtype in narrow:
        return _narrow(lattices, frac, species, n_atoms, eps=eps, frac_eps=frac_eps, orientation=orientation,
                       sort=sort)
    if lattices.dim() == 2:
        lattices = lattices.unsqueeze(0)
        if n_atoms is None:
            n_atoms = [int(frac.shape[0])] if frac.dim() == 2 else [0]
    elif n_atoms is None:
        raise LatticeShapeError(f"n_atoms is required for a batch of lattices of shape {tuple(lattices.shape)}")
    dev, dtype = lattices.device, lattices.dtype
    sp_np = species.detach().cpu().numpy() if isinstance(species, torch.Tensor) else np.asarray(species)
    counts = n_atoms.detach().cpu().numpy() if isinstance(n_atoms, torch.Tensor) else np.asarray(n_atoms)
    ref = _np_canonicalize_batch(lattices.detach().cpu().to(torch.float64).numpy(),
                                 frac.detach().cpu().to(torch.float64).numpy(), sp_np, counts, eps=eps,
                                 frac_eps=frac_eps, orientation=orientation,  # type: ignore[arg-type]
                                 sort=sort)
    tf = torch.as_tensor(ref.transforms, device=dev)
    red = _apply(tf, lattices)  # Dot2 value (a sheared cell's plain product cancels), gradient of T @ L
    lat_expr = _frame(_g6(red)) if orientation == "parameters" else red
    order = torch.as_tensor(ref.order, device=dev)
    owner = torch.repeat_interleave(torch.arange(len(ref.n_atoms), device=dev),
                                    torch.as_tensor(ref.n_atoms, device=dev))
    minv = torch.as_tensor(integer_inverse(ref.transforms), device=dev).to(frac.dtype)[owner[order]]
    f = frac[order]
    carried = f[:, 0:1] * minv[:, 0, :] + f[:, 1:2] * minv[:, 1, :] + f[:, 2:3] * minv[:, 2, :]
    if orientation == "parameters" and len(ref.n_atoms):
        # in float64: a float32 solve fails on reduced bases of sheared cells that are far from singular
        try:
            rot_expr = torch.linalg.solve(red.to(torch.float64), lat_expr.to(torch.float64)).transpose(1, 2).to(dtype)
        except torch.linalg.LinAlgError as exc:  # T @ L lost the cell: an input entry near 1e19 next to 4's
            dets = torch.linalg.det(red.detach().to(torch.float64))
            bad = (dets.abs() == 0).nonzero().flatten().tolist() or list(range(len(dets)))
            big = float(lattices.detach().abs().amax()) if lattices.numel() else 0.0
            raise PrecisionError(
                f"structures {bad[:10]}: the reduced basis T @ L recomputed in float64 is singular (det "
                f"{[float(dets[i]) for i in bad[:3]]}; largest input entry {big:.3g}), so no rotation to the "
                f"canonical frame exists in float64; rescale the cell or use "
                f"latticesym.structure.canonicalize"
            ) from exc
    else:
        rot_expr = torch.eye(3, dtype=dtype, device=dev).expand(len(ref.n_atoms), 3, 3)
    out_species = species[order] if isinstance(species, torch.Tensor) else ref.species
    return TorchCanonicalBatch(
        lattices=_straight_through(ref.lattices, lat_expr),
        frac=_straight_through(ref.frac, carried),
        species=out_species,
        n_atoms=torch.as_tensor(ref.n_atoms, device=dev),
        transforms=tf,
        rotations=_straight_through(ref.rotations, rot_expr),
        order=order,
        g6=_straight_through(ref.g6, _g6(red)),
        near_boundary=torch.as_tensor(ref.near_boundary, device=dev),
    )


def _narrow(lattices: torch.Tensor, frac: torch.Tensor, species: Any, n_atoms: Any, **kw: Any) -> TorchCanonicalBatch:
    r"""float16/bfloat16 input: computed in float64 (differentiably) and rounded once to the input dtypes.

    torch's CPU linear algebra has no half-precision kernels, and a product :math:`T L` formed in
    float16 is wrong once the transform's entries pass 2048 (exact integers) or the sums pass 65504
    (fuzz findings, issue 13).  A result that does not fit the narrow dtype raises
    :class:`~latticesym.errors.PrecisionError` instead of coming back as inf.
    """
    out = canonicalize(lattices.to(torch.float64), frac.to(torch.float64), species, n_atoms, **kw)
    lat = out.lattices.to(lattices.dtype)
    fr = out.frac.to(frac.dtype)
    g6 = out.g6.to(lattices.dtype)
    for name, wide, low in (("lattices", out.lattices, lat), ("g6", out.g6, g6), ("frac", out.frac, fr)):
        bad = torch.isfinite(wide) & ~torch.isfinite(low)
        if bool(bad.any()):
            worst = float(wide[bad].abs().max())
            raise PrecisionError(f"canonical {name} entry {worst:.6g} does not fit {low.dtype} "
                                 f"(largest finite {torch.finfo(low.dtype).max:.6g})")
    return out._replace(lattices=lat, frac=fr, g6=g6, rotations=out.rotations.to(lattices.dtype))
