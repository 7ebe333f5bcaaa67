"""The pruned Gram-space search and the compiled fast path of both losses.

Against three yardsticks: the dense reference ``_loss._gram_space_dense`` (today's implementation,
kept private), the exhaustive search with the same residual (``_gram_search.search_numpy``: the
pruning must not change the chosen candidate, bit for bit), and the exact definition (Fractions)
on boundary cells.  A deliberately broken trie is caught.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.autograd.function import once_differentiable

import latticesym.torch as lt
from latticesym.groups import random_rotation, random_unimodular
from latticesym.reduce import _numba
from latticesym.torch import _gram_search as gs
from latticesym.torch import _loss

sys.path.insert(0, str(Path(__file__).parent))
import _cells

pytestmark = pytest.mark.skipif(not _numba.available(), reason="the compiled path needs numba")

F64 = torch.float64


def _boundary_cells() -> dict[str, np.ndarray]:
    return _cells.cells(_cells.FAST)


def _batch(seed: int, n: int = 96, noise: float = 0.02, target_bases: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Boundary cells and random physical cells; targets in random bases, predictions perturbed, rebased, rotated."""
    rng = np.random.default_rng(seed)
    protos = np.stack(list(_boundary_cells().values()))
    cells = protos[rng.integers(0, len(protos), n)] * rng.uniform(0.5, 2.0, (n, 1, 1))
    U_t = random_unimodular(n, max_entry=2, rng=rng) if target_bases else np.repeat(np.eye(3)[None], n, 0)
    target = np.einsum("nij,njk->nik", U_t, cells)
    noisy = cells * (1 + noise * rng.standard_normal((n, 3, 3)))
    pred = np.einsum("nij,njk,nlk->nil", random_unimodular(n, max_entry=2, rng=rng), noisy,
                     random_rotation(n, rng=rng))
    return torch.tensor(pred, dtype=F64, requires_grad=True), torch.tensor(target, dtype=F64)


def _value_and_grad(fn, pred: torch.Tensor, target: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    p = pred.detach().to(dtype).requires_grad_()
    v = fn(p, target.to(dtype))
    v.sum().backward()
    assert p.grad is not None
    return v.detach().double(), p.grad.double()


def _fast(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return lt.niggli_proxy_loss(p, t, space="gram", reduction="none")


@pytest.mark.parametrize("noise", [0.0, 1e-6, 0.02, 0.3])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_fast_gram_matches_the_dense_reference(noise: float, dtype: torch.dtype) -> None:
    pred, target = _batch(1, noise=noise)
    v, g = _value_and_grad(_fast, pred, target, dtype)
    v_ref, g_ref = _value_and_grad(lambda p, t: _loss._gram_space_dense(p, t, 1e-5, "auto"), pred, target, dtype)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    scale = float(v_ref.abs().max()) + 1e-30
    # where the dense scores (which cancel) and the direct residuals tie to rounding, both minimisers are
    # equally good: values agree to rounding of the loss, gradients wherever the winner is clear
    assert float((v - v_ref).abs().max()) <= tol * scale + (1e-18 if dtype == torch.float64 else 1e-9)
    if noise == 0.0:  # exact predictions: both gradients are rounding noise
        assert float(g.abs().max()) <= (1e-12 if dtype == torch.float64 else 1e-4)
        return
    close = torch.isclose(g, g_ref, rtol=1e-6 if dtype == torch.float64 else 1e-3, atol=1e-9 * float(g_ref.abs().max()))
    assert float(close.all(-1).all(-1).double().mean()) >= 0.9


@pytest.mark.parametrize("space", ["gram", "lattice"])
def test_fused_kernel_equals_the_autograd_graph(space: str) -> None:
    """The closed-form gradient of the fused kernel is the autograd gradient of the unfused losses."""
    pred, target = _batch(2, noise=0.05)
    fused, g_fused = _value_and_grad(lambda p, t: lt.niggli_proxy_loss(p, t, space=space, reduction="none"),
                                     pred, target, F64)
    plain = _loss._gram_space if space == "gram" else _loss._lattice_space
    ref, g_ref = _value_and_grad(lambda p, t: plain(p, t, 1e-5, "torch"), pred, target, F64)
    assert torch.allclose(fused, ref, rtol=1e-12, atol=0)
    assert torch.allclose(g_fused, g_ref, rtol=1e-10, atol=1e-14 * float(g_ref.abs().max()))


def test_torch_path_picks_the_kernels_candidates_bit_for_bit() -> None:
    pred, target = _batch(3, noise=0.01)
    P = pred.detach()
    N_p, N_t, flat_t = _loss._reduce_pair(P, target, 1e-5, "auto")
    arrays = [np.ascontiguousarray(x.numpy()) for x in (P, flat_t, N_p, N_t)]
    MN_k, V_k, G_k, s_k = gs.prep_numba(*arrays, 1e-12)
    MN_t, V_t, G_t, s_t = gs.prep_torch(P, flat_t, N_p, N_t, 1e-12)
    assert np.array_equal(G_k, G_t.numpy()) and np.array_equal(s_k, s_t.numpy())
    same = (MN_k == MN_t.numpy()).all((1, 2)) & (V_k == V_t.numpy()).all((1, 2))
    # term A is bit-identical; term B's target-basis values come from matmuls of another order
    assert float(same.mean()) >= 0.95, float(same.mean())
    no_b = (np.abs(V_k) == np.eye(3)).all((1, 2)) & (np.abs(V_t.numpy()) == np.eye(3)).all((1, 2))
    assert bool(same[no_b].all())


def _g6s(pred: torch.Tensor, target: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    P = pred.detach()
    N_p, N_t, flat_t = _loss._reduce_pair(P, target, 1e-5, "auto")
    X, Tr = (N_p @ P).numpy(), (N_t @ flat_t).numpy()
    out = []
    for x in (X, Tr):
        G = x @ x.transpose(0, 2, 1)
        out.append(np.stack([G[:, 0, 0], G[:, 1, 1], G[:, 2, 2], 2 * G[:, 1, 2], 2 * G[:, 0, 2], 2 * G[:, 0, 1]], 1))
    s = out[1][:, :3].sum(1) / 3
    return out[0] / s[:, None], out[1] / s[:, None]


def _walk(g: np.ndarray, gt: np.ndarray, tr: gs.SearchTrie) -> np.ndarray:
    q = np.empty(len(tr.rows))
    return np.array([gs._best(g[i], gt[i], tr.kp, q, tr.l1_of, tr.l2_of, tr.c_of, tr.c_idx, tr.masks)[0]
                     for i in range(len(g))])


@pytest.mark.parametrize("noise", [0.0, 1e-9, 0.02])
def test_pruning_keeps_the_exhaustive_minimiser(noise: float) -> None:
    pred, target = _batch(4, noise=noise)
    g, gt = _g6s(pred, target)
    assert np.array_equal(_walk(g, gt, gs.trie()), gs.search_numpy(g, gt))


def test_pruning_check_catches_a_broken_trie() -> None:
    """A trie that lost the subtrees of all but its first first-row (a wrong bound prunes the same way) is caught."""
    pred, target = _batch(4, noise=0.02)
    g, gt = _g6s(pred, target)
    tr = gs.trie()
    masks = tr.masks.copy()
    masks[2:1 + len(tr.l1_row)] = 0  # the children of every level-1 entry after the first
    broken = tr._replace(masks=masks)
    assert not np.array_equal(_walk(g, gt, broken), gs.search_numpy(g, gt))


def _auts(gt: np.ndarray, tol: float, tr: gs.SearchTrie) -> list[int]:
    q = np.empty(len(tr.rows))
    out = np.empty(len(tr.mats), np.int64)
    n = gs._automorphisms(gt, tol, tr.kp, q, tr.l1_of, tr.l2_of, tr.c_of, tr.c_idx, tr.masks, out)
    return [int(k) for k in out[:n]]


def _auts_exhaustive(gt: np.ndarray, tol: float, tr: gs.SearchTrie) -> list[int]:
    g = tuple(float(v) for v in gt)
    return [k for k in range(len(tr.mats)) if gs.residual(g, g, tuple(tr.mats[k].ravel())) <= tol]


@pytest.mark.parametrize("tol", [1e-12, 1e-4, 1e-2])
def test_automorphism_walk_returns_the_exhaustive_set(tol: float) -> None:
    """The pruned automorphism filter of the kernel (target against itself) equals the filter over all of S."""
    pred, target = _batch(5, noise=0.0)
    _, gt = _g6s(pred, target)
    tr = gs.trie()
    sizes = []
    for row in gt:
        got = _auts(row, tol, tr)
        assert got == _auts_exhaustive(row, tol, tr)
        sizes.append(len(got))
    assert max(sizes) > 8  # boundary cells: more than the sign changes, so the walk is exercised
    # and a trie that lost its third rows is caught
    masks = tr.masks.copy()
    masks[1 + len(tr.l1_row):] = 0
    broken = tr._replace(masks=masks)
    assert any(_auts(row, tol, broken) != _auts_exhaustive(row, tol, tr) for row in gt)


@pytest.mark.parametrize("gt", [(1.0, 1.0, 1.0, 0.0, 0.0, 0.0), (1.0, 1.0, 2.0, 0.0, 0.0, -1.0),
                                (3.0, 3.0, 3.0, -2.0, -2.0, -2.0)], ids=["cubic", "hexagonal", "bcc"])
def test_automorphism_walk_is_exact_at_zero_tolerance(gt: tuple[float, ...]) -> None:
    """Exact forms (every residual exact in float64): the limit is inclusive, ``<= 0`` keeps the automorphisms."""
    tr = gs.trie()
    row = np.array(gt)
    got = _auts(row, 0.0, tr)
    assert got == _auts_exhaustive(row, 0.0, tr)
    assert len(got) > 8


def _exact_min(g: np.ndarray, gt: np.ndarray) -> Fraction:
    """min over S of ||M G M^T - G_t||_F^2, exactly, from the float G6 values (converted exactly)."""
    gf, gtf = [Fraction(float(v)) for v in g], [Fraction(float(v)) for v in gt]

    def gram(v: list[Fraction]) -> list[list[Fraction]]:
        A, B, C, xi, eta, zeta = v
        return [[A, zeta / 2, eta / 2], [zeta / 2, B, xi / 2], [eta / 2, xi / 2, C]]

    G, Gt = gram(gf), gram(gtf)
    best = None
    for M in gs.trie().mats.astype(int).tolist():
        H = [[sum(M[i][a] * G[a][b] * M[j][b] for a in range(3) for b in range(3)) for j in range(3)] for i in range(3)]
        r = sum((H[i][j] - Gt[i][j]) ** 2 for i in range(3) for j in range(3))
        best = r if best is None or r < best else best
    assert best is not None
    return best


@pytest.mark.parametrize("name", list(_boundary_cells()))
def test_term_a_equals_the_exact_definition_on_boundary_cells(name: str) -> None:
    """Targets in their reduced basis (term A only): the loss is the exact min over S, to rounding."""
    rng = np.random.default_rng(5)
    cell = _boundary_cells()[name]
    n = 2
    noisy = cell * (1 + 1e-3 * rng.standard_normal((n, 3, 3)))
    pred = torch.tensor(np.einsum("nij,njk->nik", random_unimodular(n, max_entry=2, rng=rng), noisy))
    target = lt.niggli_reduce(torch.tensor(np.repeat(cell[None], n, 0)))[0]
    loss = lt.niggli_proxy_loss(pred, target, space="gram", reduction="none")
    g, gt = _g6s(pred, target)
    for i in range(n):
        exact = float(_exact_min(g[i], gt[i])) / 9
        assert abs(float(loss[i]) - exact) <= 1e-9 * exact + 1e-24, (float(loss[i]), exact)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_exact_predictions_in_any_basis_cost_nothing_on_the_fast_path(dtype: torch.dtype) -> None:
    pred, target = _batch(6, noise=0.0)
    loss = lt.niggli_proxy_loss(pred.detach().to(dtype), target.to(dtype), space="gram", reduction="none")
    assert float(loss.max()) <= (1e-20 if dtype == torch.float64 else 1e-9)


def test_non_finite_predictions_propagate_and_degenerate_ones_stay_finite() -> None:
    pred, target = _batch(7, n=4)
    p = pred.detach().clone()
    p[0, 0, 0] = float("nan")
    p[1] = 0.0
    p[2, 2] = p[2, 0]  # singular
    for space in ("gram", "lattice"):
        q = p.clone().requires_grad_()
        loss = lt.niggli_proxy_loss(q, target, space=space, reduction="none")
        loss.sum().backward()
        assert q.grad is not None
        assert bool(torch.isnan(loss[0])) and bool(torch.isfinite(loss[1:]).all())
        assert bool(torch.isfinite(q.grad[1:]).all())


def test_uncertified_targets_take_the_escalating_path() -> None:
    """A target float64 cannot certify is not silently used: the general path escalates (same as before)."""
    from latticesym.families import generate

    rng = np.random.default_rng(8)
    target = torch.tensor(generate("near_singular", 4, rng))
    pred = torch.tensor(generate("physical", 4, rng))
    for space in ("gram", "lattice"):
        fast = lt.niggli_proxy_loss(pred, target, space=space, reduction="none")
        plain = (_loss._gram_space if space == "gram" else _loss._lattice_space)(pred, target, 1e-5, "torch")
        assert torch.allclose(fast, plain, rtol=1e-9, equal_nan=True)


def _kform_mismatches(kp: np.ndarray, g: np.ndarray) -> int:
    """Pairs of trie rows (and G6 vectors ``g``) where ``kform`` differs from ``form`` in any bit."""
    rows = gs.trie().rows
    bad = 0
    for i in range(len(rows)):
        for j in range(len(rows)):
            ref = gs.form(*(g[:, k] for k in range(6)), *rows[i], *rows[j])
            got = gs.kform(*(g[:, k] for k in range(6)), kp, i, j)
            bad += int((ref.view(np.int64) != got.view(np.int64)).sum())
    return bad


def test_kernel_forms_equal_the_shared_form_bit_for_bit() -> None:
    """``kform`` with the trie's integer products is ``form`` in every bit; the rows come in sign pairs."""
    pred, target = _batch(9, noise=0.05)
    g, gt = _g6s(pred, target)
    tr = gs.trie()
    assert (tr.rows[::-1] == -tr.rows).all()
    assert _kform_mismatches(tr.kp, np.concatenate([g, gt])) == 0
    broken = tr.kp.copy()
    broken[3, 7, 4] += 1.0  # one wrong product
    assert _kform_mismatches(broken, g) > 0


_THREADS_SCRIPT = """
import numpy as np, torch
torch.set_num_threads(1)
import latticesym.torch as lt
from latticesym.reduce import _numba
from latticesym.reduce._api import output_arrays
cells = np.eye(3) * np.random.default_rng(0).uniform(1, 2, (4096, 3, 1))
assert torch.get_num_threads() == 1
if {raw}:  # the kernel without the library's guard: numba's first OpenMP launch
    _numba.kernel("parallel")(cells, 1e-5, 1000, 0, *output_arrays(4096))
else:
    lt.niggli_reduce(torch.tensor(cells))
print(torch.get_num_threads())
"""


def _threads_after_first_parallel_reduce(raw: bool) -> int:
    import subprocess

    out = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT.format(raw=raw)], capture_output=True, text=True,
                         timeout=300, check=True)
    return int(out.stdout.split()[-1])


def test_a_large_batch_keeps_torch_thread_count() -> None:
    """numba's first OpenMP launch sets the calling thread's OpenMP count (torch's too: 1 -> numba's); the
    torch reducer restores it, so ``torch.set_num_threads(1)`` still holds after a 4096-cell batch."""
    import numba

    assert _threads_after_first_parallel_reduce(raw=False) == 1
    if numba.config.NUMBA_NUM_THREADS > 1:  # the check can fail: the unguarded kernel does change it
        assert _threads_after_first_parallel_reduce(raw=True) == numba.config.NUMBA_NUM_THREADS


@pytest.mark.parametrize("family", ["sheared", "extreme_aspect", "untrained"])
def test_reduced_target_is_accurate_and_the_same_on_every_path(family: str) -> None:
    """Sheared targets (transforms with entries far past 2**26): ``G_t`` and the scale from the Dot2
    products agree bit for bit between the kernel and the tensor path, and with the exact Gram matrix of
    the exactly reduced target to a few ulps (the plain product loses every digit there: fuzz finding)."""
    from latticesym.families import generate
    from latticesym.reduce._accurate import exact_matmul

    rng = np.random.default_rng(11)
    target = torch.tensor(generate(family, 24, rng))
    pred = torch.tensor(generate("physical", 24, rng))
    N_p, N_t, flat_t = _loss._reduce_pair(pred, target, 1e-5, "auto")
    arrays = [np.ascontiguousarray(x.numpy()) for x in (pred, flat_t, N_p, N_t)]
    _, _, G_k, s_k = gs.prep_numba(*arrays, 1e-12)
    _, _, G_t, s_t = gs.prep_torch(pred, flat_t, N_p, N_t, 1e-12)
    assert np.array_equal(G_k, G_t.numpy()) and np.array_equal(s_k, s_t.numpy())
    adj = np.empty((3, 3))
    for i in range(len(target)):  # the kernel's adjugate (interpreted) is the exact inverse of torch's
        gs._iadj3(arrays[3][i], adj)
        assert np.array_equal(adj, lt.unimodular_inverse(N_t[i]).numpy())
    big = 0
    for i in range(len(target)):
        x = exact_matmul(N_t[i].numpy().astype(np.int64), flat_t[i].numpy())
        G = np.array([[float(sum(x[a][k] * x[b][k] for k in range(3))) for b in range(3)] for a in range(3)])
        assert np.allclose(G_k[i], G, rtol=1e-13, atol=1e-13 * np.abs(G).max()), (i, G_k[i], G)
        big += int(np.abs(N_t[i].numpy()).max() >= 2**26)
    if family == "sheared":
        assert big > 0  # the error-free branches were exercised


def _second_derivative(loss: Any, pred: torch.Tensor, target: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``d/dpred <grad loss(pred), v>``: a Hessian-vector product, through ``create_graph=True``."""
    p = pred.detach().clone().requires_grad_()
    (g,) = torch.autograd.grad(loss(p, target), p, create_graph=True)
    if not g.requires_grad:  # a constant gradient: alone, a second backward raises; in a sum, it adds zero
        return torch.zeros_like(p)
    (h,) = torch.autograd.grad((g * v).sum(), p, allow_unused=True)
    return torch.zeros_like(p) if h is None else h


class _StoredGradient(torch.autograd.Function):
    """The old fast path, deliberately kept broken: a constant stored gradient (zero second derivatives)."""

    @staticmethod
    def forward(ctx: Any, pred: torch.Tensor, value: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        ctx.grad = grad
        return value

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return ctx.grad * (grad_out[..., None, None] if grad_out.ndim else grad_out), None, None


def _stored(space: str, reduction: str) -> Any:
    def loss(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        q = p.detach().requires_grad_()
        value = lt.niggli_proxy_loss(q, t, space=space, reduction=reduction)
        (grad,) = torch.autograd.grad(value.sum(), q)
        return _StoredGradient.apply(p, value.detach(), grad)
    return loss


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("space", ["gram", "lattice"])
def test_second_derivatives_on_the_fast_path_are_the_general_paths(space: str, reduction: str) -> None:
    """``create_graph=True`` (Hessian-vector products, gradient penalties) differentiates the same loss's graph:
    the result equals the general (torch-backend) path's and is not the zero of a stored gradient."""
    pred, target = _batch(6, n=24, noise=0.02)
    v = torch.randn(pred.shape, dtype=F64, generator=torch.Generator().manual_seed(6))

    def fast(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = lt.niggli_proxy_loss(p, t, space=space, reduction=reduction)
        assert out.grad_fn is not None and "Fused" in type(out.grad_fn).__name__  # the compiled path ran
        return out.sum()

    def general(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return lt.niggli_proxy_loss(p, t, space=space, reduction=reduction, backend="torch").sum()

    h_ref = _second_derivative(general, pred, target, v)
    assert float(h_ref.abs().max()) > 0  # the loss is quadratic on each piece: a non-zero Hessian
    tol = 1e-9 * float(h_ref.abs().max())
    assert float((_second_derivative(fast, pred, target, v) - h_ref).abs().max()) <= tol
    # the stored-gradient implementation this replaces is caught
    broken = _stored(space, reduction)
    assert float((_second_derivative(lambda p, t: broken(p, t).sum(), pred, target, v) - h_ref).abs().max()) > tol
