"""Torch twin of the structure canonical form: bit-identical to numpy (float64 CPU), gradients."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from latticesym.datasets import load_structures  # noqa: E402
from latticesym.structure import canonicalize_batch  # noqa: E402
from latticesym.torch._structure import canonicalize  # noqa: E402


def _batch(n: int = 60):
    cells = load_structures("carbon_24")[:n] + load_structures("perov_5")[:n]
    lat = np.stack([c.lattice for c in cells])
    frac = np.concatenate([c.frac_coords for c in cells])
    species = np.concatenate([np.asarray(c.species) for c in cells])
    counts = np.array([c.num_atoms for c in cells])
    return lat, frac, species, counts


@pytest.mark.parametrize("orientation", ["parameters", "keep"])
def test_float64_bit_identical_to_numpy(orientation: str) -> None:
    lat, frac, species, counts = _batch()
    ref = canonicalize_batch(lat, frac, species, counts, orientation=orientation)
    out = canonicalize(torch.tensor(lat), torch.tensor(frac), torch.tensor(species), torch.tensor(counts),
                       orientation=orientation)
    for name in ("lattices", "frac", "rotations", "g6"):
        assert np.array_equal(getattr(out, name).numpy(), getattr(ref, name)), name
    for name in ("transforms", "order", "n_atoms", "near_boundary"):
        assert np.array_equal(getattr(out, name).numpy(), getattr(ref, name)), name
    assert np.array_equal(out.species.numpy(), ref.species)


def test_gradients_flow_with_transform_fixed() -> None:
    lat, frac, species, counts = _batch(3)
    L = torch.tensor(lat, requires_grad=True)
    F = torch.tensor(frac, requires_grad=True)
    out = canonicalize(L, F, torch.tensor(species), torch.tensor(counts))
    (out.lattices.sum() + out.frac.sum()).backward()
    assert L.grad is not None and torch.isfinite(L.grad).all() and L.grad.abs().sum() > 0
    assert F.grad is not None and torch.isfinite(F.grad).all() and F.grad.abs().sum() > 0
    assert torch.autograd.gradcheck(
        lambda x: canonicalize(x, F.detach(), torch.tensor(species), torch.tensor(counts)).lattices,
        (L.detach().clone().requires_grad_(True),))


def test_a_broken_twin_is_caught() -> None:
    lat, frac, species, counts = _batch(5)
    ref = canonicalize_batch(lat, frac, species, counts)
    out = canonicalize(torch.tensor(lat), torch.tensor(frac), torch.tensor(species), torch.tensor(counts))
    broken = out.frac + 1e-16 * torch.ones_like(out.frac)  # a one-ulp-scale drift must be visible
    assert not np.array_equal(broken.numpy(), ref.frac)


def test_half_precision_is_computed_in_float64_and_rounded_once() -> None:
    """float16 input (fuzz finding: torch's CPU solve has no Half kernel): the float64 result rounded
    once, gradients in float16; a canonical cell beyond float16's range is a PrecisionError."""
    import latticesym.torch as lt
    from latticesym.errors import PrecisionError

    L = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 1.0], [-3.0, 1.0, 0.0]], dtype=torch.float16, requires_grad=True)
    f = torch.tensor([[0.25, 0.5, 0.125], [0.75, 0.0, 0.5]], dtype=torch.float16, requires_grad=True)
    out = lt.canonicalize(L, f, torch.tensor([1, 2]))
    wide = lt.canonicalize(L.detach().double(), f.detach().double(), torch.tensor([1, 2]))
    assert out.lattices.dtype == out.frac.dtype == torch.float16
    assert torch.equal(out.lattices, wide.lattices.half()) and torch.equal(out.frac, wide.frac.half())
    (out.lattices.sum() + out.frac.sum()).backward()
    assert L.grad is not None and L.grad.dtype == torch.float16 and bool(torch.isfinite(L.grad).all())
    big = torch.diag(torch.tensor([1.0, 1.0, 60000.0], dtype=torch.float16))
    with pytest.raises(PrecisionError, match=r"g6 entry 3\.6e\+09 does not fit torch.float16"):
        lt.canonicalize(big, torch.zeros(1, 3, dtype=torch.float16), torch.tensor([1]))
