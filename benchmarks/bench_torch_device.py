"""The on-device torch reducer (``backend="device"``) against the shrinking-batch one and the kernel.

Run with ``make bench`` (``pytest benchmarks -m benchmark --benchmark-only``), or for the ratio
table alone::

    .venv/bin/python -m pytest benchmarks/bench_torch_device.py -m benchmark -p no:cacheprovider -s -k ratios

Inputs: the bundled real cells (Perov-5 and Carbon-24) written in random bases
(``random_unimodular``, max entry 3), as a model's predicted lattices would be, float64 and
float32.  Backends, same tensors, same run, interleaved, median of repeats:

- ``device``: fixed-size masked steps on the tensor's device, a convergence check (one host
  synchronisation) every ``check_every`` steps;
- ``device_compiled``: the same with the step compiled by ``torch.compile`` (CUDA only: on CPU
  inductor's compile time dwarfs the run);
- ``torch``: the batch with a shrinking working set (a synchronisation at every branch);
- ``numba``: latticesym's compiled kernel on the host (on CUDA: a copy to the host and back).

The ratio case prints ``time(other) / time(device)`` and the host synchronisations of each path
(counted by the reducer itself); the speed claim lives here, never in a test.  CUDA cases skip
without a GPU; on a GPU the ratio case also runs there.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch

import latticesym.torch as lt
from latticesym.datasets import load_structures
from latticesym.groups import random_unimodular
from latticesym.reduce import _numba
from latticesym.torch import _reduce

BATCHES = (256, 4096)
THREADS = 1
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
pytestmark = pytest.mark.benchmark


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """One intra-op thread on CPU (tiny ops gain nothing from more on a shared machine); restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


def make_lattices(batch: int, *, device: str = "cpu", dtype: torch.dtype = torch.float64, seed: int = 0
                  ) -> torch.Tensor:
    """``(batch, 3, 3)`` real cells in random bases (max entry 3)."""
    rng = np.random.default_rng(seed)
    cells = np.stack([s.lattice for name in ("perov_5", "carbon_24") for s in load_structures(name)])
    idx = rng.integers(0, len(cells), batch)
    U = random_unimodular(batch, max_entry=3, rng=rng).astype(np.float64)
    return torch.tensor(np.einsum("nij,njk->nik", U, cells[idx]), device=device, dtype=dtype)


_compiled: dict[str, Any] = {}


def _compiled_step() -> Any:
    if "step" not in _compiled:
        _compiled["step"] = torch.compile(_reduce._dev_step, fullgraph=True, dynamic=False)
    return _compiled["step"]


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run(impl: str, L: torch.Tensor) -> int:
    """One reduction of ``L`` by ``impl``; returns the host synchronisations the reducer counted."""
    flat = L.reshape(-1, 3, 3).to(torch.float64)
    if impl == "device_compiled":
        out = _reduce._reduce_device(flat, 1e-5, 1000, step=_compiled_step())
        _sync(L.device.type)
        return out[4]
    syncs = lt.niggli_reduce_info(L, backend=impl).syncs
    _sync(L.device.type)
    return syncs


def _impls(device: str) -> list[str]:
    out = ["device", "torch"]
    if _numba.available():
        out.append("numba")
    if device == "cuda":
        out.append("device_compiled")
    return out


IMPLS: list[Any] = ["device", "torch", pytest.param("numba", marks=pytest.mark.skipif(
    not _numba.available(), reason="no numba"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("impl", IMPLS)
def test_reduce(benchmark: Any, impl: str, batch: int, device: str) -> None:
    L = make_lattices(batch, device=device)
    run(impl, L)  # warm-up (kernels, caches)
    benchmark.pedantic(run, args=(impl, L), rounds=3, iterations=1)


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def ratios(batch: int, *, device: str = "cpu", dtype: torch.dtype = torch.float64, repeats: int = 3
           ) -> dict[str, Any]:
    """``{impl: (seconds, syncs, time(impl) / time(device))}`` in one run, interleaved."""
    L = make_lattices(batch, device=device, dtype=dtype)
    impls = _impls(device)
    syncs = {impl: run(impl, L) for impl in impls}  # warm-up and sync counts
    times: dict[str, list[float]] = {impl: [] for impl in impls}
    for _ in range(repeats):
        for impl in impls:
            times[impl].append(median_time(functools.partial(run, impl, L), 1))
    med = {impl: float(np.median(v)) for impl, v in times.items()}
    return {impl: (med[impl], syncs[impl], med[impl] / med["device"]) for impl in impls}


@pytest.mark.parametrize("device", DEVICES)
def test_ratios(device: str) -> None:
    """Print the same-run table; assert only what the backend guarantees (the sync bound, equal results)."""
    for batch in BATCHES:
        for dtype in (torch.float64, torch.float32):
            table = ratios(batch, device=device, dtype=dtype)
            print(f"\n{device} B={batch} {str(dtype)[6:]}: " + ", ".join(
                f"{impl} {sec * 1e3:.1f} ms ({syncs} syncs, {ratio:.2f}x device)"
                for impl, (sec, syncs, ratio) in table.items()))
            bound = -(-_reduce.step_bound(1000) // _reduce.CHECK_EVERY)
            assert table["device"][1] <= bound
    L = make_lattices(512, device=device)
    a = lt.niggli_reduce_info(L, backend="device")
    b = lt.niggli_reduce_info(L, backend="torch")
    assert torch.equal(a.transform, b.transform) and torch.equal(a.iterations, b.iterations)
