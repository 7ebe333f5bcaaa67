"""An experiment that tells the lattice losses apart, on the bundled real cells (CPU, fixed seeds).

Part (a), lattice prediction.  An MLP maps a basis-invariant structural descriptor of each bundled
Perov-5 / Carbon-24 cell (see :func:`descriptor`) to its lattice (3x3, rows a, b, c).  The labels
come in three forms:

``canonical``                 the Niggli-reduced cell in its standard orientation (``a`` along x,
                              ``b`` in the xy plane: the Cholesky factor of the reduced Gram matrix),
                              i.e. the data set canonicalised by hand -- plain MSE on these is the bar;
``random bases``              ``U @ L_c`` with ``U`` from GL(3,Z), entries up to 2;
``random bases + rotations``  ``U @ L_c @ Q.T`` with ``Q`` a random rotation.

Part (b), lattice denoising (the form of DiffCSP's lattice term): from
``L_t = sqrt(a_t) L_0 + sqrt(1 - a_t) eps`` (``eps`` standard normal, in Angstrom) with ``L_0 = U @ L_c``
in a random basis, the network (input: ``L_t`` and the descriptor; output ``L_t / sqrt(a_t)`` plus a
learned correction) predicts ``L_0``, for several noise levels ``a_t``.

Losses, the same network and initialisation for each: ``mse`` (plain MSE against the label as
presented), ``lattice`` (the research note's loss, ``niggli_proxy_loss(space="lattice")``) and
``gram`` (``space="gram"``).  Metric on held-out cells: both the prediction and the true cell are
reduced by the exact oracle (:mod:`latticesym.reference`) and ``|g6(pred) - g6(true)| / |g6(true)|``
is taken; the tables give its median per set, the fraction of cells within 5 % and 10 %, the
median predicted / true volume, and the structure match rate: the predicted lattice (Niggli-reduced)
with the true fractional coordinates (written in the true cell's Niggli-reduced basis) matched
against the true structure by :func:`latticesym.structure.match` (StructureMatcher semantics,
DiffCSP's tolerances ``ltol=0.3, stol=0.5, angle_tol=10``).

Usage (run from the repository root)::

    .venv/bin/python examples/loss_experiment.py           # full run (make experiment)
    .venv/bin/python examples/loss_experiment.py --quick   # smoke run, a few seconds

The full run writes ``docs/_generated/loss_experiment_{prediction,denoising}.md`` and
``docs/img/loss_experiment_{prediction,denoising}.png`` (``--out-md`` / ``--out-img`` move them).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

import latticesym.torch as lt
from latticesym.datasets import Structure, load_structures
from latticesym.groups import random_rotation, random_unimodular
from latticesym.reference import niggli_reduce as exact_reduce
from latticesym.structure import match_batch

__all__ = [
    "LOSSES",
    "SETTINGS",
    "Data",
    "Run",
    "canonical_lattice",
    "descriptor",
    "evaluate",
    "load_data",
    "main",
    "match_rate",
    "train",
]

LOSSES = ("mse", "lattice", "gram")
SETTINGS = ("canonical", "random bases", "random bases + rotations")
NOISE_LEVELS = (0.999, 0.99, 0.9, 0.5)  # a_t of the denoising part
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

RDF_BINS = np.linspace(0.5, 2.5, 33)  # interatomic distances in units of (V/N)^(1/3)
RDF_WIDTH = 0.05
N_SHORTEST = 12  # shortest lattice-vector lengths, in units of (V/N)^(1/3)


# ------------------------------------------------------------------------------- descriptor
def _reduced(lattice: np.ndarray) -> np.ndarray:
    return np.array(exact_reduce(lattice).lattice, dtype=np.float64)


def canonical_lattice(lattice: np.ndarray) -> np.ndarray:
    """The Niggli-reduced cell in standard orientation: the lower-triangular ``C`` with ``C C^T = G_red``.

    ``G_red`` is the exact Niggli-reduced Gram matrix, so ``C`` depends neither on the input basis
    nor on the orientation (rows: ``a`` along x, ``b`` in the xy plane, ``c`` with ``c_z > 0``).
    """
    R = _reduced(lattice)
    C = np.linalg.cholesky(R @ R.T)
    return np.asarray(C, dtype=np.float64)


def descriptor(structure: Structure) -> np.ndarray:
    r"""A descriptor of one cell that no change of basis or rotation changes.

    With ``N`` atoms, volume ``V`` and the length unit ``r_0 = (V/N)^{1/3}``:

    * ``log r_0`` and ``N`` (the scale and the size of the cell);
    * the ``12`` shortest lattice-vector lengths ``|n^T L| / r_0`` over ``n in Z^3 \ {0}`` taken up to
      sign (from ``n in [-2, 2]^3`` in the Niggli-reduced basis, which contains them): the distances
      from an atom to its own periodic images, a property of the lattice, not of the basis;
    * a Gaussian-smeared radial distribution of all interatomic distances ``d / r_0`` in
      ``[0.5, 2.5]`` (32 bins, width 0.05), per atom;
    * for multi-element cells, the sorted atomic numbers (Perov-5: five distinct elements).

    Every ingredient is a function of the periodic structure (the point set and the lattice as
    sets), so a label given in any basis or orientation is not leaked through it.
    """
    L = np.asarray(structure.lattice, dtype=np.float64)
    n_atoms = len(structure.species)
    r0 = float(np.cbrt(abs(np.linalg.det(L)) / n_atoms))
    R = _reduced(L)
    grid = np.array(np.meshgrid(*[np.arange(-2, 3)] * 3, indexing="ij")).reshape(3, -1).T
    grid = grid[np.any(grid != 0, axis=1)]
    half = grid[[tuple(g) > (0, 0, 0) for g in grid]]  # one of each +-n pair
    lengths = np.sort(np.linalg.norm(half @ R, axis=1))[:N_SHORTEST] / r0
    cart = np.asarray(structure.frac_coords, dtype=np.float64) @ L
    frac_r = np.mod(cart @ np.linalg.inv(R), 1.0)  # positions in the reduced cell
    cart_r = frac_r @ R
    images = np.concatenate([np.zeros((1, 3)), grid]) @ R
    d = np.linalg.norm(cart_r[None, :, None] - cart_r[:, None, None] + images[None, None], axis=-1).ravel() / r0
    d = d[(d > 1e-8) & (d < RDF_BINS[-1] + 4 * RDF_WIDTH)]
    centres = 0.5 * (RDF_BINS[1:] + RDF_BINS[:-1])
    rdf = np.exp(-0.5 * ((d[:, None] - centres[None]) / RDF_WIDTH) ** 2).sum(0) / n_atoms
    z = np.sort(np.asarray(structure.species, dtype=np.float64))
    species = z if len(set(structure.species)) > 1 else np.zeros(5)
    species = np.resize(species, 5) / 100.0
    return np.concatenate([[np.log(r0), n_atoms / 24.0], lengths, rdf, species])


def exact_g6(lattices: np.ndarray) -> np.ndarray:
    """Exact Niggli-reduced G6 of each lattice (the oracle)."""
    return exact_reduced(lattices)[0]


def exact_reduced(lattices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact Niggli-reduced G6 ``(n, 6)`` and reduced bases ``(n, 3, 3)`` of each lattice (the oracle)."""
    out = [exact_reduce(L) for L in lattices]
    return (np.array([[float(x) for x in r.g6] for r in out]),
            np.array([np.asarray(r.lattice, dtype=np.float64) for r in out]).reshape(-1, 3, 3))


def reduced_frac(structure: Structure) -> np.ndarray:
    """The structure's fractional coordinates in its exact Niggli-reduced basis, wrapped to [0, 1)."""
    L = np.asarray(structure.lattice, dtype=np.float64)
    cart = np.asarray(structure.frac_coords, dtype=np.float64) @ L
    return np.asarray(np.mod(cart @ np.linalg.inv(_reduced(L)), 1.0), dtype=np.float64)


# ------------------------------------------------------------------------------------ data
@dataclass
class Data:
    """Descriptors, canonical cells, random bases and the split; independent of the label setting."""

    x: np.ndarray  # z-scored descriptors
    canonical: np.ndarray  # canonical cells (n, 3, 3)
    U: np.ndarray  # a random unimodular basis change per cell
    Q: np.ndarray  # a random rotation per cell
    train: np.ndarray
    test: np.ndarray
    perov: np.ndarray  # cell is a Perov-5 one (else Carbon-24)
    g6: np.ndarray  # exact reduced G6 of every cell
    frac: list[np.ndarray] = field(default_factory=list)  # coordinates in the reduced basis, per cell
    species: list[np.ndarray] = field(default_factory=list)  # atomic numbers, per cell

    def labels(self, setting: str) -> np.ndarray:
        """All cells' labels in ``setting`` (one of :data:`SETTINGS`)."""
        if setting == "canonical":
            return self.canonical
        out = np.einsum("nij,njk->nik", self.U, self.canonical)
        if setting == "random bases + rotations":
            out = np.einsum("nij,nkj->nik", out, self.Q)
        elif setting != "random bases":
            raise ValueError(f"unknown setting {setting!r}; expected one of {SETTINGS}")
        return out


def load_data(sets: Sequence[str] = ("perov_5", "carbon_24"), *, n_per_set: int, seed: int) -> Data:
    """The bundled cells of ``sets`` (``n_per_set`` of each), split 80/20; random draws from ``seed``."""
    rng = np.random.default_rng(seed)
    structures: list[Structure] = []
    perov: list[bool] = []
    for name in sets:
        part = load_structures(name)[:n_per_set]
        structures += part
        perov += [name == "perov_5"] * len(part)
    x = np.stack([descriptor(s) for s in structures])
    canonical = np.stack([canonical_lattice(s.lattice) for s in structures])
    order = rng.permutation(len(structures))
    n_test = len(order) // 5
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-8
    return Data(
        x=(x - mu) / sd,
        canonical=canonical,
        U=random_unimodular(len(structures), max_entry=2, det="either", rng=rng).astype(np.float64),
        Q=random_rotation(len(structures), rng=rng),
        train=train,
        test=test,
        perov=np.asarray(perov),
        g6=exact_g6(canonical),
        frac=[reduced_frac(s) for s in structures],
        species=[np.asarray(s.species) for s in structures],
    )


# ----------------------------------------------------------------------------- training
@dataclass
class Run:
    """One training run: the held-out median G6 error per evaluated epoch and the final metrics."""

    setting: str
    loss: str
    epochs: list[int] = field(default_factory=list)
    g6_error: list[float] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def loss_function(name: str) -> LossFn:
    """``mse``, ``lattice`` or ``gram`` as a function ``(pred, label) -> scalar``."""
    if name == "mse":
        return torch.nn.functional.mse_loss
    if name in ("lattice", "gram"):
        return lambda pred, label: lt.niggli_proxy_loss(pred, label, space=name)
    raise ValueError(f"unknown loss {name!r}; expected one of {LOSSES}")


def match_rate(reduced_pred: np.ndarray, data: Data, *, workers: int = 1) -> np.ndarray:
    """Per held-out cell: does the predicted lattice carry the true structure?

    The prediction, Niggli-reduced (``reduced_pred``, exact), gets the true cell's fractional
    coordinates in the true cell's reduced basis and is matched against the true structure
    (:func:`latticesym.structure.match_batch`, DiffCSP's tolerances).  A basis-free model predicts no
    particular basis, so the reduced basis is the one pairing it can be judged by; a prediction the
    matcher cannot take (degenerate cell, work bound) counts as no match.
    """
    test = data.test
    true = [(data.canonical[i], data.frac[i], data.species[i]) for i in test]
    predicted = [(reduced_pred[k], data.frac[i], data.species[i]) for k, i in enumerate(test)]
    res = match_batch(true, predicted, workers=workers, ltol=0.3, stol=0.5, angle_tol=10.0)
    return np.asarray(res.matched, dtype=bool)


def evaluate(pred: np.ndarray, data: Data, *, match: bool = False, workers: int = 1) -> dict[str, float]:
    """Basis-free held-out metrics of ``pred`` (the test cells' predicted lattices); ``match``: add the match rate."""
    g6_true = data.g6[data.test]
    g6_pred, reduced_pred = exact_reduced(pred)
    rel = np.linalg.norm(g6_pred - g6_true, axis=1) / np.linalg.norm(g6_true, axis=1)
    perov = data.perov[data.test]
    vol = np.abs(np.linalg.det(pred)) / np.abs(np.linalg.det(data.canonical[data.test]))
    out = {
        "all": float(np.median(rel)),
        "within_5": float(np.mean(rel <= 0.05)),
        "within_10": float(np.mean(rel <= 0.10)),
        "volume_ratio": float(np.median(vol)),
    }
    for name, mask in (("perov_5", perov), ("carbon_24", ~perov)):
        out[name] = float(np.median(rel[mask])) if mask.any() else float("nan")
    if match:
        matched = match_rate(reduced_pred, data, workers=workers)
        out["match"] = float(matched.mean())
        for name, mask in (("perov_5", perov), ("carbon_24", ~perov)):
            out[f"match_{name}"] = float(matched[mask].mean()) if mask.any() else float("nan")
    return out


class Net(nn.Module):
    """MLP 128-128 (SiLU) -> 9; ``denoise``: input also ``L_t`` and output ``L_t / sqrt(a_t)`` + MLP."""

    def __init__(self, n_in: int, scale: float, seed: int, *, denoise: bool) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.denoise, self.scale = denoise, scale
        head = nn.Linear(128, 9)
        with torch.no_grad():
            head.weight.mul_(0.1)
            head.bias.copy_((0.0 if denoise else scale) * torch.eye(3).reshape(9))
        self.mlp = nn.Sequential(nn.Linear(n_in + 9 * denoise, 128), nn.SiLU(), nn.Linear(128, 128), nn.SiLU(), head)

    def forward(self, x: torch.Tensor, lt_noisy: torch.Tensor | None = None, a_t: float = 1.0) -> torch.Tensor:
        if lt_noisy is None:
            return self.mlp(x).reshape(-1, 3, 3)
        inp = torch.cat([x, lt_noisy.reshape(-1, 9) / self.scale], dim=1)
        return lt_noisy / a_t**0.5 + self.mlp(inp).reshape(-1, 3, 3)


def train(
    data: Data,
    loss: str | LossFn,
    setting: str,
    *,
    epochs: int,
    eval_every: int,
    seed: int,
    a_t: float | None = None,
    batch: int = 64,
    lr: float = 2e-3,
    match: bool = False,
    workers: int = 1,
) -> Run:
    """Train one network; ``a_t`` set: the denoising task at that noise level (labels ``U @ L_c``).

    ``match``: the final evaluation adds the structure match rate (:func:`match_rate`, on ``workers``
    processes).
    """
    fn = loss_function(loss) if isinstance(loss, str) else loss
    run = Run(setting=setting, loss=loss if isinstance(loss, str) else getattr(loss, "__name__", "custom"))
    labels_all = torch.tensor(data.labels(setting))
    x_all = torch.tensor(data.x)
    scale = float(np.cbrt(np.abs(np.linalg.det(data.canonical[data.train]))).mean())
    model = Net(x_all.shape[1], scale, seed, denoise=a_t is not None).double()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    gen = torch.Generator().manual_seed(seed + 1)
    train_idx, test_idx = torch.tensor(data.train), torch.tensor(data.test)
    test_noise = torch.randn(
        (len(test_idx), 3, 3), generator=torch.Generator().manual_seed(seed + 2), dtype=torch.float64
    )

    def predict(idx: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        if a_t is None:
            return model(x_all[idx])
        assert noise is not None
        noisy = a_t**0.5 * labels_all[idx] + (1.0 - a_t) ** 0.5 * noise
        return model(x_all[idx], noisy, a_t)

    t0 = time.perf_counter()
    metrics: dict[str, float] = {}
    pred = np.zeros((0, 3, 3))
    for epoch in range(epochs + 1):
        if epoch > 0:
            model.train()
            for part in torch.randperm(len(train_idx), generator=gen).split(batch):
                idx = train_idx[part]
                noise = torch.randn((len(idx), 3, 3), generator=gen, dtype=torch.float64)
                opt.zero_grad()
                fn(predict(idx, noise), labels_all[idx]).backward()
                opt.step()
            sched.step()
        if epoch % eval_every == 0 or epoch == epochs:
            model.eval()
            with torch.no_grad():
                pred = predict(test_idx, test_noise).numpy()
            metrics = evaluate(pred, data)
            run.epochs.append(epoch)
            run.g6_error.append(metrics["all"])
    run.seconds = time.perf_counter() - t0
    run.final = evaluate(pred, data, match=True, workers=workers) if match else metrics
    return run


# ------------------------------------------------------------------------------- output
NAMES = {"mse": "plain MSE", "lattice": 'note\'s loss, space="lattice"', "gram": 'space="gram"'}
COLOURS = {"mse": "tab:gray", "lattice": "tab:red", "gram": "tab:blue"}


def _pct(v: float) -> str:
    return "-" if np.isnan(v) else f"{100 * v:.1f} %"


def _match(f: dict[str, float]) -> str:
    """``all (Perov-5 / Carbon-24)`` match rates, or ``-`` where they were not computed."""
    if "match" not in f:
        return "-"
    return f"{_pct(f['match'])} ({_pct(f['match_perov_5'])} / {_pct(f['match_carbon_24'])})"


def prediction_table(runs: list[Run]) -> str:
    lines = [
        "<!-- written by examples/loss_experiment.py (make experiment); do not edit -->",
        "| training labels | loss | Perov-5 | Carbon-24 | all | within 5 % | within 10 % "
        "| predicted / true volume | match rate (Perov-5 / Carbon-24) | train time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        f = r.final
        lines.append(
            f"| {r.setting} | `{r.loss}` | {_pct(f['perov_5'])} | {_pct(f['carbon_24'])} | {_pct(f['all'])} "
            f"| {_pct(f['within_5'])} | {_pct(f['within_10'])} | {f['volume_ratio']:.3g} | {_match(f)} "
            f"| {r.seconds:.0f} s |"
        )
    return "\n".join(lines) + "\n"


def denoising_table(runs: list[tuple[float, Run]], identity: dict[float, dict[str, float]]) -> str:
    lines = [
        "<!-- written by examples/loss_experiment.py (make experiment); do not edit -->",
        "| a_t | loss | Perov-5 | Carbon-24 | all | within 5 % | within 10 % | predicted / true volume "
        "| match rate (Perov-5 / Carbon-24) | train time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in sorted(identity, reverse=True):
        f = identity[a]
        lines.append(
            f"| {a:g} | none: `L_t / sqrt(a_t)` | {_pct(f['perov_5'])} | {_pct(f['carbon_24'])} | {_pct(f['all'])} "
            f"| {_pct(f['within_5'])} | {_pct(f['within_10'])} | {f['volume_ratio']:.3g} | {_match(f)} | - |"
        )
        for a_r, r in runs:
            if a_r == a:
                g = r.final
                lines.append(
                    f"| {a:g} | `{r.loss}` | {_pct(g['perov_5'])} | {_pct(g['carbon_24'])} | {_pct(g['all'])} "
                    f"| {_pct(g['within_5'])} | {_pct(g['within_10'])} | {g['volume_ratio']:.3g} | {_match(g)} "
                    f"| {r.seconds:.0f} s |"
                )
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_prediction(runs: list[Run], path: Path) -> None:
    plt = _pyplot()
    settings = [s for s in SETTINGS if s != "canonical"]
    fig, axes = plt.subplots(1, len(settings), figsize=(11, 4.0), sharey=True)
    bar = [r for r in runs if r.setting == "canonical" and r.loss == "mse"]
    for ax, setting in zip(axes, settings):
        for r in runs:
            if r.setting == setting:
                ax.plot(r.epochs, 100 * np.asarray(r.g6_error), "-o", ms=3, color=COLOURS[r.loss], label=NAMES[r.loss])
        for r in bar:
            ax.plot(
                r.epochs,
                100 * np.asarray(r.g6_error),
                "--",
                color="black",
                lw=1,
                label="bar: plain MSE, canonical labels",
            )
        ax.set_title(f"training labels in {setting}")
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("held-out G6 error after exact reduction (%)\nmedian, Perov-5 + Carbon-24")
    axes[0].legend(fontsize=8)
    fig.suptitle("Lattice prediction from an invariant structural descriptor (lower is better)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def plot_denoising(runs: list[tuple[float, Run]], identity: dict[float, dict[str, float]], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    levels = sorted(identity, reverse=True)
    x = [1.0 - a for a in levels]
    ax.plot(x, [100 * identity[a]["all"] for a in levels], ":", color="black", label="no model: L_t / sqrt(a_t)")
    for loss in LOSSES:
        ys = [100 * r.final["all"] for a in levels for a_r, r in runs if a_r == a and r.loss == loss]
        if len(ys) == len(levels):
            ax.plot(x, ys, "-o", ms=4, color=COLOURS[loss], label=NAMES[loss])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("noise variance 1 - a_t")
    ax.set_ylabel("held-out G6 error of the predicted L_0 (%)\nmedian, Perov-5 + Carbon-24")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title("Lattice denoising, L_0 in a random basis (lower is better)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def _log(tag: str, r: Run) -> None:
    f = r.final
    print(
        f"{tag:28s} {r.loss:8s} Perov-5 {_pct(f['perov_5']):>8s}  Carbon-24 {_pct(f['carbon_24']):>8s}  "
        f"all {_pct(f['all']):>8s}  <=5% {_pct(f['within_5']):>8s}  vol {f['volume_ratio']:.3g}  "
        f"match {_match(f)}  {r.seconds:5.1f} s",
        flush=True,
    )


def main(argv: list[str] | None = None) -> tuple[list[Run], list[tuple[float, Run]]]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few cells and epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-md", type=Path, default=Path("docs/_generated"))
    parser.add_argument("--out-img", type=Path, default=Path("docs/img"))
    parser.add_argument("--workers", type=int, default=2, help="processes for the structure matching")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    n_per_set, epochs, eval_every = (40, 2, 1) if args.quick else (600, 40, 4)
    levels = NOISE_LEVELS[::3] if args.quick else NOISE_LEVELS
    t0 = time.perf_counter()
    data = load_data(n_per_set=n_per_set, seed=args.seed)
    print(f"descriptors of {len(data.x)} cells: {time.perf_counter() - t0:.1f} s", flush=True)

    pred_runs = []
    for setting in SETTINGS:
        for loss in ("mse",) if setting == "canonical" else LOSSES:
            pred_runs.append(train(data, loss, setting, epochs=epochs, eval_every=eval_every, seed=args.seed,
                                   match=True, workers=args.workers))
            _log(setting, pred_runs[-1])

    den_runs: list[tuple[float, Run]] = []
    identity: dict[float, dict[str, float]] = {}
    noise = torch.randn(
        (len(data.test), 3, 3), generator=torch.Generator().manual_seed(args.seed + 2), dtype=torch.float64
    )
    L0_test = data.labels("random bases")[data.test]
    for a in levels:
        identity[a] = evaluate((a**0.5 * L0_test + (1 - a) ** 0.5 * noise.numpy()) / a**0.5, data, match=True,
                               workers=args.workers)
        for loss in LOSSES:
            run = train(data, loss, "random bases", epochs=epochs, eval_every=epochs, seed=args.seed, a_t=a,
                        match=True, workers=args.workers)
            den_runs.append((a, run))
            _log(f"denoising a_t={a:g}", run)

    args.out_md.mkdir(parents=True, exist_ok=True)
    (args.out_md / "loss_experiment_prediction.md").write_text(prediction_table(pred_runs))
    (args.out_md / "loss_experiment_denoising.md").write_text(denoising_table(den_runs, identity))
    plot_prediction(pred_runs, args.out_img / "loss_experiment_prediction.png")
    plot_denoising(den_runs, identity, args.out_img / "loss_experiment_denoising.png")
    print(f"total {time.perf_counter() - t0:.0f} s", flush=True)
    return pred_runs, den_runs


if __name__ == "__main__":
    main()
