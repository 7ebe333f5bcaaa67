"""Benchmark of structure canonicalization against the CSP pipeline's pymatgen loop (issue 10, item 7).

In one run, on the same 10,000 real structures (the CDVAE perov_5 / carbon_24 test and val splits
from ``../shared/data``; without it the bundled 1,200 repeated to 10,000):

- ``canonicalize_batch(lattices, frac, species, n_atoms)``: one call on the ragged arrays;
- ``canonicalize_batch(list_of_pymatgen_structures)``: the same, including the adapter that reads
  the pymatgen objects (what a pipeline holding pymatgen structures pays);
- a Python loop over ``canonicalize`` (one structure per call);
- the peer: a Python loop doing what CDVAE / DiffCSP's ``build_crystal`` does per structure,
  ``s.get_reduced_structure()`` then ``Structure(Lattice.from_parameters(*lattice.parameters),
  species, frac_coords)``.

Each benchmark keeps its minimum seconds per structure (as in ``bench_reduce.py``: the minimum over
rounds is the estimate least disturbed by the shared machine), in this module rather than the
session's ``bench_timings``, whose ``results.md`` covers the reducer benchmarks only.
The ratios (pymatgen loop / ours) are printed and written to ``benchmarks/structure_results.md`` and
``.json`` at the end of the module; no timing is asserted (target of the issue: >= 20x).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latticesym.datasets import load_structures, shared_data_dir
from latticesym.structure import canonicalize, canonicalize_batch

pytestmark = [pytest.mark.benchmark]

N = 10_000
N_SINGLE = 1_000
ROUNDS = 5
SPLITS = ("cdvae_perov_5_test.csv", "cdvae_perov_5_val.csv", "cdvae_carbon_24_test.csv", "cdvae_carbon_24_val.csv")
HERE = Path(__file__).parent
_TIMES: dict[str, float] = {}
_SOURCE: dict[str, str] = {}


def _load() -> tuple[list[Any], str]:
    root = shared_data_dir()
    if root is not None and all((root / s).exists() for s in SPLITS):
        from latticesym import io

        out: list[Any] = []
        for split in SPLITS:  # P1 CIFs: gemmi reads them fastest, pymatgen gives the same sites
            out.extend(io.read_structures(str(root / split), parser="auto", limit=N - len(out)))
            if len(out) >= N:
                break
        return out[:N], f"the first {N} structures of the CDVAE splits {', '.join(SPLITS)} (../shared/data)"
    bundled = load_structures("perov_5") + load_structures("carbon_24")
    return [bundled[k % len(bundled)] for k in range(N)], f"the {len(bundled)} bundled structures repeated to {N}"


@pytest.fixture(scope="module")
def structures() -> Iterator[list[Any]]:
    data, source = _load()
    _SOURCE["source"] = source
    yield data
    _write_results()


@pytest.fixture(scope="module")
def arrays(structures: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return (np.stack([np.asarray(s.lattice, dtype=float) for s in structures]),
            np.concatenate([np.asarray(s.frac_coords, dtype=float).reshape(-1, 3) for s in structures]),
            np.concatenate([np.asarray(s.species, dtype=np.int64) for s in structures]),
            np.array([len(s.species) for s in structures], dtype=np.int64))


@pytest.fixture(scope="module")
def pymatgen_structures(structures: list[Any]) -> list[Any]:
    pytest.importorskip("pymatgen.core")
    from latticesym.adapters import to_pymatgen

    return [to_pymatgen(s.lattice, s.frac_coords, s.species) for s in structures]


def _record(benchmark: Any, key: str, n: int) -> None:
    # Not stored in the session's ``bench_timings``: conftest.py rewrites results.md from those at
    # the end of every run, so running this file alone would blank the reducer's table.
    benchmark.extra_info["key"] = key
    benchmark.extra_info["lattices"] = n
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        _TIMES[key] = stats.stats.min / n


def test_canonicalize_batch_arrays(benchmark: Any, arrays: Any) -> None:
    k = int(arrays[3][:10].sum())
    canonicalize_batch(arrays[0][:10], arrays[1][:k], arrays[2][:k], arrays[3][:10])  # warm-up
    result = benchmark.pedantic(canonicalize_batch, args=arrays, rounds=ROUNDS, warmup_rounds=1)
    assert result.lattices.shape == (N, 3, 3)
    benchmark.extra_info["near_boundary"] = int(result.near_boundary.sum())
    _record(benchmark, "structure_batch_arrays_10k", N)


def test_canonicalize_batch_from_pymatgen(benchmark: Any, pymatgen_structures: list[Any]) -> None:
    result = benchmark.pedantic(canonicalize_batch, args=(pymatgen_structures,), rounds=3, warmup_rounds=1)
    assert result.lattices.shape == (N, 3, 3)
    _record(benchmark, "structure_batch_from_pymatgen_10k", N)


def test_canonicalize_single_loop(benchmark: Any, structures: list[Any]) -> None:
    cells = [(np.asarray(s.lattice, dtype=float), np.asarray(s.frac_coords, dtype=float),
              np.asarray(s.species, dtype=np.int64)) for s in structures[:N_SINGLE]]

    def loop() -> None:
        for cell in cells:
            canonicalize(*cell)

    benchmark.pedantic(loop, rounds=3, warmup_rounds=1)
    _record(benchmark, "structure_single_loop_1k", N_SINGLE)


def test_pymatgen_loop(benchmark: Any, pymatgen_structures: list[Any]) -> None:
    from pymatgen.core import Lattice, Structure

    def loop() -> int:
        n = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for s in pymatgen_structures:
                red = s.get_reduced_structure()
                Structure(Lattice.from_parameters(*red.lattice.parameters), red.species, red.frac_coords,
                          coords_are_cartesian=False)
                n += 1
        return n

    done = benchmark.pedantic(loop, rounds=2, warmup_rounds=0)
    assert done == N
    _record(benchmark, "structure_pymatgen_loop_10k", N)


def ratios(t: dict[str, float]) -> dict[str, float]:
    """``pymatgen loop / ours`` per structure (a ratio whose inputs are missing is left out)."""
    peer = t.get("structure_pymatgen_loop_10k")
    out: dict[str, float] = {}
    if not peer:
        return out
    for key, name in (("structure_batch_arrays_10k", "batch_arrays_vs_pymatgen_loop"),
                      ("structure_batch_from_pymatgen_10k", "batch_from_pymatgen_vs_pymatgen_loop"),
                      ("structure_single_loop_1k", "single_loop_vs_pymatgen_loop")):
        if t.get(key):
            out[name] = peer / t[key]
    return out


def _write_results() -> None:
    r = ratios(_TIMES)
    if not r:
        return
    labels = {
        "batch_arrays_vs_pymatgen_loop": "canonicalize_batch on the ragged arrays",
        "batch_from_pymatgen_vs_pymatgen_loop": "canonicalize_batch on the pymatgen Structures (adapter included)",
        "single_loop_vs_pymatgen_loop": "a Python loop over canonicalize (1,000 structures)",
    }
    rows = ["| latticesym | vs the pymatgen loop (get_reduced_structure + Lattice.from_parameters) | target |",
            "|---|---|---|"]
    for key, value in r.items():
        rows.append(f"| {labels[key]} | {value:.1f}x faster | {'>= 20x' if key.startswith('batch_arrays') else ''} |")
    per = {k: v * 1e6 for k, v in _TIMES.items()}
    text = "\n".join(rows) + (f"\n\nMeasured in one run on {_SOURCE.get('source', '?')}; minimum microseconds per "
                              "structure: " + ", ".join(f"{k} {v:.1f}" for k, v in per.items()) + ".\n")
    print("\n" + text)
    (HERE / "structure_results.md").write_text(text)
    (HERE / "structure_results.json").write_text(json.dumps({"ratios": r, "us_per_structure": per,
                                                             "source": _SOURCE.get("source")}, indent=2) + "\n")
