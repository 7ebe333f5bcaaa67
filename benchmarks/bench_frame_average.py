"""Overhead of :class:`latticesym.torch.BasisInvariant` (frame averaging) over the bare model it wraps.

Run with ``make bench`` (``pytest benchmarks -m benchmark --benchmark-only``) or directly::

    .venv/bin/python -m pytest benchmarks/bench_frame_average.py -m benchmark -p no:cacheprovider -s

The model is a small DiffCSP-style batched network (species embedding, a radial-basis sum over
the atom pairs of each cell and their 27 periodic images, an MLP per atom, a sum per crystal),
called in the ragged layout ``(lattices, frac, species, n_atoms)``.  Inputs are the bundled
real structures (Carbon-24: low symmetry, most cells far from a Niggli boundary; Perov-5: cubic
perovskites, every cell on many boundaries at once, 24 or more reduced bases each) written in a
random basis and rotated, as a data set would store them.  Three ways of running the model,
forward + backward, timed interleaved in the same run (median of repeats), torch on one intra-op
thread:

``bare``
    the model on the input as it comes (not basis-invariant);
``canonical``
    :func:`latticesym.torch.canonicalize` then the model (invariant off boundaries, jumps on them);
``wrapped``
    ``BasisInvariant(model, batched=True)`` (invariant and continuous everywhere).

``test_overhead_ratios`` prints ``wrapped / bare`` and ``wrapped / canonical`` time ratios and
the evaluations per crystal, and writes them to ``docs/_generated/frame_averaging_overhead.md``
(the table of ``docs/frame_averaging.md``) (``last_plan.n_evaluations / B``); the cost of the wrapper is
(planning: one batched reduction and a ``(B, 996, 6)`` distance table) + (one model
evaluation per basis in the band), so the ratio follows the evaluations per crystal.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import latticesym.torch as lt
from latticesym.datasets import load_structures
from latticesym.groups import random_rotation, random_unimodular

GENERATED = Path(__file__).resolve().parents[1] / "docs" / "_generated"  # the docs page includes the table
THREADS = 1
BATCH = 128
SETS = ("carbon_24", "perov_5")


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """One intra-op thread (tiny ops gain nothing from more and lose much on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


_IMAGES = torch.tensor([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=torch.float64)


class PairModel(nn.Module):
    """A toy crystal network: embedding + radial basis over periodic pairs + MLP, summed per crystal."""

    def __init__(self, width: int = 32, n_rbf: int = 16, cutoff: float = 6.0):
        super().__init__()
        self.embed = nn.Embedding(100, width)
        self.mlp = nn.Sequential(nn.Linear(width + n_rbf, 64), nn.SiLU(), nn.Linear(64, 1))
        self.register_buffer("centers", torch.linspace(0.5, cutoff, n_rbf))
        self.cutoff = cutoff
        self.n_rbf = n_rbf

    def forward(self, lattices: torch.Tensor, frac: torch.Tensor, species: torch.Tensor,
                n_atoms: torch.Tensor) -> torch.Tensor:
        counts = n_atoms.cpu().numpy()
        owner = np.repeat(np.arange(len(counts)), counts)
        start = np.cumsum(counts) - counts
        # all ordered pairs (i, j) inside each crystal (host bookkeeping, as a data loader would)
        i_idx = np.concatenate([s + np.repeat(np.arange(c), c) for s, c in zip(start, counts, strict=True)])
        j_idx = np.concatenate([s + np.tile(np.arange(c), c) for s, c in zip(start, counts, strict=True)])
        i_t, j_t = torch.as_tensor(i_idx), torch.as_tensor(j_idx)
        lat = lattices[torch.as_tensor(owner[i_idx])]  # (P, 3, 3)
        d = (frac[j_t] - frac[i_t])[:, None, :] + _IMAGES.to(frac.dtype)  # (P, 27, 3)
        r = torch.linalg.vector_norm(d @ lat, dim=-1)  # (P, 27)
        keep = (r > 1e-6) & (r < self.cutoff)
        rbf = torch.exp(-((r[..., None] - self.centers) ** 2) / 0.5) * keep[..., None]
        per_atom = frac.new_zeros(len(frac), self.n_rbf).index_add(0, i_t, rbf.sum(1))
        h = torch.cat([self.embed(species.long()).to(frac.dtype), per_atom], dim=-1)
        e = self.mlp(h).squeeze(-1)
        return e.new_zeros(len(counts)).index_add(0, torch.as_tensor(owner), e)


def make_batch(name: str, batch: int = BATCH, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """``(lattices, frac, species, n_atoms)`` of ``batch`` bundled crystals, in random bases, rotated."""
    rng = np.random.default_rng(seed)
    cells = load_structures(name)
    pick = rng.integers(0, len(cells), batch)
    U = random_unimodular(batch, max_entry=2, rng=rng)
    Q = random_rotation(batch, rng=rng)
    lattices, fracs, species, counts = [], [], [], []
    for k, idx in enumerate(pick):
        c = cells[int(idx)]
        u = np.asarray(U[k], dtype=np.int64)
        lattices.append(u @ c.lattice @ Q[k].T)
        f = c.frac_coords @ np.linalg.inv(u).round()
        fracs.append(f - np.floor(f))
        species.append(np.asarray(c.species))
        counts.append(len(c.species))
    return (torch.tensor(np.stack(lattices), requires_grad=True), torch.tensor(np.concatenate(fracs)),
            torch.tensor(np.concatenate(species)), torch.tensor(counts))


def runners(model: PairModel) -> dict[str, Callable[..., torch.Tensor]]:
    wrapped = lt.BasisInvariant(model, batched=True)

    def canonical(L: torch.Tensor, f: torch.Tensor, s: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        c = lt.canonicalize(L, f, s, n)
        return model(c.lattices, c.frac, c.species, c.n_atoms)

    return {"bare": model, "canonical": canonical, "wrapped": wrapped}


def _step(run: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...]) -> None:
    L = inputs[0]
    L.grad = None
    run(*inputs).sum().backward()


@pytest.mark.benchmark
@pytest.mark.parametrize("name", SETS)
@pytest.mark.parametrize("impl", ["bare", "canonical", "wrapped"])
def test_forward_backward(benchmark: Any, impl: str, name: str) -> None:
    torch.manual_seed(0)
    run = runners(PairModel().double())[impl]
    inputs = make_batch(name)
    _step(run, inputs)  # warm-up (numba compilation, tables)
    benchmark.extra_info.update({"impl": impl, "set": name, "batch": BATCH})
    benchmark(_step, run, inputs)


class _Recorder(nn.Module):
    """Passes calls to ``model`` and keeps the last inputs (the candidate batch the wrapper built)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.inputs: tuple[torch.Tensor, ...] = ()

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        self.inputs = tuple(a.detach() for a in args)
        return self.model(*args)


def overhead(name: str, *, repeats: int = 5) -> dict[str, float]:
    """Median forward+backward seconds of the runners (interleaved) and the ratios.

    ``candidates`` is the bare model on the batch of candidate bases the wrapper evaluates
    (recorded from one wrapped call): ``wrapped / candidates`` is the cost of the wrapping itself
    (reduction, plan, coordinates, sort, average), ``candidates / bare`` that of the extra evaluations.
    """
    torch.manual_seed(0)
    model = PairModel().double()
    runs = runners(model)
    inputs = make_batch(name)
    for run in runs.values():
        _step(run, inputs)
    recorder = _Recorder(model)
    lt.BasisInvariant(recorder, batched=True)(*inputs)
    cand = (recorder.inputs[0].clone().requires_grad_(True), *recorder.inputs[1:])
    runs = {**runs, "candidates": model}
    _step(model, cand)
    args = {k: (cand if k == "candidates" else inputs) for k in runs}
    samples: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for k, run in runs.items():
            t0 = time.perf_counter()
            _step(run, args[k])
            samples[k].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in samples.items()}
    plan = runs["wrapped"].last_plan  # type: ignore[attr-defined]
    return {
        **{f"{k}_ms": 1e3 * v for k, v in med.items()},
        "wrapped_over_bare": med["wrapped"] / med["bare"],
        "wrapped_over_canonical": med["wrapped"] / med["canonical"],
        "wrapped_over_candidates": med["wrapped"] / med["candidates"],
        "evaluations_per_crystal": plan.n_evaluations / plan.n_structures,
        "averaged_fraction": plan.n_averaged / plan.n_structures,
    }


@pytest.mark.benchmark
def test_overhead_ratios() -> None:
    """Wrapper overhead as time ratios over the bare and the canonicalised model (reported, not asserted)."""
    results = {name: overhead(name) for name in SETS}
    for name, res in results.items():
        print(f"\n[{name}, batch {BATCH}] " + ", ".join(f"{k} {v:.3g}" for k, v in res.items()))
    lines = ["| crystals (128, random bases) | evaluations per crystal | bare ms | canonical ms "
             "| model on the candidates ms | wrapped ms | wrapped / bare | wrapped / canonical "
             "| wrapped / model on the candidates |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {name} | {r['evaluations_per_crystal']:.3g} | {r['bare_ms']:.3g} | {r['canonical_ms']:.3g} "
              f"| {r['candidates_ms']:.3g} | {r['wrapped_ms']:.3g} | {r['wrapped_over_bare']:.3g} "
              f"| {r['wrapped_over_canonical']:.3g} | {r['wrapped_over_candidates']:.3g} |"
              for name, r in results.items()]
    GENERATED.mkdir(exist_ok=True)
    (GENERATED / "frame_averaging_overhead.md").write_text("\n".join(lines) + "\n")
    assert all(v > 0 for res in results.values() for v in res.values())


@pytest.mark.benchmark
def test_wrapped_model_is_invariant_where_canonical_is_not() -> None:
    """What the overhead buys, on the same model and crystals: the same batch in new random bases."""
    torch.manual_seed(0)
    runs = runners(PairModel().double())
    a = make_batch("perov_5", 32, seed=1)
    b_lat = make_batch("perov_5", 32, seed=1)[0].detach()
    rng = np.random.default_rng(7)
    U = torch.tensor(np.asarray(random_unimodular(32, max_entry=2, rng=rng), dtype=np.float64))
    owner = torch.repeat_interleave(torch.arange(32), a[3])
    frac2 = (a[1][:, None, :] @ torch.linalg.inv(U)[owner].round()).squeeze(1)
    b = (U @ b_lat, frac2 - frac2.floor(), a[2], a[3])
    diff = {k: float((run(*a) - run(*b)).detach().abs().max()) for k, run in runs.items()}
    print(f"\nmax |f(x) - f(M x)| over 32 Perov-5 crystals: {diff}")
    assert diff["wrapped"] < 1e-9 < diff["bare"]
