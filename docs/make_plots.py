"""Make the figures of the documentation from latticesym itself.

    .venv/bin/python docs/make_plots.py                 # every figure
    .venv/bin/python docs/make_plots.py failure_map     # one of them

Writes ``docs/img/<name>.png`` and, for the numbers quoted on the pages, a Markdown table
``docs/_generated/<name>.md`` that the pages include (``--8<--``), so text and figure come from
the same run.  Every random draw comes from a seeded ``numpy.random.Generator``; the PNGs carry
no timestamp, so a re-run on the same versions rewrites the same files.

Figures
-------
``failure_map``
    spglib, gemmi and latticesym on lattices given in sheared bases (columns) of increasingly flat
    lattices (rows); each cell shows the outcome on every draw, judged against the exact oracle
    (:func:`latticesym.peers.judge_answer`).  Needs the ``peers`` extra (spglib, gemmi).
``proxy_boundary``
    The two proxy losses (``space="lattice"`` and ``space="gram"``) along paths of predictions that
    cross a Niggli boundary near the target.  Needs torch.
``proxy_shear``
    The two proxy losses against the shear of the predicted basis, for the same small error in
    the reduced cell.  Needs torch.

The loss-experiment figures ``docs/img/loss_experiment_*.png`` are made by ``examples/loss_experiment.py``
(``make experiment``).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch, Rectangle

import latticesym
from latticesym import families, groups

DOCS = Path(__file__).resolve().parent
IMG = DOCS / "img"
GENERATED = DOCS / "_generated"
PNG_METADATA = {"Software": None}  # no matplotlib version stamp: same inputs, same bytes
DPI = 110

# ----------------------------------------------------------------------------- failure map
SHEARS = (1, 10, 100, 10**3, 10**4, 10**5, 10**6)
FLATNESS = (None, 1e-2, 1e-4, 1e-6, 1e-8, 1e-10, 1e-12)  # None: a physical cell (V/abc >= 0.2)
DRAWS = 8
REDUCERS = ("spglib", "gemmi", "latticesym")
TIMEOUT = 2.0
OUTCOMES = {  # outcome: (colour, legend)
    "ok": ("#2ca02c", "success: the exact Niggli form"),
    "boundary": ("#98df8a", "success: an equivalent form reduced within eps (near a boundary)"),
    "none": ("#ff7f0e", "None (gave up)"),
    "wrong": ("#d62728", "wrong: inequivalent or not reduced"),
    "error": ("#9467bd", "raised an error"),
    "timeout": ("#444444", f"no answer in {TIMEOUT:g} s"),
}


def failure_map_lattices(seed: int = 20240601) -> np.ndarray:
    """The grid of inputs, shape ``(len(FLATNESS), len(SHEARS), DRAWS, 3, 3)``.

    Row ``i``: a physical cell (``None``) or a near-singular basis of relative volume
    ``V / (|a||b||c|) = FLATNESS[i]`` (:func:`latticesym.families.near_singular`, mildly sheared);
    column ``j``: that basis sheared again by a random ``M`` in SL(3, Z) with entries up to
    ``SHEARS[j]`` (:func:`latticesym.groups.random_unimodular`).  The float64 product *is* the input.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((len(FLATNESS), len(SHEARS), DRAWS, 3, 3))
    for i, flat in enumerate(FLATNESS):
        for j, shear in enumerate(SHEARS):
            if flat is None:
                base = families.physical(DRAWS, rng=rng)
            else:
                base = families.near_singular(DRAWS, rng=rng, relative_volume=flat, max_entry=1)
            if shear == 1:
                m = np.broadcast_to(np.eye(3, dtype=np.int64), (DRAWS, 3, 3))
            else:
                m = groups.random_unimodular(DRAWS, max_entry=shear, det=1, rng=rng)
            out[i, j] = np.einsum("nij,njk->nik", m.astype(np.float64), base)
    return out


def _latticesym_outcome(lattice: np.ndarray, reference: object) -> tuple[str, str]:
    from latticesym.peers import judge_answer

    start = time.perf_counter()
    try:
        r = latticesym.niggli_reduce(lattice)
    except latticesym.LatticeError as err:
        return "error", type(err).__name__
    if time.perf_counter() - start > TIMEOUT:
        return "timeout", ""
    if not _transform_reproduces(lattice, r.transform, r.lattice):
        return "wrong", "bad_transform"
    # The transform was checked exactly above; the judge recovers it again from the output in
    # rationals (it reads a given transform through float64, which is not exact beyond 2**53).
    v = judge_answer(lattice, g6=r.g6, out_lattice=r.lattice, reference=reference)
    return _verdict(v.status, v.reason, v.message)


def _verdict(status: str, reason: str, message: str) -> tuple[str, str]:
    if status == "ok":
        return ("ok" if reason == "" else "boundary"), ""
    why = reason or message.split(";")[0][:60]
    if "stopped after" in message:  # gemmi's silent iteration limit
        why += ", after the iteration limit"
    return status, why


def _transform_reproduces(lattice: np.ndarray, transform: np.ndarray, out: np.ndarray) -> bool:
    """Exactly: ``det T == 1`` and ``T @ L`` equals ``out`` to rounding (``1e-12`` of each row's length)."""
    t = [[int(v) for v in row] for row in np.asarray(transform)]
    if groups.exact_det(np.array(t, dtype=object)) != 1:
        return False
    rows = [[Fraction(float(v)) for v in row] for row in lattice]
    exact = np.array([[float(sum(t[i][k] * rows[k][j] for k in range(3))) for j in range(3)] for i in range(3)])
    tol = 1e-12 * np.linalg.norm(exact, axis=1, keepdims=True)
    return bool(np.all(np.abs(exact - np.asarray(out)) <= tol))


def _peer_outcome(name: str, lattice: np.ndarray, reference: object) -> tuple[str, str]:
    from latticesym.peers import peer_niggli

    r = peer_niggli(name, lattice, timeout=TIMEOUT, reference=reference)
    return _verdict(r.status, r.reason, r.message)


def failure_map() -> None:
    from latticesym.peers import available_peers, oracle_reference, shutdown_workers

    missing = [p for p in REDUCERS[:2] if p not in available_peers()]
    if missing:
        raise SystemExit(f"failure_map needs the peers extra: {missing} not installed")
    grid = failure_map_lattices()
    outcome = np.empty((*grid.shape[:3], len(REDUCERS)), dtype=object)
    why: dict[str, Counter[tuple[str, str]]] = {name: Counter() for name in REDUCERS}
    try:
        for idx in np.ndindex(*grid.shape[:3]):
            lattice = grid[idx]
            ref = oracle_reference(lattice)
            for k, name in enumerate(REDUCERS):
                got = _latticesym_outcome(lattice, ref) if name == "latticesym" else _peer_outcome(name, lattice, ref)
                outcome[(*idx, k)] = got[0]
                why[name][got] += 1
    finally:
        shutdown_workers()

    fig, axes = plt.subplots(1, 3, figsize=(13.5, 5.2), sharey=True)
    for k, (ax, name) in enumerate(zip(axes, REDUCERS)):
        for i, j, d in np.ndindex(*grid.shape[:3]):
            colour = OUTCOMES[outcome[i, j, d, k]][0]
            ax.add_patch(Rectangle((j + d / DRAWS, i), 1 / DRAWS, 1, facecolor=colour, edgecolor="none"))
        for x in range(len(SHEARS) + 1):
            ax.axvline(x, color="white", lw=2)
        for y in range(len(FLATNESS) + 1):
            ax.axhline(y, color="white", lw=2)
        ax.set_xlim(0, len(SHEARS))
        ax.set_ylim(len(FLATNESS), 0)
        ax.set_xticks(np.arange(len(SHEARS)) + 0.5)
        ax.set_xticklabels(["1" if s == 1 else f"1e{int(np.log10(s))}" for s in SHEARS])
        ax.set_yticks(np.arange(len(FLATNESS)) + 0.5)
        ax.set_yticklabels(["physical" if f is None else f"{f:.0e}".replace("e-0", "e-") for f in FLATNESS])
        ax.set_xlabel("shear of the given basis: max |M_ij| up to")
        good = sum(outcome[..., k].ravel().tolist().count(o) for o in ("ok", "boundary"))
        ax.set_title(f"{name}: {good} / {outcome[..., k].size} succeed")
        ax.tick_params(length=0)
        for side in ax.spines.values():
            side.set_visible(False)
    axes[0].set_ylabel("relative volume V / (|a||b||c|) before shearing")
    handles = [Patch(facecolor=c, label=label) for c, label in OUTCOMES.values()]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=9)
    fig.suptitle(f"Niggli reduction of sheared and near-singular bases ({DRAWS} draws per cell, judged by the "
                 "exact oracle)", fontsize=11)
    fig.tight_layout(rect=(0, 0.1, 1, 0.96))
    _save(fig, "failure_map")

    counts = {name: Counter(outcome[..., k].ravel().tolist()) for k, name in enumerate(REDUCERS)}
    lines = ["| reducer | " + " | ".join(OUTCOMES) + " | total |", "|---" * (len(OUTCOMES) + 2) + "|"]
    for name in REDUCERS:
        lines.append(f"| {name} | " + " | ".join(str(counts[name][o]) for o in OUTCOMES)
                     + f" | {sum(counts[name].values())} |")
    lines += ["", "| reducer | outcome | why (the judge's reason) | lattices |", "|---|---|---|---|"]
    for name in REDUCERS:
        for (status, reason), n in sorted(why[name].items(), key=lambda kv: (-kv[1], kv[0])):
            if status not in ("ok", "boundary"):
                lines.append(f"| {name} | {status} | {reason or '-'} | {n} |")
    _write_table("failure_map", lines)


# ----------------------------------------------------------------------------- proxy losses
def _losses(pred: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    import torch

    import latticesym.torch as lt

    p = torch.as_tensor(pred, dtype=torch.float64)
    t = torch.as_tensor(np.broadcast_to(target, pred.shape).copy(), dtype=torch.float64)
    return {
        "lattice": lt.niggli_proxy_loss(p, t, space="lattice", reduction="none").numpy(),
        "gram": lt.niggli_proxy_loss(p, t, space="gram", reduction="none").numpy(),
        "gram_mse": lt.gram_mse(p, t, reduction="none").numpy(),
        "reduced_ok": lt.niggli_reduce_info(p).ok.numpy(),
    }


def boundary_paths() -> list[dict[str, object]]:
    """Two straight paths of predicted lattices, each crossing one Niggli boundary.

    Both start from the reduced cell a = (4, 0, 0), b = (s, 5, 0), c = (0.7, u, 6) (Angstrom,
    rows); the target is the cell at ``t0``, just on one side of the boundary at ``t_b``.
    """
    def cell(s: float, u: float) -> np.ndarray:
        return np.array([[4.0, 0.0, 0.0], [s, 5.0, 0.0], [0.7, u, 6.0]])

    a7 = np.linspace(1.5, 2.5, 401)  # zeta = 2 a.b = 8 s reaches A = 16 at s = 2: step A7 (b -> b - a)
    sign = np.linspace(-0.4, 0.0, 401)  # xi = 2 b.c = 2 (0.7 s + 5 u) changes sign at u = -0.14 s
    return [
        {"name": "A7 boundary: 2 a.b = a.a", "x": a7, "xlabel": "b_x (Angstrom), b = (b_x, 5, 0)",
         "pred": np.stack([cell(s, 1.1) for s in a7]), "t0": 1.95, "target": cell(1.95, 1.1), "boundary": 2.0},
        {"name": "sign boundary: b.c = 0 (type I / type II)", "x": sign, "xlabel": "c_y (Angstrom), c = (0.7, c_y, 6)",
         "pred": np.stack([cell(1.2, u) for u in sign]), "t0": -0.16, "target": cell(1.2, -0.16),
         "boundary": -0.7 * 1.2 / 5},
    ]


WINDOW = 0.1  # Angstrom: the table quotes the largest losses this close to the target


def proxy_boundary() -> None:
    paths = boundary_paths()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    rows = [f"| path | largest `lattice` loss within {WINDOW:g} A of the target | largest `gram` loss there | "
            "largest plain Gram MSE there |", "|---|---|---|---|"]
    for ax, path in zip(axes, paths):
        x = np.asarray(path["x"])
        loss = _losses(np.asarray(path["pred"]), np.asarray(path["target"]))
        ax.semilogy(x, loss["lattice"], color="#d62728", lw=2, label='space="lattice" (the note\'s loss, A^2)')
        ax.semilogy(x, loss["gram"], color="#1f77b4", lw=4, alpha=0.7, label='space="gram" (dimensionless)')
        ax.semilogy(x, loss["gram_mse"], color="black", lw=1, ls="--", label="plain Gram MSE (yardstick)")
        ax.axvline(path["boundary"], color="grey", lw=1, ls=":")
        ax.axvline(path["t0"], color="#2ca02c", lw=1)
        ax.text(path["boundary"], 0.97, " Niggli boundary", transform=ax.get_xaxis_transform(), va="top",
                fontsize=8, color="grey")
        ax.text(path["t0"], 0.03, "target ", transform=ax.get_xaxis_transform(), ha="right", fontsize=8,
                color="#2ca02c")
        ax.set_ylim(1e-9, 1e3)
        ax.set_xlabel(str(path["xlabel"]))
        ax.set_ylabel("loss")
        ax.set_title(str(path["name"]), fontsize=10)
        ax.grid(alpha=0.3, which="major")
        near = np.abs(x - float(path["t0"])) <= WINDOW + 1e-12
        rows.append(f"| {path['name']} | {loss['lattice'][near].max():.3g} | {loss['gram'][near].max():.2g} | "
                    f"{loss['gram_mse'][near].max():.2g} |")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False, fontsize=9)
    fig.suptitle("Proxy losses along a path of predictions through a Niggli boundary (target on the green line)",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    _save(fig, "proxy_boundary")
    _write_table("proxy_boundary", rows)


SHEAR_BOUNDS = (1, 3, 10, 30, 100, 300, 10**3, 3 * 10**3, 10**4, 3 * 10**4, 10**5, 3 * 10**5, 10**6)
SHEAR_DRAWS = 12
NOISE = 1e-3


def shear_predictions(seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(target, preds, shear)``: ``preds[n] = M_n @ (target + E_n)``, ``E_n`` a fixed-size error.

    The target is a triclinic reduced cell (no automorphism but +-I, so the note's loss is 0 on
    exact predictions); ``E_n`` has relative size ``NOISE``; ``M_n`` from SL(3, Z) with entries up to
    each of :data:`SHEAR_BOUNDS`; ``shear[n] = max |M_n|``.
    """
    rng = np.random.default_rng(seed)
    target = np.asarray(latticesym.niggli_reduce(np.array([[4.0, 0, 0], [1.2, 5.0, 0], [0.7, 1.1, 6.0]])).lattice)
    preds, shears = [], []
    for bound in SHEAR_BOUNDS:
        if bound == 1:
            m = np.broadcast_to(np.eye(3, dtype=np.int64), (SHEAR_DRAWS, 3, 3))
        else:
            m = groups.random_unimodular(SHEAR_DRAWS, max_entry=bound, det=1, rng=rng)
        err = NOISE * np.abs(target).max() * rng.standard_normal((SHEAR_DRAWS, 3, 3))
        preds.append(np.einsum("nij,njk->nik", m.astype(np.float64), target + err))
        shears.append(np.abs(m).max(axis=(1, 2)))
    return target, np.concatenate(preds), np.concatenate(shears).astype(np.float64)


def proxy_shear() -> None:
    target, preds, shear = shear_predictions()
    loss = _losses(preds, target)
    ok = loss["reduced_ok"].astype(bool)
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for key, colour, label in (("lattice", "#d62728", 'space="lattice" (the note\'s loss, A^2)'),
                               ("gram", "#1f77b4", 'space="gram" (dimensionless)')):
        y = loss[key]
        ax.loglog(shear[ok], y[ok], "o", color=colour, ms=5, alpha=0.8, label=label)
        if (~ok).any():
            ax.loglog(shear[~ok], y[~ok], "o", mfc="none", color=colour, ms=6, alpha=0.8)
    ref = np.median(loss["lattice"][shear == 1])
    xs = np.logspace(0, 6, 50)
    ax.loglog(xs, ref * xs**2, color="grey", lw=1, ls="--", label="slope 2 (loss proportional to shear^2)")
    if (~ok).any():
        ax.plot([], [], "o", mfc="none", color="grey", label="torch reducer flags the prediction (ok=False)")
    ax.set_xlabel("shear of the predicted basis, max |M_ij|  (prediction = M @ (target + error))")
    ax.set_ylabel("loss")
    ax.set_title(f"Same {NOISE:g} relative error, predicted in sheared bases ({SHEAR_DRAWS} draws per bound)",
                 fontsize=10)
    ax.grid(alpha=0.3, which="major")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    _save(fig, "proxy_shear")

    rows = ["| shear bound | median shear | `lattice` loss (median) | `gram` loss (median) | torch reducer ok |",
            "|---|---|---|---|---|"]
    for k, bound in enumerate(SHEAR_BOUNDS):
        sl = slice(k * SHEAR_DRAWS, (k + 1) * SHEAR_DRAWS)
        rows.append(f"| {bound:g} | {np.median(shear[sl]):.3g} | {np.median(loss['lattice'][sl]):.3g} | "
                    f"{np.median(loss['gram'][sl]):.3g} | {int(ok[sl].sum())}/{SHEAR_DRAWS} |")
    _write_table("proxy_shear", rows)


# ----------------------------------------------------------------------------- helpers
def _save(fig: plt.Figure, name: str) -> None:
    IMG.mkdir(exist_ok=True)
    path = IMG / f"{name}.png"
    fig.savefig(path, dpi=DPI, metadata=PNG_METADATA)
    plt.close(fig)
    print(f"wrote {path.relative_to(DOCS.parent)}")


def _write_table(name: str, lines: list[str]) -> None:
    GENERATED.mkdir(exist_ok=True)
    path = GENERATED / f"{name}.md"
    path.write_text(f"<!-- written by docs/make_plots.py ({name}); do not edit -->\n" + "\n".join(lines) + "\n")
    print(f"wrote {path.relative_to(DOCS.parent)}")


FIGURES = {"failure_map": failure_map, "proxy_boundary": proxy_boundary, "proxy_shear": proxy_shear}


def main(argv: list[str]) -> int:
    names = argv or list(FIGURES)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        print(f"unknown figure(s) {unknown}; choose from {sorted(FIGURES)}", file=sys.stderr)
        return 2
    for name in names:
        start = time.perf_counter()
        FIGURES[name]()
        print(f"  {name}: {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
