"""The fuzz campaign of issue 13 (``make fuzz``): every public entry point, hostile inputs, four rules.

Round-robin over the targets of ``tests/fuzz/_harness.py`` in time slices, in ``--workers``
processes with different seeds, until ``--seconds`` have passed or ``--calls`` calls were made;
prints per-target call / raised / verified counts and every finding, and exits 1 on any finding.

    python scripts/fuzz.py --seconds 3600 --workers 2 --seed 0 [--atheris 300]

``--atheris`` then runs the coverage-guided driver of the text readers (``tests/fuzz/atheris_readers.py``).
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
            "findings": [{"target": f.target, "kind": f.kind, "detail": f.detail,
                          "args": exact_repr(f.args)[:6000], "kwargs": exact_repr(f.kwargs or {})[:1000]}
                         for f in camp.findings]}


def exact_repr(x: object) -> str:
    """A repr that reproduces the input: arrays and tensors by their full-precision entries and dtype
    (numpy's and torch's own reprs round to 4-8 digits, too few to replay an ill-conditioned cell)."""
    import numpy as np

    if isinstance(x, np.ndarray):
        return f"np.array({x.tolist()!r}, dtype=np.{x.dtype})" if x.dtype != object else repr(x)
    try:
        import torch

        if isinstance(x, torch.Tensor):
            return f"torch.tensor({x.detach().cpu().tolist()!r}, dtype={x.dtype}, device='{x.device}')"
    except ImportError:  # pragma: no cover - torch is in the test extra
        pass
    if isinstance(x, tuple):
        return "(" + ", ".join(exact_repr(v) for v in x) + ("," if len(x) == 1 else "") + ")"
    if isinstance(x, list):
        return "[" + ", ".join(exact_repr(v) for v in x) + "]"
    if isinstance(x, dict):
        return "{" + ", ".join(f"{k!r}: {exact_repr(v)}" for k, v in x.items()) + "}"
    return repr(x)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3600.0)
    ap.add_argument("--calls", type=int, default=10**9, help="stop each worker after this many calls")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--slice", type=float, default=2.0, help="seconds per target per round")
    ap.add_argument("--json", type=Path, help="write the merged counts and findings here")
    ap.add_argument("--atheris", type=float, default=0.0, metavar="SECONDS",
                    help="then run the coverage-guided atheris driver of the text readers this long")
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
        print(f"FINDING {f['target']} [{f['kind']}] {f['detail']}\n    input: {f['args'][:400]}"
              f"\n    options: {f.get('kwargs', '{}')}")
    ath = run_atheris(a.atheris) if a.atheris > 0 else None
    if a.json:
        doc = {"counts": counts, "raised": raised, "verified": verified, "wall_s": wall, "workers": a.workers,
               "kinds": kinds, "findings": findings, "atheris": ath}
        a.json.write_text(json.dumps(doc, indent=1, default=str))
    return 1 if sum(per.values()) or (ath is not None and ath["rc"] != 0) else 0


def run_atheris(seconds: float) -> dict:
    """The atheris driver (``tests/fuzz/atheris_readers.py``) for ``seconds``, seeded with the good
    texts; returns its executions, coverage and exit status (non-zero: a crash, input saved)."""
    import re
    import subprocess
    import tempfile

    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris: not installed (pip install 'latticesym[fuzz]'), coverage-guided readers skipped")
        return {"rc": 0, "runs": 0, "skipped": True}
    driver = ROOT / "tests" / "fuzz" / "atheris_readers.py"
    with tempfile.TemporaryDirectory(prefix="ls-atheris-corpus-") as corpus:
        subprocess.run([sys.executable, str(driver), "--write-seeds", corpus], check=True, capture_output=True)
        proc = subprocess.run([sys.executable, str(driver), f"-max_total_time={int(seconds)}", "-timeout=20",
                               "-rss_limit_mb=4096", f"-artifact_prefix={ROOT}/", corpus],
                              capture_output=True, text=True, cwd=ROOT)
    log = proc.stdout + proc.stderr
    runs = re.findall(r"Done (\d+) runs", log)
    cov = re.findall(r"cov: (\d+)", log)
    out = {"rc": proc.returncode, "runs": int(runs[-1]) if runs else 0, "cov": int(cov[-1]) if cov else 0,
           "seconds": seconds}
    print(f"atheris (io readers, parse_matrix): {out['runs']} executions in {seconds:.0f} s, "
          f"coverage {out['cov']} edges, exit {proc.returncode}" + ("" if proc.returncode == 0 else
                                                                     "\n" + log[-3000:]))
    return out


if __name__ == "__main__":
    sys.exit(main())
