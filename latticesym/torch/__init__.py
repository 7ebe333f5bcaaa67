"""Torch side of latticesym (optional extra): batched Niggli reduction and basis-free losses.

Imported explicitly as ``import latticesym.torch as lt``; ``import latticesym`` never imports
torch.

- :func:`niggli_reduce`: ``reduced, transform = niggli_reduce(L)`` on ``(..., 3, 3)`` tensors,
  float16 to float64, any device, vectorised over the batch (``docs/algorithm.md``);
  ``backend="device"`` keeps it on the device with ``ceil(steps / check_every)`` host syncs.
- :func:`niggli_proxy_loss`: ``space="lattice"`` is the research note's Niggli proxy loss,
  reproduced faithfully with its failure modes; ``space="gram"`` is latticesym's basis- and
  rotation-invariant variant.
- :class:`NiggliProxyLoss`, :class:`GramNiggliLoss`: ``nn.Module`` wrappers with ``reduction=``.
- :class:`BasisInvariant`: frame averaging over the near-reduced bases, making any model of
  ``(lattice, frac, species)`` basis-invariant and continuous across Niggli boundaries.
"""

from __future__ import annotations

from latticesym.torch._frame_average import BasisInvariant, FrameAveragePlan
from latticesym.torch._loss import (
    GramNiggliLoss,
    LatticeLoss,
    NiggliProxyLoss,
    gram_mse,
    lattice_from_lengths_angles,
    neighbour_transforms,
    niggli_proxy_loss,
)
from latticesym.torch._reduce import (
    TorchNiggliResult,
    gram,
    is_niggli_reduced,
    niggli_reduce,
    niggli_reduce_info,
    unimodular_inverse,
)
from latticesym.torch._structure import TorchCanonicalBatch, canonicalize

__all__ = [
    "BasisInvariant",
    "FrameAveragePlan",
    "GramNiggliLoss",
    "LatticeLoss",
    "NiggliProxyLoss",
    "TorchCanonicalBatch",
    "TorchNiggliResult",
    "canonicalize",
    "gram",
    "gram_mse",
    "is_niggli_reduced",
    "lattice_from_lengths_angles",
    "neighbour_transforms",
    "niggli_proxy_loss",
    "niggli_reduce",
    "niggli_reduce_info",
    "unimodular_inverse",
]
