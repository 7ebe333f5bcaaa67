"""Benchmark of :func:`latticesym.structure.match_batch` against a Python loop over pymatgen's
``StructureMatcher(ltol=0.3, stol=0.5, angle_tol=10)`` (issue 11, point 5).

All in one run, on the *same* 2000 pairs, so the ratios compare like with like:

- ``match_batch`` over the 2000 pairs on all cores (process pool, one prepared structure per
  distinct input), and the same on one process (``workers=1``: the ratio that does not depend
  on how busy the other cores are);
- a Python loop over ``StructureMatcher.get_rms_dist`` (what DiffCSP's evaluation calls per
  pair) and one over ``fit`` + ``get_rms_dist`` (what our result carries: both verdicts);
- single-pair latency: :func:`latticesym.structure.match` vs ``get_rms_dist``, one pair at a
  time, on the first 200 pairs.

The pairs are built from the bundled CDVAE samples (Perov-5, Carbon-24; no ``../shared``
needed): each reference structure against its re-based (GL(3, Z), entries <= 3), rotated and
permuted copies, against copies with site noise (0.05 to 0.6 of ``(V/N)^(1/3)``) and strain
(0.1 to 0.4), and against another structure of the same composition -- the mix a CSP
evaluation sees (most samples close to, some far from their reference).  pymatgen structures are
built before the clock starts.  Each benchmark records its minimum seconds per pair; the ratios
are printed at the end of the module (with the load average and the worker count), stored in
the last benchmark's ``extra_info`` and written to ``benchmarks/match_results.md`` / ``.json``
(``report.compute_match_ratios``; no timed assertions).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = [pytest.mark.benchmark]

SEED = 20261203
N_PAIRS = 2000
N_SINGLE = 200
KW: dict[str, Any] = {"ltol": 0.3, "stol": 0.5, "angle_tol": 10.0}

Struct = tuple[np.ndarray, np.ndarray, np.ndarray]


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def bench_pairs(n_pairs: int = N_PAIRS, seed: int = SEED) -> list[tuple[str, Struct, Struct]]:
    """``n_pairs`` labelled pairs ``(kind, a, b)`` from the bundled Perov-5 and Carbon-24 samples."""
    from latticesym.datasets import load_structures
    from latticesym.groups import random_unimodular

    rng = np.random.default_rng(seed)
    out: list[tuple[str, Struct, Struct]] = []
    pools = [list(load_structures("perov_5")), list(load_structures("carbon_24"))]
    it = 0
    while len(out) < n_pairs:
        structs = pools[it % 2]  # alternate Perov-5 and Carbon-24 references
        it += 1
        i = int(rng.integers(len(structs)))
        s = structs[i]
        L, f, z = np.asarray(s.lattice, float), np.asarray(s.frac_coords, float), np.asarray(s.species)
        n = len(z)
        ell = (abs(np.linalg.det(L)) / n) ** (1 / 3)
        a = (L, f, z)
        M = random_unimodular(1, max_entry=3, rng=rng)[0]
        out.append(("rebased", a, (M @ L, f @ np.linalg.inv(M), z)))
        out.append(("rotated", a, (L @ _rotation(rng).T, f, z)))
        p = rng.permutation(n)
        out.append(("permuted", a, (L, f[p], z[p])))
        for noise in (0.05, 0.2, 0.35, 0.6):
            cart = f @ L + rng.normal(scale=noise * ell / math.sqrt(3), size=(n, 3))
            out.append((f"noise{noise}", a, (L, cart @ np.linalg.inv(L), z)))
        for strain in (0.1, 0.25, 0.4):
            S = np.eye(3) + strain * np.diag(rng.choice([-1.0, 1.0], size=3)) * rng.uniform(0.5, 1.0, size=3)
            out.append((f"strain{strain}", a, (L @ S, f, z)))
        same = [t for t in structs if len(t.species) == n and t is not s
                and sorted(np.asarray(t.species).tolist()) == sorted(z.tolist())]
        if same:
            t = same[int(rng.integers(len(same)))]
            out.append(("other", a, (np.asarray(t.lattice, float), np.asarray(t.frac_coords, float),
                                     np.asarray(t.species))))
    return out[:n_pairs]


@pytest.fixture(scope="module")
def pairs() -> list[tuple[str, Struct, Struct]]:
    return bench_pairs()


@pytest.fixture(scope="module")
def pmg_pairs(pairs: list[tuple[str, Struct, Struct]]) -> list[tuple[Any, Any]]:
    core = pytest.importorskip("pymatgen.core")

    def conv(s: Struct) -> Any:
        return core.Structure(core.Lattice(s[0]), [int(x) for x in s[2]], s[1])

    return [(conv(a), conv(b)) for _, a, b in pairs]


TIMINGS: dict[str, float] = {}
HERE = Path(__file__).parent


def _report() -> Any:
    spec = importlib.util.spec_from_file_location("latticesym_bench_report", HERE / "report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REPORT = _report()


def _record(benchmark: Any, key: str, n: int) -> None:
    benchmark.extra_info["key"] = key
    benchmark.extra_info["pairs"] = n
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        TIMINGS[key] = stats.stats.min / n


def _workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def test_match_batch_2000(benchmark: Any, pairs: list[tuple[str, Struct, Struct]]) -> None:
    from latticesym.structure import match, match_batch

    match(pairs[0][1], pairs[0][2])  # compile (or load) the numba kernels before forking workers
    a = [p[1] for p in pairs]
    b = [p[2] for p in pairs]
    out = benchmark.pedantic(match_batch, args=(a, b), kwargs={"workers": _workers(), **KW}, rounds=3,
                             warmup_rounds=0)
    assert len(out) == len(pairs)
    benchmark.extra_info["matched_by_rms"] = int(out.matched_by_rms.sum())
    benchmark.extra_info["workers"] = _workers()
    _record(benchmark, REPORT.MATCH_BATCH, len(pairs))


def test_match_batch_serial_2000(benchmark: Any, pairs: list[tuple[str, Struct, Struct]]) -> None:
    from latticesym.structure import match, match_batch

    match(pairs[0][1], pairs[0][2])
    a = [p[1] for p in pairs]
    b = [p[2] for p in pairs]
    out = benchmark.pedantic(match_batch, args=(a, b), kwargs={"workers": 1, **KW}, rounds=2, warmup_rounds=0)
    benchmark.extra_info["matched_by_rms"] = int(out.matched_by_rms.sum())
    _record(benchmark, REPORT.MATCH_BATCH_SERIAL, len(pairs))


def test_pymatgen_loop_rms_2000(benchmark: Any, pmg_pairs: list[tuple[Any, Any]]) -> None:
    from pymatgen.analysis.structure_matcher import StructureMatcher

    sm = StructureMatcher(**KW)

    def loop() -> int:
        return sum(sm.get_rms_dist(x, y) is not None for x, y in pmg_pairs)

    got = benchmark.pedantic(loop, rounds=1, warmup_rounds=0)
    benchmark.extra_info["matched_by_rms"] = int(got)
    _record(benchmark, REPORT.MATCH_PMG_RMS, len(pmg_pairs))


def test_pymatgen_loop_fit_rms_2000(benchmark: Any, pmg_pairs: list[tuple[Any, Any]]) -> None:
    from pymatgen.analysis.structure_matcher import StructureMatcher

    sm = StructureMatcher(**KW)

    def loop() -> int:
        return sum(bool(sm.fit(x, y)) + (sm.get_rms_dist(x, y) is not None) for x, y in pmg_pairs)

    benchmark.pedantic(loop, rounds=1, warmup_rounds=0)
    _record(benchmark, REPORT.MATCH_PMG_FIT_RMS, len(pmg_pairs))


def test_single_latticesym(benchmark: Any, pairs: list[tuple[str, Struct, Struct]]) -> None:
    from latticesym.structure import match

    few = pairs[:N_SINGLE]
    match(few[0][1], few[0][2])

    def loop() -> None:
        for _, a, b in few:
            match(a, b, **KW)

    benchmark.pedantic(loop, rounds=3, warmup_rounds=0)
    _record(benchmark, REPORT.MATCH_SINGLE, len(few))


def test_single_pymatgen(benchmark: Any, pmg_pairs: list[tuple[Any, Any]]) -> None:
    from pymatgen.analysis.structure_matcher import StructureMatcher

    sm = StructureMatcher(**KW)
    few = pmg_pairs[:N_SINGLE]

    def loop() -> None:
        for x, y in few:
            sm.get_rms_dist(x, y)

    benchmark.pedantic(loop, rounds=3, warmup_rounds=0)
    _record(benchmark, REPORT.MATCH_SINGLE_PMG, len(few))


def ratios(t: dict[str, float]) -> dict[str, float]:
    """Speed ratios (> 1: latticesym faster) from seconds per pair (``report.compute_match_ratios``)."""
    return dict(REPORT.compute_match_ratios(t))


def test_match_ratios(benchmark: Any) -> None:
    """Report the ratios of this run (printed with ``-s``; in ``extra_info``; match_results.md/.json)."""
    r = ratios(TIMINGS)
    benchmark.pedantic(lambda: None, rounds=1)
    benchmark.extra_info.update({k: round(v, 2) for k, v in r.items()})
    benchmark.extra_info.update({f"seconds_per_pair_{k}": v for k, v in TIMINGS.items()})
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    env = {**REPORT.environment(), "workers": _workers(), "load_average_1_5_15": [round(x, 2) for x in load]}
    print("\nmatch benchmark ratios:", {k: round(v, 2) for k, v in r.items()})
    print("seconds per pair:", {k: f"{v:.3g}" for k, v in TIMINGS.items()})
    print("environment:", env)
    if not r:
        return
    per = ", ".join(f"{k} {v * 1e3:.3g}" for k, v in sorted(TIMINGS.items()))
    context = (f"Measured in one run of `benchmarks/bench_match.py` on {N_PAIRS} pairs ({N_SINGLE} for the "
               f"single-pair latency); minimum milliseconds per pair: {per}. Environment: "
               + ", ".join(f"{k} {v}" for k, v in env.items()) + ".")
    (HERE / "match_results.md").write_text(REPORT.format_match_markdown(r, context=context))
    (HERE / "match_results.json").write_text(json.dumps({"ratios": r, "seconds_per_pair": TIMINGS,
                                                         "environment": env}, indent=2, sort_keys=True) + "\n")
