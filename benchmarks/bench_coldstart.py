"""Cold start (issue 13): first-call and first-large-batch latency of a *fresh* process.

Each measurement starts a new interpreter (numba's on-disk cache in place, as after the first
use of an install) and times, inside it: ``import latticesym``; the first one-lattice
``niggli_reduce``; the first batch of 20,000 lattices (the parallel kernel's size) and a second
one.  Modes: ``plain`` (no warm-up: the first large batch runs serially while the parallel
kernel loads in the background), ``warmup`` (``latticesym.warmup()`` first, timed separately).
The peer row is spglib's first ``niggli_reduce`` in a fresh process, the same way.

    python benchmarks/bench_coldstart.py          # prints the table (seconds, median of 3)
    pytest benchmarks/bench_coldstart.py -m benchmark --benchmark-only
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

_CODE = {
    "plain": """
        import time, json
        t0 = time.perf_counter()
        import numpy as np, latticesym
        t1 = time.perf_counter()
        latticesym.niggli_reduce(np.array([[1.0, 0, 0], [0.3, 1.1, 0], [0.2, 0.1, 0.9]]))
        t2 = time.perf_counter()
        L = np.random.default_rng(0).normal(size=(20000, 3, 3))
        latticesym.niggli_reduce(L, errors="mask")
        t3 = time.perf_counter()
        latticesym.niggli_reduce(L, errors="mask")
        t4 = time.perf_counter()
        print(json.dumps({"import": t1 - t0, "first_call": t2 - t1, "first_batch_20k": t3 - t2,
                          "second_batch_20k": t4 - t3}))
    """,
    "warmup": """
        import time, json
        t0 = time.perf_counter()
        import numpy as np, latticesym
        t1 = time.perf_counter()
        latticesym.warmup()
        tw = time.perf_counter()
        latticesym.niggli_reduce(np.array([[1.0, 0, 0], [0.3, 1.1, 0], [0.2, 0.1, 0.9]]))
        t2 = time.perf_counter()
        L = np.random.default_rng(0).normal(size=(20000, 3, 3))
        latticesym.niggli_reduce(L, errors="mask")
        t3 = time.perf_counter()
        print(json.dumps({"import": t1 - t0, "warmup": tw - t1, "first_call": t2 - tw, "first_batch_20k": t3 - t2}))
    """,
    "spglib": """
        import time, json
        t0 = time.perf_counter()
        import numpy as np, spglib
        t1 = time.perf_counter()
        spglib.niggli_reduce(np.array([[1.0, 0, 0], [0.3, 1.1, 0], [0.2, 0.1, 0.9]]))
        t2 = time.perf_counter()
        print(json.dumps({"import": t1 - t0, "first_call": t2 - t1}))
    """,
}


def fresh(mode: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(_CODE[mode])], capture_output=True, text=True,
                         check=True, env=env, cwd=ROOT, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(repeats: int = 3) -> dict[str, dict[str, float]]:
    fresh("warmup")  # the cache in place
    res = {}
    for mode in _CODE:
        runs = [fresh(mode) for _ in range(repeats)]
        res[mode] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    return res


@pytest.mark.benchmark
@pytest.mark.parametrize("mode", list(_CODE))
def test_coldstart_fresh_process(benchmark: Any, mode: str) -> None:
    if mode == "spglib":
        pytest.importorskip("spglib")
    fresh("warmup")
    got = benchmark.pedantic(fresh, args=(mode,), rounds=3, iterations=1)
    benchmark.extra_info.update(got)


if __name__ == "__main__":
    res = table()
    for mode, vals in res.items():
        print(f"{mode:8s} " + "  ".join(f"{k} {v:.3f} s" for k, v in vals.items()))
    sp, ls = res["spglib"]["import"] + res["spglib"]["first_call"], res["plain"]["import"] + res["plain"]["first_call"]
    print(f"import + first call, latticesym / spglib: {ls / sp:.1f}x")
