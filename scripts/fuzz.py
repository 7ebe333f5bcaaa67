"""The fuzz campaign of issue 13 (``make fuzz``): every public entry point, hostile inputs, four rules.

Round-robin over the targets of ``tests/fuzz/_harness.py`` in time slices, in ``--workers``
processes with different seeds, until ``--seconds`` have passed or ``--calls`` calls were made;
prints per-target call / raised / verified counts and every finding, and exits 1 on any finding.

    python scripts/fuzz.py --seconds 3600 --workers 2 --seed 0
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fuzz"))
sys.path.insert(0, str(ROOT))

#: Relative share of the time slices (cheap numeric targets get more calls through anyway).
WEIGHTS = {"reference.niggli_reduce": 2.0, "niggli_reduce": 3.0, "torch.losses": 2.0, "torch.niggli_reduce": 2.0}


def worker(seed: int, seconds: float, calls: int, slice_s: float) -> dict:
    import warnings

    import numpy as np

    warnings.simplefilter("ignore")
    import _harness as h

    import latticesym
    latticesym.warmup(parallel=False)
    rng = np.random.default_rng(seed)
    targets = h.make_targets()
    camp = h.Campaign()
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end and sum(camp.counts.values()) < calls:
        for t in targets:
            s = slice_s * WEIGHTS.get(t.name, 1.0)
            h.run_target(t, rng, 10**9, camp, seconds=min(s, max(0.0, t_end - time.perf_counter())))
            if time.perf_counter() >= t_end:
                break
    return {"counts": dict(camp.counts), "raised": dict(camp.raised), "verified": dict(camp.verified),
            "kinds": [[t, k, v] for (t, k), v in camp.kinds.items()],
            "findings": [{"target": f.target, "kind": f.kind, "detail": f.detail, "args": repr(f.args)[:400]}
                         for f in camp.findings]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3600.0)
    ap.add_argument("--calls", type=int, default=10**9, help="stop each worker after this many calls")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--slice", type=float, default=2.0, help="seconds per target per round")
    ap.add_argument("--json", type=Path, help="write the merged counts and findings here")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    jobs = [(a.seed * 1000 + w, a.seconds, a.calls, a.slice) for w in range(a.workers)]
    if a.workers == 1:
        parts = [worker(*jobs[0])]
    else:
        with mp.get_context("spawn").Pool(a.workers) as pool:
            parts = pool.starmap(worker, jobs)
    counts, raised, verified, findings = Counter(), Counter(), Counter(), []
    kinds: Counter = Counter()
    per: Counter = Counter()
    for p in parts:
        for t, k, v in p["kinds"]:
            kinds[k] += v
            per[t] += v
        counts.update(p["counts"])
        raised.update(p["raised"])
        verified.update(p["verified"])
        findings += p["findings"]
    wall = time.perf_counter() - t0
    print(f"{'entry point':45s} {'calls':>10s} {'typed err':>10s} {'verified':>9s} {'findings':>9s}")
    for name in sorted(counts):
        print(f"{name:45s} {counts[name]:10d} {raised[name]:10d} {verified[name]:9d} {per[name]:9d}")
    total = sum(counts.values())
    print(f"{'TOTAL':45s} {total:10d} {sum(raised.values()):10d} {sum(verified.values()):9d} {sum(per.values()):9d}")
    print(f"wall {wall:.0f} s, {a.workers} workers, {total / wall:.0f} calls/s")
    print("untyped errors: {u}, plain ValueErrors (not LatticeError): {v}, hangs: {h}, input mutations: {m}, "
          "inequivalent results: {i}, nonfinite losses: {n}".format(
              u=kinds["untyped"], v=kinds["valueerror"], h=kinds["hang"], m=kinds["mutation"],
              i=kinds["inequivalent"], n=kinds["nonfinite"]))
    seen = set()
    for f in findings:
        key = (f["target"], f["kind"], f["detail"][:80])
        if key in seen:
            continue
        seen.add(key)
        print(f"FINDING {f['target']} [{f['kind']}] {f['detail']}\n    input: {f['args']}")
    if a.json:
        doc = {"counts": counts, "raised": raised, "verified": verified, "wall_s": wall, "workers": a.workers,
               "kinds": kinds, "findings": findings}
        a.json.write_text(json.dumps(doc, indent=1, default=str))
    return 1 if sum(per.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
