"""The ``latticesym`` command line (also ``python -m latticesym``).

Subcommands
-----------
``reduce``  Niggli-reduce lattices from CIF / POSCAR / CSV files or a matrix on the command line.
``audit``   Scan datasets for cells that are not Niggli-reduced, left-handed, near-singular, or
            duplicates up to a change of basis (serial, worker processes, or Dask).
``gate``    Invariance errors of ``MODULE:FUNCTION`` over a dataset against a baseline (CI gate).
``stress``  The stress families through latticesym's reducer and every installed peer reducer.
``canonicalize``  Canonical structures (Niggli cell, carried atoms) of CIF / POSCAR / extxyz files.
``demo``    ``audit`` + ``stress`` on the cells bundled with the package (what ``make demo`` runs).

Run ``latticesym SUBCOMMAND --help`` for the options.  Exit status: 0 success, 1 a gate or
check failed, 2 bad usage or unreadable input.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["build_parser", "main", "run_stress", "stress_table"]

EXAMPLES = """examples:
  latticesym reduce "1 0 0; 5 1 0; 0 0 1"
  latticesym reduce structure.cif --json
  latticesym audit bundled:perov_5 bundled:carbon_24 ../shared/data/spglib/poscars --workers 2
  latticesym audit ../shared/data/cdvae_carbon_24_test.csv --dask-local --json audit.json
  latticesym gate featurizer:featurize --structures bundled:carbon_24 --limit 20 --baseline baseline.json
  latticesym stress -n 20 --peers spglib,gemmi
  latticesym canonicalize ../shared/data/spglib/poscars canonical/ --format cif
  latticesym demo
"""


# --------------------------------------------------------------------------- helpers
def _progress_enabled(args: argparse.Namespace) -> bool:
    return not getattr(args, "no_progress", False) and sys.stderr.isatty()


def _fmt_matrix(m: Any, indent: str = "  ", prec: int = 10) -> str:
    arr = np.asarray(m)
    if arr.dtype.kind in "iu" or arr.dtype == object:
        rows = [[str(int(x)) for x in row] for row in arr.tolist()]
    else:
        rows = [[f"{float(x):.{prec}g}" for x in row] for row in arr.tolist()]
    width = max(len(x) for row in rows for x in row)
    return "\n".join(indent + "  ".join(x.rjust(width) for x in row) for row in rows)


def _read(args: argparse.Namespace, sources: Sequence[str]) -> list[Any]:
    from latticesym import io

    return io.read_structures(
        sources,
        parser=args.parser,
        cif_column=args.cif_column,
        limit=args.limit,
        errors="skip" if getattr(args, "skip_errors", False) else "raise",
    )


def _write_json(text: str, dest: str) -> None:
    if dest == "-":
        sys.stdout.write(text + "\n")
    else:
        with open(dest, "w") as fh:
            fh.write(text + "\n")


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--parser",
        choices=["auto", "gemmi", "pymatgen", "ase"],
        default="auto",
        help="library that reads CIF / POSCAR files (default: auto)",
    )
    p.add_argument("--cif-column", default="cif", help="CSV column holding CIF strings (default: cif)")
    p.add_argument("--limit", type=int, default=None, help="read at most this many structures")
    p.add_argument("--skip-errors", action="store_true", help="skip unreadable files / rows (with a warning)")


# --------------------------------------------------------------------------- reduce
def _cmd_reduce(args: argparse.Namespace) -> int:
    import latticesym
    from latticesym import io
    from latticesym.datasets import Structure
    from latticesym.errors import LatticeError, OptionError

    items: list[Any] = []
    for spec in args.inputs:
        text = sys.stdin.read() if spec == "-" else spec
        try:
            items.append(Structure("matrix", io.parse_matrix(text), np.zeros((0, 3)), ()))
            continue
        except ValueError:
            if spec == "-":
                raise
        items.extend(_read(args, [spec]))
    results = []
    status = 0
    for s in items:
        entry: dict[str, Any] = {"id": s.id, "input": np.asarray(s.lattice).tolist()}
        try:
            if args.exact:
                from latticesym.reference import niggli_reduce as exact_reduce

                ex = exact_reduce(s.lattice)
                lattice = np.array([[float(x) for x in row] for row in ex.lattice])
                transform = np.array(ex.transform.tolist(), dtype=np.int64)
                g6 = [float(x) for x in ex.g6]
                entry["g6_exact"] = [str(x) for x in ex.g6]
                iterations = int(ex.iterations)
            else:
                r = latticesym.niggli_reduce(s.lattice, eps=args.eps)
                lattice = np.asarray(r.lattice, dtype=np.float64)
                transform = np.asarray(r.transform, dtype=np.int64)
                g6 = np.asarray(r.g6, dtype=np.float64).tolist()
                iterations = int(np.asarray(r.iterations))
        except OptionError:  # the caller's option: main() reports it once
            raise
        except LatticeError as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
            status = 1
        else:
            entry.update(
                lattice=lattice.tolist(),
                transform=transform.tolist(),
                g6=g6,
                cell_parameters=latticesym.cell_parameters(lattice).tolist(),
                iterations=iterations,
                was_reduced=bool(np.array_equal(transform, np.eye(3, dtype=np.int64))),
            )
        results.append(entry)
    if args.json:
        from latticesym.audit import _jsonable

        print(json.dumps(_jsonable(results if len(results) != 1 else results[0]), indent=1))
        return status
    for k, e in enumerate(results):
        if k:
            print()
        print(f"# {e['id']}")
        print("input lattice (rows a, b, c):")
        print(_fmt_matrix(e["input"]))
        if "error" in e:
            print(f"error: {e['error']}")
            continue
        method = "exact oracle" if args.exact else f"float64, eps={args.eps:g}"
        print(f"Niggli-reduced lattice ({method}):")
        print(_fmt_matrix(e["lattice"]))
        print("transform T (T @ input == reduced, det +1):")
        print(_fmt_matrix(np.array(e["transform"], dtype=np.int64)))
        print("G6 (A, B, C, xi, eta, zeta): " + "  ".join(f"{x:.10g}" for x in e["g6"]))
        a, b, c, al, be, ga = e["cell_parameters"]
        print(f"cell: a={a:.6f} b={b:.6f} c={c:.6f} alpha={al:.4f} beta={be:.4f} gamma={ga:.4f}")
        print(f"iterations: {e['iterations']}" + ("  (input was already reduced)" if e["was_reduced"] else ""))
    return status


# --------------------------------------------------------------------------- audit
def _cmd_audit(args: argparse.Namespace) -> int:
    from latticesym.audit import audit

    datasets: dict[str, list[Any]] = {}
    t0 = time.perf_counter()
    for spec in args.sources:
        datasets[spec] = _read(args, [spec])
    read_seconds = time.perf_counter() - t0
    report = audit(
        datasets,
        eps=args.eps,
        singular_tol=args.singular_tol,
        duplicate_tol=args.duplicate_tol,
        oracle=args.oracle,
        chunk_size=args.chunk_size,
        workers=args.workers,
        dask_scheduler=args.dask_scheduler,
        dask_local=args.dask_local,
        progress=_progress_enabled(args),
    )
    report.options["read_seconds"] = round(read_seconds, 3)
    if args.json:
        _write_json(report.to_json(cells=not args.summary_only), args.json)
    if args.json != "-":
        print(report.table())
        print(
            f"(read in {read_seconds:.2f} s; eps={args.eps:g}, singular-tol={args.singular_tol:g}, "
            f"duplicate-tol={args.duplicate_tol:g})"
        )
        if args.show:
            _show_flagged(report, args.show)
    return 0


def _show_flagged(report: Any, k: int) -> None:
    for name, recs in report.records.items():
        for label, pred in (
            ("not reduced", lambda r: r["reduced"] is False),
            ("left-handed", lambda r: r["left_handed"]),
            ("near-singular", lambda r: r["near_singular"]),
            ("duplicate", lambda r: r["duplicate_of"] is not None),
            ("failed", lambda r: r["error"] is not None),
        ):
            hits = [r for r in recs if pred(r)]
            if not hits:
                continue
            print(f"{name}: {label} ({len(hits)}), first {min(k, len(hits))}:")
            for r in hits[:k]:
                extra = f" -> {r['duplicate_of']}" if label == "duplicate" else ""
                extra += f"  {r['error']}" if label == "failed" else ""
                print(f"  {r['id']}{extra}")


# --------------------------------------------------------------------------- gate
def _cmd_gate(args: argparse.Namespace) -> int:
    from latticesym import gate

    if args.metrics:  # CSP match rate / RMSE against a baseline (latticesym.structure._gate_metrics)
        from latticesym.structure._gate_metrics import cli_gate

        return cli_gate(args)
    if args.function is None or not args.structures:
        print("gate: needs MODULE:FUNCTION and --structures (or --metrics)", file=sys.stderr)
        return 2
    fn = gate.load_function(args.function)
    structures = _read(args, args.structures)
    if not structures:
        print("gate: no structures read", file=sys.stderr)
        return 2
    baseline = None
    if args.baseline and not args.write_baseline:
        try:
            baseline = gate.load_baseline(args.baseline)
        except FileNotFoundError:
            print(
                f"gate: baseline {args.baseline} does not exist (use --write-baseline to create it)",
                file=sys.stderr,
            )
            return 2
    det: Any = args.det if args.det == "either" else int(args.det)
    report = gate.run_gate(
        fn,
        structures,
        function_name=args.function,
        baseline=baseline,
        kind=args.kind,
        trials=args.trials,
        seed=args.seed,
        max_entry=args.max_entry,
        det=det,
        rotate=args.rotate,
        translate=args.translate,
        permute=args.permute,
        tolerance=args.tolerance,
        atol=args.atol,
        regression_factor=args.regression_factor,
        regression_floor=args.regression_floor,
        progress=_progress_enabled(args),
    )
    if args.write_baseline:
        if not args.baseline:
            print("gate: --write-baseline needs --baseline FILE", file=sys.stderr)
            return 2
        gate.write_baseline(report, args.baseline)
    if args.output and args.output != "none":
        _write_json(gate.report_to_json(report), args.output)
    if args.output != "-":
        print(gate.summary_text(report))
        if args.output and args.output != "none":
            print(f"  report written to {args.output}")
        if args.write_baseline:
            print(f"  baseline written to {args.baseline}")
    return 0 if report["passed"] else 1


# --------------------------------------------------------------------------- stress
def run_stress(
    families: Sequence[str] | None = None,
    *,
    n: int = 10,
    seed: int = 0,
    peers: Sequence[str] | None = None,
    eps: float = 1e-5,
    timeout: float = 2.0,
    progress: bool = False,
) -> dict[str, Any]:
    """Run the stress families through latticesym and the given peers, judged by the exact oracle.

    Returns a dict ``{"families": [...], "solvers": [...], "results": {family: {solver: counts}}}``
    where counts has ``n``, ``ok``, ``agree`` (ok and within 1e-6 of the oracle's G6),
    ``wrong``, ``failed`` (raised or returned nothing), ``timeout`` and ``median_ms``.
    """
    import latticesym
    from latticesym import families as fam
    from latticesym import peers as peer_mod
    from latticesym.audit import _progress_bar
    from latticesym.errors import LatticeError

    names = list(families) if families else sorted(fam.FAMILIES)
    solvers = ["latticesym", *(peers or [])]
    results: dict[str, dict[str, dict[str, Any]]] = {}
    bar = _progress_bar(total=len(names) * n, enabled=progress, desc="stress")
    try:
        for k, name in enumerate(names):
            lattices = fam.generate(name, n, np.random.default_rng([seed, k]))
            counts: dict[str, dict[str, Any]] = {
                s: {"n": 0, "ok": 0, "agree": 0, "wrong": 0, "failed": 0, "timeout": 0, "ms": []} for s in solvers
            }
            for L in lattices:
                ref = peer_mod.oracle_reference(L)
                t0 = time.perf_counter()
                ms = math.nan
                try:
                    r = latticesym.niggli_reduce(L, eps=eps)
                    ms = 1e3 * (time.perf_counter() - t0)
                    verdict = peer_mod.judge_answer(
                        L,
                        g6=np.asarray(r.g6, dtype=np.float64).tolist(),
                        transform=np.asarray(r.transform),
                        out_lattice=np.asarray(r.lattice),
                        reference=ref,
                        eps_judge=eps,
                    )
                    status, agrees = verdict.status, verdict.agrees
                except LatticeError:
                    status, agrees = ("ok" if isinstance(ref, LatticeError) else "error"), None
                _tally(counts["latticesym"], status, agrees, ms)
                for p in peers or []:
                    pr = peer_mod.peer_niggli(p, L, eps=eps, timeout=timeout, reference=ref)
                    _tally(counts[p], pr.status, pr.agrees, 1e3 * pr.seconds)
                bar.update(1)
            for c in counts.values():
                times = [x for x in c.pop("ms") if math.isfinite(x)]
                c["median_ms"] = float(np.median(times)) if times else None
            results[name] = counts
    finally:
        bar.close()
    return {"families": names, "solvers": solvers, "n": n, "seed": seed, "eps": eps, "results": results}


def _tally(c: dict[str, Any], status: str, agrees: bool | None, ms: float) -> None:
    c["n"] += 1
    if status == "ok":
        c["ok"] += 1
        c["agree"] += bool(agrees) if agrees is not None else 1
    elif status == "wrong":
        c["wrong"] += 1
    elif status == "timeout":
        c["timeout"] += 1
    else:
        c["failed"] += 1
    c["ms"].append(ms)


def stress_table(result: dict[str, Any]) -> str:
    """Format :func:`run_stress` output: one row per family, one column per solver."""
    from latticesym.audit import text_table

    solvers = result["solvers"]
    head = ["family", "n", *solvers]
    rows = []
    totals = {s: {"n": 0, "ok": 0, "agree": 0, "wrong": 0, "failed": 0, "timeout": 0} for s in solvers}
    for name in result["families"]:
        res = result["results"][name]
        row = [name, str(res[solvers[0]]["n"])]
        for s in solvers:
            row.append(_stress_cell(res[s]))
            for key in totals[s]:
                totals[s][key] += res[s][key]
        rows.append(row)
    rows.append(["all", str(totals[solvers[0]]["n"]), *(_stress_cell(totals[s]) for s in solvers)])
    out = [text_table(head, rows, rule_before_last=True)]
    out.append(
        "cells: correct/n, judged by the exact oracle; d = correct within eps but another reduced form "
        "than the exact one (near a Niggli boundary), w = wrong, f = failed or no answer, t = timeout"
    )
    return "\n".join(out)


def _stress_cell(c: dict[str, Any]) -> str:
    text = f"{c['ok']}/{c['n']}"
    if c["agree"] != c["ok"]:
        text += f" d{c['ok'] - c['agree']}"
    for key, mark in (("wrong", "w"), ("failed", "f"), ("timeout", "t")):
        if c[key]:
            text += f" {mark}{c[key]}"
    return text


def _select_peers(spec: str) -> list[str]:
    from latticesym import peers as peer_mod

    available = peer_mod.available_peers()
    if spec == "none":
        return []
    if spec == "all":
        return available
    if spec == "fast":
        return [p for p in available if p != "pymatgen"]
    wanted = [p.strip() for p in spec.split(",") if p.strip()]
    unknown = [p for p in wanted if p not in peer_mod.PEERS]
    if unknown:
        raise SystemExit(f"latticesym stress: unknown peers {unknown}; choose from {list(peer_mod.PEERS)}")
    missing = [p for p in wanted if p not in available]
    if missing:
        print(f"note: peers not installed, skipped: {', '.join(missing)}", file=sys.stderr)
    return [p for p in wanted if p in available]


def _cmd_stress(args: argparse.Namespace) -> int:
    families = [f.strip() for f in args.families.split(",")] if args.families else None
    t0 = time.perf_counter()
    result = run_stress(
        families,
        n=args.n,
        seed=args.seed,
        peers=_select_peers(args.peers),
        eps=args.eps,
        timeout=args.timeout,
        progress=_progress_enabled(args),
    )
    result["seconds"] = round(time.perf_counter() - t0, 2)
    if args.json:
        _write_json(json.dumps(result, indent=1), args.json)
    if args.json != "-":
        print(stress_table(result))
        print(f"({args.n} lattices per family, seed {args.seed}, eps {args.eps:g}, {result['seconds']:.1f} s)")
    return 0


# --------------------------------------------------------------------------- canonicalize
def _cmd_canonicalize(args: argparse.Namespace) -> int:
    from latticesym.structure._convert import run_cli

    return run_cli(args)


# --------------------------------------------------------------------------- demo
def _cmd_demo(args: argparse.Namespace) -> int:
    from latticesym import datasets
    from latticesym.audit import audit

    t0 = time.perf_counter()
    print("latticesym demo: the cells bundled with the package\n")
    sets: dict[str, Any] = {name: datasets.load_structures(name) for name in datasets.STRUCTURE_SETS}
    sets["spglib lattices"] = list(datasets.load_lattices("spglib"))
    report = audit(sets, oracle=True, workers=1, progress=_progress_enabled(args))
    print("== audit (Niggli-reducedness, handedness, singularity, duplicates up to a change of basis)")
    print(report.table())
    print("('oracle = float': the float64 reducer's G6 agrees with the exact oracle's within 1e-6)\n")
    peers = [] if args.no_peers else _select_peers(args.peers)
    result = run_stress(None, n=args.n, seed=0, peers=peers, timeout=args.timeout, progress=_progress_enabled(args))
    print("== stress families (judged against the exact oracle)")
    print(stress_table(result))
    if not peers:
        print("(no peer reducers installed or selected; `pip install latticesym[peers]` adds them)")
    try:
        from latticesym.structure._convert import demo_table

        table = demo_table(progress=_progress_enabled(args))
        print("\n== latticesym canonicalize: bundled structures written as CIF / POSCAR / extxyz files, canonicalized")
        print(table)
    except ImportError as exc:
        print(f"\n(latticesym canonicalize demo skipped: {exc}; `pip install latticesym[structure]`)")
    print(f"\ndemo finished in {time.perf_counter() - t0:.1f} s")
    if args.json:
        payload = {"audit": json.loads(report.to_json(cells=False)), "stress": result}
        _write_json(json.dumps(payload, indent=1), args.json)
    return 0


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``latticesym`` command."""
    from latticesym.testing import KINDS

    parser = argparse.ArgumentParser(
        prog="latticesym",
        description="Checkable lattice-basis symmetry for crystal-structure prediction: "
        "Niggli reduction, dataset audits, invariance gates, stress tests.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"latticesym {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "reduce",
        help="Niggli-reduce lattices (CIF, POSCAR, CSV or a 3x3 matrix)",
        description="Niggli-reduce each input; print the reduced cell, the integer "
        "transform T (T @ input == reduced) and the G6 vector.",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="a file (CIF, POSCAR, CSV, ...), 9 numbers as one argument "
        "('1 0 0; 0 1 0; 0 0 1', rows a, b, c), or - for a matrix on stdin",
    )
    p.add_argument("--eps", type=float, default=1e-5, help="relative tolerance of the float reducer")
    p.add_argument("--exact", action="store_true", help="use the exact oracle (latticesym.reference)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_input_options(p)
    p.set_defaults(func=_cmd_reduce)

    p = sub.add_parser(
        "audit",
        help="scan datasets for non-reduced, left-handed, near-singular, duplicate cells",
        description="Audit each SOURCE (file, folder, glob, bundled:NAME, shared:PATH).",
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE")
    p.add_argument("--eps", type=float, default=1e-5, help="relative tolerance of the reduction (default 1e-5)")
    p.add_argument(
        "--singular-tol",
        type=float,
        default=1e-3,
        help="near-singular when |det L| < tol * |a||b||c| (default 1e-3)",
    )
    p.add_argument(
        "--duplicate-tol",
        type=float,
        default=1e-6,
        help="duplicate when reduced ln-lengths and cosines agree within this (default 1e-6)",
    )
    p.add_argument("--oracle", action="store_true", help="also compare with the exact oracle (slower)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    p.add_argument("--chunk-size", type=int, default=256, help="cells per task (default 256)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--dask-scheduler", metavar="ADDRESS", help="run the chunks on this Dask scheduler")
    g.add_argument("--dask-local", action="store_true", help="run the chunks on a local Dask cluster")
    p.add_argument("--json", metavar="FILE", help="write the JSON report to FILE (- for stdout, no table)")
    p.add_argument("--summary-only", action="store_true", help="JSON without per-cell records")
    p.add_argument("--show", type=int, default=0, metavar="K", help="list the first K flagged cells per category")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_input_options(p)
    p.set_defaults(func=_cmd_audit)

    p = sub.add_parser(
        "gate",
        help="invariance errors of MODULE:FUNCTION over a dataset, against a baseline",
        description="Exit 1 when an invariance error exceeds the tolerance or regresses past the baseline.",
    )
    p.add_argument("function", nargs="?", metavar="MODULE:FUNCTION", help="fn(lattice, frac_coords, species)")
    p.add_argument(
        "--structures",
        nargs="+",
        metavar="DATA",
        help="files, folders, bundled:NAME, shared:PATH (required without --metrics)",
    )
    m = p.add_argument_group("CSP metrics gate (--metrics): match rate and RMSE against a baseline")
    m.add_argument("--metrics", action="store_true", help="gate a model's predictions instead of a function")
    m.add_argument("--predictions", metavar="P", help=".npz / .pt of DiffCSP-style arrays, or a folder of CIFs")
    m.add_argument("--references", nargs="+", metavar="R", help="CSV (cif column), CIFs, folders, bundled:NAME, .npz")
    m.add_argument("--margin-match", type=float, default=0.01, help="allowed drop of the match rate (default 0.01)")
    m.add_argument("--margin-rmse", type=float, default=0.005, help="allowed rise of the RMSE (default 0.005)")
    m.add_argument("-k", type=int, default=None, help="best of the first k samples (default: the baseline's)")
    m.add_argument("--ltol", type=float, default=None, help="StructureMatcher ltol (default 0.3)")
    m.add_argument("--stol", type=float, default=None, help="StructureMatcher stol (default 0.5)")
    m.add_argument("--angle-tol", type=float, default=None, help="StructureMatcher angle_tol (default 10)")
    m.add_argument("--workers", type=int, default=1, help="matcher processes (default 1)")
    p.add_argument("--baseline", metavar="FILE", help="baseline JSON to compare with (or to write)")
    p.add_argument("--write-baseline", action="store_true", help="store this run's errors as the baseline")
    p.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        default="gate-report.json",
        help="JSON report (default gate-report.json; - for stdout, 'none' to skip)",
    )
    p.add_argument("--kind", choices=KINDS, default="invariant", help="how the output must transform")
    p.add_argument("--trials", type=int, default=None, help="random basis changes per structure")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--max-entry", type=int, default=None, help="bound on the entries of M (default 3)")
    p.add_argument("--det", choices=["1", "-1", "either"], default="either")
    p.add_argument("--rotate", action="store_true", help="also rotate the lattice")
    p.add_argument("--translate", action="store_true", help="also move atoms by lattice vectors")
    p.add_argument("--permute", action="store_true", help="also permute the atoms")
    p.add_argument("--tolerance", type=float, default=None, help="relative tolerance (default per dtype)")
    p.add_argument("--atol", type=float, default=0.0)
    p.add_argument("--regression-factor", type=float, default=10.0)
    p.add_argument("--regression-floor", type=float, default=1e-12)
    p.add_argument("--no-progress", action="store_true")
    _add_input_options(p)
    p.set_defaults(func=_cmd_gate)

    p = sub.add_parser(
        "stress",
        help="stress families through latticesym and the installed peers",
        description="Generate the stress families (latticesym.families), reduce them with "
        "latticesym and each peer, judge every answer with the exact oracle.",
    )
    p.add_argument("--families", help="comma-separated families (default: all)")
    p.add_argument("-n", type=int, default=10, help="lattices per family (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--peers",
        default="all",
        help="all (installed), fast (all but pymatgen), none, or a comma-separated list",
    )
    p.add_argument("--eps", type=float, default=1e-5)
    p.add_argument("--timeout", type=float, default=2.0, help="seconds per peer call")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON (- for stdout)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_stress)

    p = sub.add_parser(
        "canonicalize",
        help="canonicalize CIF / POSCAR / extxyz files or folders (Niggli cell, carried atoms, canonical order)",
        description="Read each input through pymatgen / ASE, bring every structure to its canonical form "
        "(latticesym.structure.canonicalize_batch) and write it below OUT; print a summary table "
        "(structures, cells changed, boundary cells, failures with reasons). Exit 1 if a structure failed.",
    )
    p.add_argument("inputs", nargs="+", metavar="IN", help="files (CIF, POSCAR, extxyz, CDVAE CSV) or folders")
    p.add_argument("output", metavar="OUT", help="output file (one input file) or folder")
    p.add_argument("--format", choices=["same", "cif", "poscar", "extxyz", "csv"], default="same")
    p.add_argument("--parser", choices=["pymatgen", "ase", "auto"], default="pymatgen", help="CIF/POSCAR reader")
    p.add_argument("--eps", type=float, default=1e-5, help="relative tolerance of the reducer (default 1e-5)")
    p.add_argument("--frac-eps", type=float, default=1e-8, help="wrap coordinates >= 1 - this to 0 (default 1e-8)")
    p.add_argument("--orientation", choices=["parameters", "keep"], default="parameters")
    p.add_argument("--no-sort", action="store_true", help="keep the input atom order")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON (- for stdout, no table)")
    p.add_argument("--show-failures", type=int, default=20, metavar="K", help="list the first K failures")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_canonicalize)

    p = sub.add_parser("demo", help="audit + stress on the bundled cells (make demo)")
    p.add_argument("-n", type=int, default=8, help="lattices per stress family (default 8)")
    p.add_argument("--peers", default="fast", help="as for stress (default: fast)")
    p.add_argument("--no-peers", action="store_true", help="latticesym only")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds per peer call")
    p.add_argument("--json", metavar="FILE", help="also write the tables' data as JSON")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_demo)
    return parser


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("latticesym")
    except Exception:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``latticesym`` console script; returns the exit status."""
    from latticesym.errors import LatticeError
    from latticesym.io import StructureReadError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except (FileNotFoundError, StructureReadError, LatticeError, ImportError, ValueError) as exc:
        print(f"latticesym {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # pragma: no cover - e.g. `latticesym audit ... | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
