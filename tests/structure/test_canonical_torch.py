"""The torch twin latticesym.torch.canonicalize: bit-identical to numpy in float64, differentiable."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from latticesym.datasets import load_structures  # noqa: E402
from latticesym.errors import LatticeShapeError  # noqa: E402
from latticesym.structure import canonicalize_batch  # noqa: E402
from latticesym.torch import canonicalize as torch_canonicalize  # noqa: E402

FIELDS = ("lattices", "frac", "transforms", "rotations", "order", "g6", "near_boundary", "n_atoms")


def _batch(name: str, k: int = 200):
    s = load_structures(name)[:k]
    return (np.stack([x.lattice for x in s]), np.concatenate([x.frac_coords for x in s]),
            np.concatenate([np.asarray(x.species, dtype=np.int64) for x in s]), [x.num_atoms for x in s])


def bit_identical(np_result, torch_result) -> bool:
    """Every field of the torch result equals the numpy one bit for bit (float64 CPU)."""
    for f in FIELDS:
        a = np.ascontiguousarray(getattr(np_result, f))
        b = np.ascontiguousarray(getattr(torch_result, f).detach().cpu().numpy())
        if a.shape != b.shape or a.dtype != b.dtype or not np.array_equal(a.view(np.uint8), b.view(np.uint8)):
            return False
    return bool(np.array_equal(np.asarray(np_result.species), np.asarray(torch_result.species)))


@pytest.mark.invariance
@pytest.mark.parametrize("name", ["perov_5", "carbon_24"])
@pytest.mark.parametrize("orientation", ["parameters", "keep"])
def test_bit_identical_to_numpy_float64_cpu(name, orientation):
    lat, frac, sp, n = _batch(name)
    ref = canonicalize_batch(lat, frac, sp, n, orientation=orientation)
    out = torch_canonicalize(torch.from_numpy(lat), torch.from_numpy(frac), torch.from_numpy(sp),
                             torch.tensor(n), orientation=orientation)
    assert bit_identical(ref, out)


def test_bit_identity_check_catches_a_broken_twin():
    lat, frac, sp, n = _batch("carbon_24", 20)
    ref = canonicalize_batch(lat, frac, sp, n)
    out = torch_canonicalize(torch.from_numpy(lat), torch.from_numpy(frac), torch.from_numpy(sp), n)
    assert bit_identical(ref, out)
    # A twin that skips the wrap, or whose lattice is one ulp off, is caught.
    carried = torch.from_numpy(frac)[out.order]
    broken = out._replace(frac=carried)
    assert not bit_identical(ref, broken)
    nudged = out._replace(lattices=out.lattices * (1 + 2.0**-52))
    assert not bit_identical(ref, nudged)


def test_gradients_through_lattice_and_frac():
    rng = np.random.default_rng(3)
    lat = torch.tensor(rng.normal(size=(3, 3)) + 4 * np.eye(3), dtype=torch.float64, requires_grad=True)
    frac = torch.tensor(rng.uniform(0.05, 0.95, size=(4, 3)), dtype=torch.float64, requires_grad=True)
    sp = [1, 2, 2, 3]
    r = torch_canonicalize(lat, frac, sp)
    assert not bool(r.near_boundary[0])

    def f(lat_, frac_):
        out = torch_canonicalize(lat_, frac_, sp)
        return out.lattices, out.frac, out.g6

    assert torch.autograd.gradcheck(f, (lat, frac), eps=1e-7, atol=1e-6)
    # d frac_out / d frac_in = inv(T) row by row, independent of the lattice.
    (r.frac * torch.arange(12, dtype=torch.float64).reshape(4, 3)).sum().backward()
    minv = np.round(np.linalg.inv(r.transforms[0].numpy()))
    expect = np.arange(12.0).reshape(4, 3) @ minv.T
    got = np.empty((4, 3))
    got[r.order.numpy()] = expect
    np.testing.assert_allclose(frac.grad.numpy(), got, rtol=0, atol=1e-12)


def test_float32_single_lattice_and_errors():
    lat = torch.tensor([[1.0, 0, 0], [3, 1, 0], [0, 0, 2]])
    r = torch_canonicalize(lat, torch.tensor([[0.0, 0.5, 0.0]]), ["C"])
    assert r.lattices.dtype == torch.float32 and r.lattices.shape == (1, 3, 3)
    assert r.species.tolist() == ["C"] and r.transforms.dtype == torch.int64
    with pytest.raises(LatticeShapeError, match="n_atoms is required"):
        torch_canonicalize(lat[None], torch.zeros(1, 3), [6])
    with pytest.raises(TypeError):
        torch_canonicalize(np.eye(3), torch.zeros(1, 3), [6])  # type: ignore[arg-type]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    lat, frac, sp, n = _batch("carbon_24", 50)
    cpu = torch_canonicalize(torch.from_numpy(lat), torch.from_numpy(frac), torch.from_numpy(sp), n)
    gpu = torch_canonicalize(torch.from_numpy(lat).cuda(), torch.from_numpy(frac).cuda(),
                             torch.from_numpy(sp).cuda(), n)
    assert torch.equal(cpu.frac, gpu.frac.cpu()) and torch.equal(cpu.transforms, gpu.transforms.cpu())
