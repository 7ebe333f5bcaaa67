"""Dataset audit: which cells are not Niggli-reduced, left-handed, near-singular, or duplicates.

A CSP dataset is a list of crystals whose unit cells were chosen by whoever wrote them.  A
model trained on it sees each lattice in *that* basis, so it matters how many cells are

not Niggli-reduced
    their basis is not the Niggli cell (:func:`latticesym.is_niggli_reduced`, tolerance
    ``eps * V**(2/3)``); a model sees an arbitrary one of infinitely many bases;
left-handed
    ``det L < 0`` (a mirror of the basis; many codes silently assume ``det L > 0``);
    CIF files store cell parameters, so cells read from CIF are always right-handed;
near-singular
    ``|det L| < singular_tol * |a| |b| |c|``: the basis vectors are nearly linearly
    dependent as given (fractional <-> Cartesian conversions lose digits);
duplicates up to a change of basis
    two cells whose Niggli-reduced cells agree: lengths within a factor
    ``exp(duplicate_tol)`` (about ``1 + duplicate_tol``) and angle cosines within
    ``duplicate_tol`` (default 1e-6: agreement to about six digits, well above float noise
    and the rounding of CDVAE's 8-decimal CIFs; raise it for files written with fewer
    digits.  At 1e-4 a one-parameter family such as cubic Perov-5 already shows hundreds of
    coincidental matches between different compounds).  Candidates are found
    by hashing the rounded reduced parameters and checking neighbouring bins, so the scan is
    linear in the number of cells; each cell joins the first earlier cell it matches.  The
    reduced G6 is discontinuous at Niggli boundaries, so two *nearly* equal lattices lying on
    opposite sides of a boundary can be missed; exact duplicates and any basis change of a
    cell are always found.  Duplicates are of lattices; ``same_composition`` says whether
    the two structures also have the same multiset of species.

The per-cell work (reduction, checks, optionally the exact oracle) runs on chunks of
lattices, serially, on local worker processes (``workers``) or on a Dask cluster
(``dask_scheduler`` / ``dask_local``); duplicates are found afterwards from the reduced cells.

Examples
--------
>>> import numpy as np
>>> from latticesym.datasets import Structure
>>> cells = [Structure("a", np.diag([3.0, 4.0, 5.0]), np.zeros((1, 3)), (6,)),
...          Structure("b", np.array([[3.0, 0, 0], [3.0, 4.0, 0], [0, 0, 5.0]]), np.zeros((1, 3)), (6,)),
...          Structure("c", np.diag([3.0, 4.0, -5.0]), np.zeros((1, 3)), (6,))]
>>> report = audit({"demo": cells})
>>> s = report.summaries["demo"]
>>> s.n, s.not_reduced, s.left_handed, s.duplicates
(3, 1, 1, 2)
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from latticesym.errors import OptionError

__all__ = [
    "AuditReport",
    "AuditSummary",
    "audit",
    "audit_chunk",
    "find_duplicates",
    "format_table",
    "map_chunks",
    "text_table",
]


# --------------------------------------------------------------------------- per-chunk work
def audit_chunk(
    lattices: NDArray[np.float64], *, eps: float = 1e-5, singular_tol: float = 1e-3, oracle: bool = False
) -> dict[str, Any]:
    """Audit one chunk of lattices (picklable; what workers and Dask tasks run).

    Parameters
    ----------
    lattices : ndarray, shape (n, 3, 3)
    eps : float
        Relative tolerance of the float reducer and of :func:`latticesym.is_niggli_reduced`.
    singular_tol : float
        Threshold on ``|det L| / (|a| |b| |c|)``.
    oracle : bool
        Also reduce exactly (:mod:`latticesym.reference`) and compare the G6 vectors.

    Returns
    -------
    dict of arrays
        ``det``, ``normalized_volume``, ``reduced`` (bool), ``reduced_g6`` (n, 6; NaN where the
        reduction failed), ``transform`` (n, 3, 3), ``iterations``, ``error`` (list of str or
        None) and, with ``oracle``, ``oracle_error`` (relative G6 difference; NaN if either failed).

    Examples
    --------
    >>> out = audit_chunk(np.array([np.eye(3), [[1.0, 0, 0], [5.0, 1, 0], [0, 0, 1]]]))
    >>> out["reduced"].tolist(), out["reduced_g6"][1].tolist()
    ([True, False], [1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    """
    L = np.asarray(lattices, dtype=np.float64).reshape(-1, 3, 3)
    n = len(L)
    det = np.linalg.det(L) if n else np.zeros(0)
    norms = np.prod(np.linalg.norm(L, axis=-1), axis=-1) if n else np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalized = np.where(norms > 0, np.abs(det) / np.where(norms > 0, norms, 1.0), 0.0)
    g6 = np.full((n, 6), np.nan)
    transform = np.zeros((n, 3, 3), dtype=np.int64)
    iterations = np.zeros(n, dtype=np.int64)
    reduced = np.zeros(n, dtype=bool)
    errors: list[str | None] = [None] * n
    if n:
        _reduce_into(L, eps, g6, transform, iterations, reduced, errors)
    out: dict[str, Any] = {
        "det": det,
        "normalized_volume": normalized,
        "reduced": reduced,
        "reduced_g6": g6,
        "transform": transform,
        "iterations": iterations,
        "error": errors,
    }
    if oracle:
        out["oracle_error"] = _oracle_errors(L, g6)
    return out


def _reduce_into(
    L: NDArray[np.float64],
    eps: float,
    g6: NDArray[np.float64],
    transform: NDArray[np.int64],
    iterations: NDArray[np.int64],
    reduced: NDArray[np.bool_],
    errors: list[str | None],
) -> None:
    import latticesym
    from latticesym.errors import LatticeError

    ok = np.ones(len(L), dtype=bool)
    try:
        r = latticesym.niggli_reduce(L, eps=eps, errors="mask")
        failed = _failed_mask(r, len(L))
        ok &= ~failed
        g6[ok] = np.asarray(r.g6, dtype=np.float64).reshape(-1, 6)[ok]
        transform[ok] = np.asarray(r.transform).reshape(-1, 3, 3)[ok]
        iterations[ok] = np.asarray(r.iterations).reshape(-1)[ok]
        for bad in np.flatnonzero(failed):
            errors[bad] = _failure_message(r, int(bad))
    except OptionError:  # the caller's option, not one cell's failure
        raise
    except LatticeError:
        # Reduce one by one to learn which cells fail and why.
        for i in range(len(L)):
            try:
                ri = latticesym.niggli_reduce(L[i], eps=eps)
                g6[i] = np.asarray(ri.g6, dtype=np.float64)
                transform[i] = np.asarray(ri.transform)
                iterations[i] = np.asarray(ri.iterations).item()
            except OptionError:  # the caller's option, not one cell's failure
                raise
            except LatticeError as exc:
                ok[i] = False
                errors[i] = f"{type(exc).__name__}: {exc}"
    idx = np.flatnonzero(ok)
    try:
        reduced[idx] = np.asarray(latticesym.is_niggli_reduced(L[idx], eps=eps), dtype=bool).reshape(-1)
    except OptionError:  # the caller's option, not one cell's failure
        raise
    except LatticeError:
        for j in idx.tolist():
            try:
                reduced[j] = bool(latticesym.is_niggli_reduced(L[j], eps=eps))
            except OptionError:  # the caller's option, not one cell's failure
                raise
            except LatticeError as exc:
                errors[j] = f"{type(exc).__name__}: {exc}"


def _failed_mask(result: Any, n: int) -> NDArray[np.bool_]:
    ok = getattr(result, "ok", None)
    if ok is not None and np.asarray(ok).size == n:
        return ~np.asarray(ok, dtype=bool).reshape(-1)
    g6 = np.asarray(result.g6, dtype=np.float64).reshape(-1, 6)
    return ~np.all(np.isfinite(g6), axis=-1)


def _failure_message(result: Any, i: int) -> str:
    status = getattr(result, "status", None)
    if status is None:
        return "reduction failed"
    code = int(np.asarray(status).reshape(-1)[i])
    try:
        from latticesym.reduce import ReduceStatus

        return f"reduction failed: {ReduceStatus(code).name}"
    except (ImportError, ValueError):
        return f"reduction failed (status {code})"


def _oracle_errors(L: NDArray[np.float64], g6: NDArray[np.float64]) -> NDArray[np.float64]:
    from latticesym.errors import LatticeError
    from latticesym.reference import niggli_reduce as exact_reduce

    out = np.full(len(L), np.nan)
    for i in range(len(L)):
        if not np.all(np.isfinite(g6[i])):
            continue
        try:
            exact = np.array([float(x) for x in exact_reduce(L[i]).g6])
        except LatticeError:
            continue
        out[i] = float(np.max(np.abs(g6[i] - exact)) / max(np.max(exact[:3]), 1e-300))
    return out


# --------------------------------------------------------------------------- executors
def map_chunks(
    func: Callable[[Any], Any],
    chunks: Sequence[Any],
    *,
    workers: int = 1,
    dask_scheduler: str | None = None,
    dask_local: bool = False,
    dask_client: Any = None,
    progress: bool = False,
    desc: str = "",
    sizes: Sequence[int] | None = None,
) -> list[Any]:
    """``[func(c) for c in chunks]``, serially, on worker processes or on Dask; order kept.

    Parameters
    ----------
    func : callable
        A picklable function (module-level, or a ``functools.partial`` of one).
    chunks : sequence
    workers : int
        ``> 1``: a ``concurrent.futures.ProcessPoolExecutor`` with that many processes (and the
        number of workers of a ``dask_local`` cluster).
    dask_scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``).
    dask_local : bool
        Start a local Dask cluster for this call.
    dask_client : distributed.Client, optional
        An existing client (takes precedence).
    progress : bool
        Show a tqdm progress bar (counting ``sizes`` items if given, else chunks).

    Examples
    --------
    >>> map_chunks(sum, [[1, 2], [3]])
    [3, 3]
    """
    sizes = list(sizes) if sizes is not None else [1] * len(chunks)
    bar = _progress_bar(total=sum(sizes), enabled=progress, desc=desc)
    results: list[Any] = [None] * len(chunks)
    try:
        if dask_client is not None or dask_scheduler or dask_local:
            _map_dask(func, chunks, results, sizes, bar, dask_client, dask_scheduler, dask_local, workers)
        elif workers > 1 and len(chunks) > 1:
            from concurrent.futures import ProcessPoolExecutor, as_completed

            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(func, c): i for i, c in enumerate(chunks)}
                for fut in as_completed(futures):
                    i = futures[fut]
                    results[i] = fut.result()
                    bar.update(sizes[i])
        else:
            for i, c in enumerate(chunks):
                results[i] = func(c)
                bar.update(sizes[i])
    finally:
        bar.close()
    return results


def _map_dask(
    func: Callable[[Any], Any],
    chunks: Sequence[Any],
    results: list[Any],
    sizes: Sequence[int],
    bar: Any,
    client: Any,
    scheduler: str | None,
    local: bool,
    workers: int,
) -> None:
    from distributed import Client, as_completed

    own: list[Any] = []
    try:
        if client is None:
            if scheduler:
                client = Client(scheduler)
            else:
                from distributed import LocalCluster

                cluster = LocalCluster(
                    n_workers=max(1, workers), threads_per_worker=1, processes=True, dashboard_address=None
                )
                own.append(cluster)
                client = Client(cluster)
            own.insert(0, client)
        futures = client.map(func, list(chunks), pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        for fut in as_completed(futures):
            i = index[fut.key]
            results[i] = fut.result()
            bar.update(sizes[i])
    finally:
        for obj in own:
            obj.close()


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(*, total: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="cell", file=sys.stderr, leave=False)


# --------------------------------------------------------------------------- duplicates
def _reduced_parameters(g6: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(ln a, ln b, ln c, cos alpha, cos beta, cos gamma)`` of reduced G6 vectors."""
    A, B, C, xi, eta, zeta = (g6[:, i] for i in range(6))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack(
            [
                0.5 * np.log(A),
                0.5 * np.log(B),
                0.5 * np.log(C),
                xi / (2 * np.sqrt(B * C)),
                eta / (2 * np.sqrt(A * C)),
                zeta / (2 * np.sqrt(A * B)),
            ],
            axis=-1,
        )


def find_duplicates(reduced_g6: Any, *, tol: float = 1e-6) -> NDArray[np.int64]:
    """For each cell, the index of the first earlier cell with the same reduced lattice, or -1.

    Two reduced G6 vectors match when ``|ln a - ln a'| <= tol`` for the three cell lengths
    (a relative tolerance of about ``tol``) and their angle cosines agree within ``tol``.
    Rows with NaN (failed reductions) never match.

    Parameters
    ----------
    reduced_g6 : array_like, shape (n, 6)
        Niggli-reduced G6 vectors.
    tol : float
        Matching tolerance (``0 < tol < 0.05``).

    Examples
    --------
    >>> g = [[1, 1, 1, 0, 0, 0], [4, 4, 4, 0, 0, 0], [1, 1, 1 + 1e-6, 0, 0, 0]]
    >>> find_duplicates(g).tolist()
    [-1, -1, 0]
    """
    if not 0 < tol < 0.05:
        raise OptionError(f"tol must be in (0, 0.05), got {tol}")
    g = np.asarray(reduced_g6, dtype=np.float64).reshape(-1, 6)
    x = _reduced_parameters(g)
    valid = np.all(np.isfinite(x), axis=-1)
    h = 2.0 * tol
    q = np.floor(np.where(valid[:, None], x, 0.0) / h).astype(np.int64)
    frac = np.where(valid[:, None], x, 0.0) / h - q
    near_low, near_high = frac < 0.5, frac > 0.5  # tol / h = 0.5: a match can sit in the next bin
    buckets: dict[tuple[int, ...], list[int]] = {}
    out = np.full(len(g), -1, dtype=np.int64)
    for i in range(len(g)):
        if not valid[i]:
            continue
        offsets = [
            (0, -1) if near_low[i, k] else (0, 1) if near_high[i, k] else (0,)  # at most one neighbour per axis
            for k in range(6)
        ]
        match = -1
        for off in _product(offsets):
            for j in buckets.get(tuple(int(v) for v in q[i] + np.array(off)), ()):
                if _same(x[i], x[j], tol) and (match < 0 or j < match):
                    match = j
        if match >= 0:
            out[i] = match
        else:
            buckets.setdefault(tuple(int(v) for v in q[i]), []).append(i)
    return out


def _product(options: Sequence[tuple[int, ...]]) -> Iterable[tuple[int, ...]]:
    import itertools

    return itertools.product(*options)


def _same(a: NDArray[np.float64], b: NDArray[np.float64], tol: float) -> bool:
    return bool(np.all(np.abs(a - b) <= tol))


# --------------------------------------------------------------------------- report
@dataclass
class AuditSummary:
    """Counts for one dataset (a row of the table)."""

    name: str
    n: int
    not_reduced: int
    left_handed: int
    near_singular: int
    duplicates: int
    duplicate_groups: int
    duplicates_same_composition: int
    failed: int
    oracle_checked: int | None = None
    oracle_agree: int | None = None
    seconds: float = 0.0


@dataclass
class AuditReport:
    """Result of :func:`audit`: per-dataset summaries and per-cell records.

    ``records[name]`` is a list of dicts with ``id``, ``det``, ``normalized_volume``,
    ``reduced``, ``left_handed``, ``near_singular``, ``reduced_g6``, ``transform``,
    ``iterations``, ``duplicate_of`` (id or None), ``same_composition``, ``error`` and, with
    the oracle, ``oracle_error``.
    """

    summaries: dict[str, AuditSummary]
    records: dict[str, list[dict[str, Any]]]
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, *, cells: bool = True) -> dict[str, Any]:
        """JSON-ready dict (``cells=False`` leaves out the per-cell records)."""
        out: dict[str, Any] = {
            "options": self.options,
            "summary": {k: asdict(v) for k, v in self.summaries.items()},
        }
        if cells:
            out["cells"] = self.records
        return out

    def to_json(self, *, cells: bool = True, indent: int | None = 1) -> str:
        """The report as JSON text (non-finite numbers become ``null``)."""
        return json.dumps(_jsonable(self.to_dict(cells=cells)), indent=indent)

    def table(self) -> str:
        """The summary table (one row per dataset)."""
        return format_table(list(self.summaries.values()))


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def format_table(rows: Sequence[AuditSummary]) -> str:
    """Format audit summaries as a fixed-width text table.

    Examples
    --------
    >>> print(format_table([AuditSummary("x", 2, 1, 0, 0, 1, 1, 0, 0)]).splitlines()[0])
    dataset      cells  not reduced  left-handed  near-singular  duplicates (groups)  same comp.  failed  ...
    """
    with_oracle = any(r.oracle_checked is not None for r in rows)
    head = [
        "dataset",
        "cells",
        "not reduced",
        "left-handed",
        "near-singular",
        "duplicates (groups)",
        "same comp.",
        "failed",
    ]
    if with_oracle:
        head.append("oracle = float")
    head.append("seconds")
    body = []
    for r in rows:
        line = [
            r.name,
            str(r.n),
            _count(r.not_reduced, r.n),
            _count(r.left_handed, r.n),
            _count(r.near_singular, r.n),
            f"{r.duplicates} ({r.duplicate_groups})",
            str(r.duplicates_same_composition),
            str(r.failed),
        ]
        if with_oracle:
            line.append("-" if r.oracle_checked is None else f"{r.oracle_agree}/{r.oracle_checked}")
        line.append(f"{r.seconds:.2f}")
        body.append(line)
    return text_table(head, body)


def text_table(head: Sequence[str], rows: Sequence[Sequence[str]], *, rule_before_last: bool = False) -> str:
    """Fixed-width text table: first column left-aligned, the others right-aligned.

    Examples
    --------
    >>> print(text_table(["name", "n"], [["a", "10"], ["bb", "2"]]))
    name   n
    ----  --
    a     10
    bb     2
    """
    widths = [max([len(head[k]), *(len(r[k]) for r in rows)]) for k in range(len(head))]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(widths[k]) if k == 0 else c.rjust(widths[k]) for k, c in enumerate(cells))

    rule = fmt(["-" * w for w in widths])
    lines = [fmt(head), rule, *(fmt(r) for r in rows)]
    if rule_before_last and len(rows) > 1:
        lines.insert(len(lines) - 1, rule)
    return "\n".join(lines)


def _count(k: int, n: int) -> str:
    return f"{k} ({100.0 * k / n:.1f}%)" if n else str(k)


# --------------------------------------------------------------------------- driver
def audit(
    datasets: Mapping[str, Sequence[Any]] | Sequence[Any],
    *,
    eps: float = 1e-5,
    singular_tol: float = 1e-3,
    duplicate_tol: float = 1e-6,
    oracle: bool = False,
    oracle_tol: float = 1e-6,
    chunk_size: int = 256,
    workers: int = 1,
    dask_scheduler: str | None = None,
    dask_local: bool = False,
    dask_client: Any = None,
    progress: bool = False,
) -> AuditReport:
    """Audit one or more datasets of structures (or bare lattices).

    Parameters
    ----------
    datasets : mapping name -> sequence, or one sequence
        Items are :class:`latticesym.datasets.Structure` records (anything with ``id``,
        ``lattice`` and ``species``) or bare ``(3, 3)`` lattices.
    eps : float
        Relative tolerance of the reduction and the "is reduced" test (``eps * V**(2/3)``).
    singular_tol : float
        A cell is near-singular when ``|det L| < singular_tol * |a| |b| |c|``.
    duplicate_tol : float
        Tolerance of :func:`find_duplicates`.
    oracle : bool
        Also run the exact oracle and count cells whose float reduced G6 agrees with it
        within ``oracle_tol`` (relative to ``max(A, B, C)``).
    chunk_size, workers, dask_scheduler, dask_local, dask_client, progress
        How the per-cell work is split and run (see :func:`map_chunks`).

    Returns
    -------
    AuditReport
    """
    if chunk_size < 1:
        raise OptionError(f"chunk_size must be >= 1, got {chunk_size}")
    named = dict(datasets) if isinstance(datasets, Mapping) else {"dataset": datasets}
    options = dict(
        eps=eps,
        singular_tol=singular_tol,
        duplicate_tol=duplicate_tol,
        oracle=oracle,
        oracle_tol=oracle_tol,
        chunk_size=chunk_size,
    )
    func = partial(audit_chunk, eps=eps, singular_tol=singular_tol, oracle=oracle)
    summaries: dict[str, AuditSummary] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    for name, items in named.items():
        t0 = time.perf_counter()
        ids, lattices, compositions = _unpack(items)
        chunks = [lattices[k : k + chunk_size] for k in range(0, len(lattices), chunk_size)]
        parts = map_chunks(
            func,
            chunks,
            workers=workers,
            dask_scheduler=dask_scheduler,
            dask_local=dask_local,
            dask_client=dask_client,
            progress=progress,
            desc=f"audit {name}",
            sizes=[len(c) for c in chunks],
        )
        merged = _merge(parts, len(lattices), oracle)
        dup = find_duplicates(merged["reduced_g6"], tol=duplicate_tol)
        recs = _records(ids, merged, dup, compositions, singular_tol, oracle)
        summaries[name] = _summarise(name, recs, dup, oracle, oracle_tol, time.perf_counter() - t0)
        records[name] = recs
    return AuditReport(summaries, records, options)


def _unpack(items: Sequence[Any]) -> tuple[list[str], NDArray[np.float64], list[tuple[int, ...] | None]]:
    ids: list[str] = []
    lattices = []
    comps: list[tuple[int, ...] | None] = []
    for k, item in enumerate(items):
        if hasattr(item, "lattice"):
            ids.append(str(getattr(item, "id", k)))
            lattices.append(np.asarray(item.lattice, dtype=np.float64))
            species = getattr(item, "species", None)
            comps.append(tuple(sorted(int(z) for z in species)) if species is not None and len(species) else None)
        else:
            ids.append(str(k))
            lattices.append(np.asarray(item, dtype=np.float64))
            comps.append(None)
    arr = np.stack(lattices) if lattices else np.zeros((0, 3, 3))
    return ids, arr, comps


def _merge(parts: list[dict[str, Any]], n: int, oracle: bool) -> dict[str, Any]:
    if not parts:
        empty = audit_chunk(np.zeros((0, 3, 3)), oracle=oracle)
        return empty
    merged: dict[str, Any] = {}
    for key in parts[0]:
        if key == "error":
            merged[key] = [e for p in parts for e in p[key]]
        else:
            merged[key] = np.concatenate([p[key] for p in parts])
    assert len(merged["det"]) == n
    return merged


def _records(
    ids: list[str],
    m: dict[str, Any],
    dup: NDArray[np.int64],
    comps: list[tuple[int, ...] | None],
    singular_tol: float,
    oracle: bool,
) -> list[dict[str, Any]]:
    out = []
    for i, ident in enumerate(ids):
        j = int(dup[i])
        rec: dict[str, Any] = {
            "id": ident,
            "det": float(m["det"][i]),
            "normalized_volume": float(m["normalized_volume"][i]),
            "reduced": bool(m["reduced"][i]) if m["error"][i] is None else None,
            "left_handed": bool(m["det"][i] < 0),
            "near_singular": bool(m["normalized_volume"][i] < singular_tol),
            "reduced_g6": m["reduced_g6"][i].tolist(),
            "transform": m["transform"][i].tolist(),
            "iterations": int(m["iterations"][i]),
            "duplicate_of": ids[j] if j >= 0 else None,
            "same_composition": (comps[i] is not None and comps[i] == comps[j]) if j >= 0 else None,
            "error": m["error"][i],
        }
        if oracle:
            rec["oracle_error"] = float(m["oracle_error"][i])
        out.append(rec)
    return out


def _summarise(
    name: str,
    recs: list[dict[str, Any]],
    dup: NDArray[np.int64],
    oracle: bool,
    oracle_tol: float,
    seconds: float,
) -> AuditSummary:
    summary = AuditSummary(
        name=name,
        n=len(recs),
        not_reduced=sum(r["reduced"] is False for r in recs),
        left_handed=sum(r["left_handed"] for r in recs),
        near_singular=sum(r["near_singular"] for r in recs),
        duplicates=int(np.sum(dup >= 0)),
        duplicate_groups=len({int(j) for j in dup if j >= 0}),
        duplicates_same_composition=sum(bool(r["same_composition"]) for r in recs),
        failed=sum(r["error"] is not None for r in recs),
        seconds=round(seconds, 3),
    )
    if oracle:
        errs = np.array([r["oracle_error"] for r in recs], dtype=np.float64)
        summary.oracle_checked = int(np.sum(np.isfinite(errs)))
        summary.oracle_agree = int(np.sum(errs <= oracle_tol))
    return summary
