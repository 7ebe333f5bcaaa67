"""The Niggli proxy losses: the research note's counterexamples and the Gram-space variant's properties.

``space="lattice"`` is the research note's loss, reproduced faithfully; its failure modes are
*documented* here as tests (they pass when the failure is reproduced):

- exact predictions of a triclinic lattice in any basis: loss 0 (what the note claims);
- exact predictions of a cubic lattice in another basis: loss > 0 in most draws (several Niggli
  bases);
- rotated exact predictions: loss > 0 always;
- the same error in a sheared basis costs orders of magnitude more (residual in the
  prediction's basis).

``space="gram"`` must have each property of issue 4, item 3.  Measuring and asserting are
separate (e3nn style): ``*_error`` functions return numbers, the tests assert on them, and the
deliberately broken variants at the end show that each measurement catches the bug it is for.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
import torch

import latticesym.torch as lt
from latticesym.families import generate
from latticesym.groups import random_rotation, random_unimodular
from latticesym.metric import lattice_from_parameters

sys.path.insert(0, str(Path(__file__).parent))
import _cells

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # per-lattice losses, shape (n,)

N_DRAWS = 200
# "zero" of the Gram-space loss (dimensionless, squared relative Gram error) per dtype
ZERO = {torch.float32: 1e-9, torch.float64: 1e-20}
# relative agreement of two values of the loss per dtype
RTOL = {torch.float32: 1e-3, torch.float64: 1e-9}


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def prototypes() -> dict[str, np.ndarray]:
    """Ground truths on Niggli boundaries (conventional primitive settings) and a triclinic one."""
    return _cells.cells(_cells.PROXY)


BOUNDARY = ["cubic", "fcc", "bcc", "hexagonal", "rhombohedral", "rhombohedral_acute"]


Det = Literal[1, -1, "either"]


def _bases(n: int, rng: np.random.Generator, max_entry: int = 3, det: Det = "either") -> np.ndarray:
    return random_unimodular(n, max_entry=max_entry, det=det, rng=rng)


def _apply(U: np.ndarray, L: np.ndarray, Q: np.ndarray | None = None) -> np.ndarray:
    """``U @ L @ Q.T`` for a batch of ``U`` (and ``Q``), ``L`` one lattice or a batch."""
    out = np.einsum("nij,jk->nik", U, L) if L.ndim == 2 else np.einsum("nij,njk->nik", U, L)
    return out if Q is None else np.einsum("nij,nkj->nik", out, Q)


def gram_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return lt.niggli_proxy_loss(pred, target, space="gram", reduction="none")


def lattice_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return lt.niggli_proxy_loss(pred, target, space="lattice", reduction="none")


# --------------------------------------------------------------------------- measurements
def exactness_error(loss: LossFn, target: np.ndarray, *, n: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """Loss of exact predictions ``U @ target @ Q.T`` (random basis and rotation, rounded to ``dtype``)."""
    rng = _rng(seed)
    pred = _apply(_bases(n, rng), target, random_rotation(n, rng=rng))
    tgt = np.repeat(target[None], n, 0)
    return loss(torch.tensor(pred, dtype=dtype), torch.tensor(tgt, dtype=dtype))


def basis_invariance_error(
    loss: LossFn, pred: np.ndarray, target: np.ndarray, *, trials: int, dtype: torch.dtype, seed: int
) -> float:
    """Largest relative change of the loss when ``pred`` is rewritten in other bases and orientations."""
    rng = _rng(seed)
    n = len(pred)
    tgt = torch.tensor(target, dtype=dtype)
    ref = loss(torch.tensor(pred, dtype=dtype), tgt).double()
    worst = 0.0
    for _ in range(trials):
        moved = np.einsum("nij,njk,nlk->nil", _bases(n, rng), pred, random_rotation(n, rng=rng))
        val = loss(torch.tensor(moved, dtype=dtype), tgt).double()
        worst = max(worst, float(((val - ref).abs() / ref.abs().clamp_min(1e-30)).max()))
    return worst


def rotation_error(loss: LossFn, pred: np.ndarray, target: np.ndarray, *, dtype: torch.dtype, seed: int) -> float:
    """Largest relative change of the loss under rotations of the prediction alone."""
    rng = _rng(seed)
    Q = random_rotation(len(pred), rng=rng)
    tgt = torch.tensor(target, dtype=dtype)
    ref = loss(torch.tensor(pred, dtype=dtype), tgt).double()
    val = loss(torch.tensor(np.einsum("nij,nkj->nik", pred, Q), dtype=dtype), tgt).double()
    return float(((val - ref).abs() / ref.abs().clamp_min(1e-30)).max())


def gradient_error(loss: LossFn, pred: np.ndarray, target: np.ndarray) -> float:
    """Largest relative gap between autograd and central finite differences (float64, away from boundaries)."""
    p = torch.tensor(pred, requires_grad=True)
    t = torch.tensor(target)
    loss(p, t).sum().backward()
    assert p.grad is not None
    h = 1e-6
    fd = torch.zeros_like(p)
    with torch.no_grad():
        for idx in np.ndindex(*pred.shape[1:]):
            dp = torch.zeros_like(p)
            dp[(slice(None), *idx)] = h
            fd[(slice(None), *idx)] = (loss(p + dp, t) - loss(p - dp, t)) / (2 * h)
    scale = fd.abs().amax((-1, -2), keepdim=True).clamp_min(1e-12)
    return float(((p.grad - fd).abs() / scale).max())


# --------------------------------------------------------------------------- space="lattice": the note
class TestNoteLossCounterexamples:
    """The research note's loss, measured; each test documents one failure mode (or its one success)."""

    def test_exact_triclinic_predictions_cost_nothing(self) -> None:
        """Right-handed bases (SL(3,Z)): 0/200, as the note claims."""
        rng = _rng(1)
        target = prototypes()["triclinic"]
        pred = torch.tensor(_apply(_bases(N_DRAWS, rng, det=1), target))
        loss = lattice_loss(pred, torch.tensor(np.repeat(target[None], N_DRAWS, 0)))
        assert int((loss > 1e-12).sum()) == 0

    def test_left_handed_bases_cost(self) -> None:
        """A mirrored basis (det -1) of a triclinic lattice: N (det +1) lands on -T_r, so loss > 0.

        Measured: 200/200 with det -1 bases (about half of the draws from GL(3,Z)).
        """
        rng = _rng(8)
        target = prototypes()["triclinic"]
        pred = torch.tensor(_apply(_bases(N_DRAWS, rng, det=-1), target))
        loss = lattice_loss(pred, torch.tensor(np.repeat(target[None], N_DRAWS, 0)))
        assert int((loss > 1e-6).sum()) == N_DRAWS

    def test_cubic_ground_truth_has_several_niggli_bases(self) -> None:
        rng = _rng(2)
        target = prototypes()["cubic"]
        pred = torch.tensor(_apply(_bases(N_DRAWS, rng, det=1), target))
        loss = lattice_loss(pred, torch.tensor(np.repeat(target[None], N_DRAWS, 0)))
        positive = int((loss > 1e-12).sum())
        # measured: 198/200 (the spglib measurement: 188/200)
        assert positive >= N_DRAWS // 2, positive

    def test_rotated_predictions_always_cost(self) -> None:
        loss = exactness_error(lattice_loss, prototypes()["triclinic"], n=N_DRAWS, dtype=torch.float64, seed=3)
        assert int((loss > 1e-6).sum()) == N_DRAWS  # 200/200

    def test_residual_grows_with_the_shear_of_the_predicted_basis(self) -> None:
        """The same error in the reduced cell costs ~|inv(N)|^2 more when the prediction is sheared."""
        target = prototypes()["triclinic"]
        error = 1e-3 * _rng(4).standard_normal((3, 3))
        costs = []
        for shear in (0, 10, 1_000, 100_000):
            U = np.array([[1, 0, 0], [shear, 1, 0], [shear, shear, 1]])
            pred = torch.tensor(U @ (target + error))[None]
            costs.append(float(lattice_loss(pred, torch.tensor(target)[None])))
        assert costs[0] < 1e-5
        assert costs[-1] > 1e8 * costs[0]  # measured growth ~1e10 (shear squared) over shears 0 -> 1e5
        assert all(b > a for a, b in itertools.pairwise(costs))

    def test_gradient_flows_through_pred_only_and_matches_mse(self) -> None:
        """``"mean"`` equals ``mse_loss(pred, inv(N) @ T_r)`` with N and the target constants."""
        rng = _rng(5)
        target = torch.tensor(generate("physical", 8, rng), requires_grad=True)
        pred = torch.tensor(_apply(_bases(8, rng), target.detach().numpy()) * 1.01, requires_grad=True)
        loss = lt.niggli_proxy_loss(pred, target)
        loss.backward()
        assert target.grad is None
        N = lt.niggli_reduce(pred.detach())[1].double()
        t_red = lt.niggli_reduce(target.detach())[0]
        expected = torch.nn.functional.mse_loss(pred.detach(), lt.unimodular_inverse(N) @ t_red)
        torch.testing.assert_close(loss.detach(), expected)
        assert pred.grad is not None
        torch.testing.assert_close(pred.grad, 2 * (pred.detach() - lt.unimodular_inverse(N) @ t_red) / pred.numel())

    def test_agrees_with_the_spglib_loop_where_spglib_succeeds(self) -> None:
        """Triclinic targets (unique Niggli basis): our reducer and the note's spglib loop give the same loss."""
        note = _note_module().note_loss_spglib
        rng = _rng(6)
        target = lt.niggli_reduce(torch.tensor(generate("physical", 64, rng)))[0]
        pred = torch.tensor(_apply(_bases(64, rng, max_entry=2), target.numpy()) * 1.02)
        torch.testing.assert_close(lt.niggli_proxy_loss(pred, target), note(pred, target))

    @pytest.mark.stress
    def test_never_fails_where_spglib_returns_none(self) -> None:
        note = _note_module().note_loss_spglib
        rng = _rng(7)
        pred = torch.tensor(np.concatenate([generate("sheared", 40, rng), generate("near_singular", 40, rng)]))
        target = lt.niggli_reduce(torch.tensor(generate("physical", 80, rng)))[0]
        with pytest.raises(RuntimeError, match="returned None"):
            note(pred, target)
        for space in ("lattice", "gram"):
            p = pred.clone().requires_grad_(True)
            loss = lt.niggli_proxy_loss(p, target, space=space, reduction="none")
            loss.sum().backward()
            assert bool(torch.isfinite(loss).all()) and p.grad is not None and bool(torch.isfinite(p.grad).all())


def _note_module() -> Any:
    """The note's spglib-loop implementation lives with the benchmarks (it is their baseline)."""
    pytest.importorskip("spglib")
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_torch.py"
    spec = importlib.util.spec_from_file_location("_latticesym_bench_torch", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- space="gram": properties
@pytest.mark.invariance
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", list(prototypes()))
def test_gram_loss_is_zero_for_exact_predictions(name: str, dtype: torch.dtype) -> None:
    """Any basis (GL(3,Z), max entry 3) and any rotation, rounded to the dtype: loss ~ 0."""
    loss = exactness_error(gram_loss, prototypes()[name], n=N_DRAWS, dtype=dtype, seed=10)
    assert float(loss.max()) <= ZERO[dtype], float(loss.max())


@pytest.mark.invariance
def test_gram_loss_is_zero_on_real_cells() -> None:
    """Bundled Perov-5 / Carbon-24 cells (cubic and low-symmetry), exact predictions in random bases."""
    from latticesym.datasets import load_structures

    rng = _rng(11)
    cells = np.stack([s.lattice for name in ("perov_5", "carbon_24") for s in load_structures(name)[:100]])
    pred = np.einsum("nij,njk,nlk->nil", _bases(len(cells), rng), cells, random_rotation(len(cells), rng=rng))
    loss = gram_loss(torch.tensor(pred), torch.tensor(cells))
    assert float(loss.max()) <= ZERO[torch.float64]


@pytest.mark.invariance
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_gram_loss_does_not_depend_on_the_basis_or_orientation_of_the_prediction(dtype: torch.dtype) -> None:
    """Predictions that are *not* the target (scaled, perturbed, another lattice), rewritten in other bases."""
    rng = _rng(12)
    protos = prototypes()
    targets = np.stack([protos[k] for k in protos for _ in range(6)])
    n = len(targets)
    preds = np.concatenate(
        [
            targets[: n // 3] * 1.1,
            targets[n // 3 : 2 * n // 3] * (1 + 0.05 * rng.standard_normal((n // 3, 3, 3))),
            generate("physical", n - 2 * (n // 3), rng),
        ]
    )
    err = basis_invariance_error(gram_loss, preds, targets, trials=4, dtype=dtype, seed=13)
    assert err <= RTOL[dtype], err


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", BOUNDARY)
def test_gram_loss_is_continuous_across_niggli_boundaries(name: str, dtype: torch.dtype) -> None:
    """A 1e-3 perturbation of the target never costs more than the plain Gram MSE of that perturbation.

    The target is given in its conventional basis and in random bases (max entry 3); the
    perturbation is applied in the target's basis, then the prediction is rewritten in yet
    another basis and rotated (which the loss must not see).  In float32 the prediction is that
    lattice only to rounding (its basis entries reach ~30), hence the looser bound (measured 1.012).
    """
    rng = _rng(14)
    n = 300
    target0 = prototypes()[name]
    U_t = np.concatenate([np.repeat(np.eye(3, dtype=np.int64)[None], n // 2, 0), _bases(n - n // 2, rng)])
    target = _apply(U_t, target0)
    perturbed = target + 1e-3 * np.abs(target0).max() * rng.standard_normal((n, 3, 3))
    pred = np.einsum("nij,njk,nlk->nil", _bases(n, rng), perturbed, random_rotation(n, rng=rng))
    loss = gram_loss(torch.tensor(pred, dtype=dtype), torch.tensor(target, dtype=dtype)).double()
    plain = lt.gram_mse(torch.tensor(perturbed, dtype=dtype), torch.tensor(target, dtype=dtype), reduction="none")
    # equal when the best comparison is the aligned one: allow the rounding of two routes to it
    slack = {torch.float32: 2e-2, torch.float64: 1e-6}[dtype]
    assert bool((loss <= plain.double() * (1 + slack) + 1e-24).all()), float((loss / plain).max())


def test_gram_loss_along_a_path_through_a_boundary_has_no_jump() -> None:
    """Shear a hexagonal cell's angle through 120 degrees: the loss follows (gamma - 120)^2, no jump."""
    target = torch.tensor(prototypes()["hexagonal"])
    gammas = np.linspace(119.0, 121.0, 41)
    preds = torch.tensor(np.stack([lattice_from_parameters(3.0, 3.0, 5.0, 90, 90, g) for g in gammas]))
    loss = gram_loss(preds, target.expand(len(gammas), 3, 3)).numpy()
    steps = np.abs(np.diff(loss))
    assert loss.min() < 1e-20
    assert steps.max() < 5 * np.median(steps) + 1e-12


@pytest.mark.parametrize("name", list(prototypes()))
def test_gram_loss_sees_a_different_lattice(name: str) -> None:
    """A 10% larger cell (in any basis and orientation) costs clearly more than nothing."""
    rng = _rng(15)
    target = prototypes()[name]
    pred = _apply(_bases(50, rng), 1.1 * target, random_rotation(50, rng=rng))
    loss = gram_loss(torch.tensor(pred), torch.tensor(np.repeat(target[None], 50, 0)))
    # 1.21 G vs G: at least (0.21)^2 / 9 of the mean squared diagonal, relative to s^2
    assert float(loss.min()) > 1e-3


def test_gram_loss_gradients_flow_through_pred_only() -> None:
    rng = _rng(16)
    target = torch.tensor(generate("physical", 6, rng), requires_grad=True)
    pred = torch.tensor(generate("physical", 6, rng), requires_grad=True)
    lt.niggli_proxy_loss(pred, target, space="gram").backward()
    assert target.grad is None
    assert pred.grad is not None and bool(torch.isfinite(pred.grad).all())


def test_gram_loss_gradcheck_away_from_boundaries() -> None:
    """``torch.autograd.gradcheck`` in float64 on generic predictions near and far from generic targets."""
    rng = _rng(17)
    target = torch.tensor(generate("physical", 4, rng))
    near = target.numpy() * (1 + 0.01 * rng.standard_normal((4, 3, 3)))
    pred = torch.tensor(np.concatenate([near, generate("physical", 4, rng)]), requires_grad=True)
    tgt = torch.cat([target, target])
    assert torch.autograd.gradcheck(lambda p: gram_loss(p, tgt), (pred,))
    assert torch.autograd.gradcheck(lambda p: lattice_loss(p, tgt), (pred,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_degenerate_predictions_give_finite_values_and_gradients(dtype: torch.dtype) -> None:
    """Singular, rank-deficient, near-singular and huge predictions: finite loss and gradient (N_p = I
    where the prediction cannot be reduced); non-finite predictions give NaN for that lattice only."""
    rng = _rng(18)
    bad = generate("invalid", 7, rng)  # nan, inf, -inf, zero, rank1, rank2, duplicate_row
    finite_bad = bad[3:]
    others = np.concatenate([generate("near_singular", 8, rng), 1e6 * generate("physical", 2, rng)])
    pred = torch.tensor(np.concatenate([finite_bad, others]), dtype=dtype, requires_grad=True)
    target = torch.tensor(generate("physical", len(pred), rng), dtype=dtype)
    for space in ("lattice", "gram"):
        loss = lt.niggli_proxy_loss(pred, target, space=space, reduction="none")
        (grad,) = torch.autograd.grad(loss.sum(), pred)
        assert bool(torch.isfinite(loss).all()) and bool(torch.isfinite(grad).all()), space
    nan_pred = torch.tensor(bad[:3], dtype=dtype)
    loss = lt.niggli_proxy_loss(nan_pred, target[:3], space="gram", reduction="none")
    assert bool(torch.isnan(loss).all() | torch.isinf(loss).all())


def test_scale_normalisation() -> None:
    """The Gram-space loss is dimensionless: scaling prediction and target together leaves it unchanged."""
    rng = _rng(19)
    target = generate("physical", 20, rng)
    pred = target * (1 + 0.03 * rng.standard_normal((20, 3, 3)))
    base = gram_loss(torch.tensor(pred), torch.tensor(target))
    for scale in (2.0**-20, 2.0**20):
        torch.testing.assert_close(gram_loss(torch.tensor(pred * scale), torch.tensor(target * scale)), base)


# --------------------------------------------------------------------------- modules, reductions, dtypes
@pytest.mark.parametrize("space", ["lattice", "gram"])
def test_reductions_and_modules(space: str) -> None:
    rng = _rng(20)
    target = torch.tensor(generate("physical", 10, rng)).reshape(2, 5, 3, 3)
    pred = target * 1.05
    per = lt.niggli_proxy_loss(pred, target, space=space, reduction="none")
    assert per.shape == (2, 5)
    torch.testing.assert_close(lt.niggli_proxy_loss(pred, target, space=space), per.mean())
    torch.testing.assert_close(lt.niggli_proxy_loss(pred, target, space=space, reduction="sum"), per.sum())
    module = lt.GramNiggliLoss(reduction="none") if space == "gram" else lt.NiggliProxyLoss(reduction="none")
    torch.testing.assert_close(module(pred, target), per)
    assert "reduction='none'" in repr(module)
    with pytest.raises(ValueError):
        lt.NiggliProxyLoss(reduction="max")
    with pytest.raises(ValueError):
        lt.niggli_proxy_loss(pred, target, space="g6")


@pytest.mark.parametrize("space", ["lattice", "gram"])
def test_float32_matches_float64(space: str) -> None:
    rng = _rng(21)
    target = generate("physical", 30, rng)
    pred = target * (1 + 0.05 * rng.standard_normal((30, 3, 3)))
    l32 = lt.niggli_proxy_loss(
        torch.tensor(pred, dtype=torch.float32),
        torch.tensor(target, dtype=torch.float32),
        space=space,
        reduction="none",
    )
    l64 = lt.niggli_proxy_loss(torch.tensor(pred), torch.tensor(target), space=space, reduction="none")
    assert l32.dtype == torch.float32
    torch.testing.assert_close(l32.double(), l64, rtol=RTOL[torch.float32], atol=1e-9)


def test_shape_errors() -> None:
    from latticesym.errors import LatticeShapeError

    with pytest.raises(LatticeShapeError):
        lt.niggli_proxy_loss(torch.zeros(2, 3, 3), torch.zeros(3, 3, 3))
    with pytest.raises(LatticeShapeError):
        lt.niggli_proxy_loss(torch.zeros(2, 3), torch.zeros(2, 3))


def test_neighbour_set() -> None:
    """S: identity first, closed under inverses (up to sign), contains the cubic and hexagonal automorphisms."""
    S = lt.neighbour_transforms()
    assert S[0].tolist() == np.eye(3, dtype=int).tolist()
    dets = np.rint(np.linalg.det(S.astype(float)))
    assert set(np.abs(dets).tolist()) == {1.0}

    def canon(m: np.ndarray) -> tuple[int, ...]:
        f = m.reshape(9)
        return tuple((f * np.sign(f[np.flatnonzero(f)[0]])).tolist())

    keys = {canon(m) for m in S}
    assert all(canon(np.rint(np.linalg.inv(m)).astype(np.int64)) in keys for m in S)
    for name in ("cubic", "hexagonal"):
        G = prototypes()[name] @ prototypes()[name].T
        auts = [m for m in S if np.allclose(m @ G @ m.T, G)]
        assert len(auts) == {"cubic": 24, "hexagonal": 12}[name]


# --------------------------------------------------------------------------- broken variants are caught
def broken_n_not_detached(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The note's loss with N recovered as ``out @ inv(pred)`` from the *undetached* prediction.

    ``out`` (the reducer's output, a constant as spglib's would be) is right, so N has the right
    value, but it now carries a gradient through ``inv(pred)``: the target moves with the prediction.
    """
    out = lt.niggli_reduce(pred.detach())[0]
    N = out @ torch.linalg.inv(pred)
    t_red = lt.niggli_reduce(target)[0]
    return ((pred - torch.linalg.inv(N) @ t_red) ** 2).mean((-1, -2))


def broken_rotation_ignored(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Compare the reduced *lattices* (vectors), not their Gram matrices: orientation leaks in."""
    rp, rt = lt.niggli_reduce(pred)[0], lt.niggli_reduce(target)[0]
    s = (rt * rt).sum((-1, -2)) / 3
    return ((rp - rt) ** 2).mean((-1, -2)) / s


def broken_residual_in_prediction_basis(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gram residual measured in the prediction's basis: ``G_pred - inv(N) G_t inv(N)^T``."""
    N = lt.niggli_reduce(pred.detach())[1].to(pred.dtype)
    rt = lt.niggli_reduce(target)[0]
    inv = lt.unimodular_inverse(N)
    G_t = inv @ rt @ rt.transpose(-1, -2) @ inv.transpose(-1, -2)
    s = (rt * rt).sum((-1, -2)) / 3
    return ((pred @ pred.transpose(-1, -2) - G_t) ** 2).mean((-1, -2)) / s**2


def broken_no_neighbour_minimum(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Reduced Gram matrices compared directly (no minimum over S): jumps at Niggli boundaries."""
    rp, rt = lt.niggli_reduce(pred)[0], lt.niggli_reduce(target)[0]
    s = (rt * rt).sum((-1, -2)) / 3
    return ((lt.gram(rp) - lt.gram(rt)) ** 2).mean((-1, -2)) / s**2


def test_gradient_check_catches_n_not_detached() -> None:
    rng = _rng(30)
    target = generate("physical", 4, rng)
    pred = _apply(_bases(4, rng, max_entry=2), target[0]) * 1.03
    tgt = np.repeat(target[:1], 4, 0)
    assert gradient_error(lattice_loss, pred, tgt) < 1e-6
    assert gradient_error(broken_n_not_detached, pred, tgt) > 1e-2


def test_rotation_check_catches_rotation_ignored() -> None:
    rng = _rng(31)
    target = generate("physical", 20, rng)
    pred = target * 1.05
    assert rotation_error(gram_loss, pred, target, dtype=torch.float64, seed=32) < 1e-9
    assert rotation_error(broken_rotation_ignored, pred, target, dtype=torch.float64, seed=32) > 1e-2


def test_basis_check_catches_residual_in_the_wrong_basis() -> None:
    rng = _rng(33)
    target = generate("physical", 20, rng)
    pred = target * (1 + 0.05 * rng.standard_normal((20, 3, 3)))
    assert basis_invariance_error(gram_loss, pred, target, trials=2, dtype=torch.float64, seed=34) < 1e-9
    err = basis_invariance_error(
        broken_residual_in_prediction_basis, pred, target, trials=2, dtype=torch.float64, seed=34
    )
    assert err > 1e-1
    # the note's own loss fails the same check (it measures in the prediction's basis too)
    assert basis_invariance_error(lattice_loss, pred, target, trials=2, dtype=torch.float64, seed=34) > 1e-1


def test_continuity_check_catches_a_loss_without_the_neighbour_minimum() -> None:
    rng = _rng(35)
    target = np.repeat(prototypes()["hexagonal"][None], 100, 0)
    perturbed = target + 1e-3 * 3 * rng.standard_normal((100, 3, 3))
    plain = lt.gram_mse(torch.tensor(perturbed), torch.tensor(target), reduction="none")
    ours = gram_loss(torch.tensor(perturbed), torch.tensor(target))
    broken = broken_no_neighbour_minimum(torch.tensor(perturbed), torch.tensor(target))
    assert bool((ours <= plain * (1 + 1e-6)).all())
    assert int((broken > plain * (1 + 1e-6)).sum()) > 10  # jumps to another reduced form


def test_exactness_check_catches_the_note_loss_on_boundary_targets() -> None:
    """The exactness measurement flags the note's loss on cubic ground truths (and ours passes)."""
    ours = exactness_error(gram_loss, prototypes()["cubic"], n=50, dtype=torch.float64, seed=36)
    note = exactness_error(lattice_loss, prototypes()["cubic"], n=50, dtype=torch.float64, seed=36)
    assert float(ours.max()) <= ZERO[torch.float64]
    assert int((note > 1e-6).sum()) >= 25
