"""The torch Niggli reducer: contract, backends, cross-checks against the exact oracle and the numpy reducer.

Every reducer promises (``CONVENTIONS.md``): ``transform`` integer with ``det == +1``,
``transform @ L_in == L_out``, the output Niggli-reduced and idempotent, typed errors on bad
input.  The torch reducer also promises: float64 decisions for float32 input, the same
results from its two backends (latticesym's batch code run on tensors, latticesym's compiled
kernel) and from :func:`latticesym.niggli_reduce`, iteration counts logarithmic in the shear,
and the host-sync count of its docstring.  The on-device backend (``backend="device"``, fixed-size
masked steps) is checked here against the existing batch path bit for bit, on every stress family
and the bundled real cells, against the exact oracle on a sample, with deliberately broken
variants (a dropped mask, a skipped step) that the same check must catch; its sync count is in
``test_sync_count.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import latticesym
import latticesym.torch as lt
from latticesym.errors import (
    BatchReductionError,
    LatticeError,
    LatticeShapeError,
    NonFiniteLatticeError,
    PrecisionError,
    SingularLatticeError,
)
from latticesym.families import generate
from latticesym.groups import random_rotation, random_unimodular
from latticesym.reduce import _numba
from latticesym.reduce._accurate import accurate_matmul, exact_det
from latticesym.reference import is_niggli_reduced as exact_is_reduced
from latticesym.reference import niggli_reduce as exact_reduce

BACKENDS = ["device", "torch",
            pytest.param("numba", marks=pytest.mark.skipif(not _numba.available(), reason="no numba"))]
BACKENDS_PLAIN = ["device", "torch", "numba"] if _numba.available() else ["device", "torch"]
DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-3, torch.float64: 1e-9}  # relative, as latticesym.testing.TOLERANCES
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
# Families on which the tolerant and the exact reductions must give the same form (no boundary nearby).
GENERIC_FAMILIES = ("physical", "untrained", "scaled")


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _mixed_batch(n: int, seed: int) -> np.ndarray:
    """Physical, untrained-model and boundary lattices, in random bases (max entry 3)."""
    rng = _rng(seed)
    parts = [generate(name, n, rng) for name in ("physical", "untrained", "boundary")]
    lattices = np.concatenate(parts)
    return np.einsum("nij,njk->nik", random_unimodular(len(lattices), max_entry=3, rng=rng), lattices)


def _tolerance(lattice: np.ndarray, eps: float = 1e-5) -> float:
    """``eps V^(2/3)`` from the exact volume (a float determinant of a sheared basis cancels)."""
    return eps * abs(float(exact_det(lattice))) ** (2 / 3)


def _equivalence_error(g6_a: np.ndarray, g6_b: np.ndarray) -> float:
    """min over the Niggli neighbour set S of ||M G_a M^T - G_b||_max: two reduced forms of one lattice."""
    mats = lt.neighbour_transforms().astype(np.float64)

    def gram(g: np.ndarray) -> np.ndarray:
        A, B, C, xi, eta, zeta = g
        return np.array([[A, zeta / 2, eta / 2], [zeta / 2, B, xi / 2], [eta / 2, xi / 2, C]])

    ga, gb = gram(g6_a), gram(g6_b)
    return float(np.abs(mats @ ga @ mats.transpose(0, 2, 1) - gb).max(axis=(1, 2)).min())


# --------------------------------------------------------------------------- contract
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_contract(backend: str, dtype: torch.dtype) -> None:
    L = torch.tensor(_mixed_batch(30, seed=1), dtype=dtype)
    reduced, transform = lt.niggli_reduce(L, backend=backend)
    assert reduced.dtype == dtype and transform.dtype == torch.int64
    assert reduced.shape == L.shape == transform.shape
    # formed in float64 by Dot2 (the numpy reducer's accurate product), rounded once
    assert torch.equal(torch.from_numpy(accurate_matmul(transform.numpy(), L.double().numpy())).to(dtype), reduced)
    assert torch.all(torch.linalg.det(transform.double()).round() == 1)
    # decisions are taken in float64: the float64 product is reduced within e; the output is that
    # product rounded to the input dtype (to its rounding, relative to |T| |L|)
    reduced64 = torch.from_numpy(accurate_matmul(transform.numpy(), L.double().numpy()))
    assert bool(lt.is_niggli_reduced(reduced64).all())
    scale = (transform.double().abs() @ L.double().abs()).amax((-1, -2), keepdim=True)
    assert bool(((reduced.double() - reduced64).abs() <= TOL[dtype] * scale).all())
    # idempotent: a reduced lattice needs no step
    _, again = lt.niggli_reduce(reduced64, backend=backend)
    assert torch.equal(again, torch.eye(3, dtype=torch.int64).expand_as(again))


def test_leading_shapes_and_empty() -> None:
    L = torch.tensor(_mixed_batch(4, seed=2)[:12].reshape(2, 2, 3, 3, 3))
    reduced, transform = lt.niggli_reduce(L)
    assert reduced.shape == transform.shape == (2, 2, 3, 3, 3)
    _, flat_t = lt.niggli_reduce(L.reshape(-1, 3, 3))
    assert torch.equal(flat_t.reshape(transform.shape), transform)
    _, single_t = lt.niggli_reduce(L[0, 1, 2])
    assert single_t.shape == (3, 3) and torch.equal(single_t, transform[0, 1, 2])
    empty_r, empty_t = lt.niggli_reduce(torch.zeros(0, 3, 3))
    assert empty_r.shape == empty_t.shape == (0, 3, 3)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_decisions_in_float64(dtype: torch.dtype) -> None:
    """float32 input is reduced with float64 decisions: the same transform as its float64 copy."""
    L = torch.tensor(_mixed_batch(20, seed=3), dtype=dtype)
    _, t_in = lt.niggli_reduce(L)
    _, t_64 = lt.niggli_reduce(L.double())
    assert torch.equal(t_in, t_64)


def test_backends_agree_exactly() -> None:
    """The torch batch and the compiled kernel run one algorithm: the same transforms, counts and G6
    bits on every lattice, certified or not, and the same as :func:`latticesym.niggli_reduce`.

    Both run latticesym's reducer (the batch code of ``latticesym.reduce._batch`` on tensors, and
    the numba kernel of ``latticesym.reduce._numba``); a difference would mean the torch operations
    round differently from numpy's.
    """
    if not _numba.available():
        pytest.skip("no numba")
    rng = _rng(4)
    names = ("physical", "untrained", "boundary", "sheared", "scaled", "extreme_aspect", "near_singular", "invalid")
    L = np.concatenate([generate(name, 25, rng) for name in names])
    a = lt.niggli_reduce_info(torch.tensor(L), backend="torch")
    b = lt.niggli_reduce_info(torch.tensor(L), backend="numba")
    assert int(b.ok.sum()) >= 150
    assert torch.equal(a.ok, b.ok)
    assert torch.equal(a.transform, b.transform)
    assert torch.equal(a.iterations, b.iterations)
    assert np.array_equal(a.g6.numpy().view(np.int64), b.g6.numpy().view(np.int64))
    ref = latticesym.niggli_reduce(L, precision="float", errors="mask")
    ok = b.ok.numpy()
    assert np.array_equal(ref.ok, ok)
    assert np.array_equal(np.asarray(ref.transform)[ok], b.transform.numpy()[ok])
    assert np.array_equal(np.asarray(ref.g6)[ok], b.g6.numpy()[ok])
    assert np.array_equal(np.asarray(ref.iterations)[ok], b.iterations.numpy()[ok])


@pytest.mark.parametrize("scale", [2.0**-27, 2.0**27, 1e-8, 1e8])
def test_scale_invariance(scale: float) -> None:
    """The tolerance is relative (e = eps V^(2/3)): a scaled lattice gets the same transform.

    A power-of-two scale is exact, so even lattices exactly on a boundary keep their decisions;
    1e-8 and 1e8 round the entries, so they are checked on generic (physical) lattices.
    """
    exact = math.log2(scale).is_integer()
    L = torch.tensor(_mixed_batch(15, seed=5) if exact else generate("physical", 30, _rng(5)))
    _, t = lt.niggli_reduce(L)
    _, t_scaled = lt.niggli_reduce(L * scale)
    assert torch.equal(t, t_scaled)


def test_reduced_is_differentiable_in_the_input() -> None:
    """``reduced = transform @ L`` carries autograd (the transform is piecewise constant)."""
    L = torch.tensor(generate("physical", 3, _rng(6)), requires_grad=True)

    def f(x: torch.Tensor) -> torch.Tensor:
        return lt.niggli_reduce(x)[0]

    assert torch.autograd.gradcheck(f, (L,))


def test_unimodular_inverse() -> None:
    M = torch.as_tensor(random_unimodular(50, max_entry=5, rng=_rng(7)))
    inv = lt.unimodular_inverse(M)
    assert inv.dtype == torch.int64
    assert torch.equal(inv @ M, torch.eye(3, dtype=torch.int64).expand(50, 3, 3))


def test_is_niggli_reduced_matches_the_oracle() -> None:
    rng = _rng(8)
    lattices = np.concatenate([generate("physical", 20, rng), generate("untrained", 20, rng)])
    reduced = lt.niggli_reduce(torch.tensor(lattices))[0].numpy()
    for L in np.concatenate([lattices, reduced]):
        assert bool(lt.is_niggli_reduced(torch.tensor(L))) == exact_is_reduced(L)


# --------------------------------------------------------------------------- agreement
@pytest.mark.crosscheck
@pytest.mark.parametrize("family", [*GENERIC_FAMILIES, "sheared", "boundary"])
def test_agrees_with_exact_oracle(family: str) -> None:
    """Same G6 (within e) and the same transform as the exact oracle, away from boundaries.

    On the ``boundary`` family (on or 1e-9 off a boundary) the tolerant and the exact forms may be
    different reduced forms of the lattice: equal up to a matrix of the Niggli neighbour set.
    ``sheared`` lattices that float64 cannot certify (shear up to 1e6) are left to the fallback.
    """
    L = generate(family, 30, _rng(9))
    info = lt.niggli_reduce_info(torch.tensor(L))
    checked = 0
    for i in range(len(L)):
        if not bool(info.ok[i]):
            assert family == "sheared", f"{family}[{i}] not certified"
            continue
        checked += 1
        exact = exact_reduce(L[i])
        g_exact = np.array([float(x) for x in exact.g6])
        g_ours = info.g6[i].numpy()
        e = _tolerance(L[i])
        if family == "boundary":
            assert _equivalence_error(g_ours, g_exact) <= 4 * e
        else:
            np.testing.assert_allclose(g_ours, g_exact, rtol=0, atol=e)
            assert info.transform[i].tolist() == exact.transform.tolist()
    assert checked >= 10


@pytest.mark.crosscheck
@pytest.mark.parametrize("family", ["physical", "untrained", "scaled", "sheared", "boundary", "extreme_aspect"])
def test_agrees_with_numpy_reducer(family: str) -> None:
    """Same G6 within tolerance as :func:`latticesym.niggli_reduce`, same transform away from boundaries."""
    try:
        from latticesym.reduce import niggli_reduce as numpy_reduce
    except ImportError:
        pytest.skip("the numpy reducer latticesym.reduce is not installed")

    L = generate(family, 30, _rng(10))
    ours = lt.niggli_reduce_info(torch.tensor(L))
    for i in range(len(L)):
        try:
            ref = numpy_reduce(L[i], eps=1e-5)
        except LatticeError:
            assert not bool(ours.ok[i]), f"{family}[{i}]: numpy reducer failed where torch certified"
            continue
        if not bool(ours.ok[i]):
            continue  # the public torch call would re-run it with this very reducer
        e = _tolerance(L[i])
        g_ref = np.asarray(ref.g6, dtype=np.float64)
        if family in ("boundary", "extreme_aspect"):
            assert _equivalence_error(ours.g6[i].numpy(), g_ref) <= 4 * e
        else:
            np.testing.assert_allclose(ours.g6[i].numpy(), g_ref, rtol=0, atol=e)
            assert ours.transform[i].tolist() == np.asarray(ref.transform).tolist()


@pytest.mark.stress
def test_iterations_logarithmic_in_shear() -> None:
    """Rounded-multiple pre-reduction: a basis sheared by up to 1e6 takes tens of steps, not 1e6.

    The rows are recomputed from the input and the integer transform with Dot2 where the plain
    product cancels, so float64 certifies the result even at a shear of 1e6 (entries ~1e13 that
    cancel to ~10), and it is the oracle's.
    """
    rng = _rng(11)
    base = generate("physical", 10, rng)
    for shear in (10, 1_000, 1_000_000):
        M = np.eye(3, dtype=np.int64)[None].repeat(10, 0)
        M[:, 1, 0] = shear
        M[:, 2, 0] = shear // 3
        M[:, 2, 1] = -shear // 7
        sheared = np.einsum("nij,njk->nik", M, base)
        info = lt.niggli_reduce_info(torch.tensor(sheared))
        assert int(info.iterations.max()) <= 20 + 6 * math.log2(shear), (shear, info.iterations.tolist())
        assert bool(info.ok.all())
        # generic lattices: the transform is unique, so it must be the oracle's
        for i in range(3):
            assert info.transform[i].tolist() == exact_reduce(sheared[i]).transform.tolist()


def test_host_sync_count() -> None:
    """The compiled path reads nothing back on CPU; the torch backend counts its reads of device data.

    An already reduced batch takes the torch backend one pass (decide, certify), so a few dozen
    reads; an unreduced one more passes, each a bounded number of reads.
    """
    L = torch.tensor(_mixed_batch(20, seed=12))
    if _numba.available():
        assert lt.niggli_reduce_info(L).syncs == 0
    info = lt.niggli_reduce_info(L, backend="torch")
    reduced = lt.niggli_reduce_info(info.lattice.detach(), backend="torch")
    assert bool(reduced.ok.all()) and torch.equal(reduced.transform, torch.eye(3, dtype=torch.int64).expand_as(
        reduced.transform))
    assert 0 < reduced.syncs <= 40
    passes = int(info.iterations.max()) + 2  # one step per pass, plus the decision and certification
    assert reduced.syncs < info.syncs <= 40 * passes


# --------------------------------------------------------------------------- errors and fallbacks
def test_shape_errors() -> None:
    with pytest.raises(LatticeShapeError):
        lt.niggli_reduce(torch.zeros(3, 4))
    with pytest.raises(LatticeShapeError):
        lt.niggli_reduce(torch.zeros(3))
    with pytest.raises(TypeError):
        lt.niggli_reduce(np.eye(3))  # type: ignore[arg-type]


def test_non_finite_and_singular_errors() -> None:
    nan = torch.eye(3, dtype=torch.float64)
    nan[1, 1] = float("nan")
    with pytest.raises(NonFiniteLatticeError):
        lt.niggli_reduce(nan)
    with pytest.raises(SingularLatticeError):
        lt.niggli_reduce(torch.zeros(3, 3, dtype=torch.float64))
    with pytest.raises(SingularLatticeError):
        lt.niggli_reduce(torch.tensor([[1.0, 0, 0], [0, 1, 0], [1, 1, 0]]), precision="float")
    batch = torch.eye(3, dtype=torch.float64).repeat(2, 3, 1, 1)
    batch[1, 2, 0, 0] = float("inf")
    with pytest.raises(BatchReductionError) as info:
        lt.niggli_reduce(batch)
    assert info.value.failed == [(1, 2)]
    assert isinstance(info.value.errors[0], NonFiniteLatticeError)


def test_uncertified_lattices_fall_back_or_raise() -> None:
    """A cell float64 cannot certify: ``precision="float"`` raises, ``"auto"`` re-runs it on the host.

    Relative volume 1e-20: the tolerant comparisons cannot be decided in float64; the host reducer
    escalates to mpmath / exact arithmetic.
    """
    L = np.array([[1.0, 0.0, 0.0], [3.0, 1.0, 0.0], [8.0, 8.0, 1e-20]])
    for backend in BACKENDS_PLAIN:
        info = lt.niggli_reduce_info(torch.tensor(L), backend=backend)
        assert not bool(info.ok)
        assert torch.equal(info.transform, torch.eye(3, dtype=torch.int64))  # numerically singular: identity
    with pytest.raises(PrecisionError):
        lt.niggli_reduce(torch.tensor(L), precision="float")
    _, transform = lt.niggli_reduce(torch.tensor(L))
    assert round(float(torch.linalg.det(transform.double()))) == 1
    assert transform.tolist() == np.asarray(latticesym.niggli_reduce(L).transform).tolist()
    exact = exact_reduce(L)
    g = exact_reduce(np.asarray(transform.numpy() @ L)).g6
    assert _equivalence_error(np.array([float(x) for x in g]), np.array([float(x) for x in exact.g6])) <= 1e-12


def test_invalid_family_never_raises_in_info() -> None:
    """``niggli_reduce_info`` flags bad lattices instead of raising: identity transform, ``ok`` False."""
    bad = torch.tensor(generate("invalid", 14, _rng(14)))
    info = lt.niggli_reduce_info(bad)
    assert not bool(info.ok.any())
    assert torch.equal(info.transform, torch.eye(3, dtype=torch.int64).expand(14, 3, 3))


# --------------------------------------------------------------------------- devices
@pytest.mark.parametrize("device", DEVICES)
def test_device_agrees_with_cpu(device: str) -> None:
    L = torch.tensor(_mixed_batch(40, seed=15))
    _, t_cpu = lt.niggli_reduce(L)
    reduced, t_dev = lt.niggli_reduce(L.to(device), backend="torch")
    assert t_dev.device.type == device and reduced.device.type == device
    assert torch.equal(t_dev.cpu(), t_cpu)


def test_rotation_does_not_change_the_transform() -> None:
    """Decisions depend on the metric only, so a rotated lattice gets the same transform (generic cells)."""
    rng = _rng(16)
    L = generate("physical", 20, rng)
    Q = random_rotation(20, rng=rng)
    _, t = lt.niggli_reduce(torch.tensor(L))
    _, t_rot = lt.niggli_reduce(torch.tensor(np.einsum("nij,nkj->nik", L, Q)))
    assert torch.equal(t, t_rot)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_ops_round_like_numpy(device: str) -> None:
    """The array operations the torch backend runs the reducer's batch code with: exact scalings."""
    from latticesym.reduce._batch import NUMPY
    from latticesym.torch._reduce import TorchOps

    rng = _rng(17)
    x = rng.standard_normal(4000) * 10.0 ** rng.integers(-300, 300, 4000)
    k = rng.integers(-1100, 1100, 4000)
    ops = TorchOps(torch.device(device))
    xt, kt = torch.tensor(x, device=device), torch.tensor(k, device=device)
    with np.errstate(over="ignore", under="ignore"):
        expect = NUMPY.ldexp(x, k)
    normal = (np.abs(expect) >= np.finfo(np.float64).tiny) | (expect == 0)
    got = ops.ldexp(xt, kt).cpu().numpy()
    assert np.array_equal(got[normal], expect[normal])
    m, e = ops.frexp(xt)
    m_np, e_np = NUMPY.frexp(x)
    assert np.array_equal(m.cpu().numpy(), m_np) and np.array_equal(e.cpu().numpy(), e_np)


# --------------------------------------------------------------------------- the device backend
STRESS = ("physical", "untrained", "boundary", "sheared", "scaled", "extreme_aspect", "near_singular", "invalid")


def _stress_and_bundled(n: int, seed: int) -> np.ndarray:
    """``n`` lattices of every stress family plus ``4 n`` bundled real cells in random bases."""
    from latticesym.datasets import load_structures

    rng = _rng(seed)
    cells = np.stack([s.lattice for name in ("perov_5", "carbon_24") for s in load_structures(name)])
    real = cells[rng.choice(len(cells), 4 * n, replace=False)]
    real = np.einsum("nij,njk->nik", random_unimodular(len(real), max_entry=3, rng=rng).astype(np.float64), real)
    return np.concatenate([*(generate(name, n, rng) for name in STRESS), real])


def _mismatch(a: lt.TorchNiggliResult, b: lt.TorchNiggliResult) -> list[str]:
    """What differs between two reductions of one batch (flags, transforms, iterations, G6 bits)."""
    out = []
    for name in ("ok", "transform", "iterations"):
        if not torch.equal(getattr(a, name), getattr(b, name)):
            out.append(name)
    if not np.array_equal(a.g6.numpy().view(np.int64), b.g6.numpy().view(np.int64)):
        out.append("g6")
    return out


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_device_backend_is_the_batch_path_bit_for_bit(dtype: torch.dtype) -> None:
    """Masked fixed-size steps take every lattice down its own path: the existing results, bit for bit."""
    L = torch.tensor(_stress_and_bundled(20, seed=20), dtype=dtype)
    dev = lt.niggli_reduce_info(L, backend="device")
    ref = lt.niggli_reduce_info(L, backend="torch")
    assert _mismatch(dev, ref) == []
    assert int(dev.ok.sum()) >= 200 and not bool(dev.ok.all())  # certified cells and flagged ones
    torch.testing.assert_close(dev.lattice, ref.lattice, rtol=0, atol=0, equal_nan=True)
    if _numba.available():
        assert _mismatch(dev, lt.niggli_reduce_info(L, backend="numba")) == []


def test_device_backend_agrees_with_the_exact_oracle() -> None:
    """A sample: generic cells get the oracle's transform and G6 (within e); real cells (often on a
    boundary: cubic perovskites) the oracle's reduced form up to the Niggli neighbour set."""
    rng = _rng(21)
    generic = np.concatenate([generate("physical", 6, rng), generate("untrained", 6, rng)])
    real = _stress_and_bundled(2, 22)[-8:]
    L = np.concatenate([generic, real])
    info = lt.niggli_reduce_info(torch.tensor(L), backend="device")
    assert bool(info.ok.all())
    for i in range(len(L)):
        exact = exact_reduce(L[i])
        g_exact = np.array([float(x) for x in exact.g6])
        if i < len(generic):
            np.testing.assert_allclose(info.g6[i].numpy(), g_exact, rtol=0, atol=_tolerance(L[i]))
            assert info.transform[i].tolist() == exact.transform.tolist()
        else:
            assert _equivalence_error(info.g6[i].numpy(), g_exact) <= 4 * _tolerance(L[i])


@pytest.mark.parametrize("max_iter", [1, 2, 5])
def test_device_backend_with_tiny_iteration_caps(max_iter: int) -> None:
    """Lattices over ``max_iter`` are flagged as the batch path flags them: the step bound is never hit."""
    L = torch.tensor(np.concatenate([generate("sheared", 20, _rng(23)), _mixed_batch(10, seed=23)]))
    dev = lt.niggli_reduce_info(L, backend="device", max_iter=max_iter)
    ref = lt.niggli_reduce_info(L, backend="torch", max_iter=max_iter)
    assert _mismatch(dev, ref) == []
    assert not bool(dev.ok.all())


def test_device_backend_step_cap_is_never_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Over the step cap a lattice is flagged: re-run on the host (``"auto"``) or a typed error."""
    from latticesym.torch import _reduce

    L = torch.tensor(generate("sheared", 6, _rng(24)))
    _, want = lt.niggli_reduce(L, backend="torch")
    monkeypatch.setattr(_reduce, "step_bound", lambda max_iter: 3)
    info = lt.niggli_reduce_info(L, backend="device")
    assert not bool(info.ok.any())
    with pytest.raises(BatchReductionError) as err:
        lt.niggli_reduce(L, backend="device", precision="float")
    assert isinstance(err.value.errors[0], PrecisionError)
    _, got = lt.niggli_reduce(L, backend="device")
    assert torch.equal(got, want)


def test_device_backend_check_is_not_vacuous(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dropped mask and a skipped step each change what the bit-for-bit check compares."""
    from latticesym.torch import _reduce

    L = torch.tensor(_stress_and_bundled(6, seed=25))
    ref = lt.niggli_reduce_info(L, backend="torch")
    assert _mismatch(lt.niggli_reduce_info(L, backend="device"), ref) == []
    flat = L.reshape(-1, 3, 3)

    def info_of(out: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int, int]) -> lt.TorchNiggliResult:
        t, g6, st, it, syncs, _ = out
        return lt.TorchNiggliResult(L, t.to(torch.int64), g6, it, st == 0, syncs)

    skipped = info_of(_reduce._reduce_device(flat, 1e-5, 1000, skip=1 << 5))  # step A5 never taken
    assert "transform" in _mismatch(skipped, ref)
    # (the skip hook disables A5 in the certification too, so only the comparison and the oracle see it)
    wrong = (skipped.transform != ref.transform).flatten(1).any(1) & ref.ok
    cells = (skipped.transform[wrong].double() @ flat[wrong]).numpy()
    assert not all(exact_is_reduced(c) for c in cells)
    put_row = _reduce._put_row
    monkeypatch.setattr(_reduce, "_put_row", lambda m, where, i, row: put_row(m, torch.ones_like(where), i, row))
    assert _mismatch(lt.niggli_reduce_info(L, backend="device"), ref)  # every lattice's row rewritten


@pytest.mark.parametrize("device", DEVICES)
def test_device_backend_on_each_device(device: str) -> None:
    L = torch.tensor(_mixed_batch(40, seed=26))
    ref = lt.niggli_reduce_info(L, backend="torch")
    dev = lt.niggli_reduce_info(L.to(device), backend="device")
    assert dev.transform.device.type == device
    assert torch.equal(dev.transform.cpu(), ref.transform) and torch.equal(dev.iterations.cpu(), ref.iterations)
    assert np.array_equal(dev.g6.cpu().numpy().view(np.int64), ref.g6.numpy().view(np.int64))


# --------------------------------------------------------------------------- half-precision inputs
#: Fuzz findings (issue 13, ``make fuzz`` 2026-12-03): float16 cells whose transforms exceed what
#: float16 holds (entries 2.3e5 and 6.6e5 > 65504); ``T.half() @ L`` was inf / NaN.
HALF_FINDINGS = [
    [[[4.6944e04, -2.7120e04, 2.3660e03], [-2.3075e02, -2.7850e02, 1.2506e02], [4.6725e02, 5.6450e02, -2.5362e02]],
     [[1.4552e04, 6.3938e01, -1.0936e04], [-3.3828e00, -2.3887e00, -5.4609e00], [4.7575e02, -1.3056e04, 1.2688e04]]],
    [[[-3.3660e03, -3.9620e03, 3.6660e03], [4.5440e03, -7.8880e03, -4.2960e03], [-9.1992e-01, 9.1953e00, 4.9463e-01]]],
]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", range(len(HALF_FINDINGS)))
def test_half_precision_reduced_is_transform_at_input(case: int, dtype: torch.dtype) -> None:
    """``reduced`` is ``T @ L`` formed exactly (float64) and rounded once: within ``u |T L|``.

    That is ``2**-11`` (float16) or ``2**-8`` (bfloat16) of each entry, far inside the fuzz check's
    ``1e-3 |T| |L|`` for float16 (the rounded product in float16 itself errs by up to
    ``3 * 2**-11 |T||L|`` even where nothing overflows).
    """
    L = torch.tensor(HALF_FINDINGS[case], dtype=dtype, requires_grad=True)
    reduced, T = lt.niggli_reduce(L)
    assert reduced.dtype == dtype and bool(torch.isfinite(reduced).all())
    exact = T.double() @ L.detach().double()
    u = torch.finfo(dtype).eps / 2  # unit roundoff
    assert bool(((reduced.double() - exact).abs() <= u * exact.abs()).all())
    scale = (T.double().abs() @ L.detach().double().abs()).amax((-1, -2), keepdim=True)
    assert bool(((reduced.double() - exact).abs() <= 1e-3 * scale).all()) or dtype == torch.bfloat16
    if dtype == torch.float16:
        assert int(T.abs().max()) > 65504  # the finding: a transform float16 cannot hold
        naive = T.to(dtype) @ L.detach()
        assert not bool(torch.isfinite(naive).all())
    reduced.sum().backward()  # d sum(T L) / dL = T^T 1, rounded once (inf where beyond float16's range)
    want = (T.double().transpose(-1, -2) @ torch.ones_like(exact)).to(dtype)
    assert L.grad is not None and torch.equal(L.grad, want)


def test_float32_near_its_maximum_reduces_to_finite_rows() -> None:
    """Fuzz finding: entries near 3e38 overflowed in the float32 sums of ``T @ L`` (NaN / -inf rows)
    although the reduced cell (|entries| <= 1.3e38) is representable; formed in float64 it is."""
    L = torch.tensor([[1.2878e38, 1.9858e38, 1.0606e38], [1.2873e38, 2.9933e38, 1.5726e38],
                      [-2.5774e38, -0.9527e38, -0.5783e38]], dtype=torch.float32)
    reduced, T = lt.niggli_reduce(L)
    assert bool(torch.isfinite(reduced).all())
    assert not bool(torch.isfinite(T.float() @ L).all())  # the product in float32 overflows
    assert torch.equal(reduced, torch.from_numpy(accurate_matmul(T.numpy(), L.double().numpy())).float())


def test_reduced_cell_beyond_the_dtype_is_a_typed_error() -> None:
    """Fuzz finding: a float16 cell whose reduced form has an entry 75994 > 65504 came back as inf,
    reported certified.  Now ``ok`` is False and the public call raises with the numbers."""
    L = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 1.0], [-65000.0, 60000.0, 0.0]], dtype=torch.float16)
    assert not bool(lt.niggli_reduce_info(L).ok)
    assert bool(lt.niggli_reduce_info(L.float()).ok)  # the same cell in float32: fine
    for precision in ("auto", "float"):
        with pytest.raises(PrecisionError, match=r"not representable in torch.float16: largest \|entry\| 75994"):
            lt.niggli_reduce(L, precision=precision)
    with pytest.raises(BatchReductionError) as err:
        lt.niggli_reduce(torch.stack([torch.eye(3, dtype=torch.float16), L]))
    assert err.value.failed == [(1,)]


def test_auto_without_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without numba, ``"auto"`` is the shrinking batch on CPU (reads cost nothing there) and would be
    ``"device"`` elsewhere; same results either way."""
    from latticesym.torch import _reduce

    L = torch.tensor(_mixed_batch(10, seed=27))
    ref = lt.niggli_reduce_info(L, backend="torch")
    monkeypatch.setattr(_reduce._reduce_numba, "available", lambda: False)
    auto = lt.niggli_reduce_info(L)
    assert _mismatch(auto, ref) == [] and auto.syncs == ref.syncs


#: Fuzz finding (issue 13, through BasisInvariant): a sheared basis with entries near 1e6 and volume 94
#: (cancellation ratio near 1e16); its transform has entries near 3e11.
SHEARED_1E6 = [[1372888.0348804225, 1707418.1652285054, 158253.0652387504],
               [19772.948264213508, -1230495.9768375196, -285894.16723487654],
               [-1659644.7475136106, -2196241.165701581, -221659.5570978367]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_sheared_cell_reduced_rows_are_accurate(backend: str) -> None:
    """``reduced`` is the Dot2 product, not the plain float64 one, which cancels to a zero row here;
    the gradient is still that of ``T @ L``."""
    L = torch.tensor(SHEARED_1E6, dtype=torch.float64, requires_grad=True)
    reduced, T = lt.niggli_reduce(L, backend=backend)
    plain = T.double() @ L.detach()
    assert not torch.allclose(plain, reduced.detach(), rtol=1e-3)  # the plain product has lost the rows
    exact = exact_reduce(np.array(SHEARED_1E6))
    g6 = torch.stack([(reduced[i] * reduced[j]).sum() for i, j in ((0, 0), (1, 1), (2, 2))])
    assert torch.allclose(g6, torch.tensor([float(v) for v in exact.g6[:3]], dtype=torch.float64), rtol=1e-6)
    reduced.sum().backward()
    want = T.double().transpose(-1, -2) @ torch.ones(3, 3, dtype=torch.float64)
    assert L.grad is not None and torch.equal(L.grad, want)
