"""Benchmarks of latticesym's batched float Niggli reducer against the peers (issue 3, item 7).

All in one run (``make bench``), so the ratios in ``benchmarks/results.md`` compare like with
like:

- batched latticesym on 1e5 physical lattices;
- batched latticesym on 20,000 sheared physical lattices (basis entries 10 .. 1e6) and a Python
  loop over ``spglib.niggli_reduce`` on the *same* 20,000;
- single-call latency of latticesym and of each peer (spglib, gemmi, ASE, pymatgen, cctbx,
  moyopy) on the same 200 physical cells.

Peers are called in this process through :func:`latticesym.peers.peer_function` (cctbx is
imported before gemmi; the other order segfaults).  Each benchmark records its *minimum* seconds
per lattice over the rounds in ``bench_timings`` (see ``conftest.py``): the CI machine is shared,
and the minimum is the estimate least disturbed by other processes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import latticesym
from latticesym import families
from latticesym.peers import available_peers, peer_function

pytestmark = [
    pytest.mark.benchmark,
    # spglib 2.x warns on every failed call (it returns None): "Set OLD_ERROR_HANDLING to false ..."
    pytest.mark.filterwarnings("ignore:Set OLD_ERROR_HANDLING:DeprecationWarning"),
]

SEED = 20251126
N_PHYSICAL = 100_000
N_SHEARED = 20_000
N_SINGLE = 200
ROUNDS = 7


@pytest.fixture(scope="module")
def physical_1e5() -> np.ndarray:
    return families.physical(N_PHYSICAL, rng=np.random.default_rng([SEED, 0]))


@pytest.fixture(scope="module")
def sheared_20k() -> np.ndarray:
    return families.sheared(N_SHEARED, rng=np.random.default_rng([SEED, 1]))


@pytest.fixture(scope="module")
def single_cells() -> np.ndarray:
    return families.physical(N_SINGLE, rng=np.random.default_rng([SEED, 2]))


@pytest.fixture(scope="module")
def peer_calls() -> dict[str, Callable[[np.ndarray, float], Any]]:
    """In-process peer calls, imported cctbx first, each warmed up once."""
    calls = {}
    installed = available_peers()
    for name in sorted(installed, key=lambda p: p != "cctbx"):
        fn = peer_function(name)
        try:
            fn(np.diag([3.0, 4.0, 5.0]), 1e-5)
        except ImportError:
            continue
        calls[name] = fn
    return calls


def _record(benchmark: Any, timings: dict[str, float], key: str, lattices: int) -> None:
    benchmark.extra_info["key"] = key
    benchmark.extra_info["lattices"] = lattices
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        timings[key] = stats.stats.min / lattices


def test_batched_physical_1e5(benchmark: Any, bench_timings: dict[str, float], physical_1e5: np.ndarray) -> None:
    latticesym.niggli_reduce(physical_1e5[:10])  # warm-up (numba compilation, if any)
    result = benchmark.pedantic(latticesym.niggli_reduce, args=(physical_1e5,), rounds=3, warmup_rounds=1)
    assert result.lattice.shape == physical_1e5.shape
    _record(benchmark, bench_timings, "batched_physical_1e5", N_PHYSICAL)


def test_batched_sheared_20k(benchmark: Any, bench_timings: dict[str, float], sheared_20k: np.ndarray) -> None:
    latticesym.niggli_reduce(sheared_20k[:10])
    result = benchmark.pedantic(latticesym.niggli_reduce, args=(sheared_20k,), rounds=ROUNDS, warmup_rounds=1)
    assert result.lattice.shape == sheared_20k.shape
    _record(benchmark, bench_timings, "batched_sheared_20k", N_SHEARED)


def test_spglib_loop_sheared_20k(benchmark: Any, bench_timings: dict[str, float], sheared_20k: np.ndarray,
                                 peer_calls: dict[str, Any]) -> None:
    if "spglib" not in peer_calls:
        pytest.skip("spglib is not installed")
    import spglib

    def loop() -> int:
        return sum(spglib.niggli_reduce(lat, eps=1e-5) is None for lat in sheared_20k)

    failed = benchmark.pedantic(loop, rounds=3, warmup_rounds=0)
    benchmark.extra_info["spglib_none"] = int(failed)
    _record(benchmark, bench_timings, "spglib_loop_sheared_20k", N_SHEARED)


def test_single_latticesym(benchmark: Any, bench_timings: dict[str, float], single_cells: np.ndarray) -> None:
    reduce = latticesym.niggli_reduce
    reduce(single_cells[0])

    def loop() -> None:
        for lat in single_cells:
            reduce(lat)

    benchmark.pedantic(loop, rounds=ROUNDS, warmup_rounds=1)
    _record(benchmark, bench_timings, "single_latticesym", N_SINGLE)


@pytest.mark.parametrize("peer", ["spglib", "gemmi", "ase", "pymatgen", "cctbx", "moyopy"])
def test_single_peer(benchmark: Any, bench_timings: dict[str, float], single_cells: np.ndarray,
                     peer_calls: dict[str, Any], peer: str) -> None:
    if peer not in peer_calls:
        pytest.skip(f"{peer} is not installed")
    fn = peer_calls[peer]

    def loop() -> None:
        for lat in single_cells:
            fn(lat, 1e-5)

    benchmark.pedantic(loop, rounds=ROUNDS, warmup_rounds=1)
    _record(benchmark, bench_timings, f"single_{peer}", N_SINGLE)
