"""Figures and numbers of docs/frame_averaging.md: a model's output along paths through Niggli boundaries.

    .venv/bin/python scripts/plot_frame_averaging.py

Writes ``docs/img/frame_averaging_boundary.png`` (the output of a basis-dependent featurizer along
two paths that cross a boundary of the Niggli cone: bare on the canonical structure, and wrapped in
:class:`latticesym.torch.BasisInvariant` with two bands; below, the number of bases averaged) and
``docs/_generated/frame_averaging.md`` (the measured jumps and steepest steps, from the same run).

Paths (G6 ``(A, B, C, xi, eta, zeta)``, in units of the shortest vector squared, ``A = 1``):

``sign``
    ``(1, 1.3, 1.7, 0.5, 0.3, u)``: zeta crosses 0, the type-I / type-II boundary; the reduced
    basis flips the sign of c (and, to stay right-handed, of a and b).
``equal``
    ``(1, 1 + u, 1.7, 0.9, 0.1, 0.2)``: B - A crosses 0; the reduced basis swaps a and b.

Each point of a path is given to the model in a random basis (entries up to 2) and orientation,
as data would arrive; the featurizer is ``cos(alpha) + 2 cos(beta) + 3 cos(gamma)`` of the cell it
is given, which is not basis-invariant and jumps where the reduced basis changes.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import torch

from latticesym.structure import canonicalize
from latticesym.testing import random_transforms
from latticesym.torch import BasisInvariant

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"
GENERATED = ROOT / "docs" / "_generated"
PNG_METADATA = {"Software": None}
DPI = 110
SEED = 20261203
HALF_WIDTH = 0.06
POINTS = 481
BANDS = (0.02, 0.05)


def cos_combo(lattice: torch.Tensor, frac: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
    """cos(alpha) + 2 cos(beta) + 3 cos(gamma) of the given basis (not basis-invariant)."""
    n = lattice.norm(dim=1)
    return ((lattice[1] @ lattice[2]) / (n[1] * n[2]) + 2.0 * (lattice[0] @ lattice[2]) / (n[0] * n[2])
            + 3.0 * (lattice[0] @ lattice[1]) / (n[0] * n[1]))


def lattice_from_g6(g6: list[float]) -> np.ndarray:
    A, B, C, xi, eta, zeta = g6
    return np.linalg.cholesky(np.array([[A, zeta / 2, eta / 2], [zeta / 2, B, xi / 2], [eta / 2, xi / 2, C]]))


def path(kind: str) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(SEED)
    us = np.linspace(-HALF_WIDTH, HALF_WIDTH, POINTS)
    out = []
    for u in us:
        if kind == "sign":
            g6 = [1.0, 1.3, 1.7, 0.5, 0.3, u]
        else:  # the same lattice for u < 0, written with A <= B
            g6 = [1.0, 1.0 + u, 1.7, 0.9, 0.1, 0.2] if u >= 0 else [1.0 + u, 1.0, 1.7, 0.1, 0.9, 0.2]
        M = random_transforms(1, max_entry=2, det="either", rng=rng)[0]
        q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
        out.append(M @ lattice_from_g6(g6) @ q.T)
    return us, out


FRAC = np.array([[0.1, 0.2, 0.3], [0.6, 0.5, 0.9]])
SPECIES = np.array([6, 8])


def bare(lattice: np.ndarray) -> float:
    r = canonicalize(lattice, FRAC, SPECIES)
    return float(cos_combo(torch.tensor(r.lattice), torch.tensor(r.frac), torch.tensor(r.species)))


def wrapped(model: BasisInvariant, lattice: np.ndarray) -> tuple[float, int]:
    y = float(model(torch.tensor(lattice), torch.tensor(FRAC), torch.tensor(SPECIES)))
    assert model.last_plan is not None
    return y, model.last_plan.n_evaluations


def main() -> None:
    IMG.mkdir(exist_ok=True)
    GENERATED.mkdir(exist_ok=True)
    fig, axes = plt.subplots(2, 2, figsize=(10.5, 5.8), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    rows = []
    for col, (kind, title) in enumerate((("sign", "type I / type II boundary (zeta = 0)"),
                                         ("equal", "A = B boundary"))):
        us, lattices = path(kind)
        du = float(us[1] - us[0])
        y_bare = np.array([bare(L) for L in lattices])
        ax, ax_n = axes[0, col], axes[1, col]
        ax.plot(us, y_bare, color="#d62728", lw=1.6, label="bare: f(canonicalize(x))")
        rows.append((kind, "bare", float(np.abs(np.diff(y_bare)).max()), float(np.abs(np.diff(y_bare)).max() / du),
                     1))
        for band, color in zip(BANDS, ("#1f77b4", "#2ca02c"), strict=True):
            model = BasisInvariant(cos_combo, band=band)
            res = [wrapped(model, L) for L in lattices]
            y = np.array([r[0] for r in res])
            n = np.array([r[1] for r in res])
            ax.plot(us, y, color=color, lw=1.6, label=f"BasisInvariant, band {band:g}")
            ax_n.step(us, n, where="mid", color=color, lw=1.4)
            for edge in (-band, band):
                ax.axvline(edge, color=color, lw=0.6, ls=":")
            step = float(np.abs(np.diff(y)).max())
            rows.append((kind, f"wrapped, band {band:g}", step, step / du, int(n.max())))
        ax.axvline(0.0, color="k", lw=0.6)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("cos a + 2 cos b + 3 cos g")
        ax.legend(fontsize=8, loc="best")
        ax_n.set_ylabel("bases averaged")
        ax_n.set_xlabel("path parameter u (G6 units, A = 1: about the shortest vector squared)")
        ax_n.set_ylim(0, 3.5)
    fig.suptitle("A basis-dependent featurizer along paths through Niggli boundaries (inputs in random bases)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(IMG / "frame_averaging_boundary.png", dpi=DPI, metadata=PNG_METADATA)
    plt.close(fig)
    lines = [f"| path | model | largest step between neighbouring points (du = {2 * HALF_WIDTH / (POINTS - 1):.2g}) "
             "| slope (step / du) | most bases averaged |", "|---|---|---:|---:|---:|"]
    lines += [f"| {k} | {m} | {s:.3g} | {sl:.3g} | {n} |" for k, m, s, sl, n in rows]
    (GENERATED / "frame_averaging.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
