"""Turn benchmark timings into the ratios of the docs table (``benchmarks/results.md`` / ``.json``).

Absolute times depend on the machine; the docs quote ratios measured in one run.  The
benchmarks (``bench_reduce.py``) store, per benchmark, the minimum (over rounds) seconds **per
lattice** under the names below; :func:`compute_ratios` turns them into

- ``batched_vs_spglib_loop_sheared``: seconds per lattice of a Python loop over
  ``spglib.niggli_reduce`` / batched latticesym, on the same 20,000 sheared physical lattices
  (the issue's acceptance: >= 20);
- ``batched_physical_vs_spglib_single``: spglib's single-call latency / latticesym's batched
  per-lattice time on 1e5 physical lattices;
- ``single_latency_vs_<peer>``: latticesym single-call latency / the peer's (acceptance for
  spglib: <= 3), on the same physical cells.

The structure matcher's benchmark (``bench_match.py``) stores seconds **per pair** under the
``MATCH_*`` keys; :func:`compute_match_ratios` gives its ratios against a Python loop over
pymatgen's ``StructureMatcher`` on the same 2000 pairs (issue 11: >= 20 for the batch), written
to ``benchmarks/match_results.md`` / ``.json`` by that benchmark.

Use it from the benchmarks' ``conftest.py`` (automatic) or on a pytest-benchmark JSON file::

    pytest benchmarks -m benchmark --benchmark-only --benchmark-json=out.json
    python benchmarks/report.py out.json [OUT_DIR]
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PEERS = ("spglib", "gemmi", "ase", "pymatgen", "cctbx", "moyopy")

BATCHED_PHYSICAL = "batched_physical_1e5"
BATCHED_SHEARED = "batched_sheared_20k"
SPGLIB_LOOP_SHEARED = "spglib_loop_sheared_20k"
SINGLE_LATTICESYM = "single_latticesym"


def single(peer: str) -> str:
    """Timing key of a peer's single-call latency."""
    return f"single_{peer}"


def compute_ratios(per_lattice: Mapping[str, float]) -> dict[str, float]:
    """Ratios from seconds per lattice; a ratio whose inputs are missing is left out.

    Examples
    --------
    >>> r = compute_ratios({"batched_sheared_20k": 1e-6, "spglib_loop_sheared_20k": 3e-5,
    ...                     "single_latticesym": 2e-5, "single_spglib": 1e-5})
    >>> r["batched_vs_spglib_loop_sheared"], r["single_latency_vs_spglib"]
    (30.0, 2.0)
    """
    t = {k: float(v) for k, v in per_lattice.items() if v is not None and float(v) > 0}
    out: dict[str, float] = {}
    if BATCHED_SHEARED in t and SPGLIB_LOOP_SHEARED in t:
        out["batched_vs_spglib_loop_sheared"] = t[SPGLIB_LOOP_SHEARED] / t[BATCHED_SHEARED]
    if BATCHED_PHYSICAL in t and single("spglib") in t:
        out["batched_physical_vs_spglib_single"] = t[single("spglib")] / t[BATCHED_PHYSICAL]
    if SINGLE_LATTICESYM in t:
        for peer in PEERS:
            if single(peer) in t:
                out[f"single_latency_vs_{peer}"] = t[SINGLE_LATTICESYM] / t[single(peer)]
    return out


MATCH_BATCH = "match_batch_2000"
MATCH_BATCH_SERIAL = "match_batch_serial_2000"
MATCH_PMG_RMS = "match_pymatgen_loop_rms_2000"
MATCH_PMG_FIT_RMS = "match_pymatgen_loop_fit_rms_2000"
MATCH_SINGLE = "match_single_latticesym"
MATCH_SINGLE_PMG = "match_single_pymatgen"

#: (ratio name, numerator key, denominator key, what it compares, target)
MATCH_RATIOS = (
    ("batch_vs_pymatgen_get_rms_dist_loop", MATCH_PMG_RMS, MATCH_BATCH,
     "`match_batch` (all cores) vs a loop over `get_rms_dist` (DiffCSP's call)", ">= 20x"),
    ("batch_vs_pymatgen_fit_and_rms_loop", MATCH_PMG_FIT_RMS, MATCH_BATCH,
     "`match_batch` (all cores) vs a loop over `fit` + `get_rms_dist` (both verdicts)", ""),
    ("serial_batch_vs_pymatgen_get_rms_dist_loop", MATCH_PMG_RMS, MATCH_BATCH_SERIAL,
     "`match_batch(workers=1)` (one process) vs the `get_rms_dist` loop", ""),
    ("serial_batch_vs_pymatgen_fit_and_rms_loop", MATCH_PMG_FIT_RMS, MATCH_BATCH_SERIAL,
     "`match_batch(workers=1)` (one process) vs the `fit` + `get_rms_dist` loop", ""),
    ("single_pair_latency_pymatgen_over_latticesym", MATCH_SINGLE_PMG, MATCH_SINGLE,
     "single-pair latency, `get_rms_dist` / `match`", ""),
)


def compute_match_ratios(per_pair: Mapping[str, float]) -> dict[str, float]:
    """Matcher ratios (> 1: latticesym faster) from seconds per pair; missing inputs are left out.

    Examples
    --------
    >>> compute_match_ratios({"match_batch_2000": 5e-4, "match_pymatgen_loop_rms_2000": 1.2e-2})
    {'batch_vs_pymatgen_get_rms_dist_loop': 24.0}
    """
    t = {k: float(v) for k, v in per_pair.items() if v is not None and float(v) > 0}
    return {name: t[num] / t[den] for name, num, den, _, _ in MATCH_RATIOS if num in t and den in t}


def format_match_markdown(ratios: Mapping[str, float], *, context: str = "") -> str:
    """The matcher's docs table (one row per ratio present)."""
    rows = ["| comparison | ratio (latticesym faster) | target |", "|---|---|---|"]
    for name, _, _, what, target in MATCH_RATIOS:
        if name in ratios:
            rows.append(f"| {what} | {ratios[name]:.1f}x | {target} |")
    text = "\n".join(rows) + "\n"
    if context:
        text += f"\n{context}\n"
    return text


def format_markdown(ratios: Mapping[str, float], *, context: str = "") -> str:
    """The docs table: one row per ratio, with what it means and the acceptance target.

    Examples
    --------
    >>> print(format_markdown({"batched_vs_spglib_loop_sheared": 31.25}).splitlines()[2])
    | batched latticesym vs a Python loop over spglib (20,000 sheared physical lattices) | 31.2x faster | >= 20x |
    """
    rows = ["| comparison | ratio | target |", "|---|---|---|"]
    if "batched_vs_spglib_loop_sheared" in ratios:
        r = ratios["batched_vs_spglib_loop_sheared"]
        rows.append("| batched latticesym vs a Python loop over spglib (20,000 sheared physical lattices) | "
                    f"{r:.1f}x faster | >= 20x |")
    if "batched_physical_vs_spglib_single" in ratios:
        r = ratios["batched_physical_vs_spglib_single"]
        rows.append(f"| batched latticesym per lattice (1e5 physical) vs one spglib call | {r:.1f}x faster | |")
    for peer in PEERS:
        key = f"single_latency_vs_{peer}"
        if key in ratios:
            r = ratios[key]
            target = "<= 3x" if peer == "spglib" else ""
            rows.append(f"| single-call latency, latticesym / {peer} (same physical cells) | {r:.2f}x | {target} |")
    text = "\n".join(rows) + "\n"
    if context:
        text += f"\n{context}\n"
    return text


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded next to the ratios (not absolute times)."""
    import os

    info: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(),
                            "cpus": os.cpu_count()}
    for mod in ("numpy", "numba", "spglib", "gemmi", "ase", "pymatgen.core", "moyopy"):
        m = sys.modules.get(mod)
        if m is not None:
            info[mod.split(".")[0]] = getattr(m, "__version__", "?")
    return info


def write_report(per_lattice: Mapping[str, float], directory: str | Path) -> dict[str, float]:
    """Write ``results.md`` and ``results.json`` (ratios only, plus the environment) to ``directory``."""
    ratios = compute_ratios(per_lattice)
    d = Path(directory)
    env = environment()
    context = "Measured in one `make bench` run: " + ", ".join(f"{k} {v}" for k, v in env.items()) + "."
    (d / "results.md").write_text(format_markdown(ratios, context=context))
    (d / "results.json").write_text(json.dumps({"ratios": ratios, "environment": env}, indent=2, sort_keys=True)
                                    + "\n")
    return ratios


def per_lattice_from_pytest_benchmark(data: Mapping[str, Any]) -> dict[str, float]:
    """Minimum seconds per lattice from a ``--benchmark-json`` file's dict.

    Each benchmark stores its key and its lattice count in ``extra_info``
    (``{"key": ..., "lattices": ...}``; the matcher's benchmarks ``"pairs"``: seconds per pair).
    """
    out: dict[str, float] = {}
    for b in data.get("benchmarks", []):
        extra = b.get("extra_info", {})
        if "key" in extra:
            count = extra.get("lattices", extra.get("pairs", 1))
            out[extra["key"]] = b["stats"]["min"] / max(int(count), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        print("usage: python benchmarks/report.py BENCHMARK_JSON [OUT_DIR]", file=sys.stderr)
        return 2
    data = json.loads(Path(args[0]).read_text())
    out = Path(args[1]) if len(args) == 2 else Path(__file__).parent
    per = per_lattice_from_pytest_benchmark(data)
    ratios = write_report(per, out)
    print(format_markdown(ratios))
    match_ratios = compute_match_ratios(per)
    if match_ratios:
        print(format_match_markdown(match_ratios))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
