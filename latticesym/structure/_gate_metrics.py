r"""Regression gate on the CSP metrics: a model's predictions, the references and a baseline JSON.

``latticesym gate --metrics --predictions P --references R --baseline B.json`` and the pytest
helper :func:`assert_csp_metrics` share this module: they compute :func:`csp_metrics` and fail
when, against the baseline,

.. math::

    \text{match rate} < \text{match rate}_{\text{base}} - m_{\text{match}}
    \qquad\text{or}\qquad
    \text{RMSE} > \text{RMSE}_{\text{base}} + m_{\text{rmse}}

(absolute margins: ``margin_match`` a fraction of the references, default 0.01 = one percentage
point; ``margin_rmse`` in the RMSE's units of :math:`(V/N)^{1/3}`, default 0.005).  A run without a
single match fails against a baseline with an RMSE.  The baseline records the settings
(``ltol``, ``stol``, ``angle_tol``, ``k``, ``primitive_cell``) and the number of references; a run
with other settings raises :class:`~latticesym.errors.MetricsBaselineError` instead of comparing
numbers that mean different things.

Predictions are read by :func:`load_predictions`: an ``.npz`` of DiffCSP-style arrays
(``frac_coords``, ``atom_types``, ``num_atoms``, and ``lattices`` or ``lengths`` + ``angles``; a
leading axis of ``k`` samples allowed), a torch ``.pt`` file with the same keys (DiffCSP's
``eval_diff.pt``), or a folder of CIF files named after the references (``<id>.cif``; sub-folders
``<sample>/<id>.cif`` hold ``k`` samples), read with pymatgen / ASE / gemmi through
:func:`latticesym.io.read_structures`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latticesym.errors import LatticeShapeError, MetricsBaselineError
from latticesym.structure._metrics import CSPMetrics, csp_metrics, ragged_to_structures

__all__ = [
    "DEFAULT_MARGIN_MATCH",
    "DEFAULT_MARGIN_RMSE",
    "MetricsGateResult",
    "MetricsRegressionError",
    "assert_csp_metrics",
    "compare_metrics",
    "load_metrics_baseline",
    "load_predictions",
    "load_references",
    "metrics_baseline",
    "write_metrics_baseline",
]

BASELINE_FORMAT = "latticesym-metrics-baseline/1"
DEFAULT_MARGIN_MATCH = 0.01
DEFAULT_MARGIN_RMSE = 0.005
SETTINGS = ("ltol", "stol", "angle_tol", "k", "primitive_cell")


# --------------------------------------------------------------------------- reading
def _ids(references: Sequence[Any]) -> list[str]:
    return [str(getattr(r, "id", i)) for i, r in enumerate(references)]


def _read_cif(path: Path, parser: str) -> Any:
    from latticesym import io

    items = io.read_structures([str(path)], parser=parser)
    if len(items) != 1:
        raise LatticeShapeError(f"{path}: {len(items)} structures in one prediction file (expected 1)")
    return items[0]


def _cif_sample(folder: Path, ids: list[str], parser: str) -> list[Any]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".cif")
    index = {ident: i for i, ident in enumerate(ids)}
    out: list[Any] = [None] * len(ids)
    unknown = [p.name for p in files if p.stem not in index]
    if unknown:
        if all(p.stem.isdigit() for p in files):  # numbered files: <index>.cif
            index = {str(i): i for i in range(len(ids))}
            unknown = [p.name for p in files if p.stem not in index]
        if unknown:
            raise LatticeShapeError(
                f"{folder}: {len(unknown)} CIF file(s) name no reference (expected <reference id>.cif or "
                f"<index>.cif): {unknown[:5]}; first reference ids: {ids[:3]}")
    for p in files:
        out[index[p.stem]] = _read_cif(p, parser)
    return out


def load_predictions(source: str | Path, references: Sequence[Any] | None = None, *,
                     parser: str = "auto") -> list[list[Any]]:
    """Read predictions as ``k`` lists of ``n`` structures (``None`` where a CIF file is missing).

    Parameters
    ----------
    source : path
        ``.npz`` (DiffCSP-style arrays, see :func:`latticesym.structure.ragged_to_structures`),
        ``.pt`` / ``.pth`` (the same keys, torch tensors; needs torch), or a folder of CIF files
        ``<reference id>.cif`` (or ``<index>.cif``), or of sample folders holding such files.
    references : sequence of structures, optional
        Needed for a CIF folder: file names are matched to their ``id`` attributes.
    parser : {"auto", "gemmi", "pymatgen", "ase"}
        CIF reader (:func:`latticesym.io.read_structures`).

    Raises
    ------
    FileNotFoundError
        ``source`` does not exist.
    LatticeShapeError
        Arrays that do not add up, CIF names that match no reference, an empty folder.
    """
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"predictions {path}: no such file or folder")
    if path.is_dir():
        if references is None:
            raise LatticeShapeError(f"{path}: a CIF folder needs the references (its files are named after them)")
        ids = _ids(references)
        subdirs = sorted((p for p in path.iterdir() if p.is_dir()), key=lambda p: (len(p.name), p.name))
        folders = [d for d in subdirs if any(f.suffix.lower() == ".cif" for f in d.iterdir())]
        if not folders:
            folders = [path]
        samples = [_cif_sample(d, ids, parser) for d in folders]
        if all(x is None for s in samples for x in s):
            raise LatticeShapeError(f"{path}: no CIF files found")
        return samples
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return ragged_to_structures({key: data[key] for key in data.files})
    if suffix in (".pt", ".pth"):
        import torch

        data = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(data, Mapping):
            raise LatticeShapeError(f"{path}: expected a dict of tensors, got {type(data).__name__}")
        return ragged_to_structures(data)
    raise LatticeShapeError(f"predictions {path}: expected .npz, .pt or a folder of CIF files")


def load_references(sources: str | Sequence[str], *, parser: str = "auto", cif_column: str = "cif",
                    limit: int | None = None) -> list[Any]:
    """References from CSV (a ``cif`` column), CIF/POSCAR files or folders, ``bundled:NAME``, or ``.npz``.

    An ``.npz`` holds DiffCSP-style arrays of one sample (ids ``"0"``, ``"1"``, ...); everything
    else goes through :func:`latticesym.io.read_structures`.
    """
    from latticesym import io
    from latticesym.datasets import Structure

    specs = [sources] if isinstance(sources, (str, Path)) else list(sources)
    out: list[Any] = []
    for spec in specs:
        if str(spec).lower().endswith(".npz"):
            cells = load_predictions(spec)
            if len(cells) != 1:
                raise LatticeShapeError(f"{spec}: references must be one sample, got {len(cells)}")
            out.extend(Structure(str(len(out) + i), np.asarray(L), np.asarray(f), tuple(int(x) for x in z))
                       for i, (L, f, z) in enumerate(cells[0]))
        else:
            out.extend(io.read_structures([str(spec)], parser=parser, cif_column=cif_column))
    return out[:limit] if limit is not None else out


# --------------------------------------------------------------------------- baseline
def _check_ids(ids: Sequence[Any] | None, n: int) -> list[str] | None:
    if ids is None:
        return None
    out = [str(x) for x in ids]
    if len(out) != n:
        raise LatticeShapeError(f"{len(out)} reference ids for {n} references")
    return out


def metrics_baseline(metrics: CSPMetrics, ids: Sequence[Any] | None = None) -> dict[str, Any]:
    """The baseline record of a run: the two gated metrics, counts, settings, lattice summary.

    With the references' ``ids`` it also keeps each reference's best rms (``None``: no match), so
    that a later comparison can name the references that lost or gained a match.
    """
    s = metrics.summary()
    names = _check_ids(ids, metrics.n_references)
    per_ref = None if names is None else {
        name: (float(r) if ok else None) for name, r, ok in zip(names, metrics.rms, metrics.matched)}
    return {
        "format": BASELINE_FORMAT,
        "match_rate": metrics.match_rate,
        "rmse": s["rmse"],
        "n_references": metrics.n_references,
        "n_matched": metrics.n_matched,
        "settings": {key: metrics.settings[key] for key in SETTINGS},
        "lattice": {k: (v if isinstance(v, int) or math.isfinite(v) else None) for k, v in s["lattice"].items()},
        **({} if per_ref is None else {"per_reference": per_ref}),
    }


def write_metrics_baseline(metrics: CSPMetrics, path: str | Path, ids: Sequence[Any] | None = None) -> None:
    """Write :func:`metrics_baseline` as JSON."""
    Path(path).write_text(json.dumps(metrics_baseline(metrics, ids), indent=1) + "\n")


def _number(value: Any, key: str, path: str, *, nullable: bool = False) -> float:
    if value is None and nullable:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MetricsBaselineError(f"{path}: field {key!r} must be a finite number, got {value!r}")
    return float(value)


def load_metrics_baseline(path: str | Path) -> dict[str, Any]:
    """Read and check a baseline written by :func:`write_metrics_baseline`.

    Raises
    ------
    FileNotFoundError
        No such file.
    MetricsBaselineError
        Not JSON, another format, a missing field, a match rate outside [0, 1], a negative RMSE.
    """
    p = str(path)
    text = Path(path).read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MetricsBaselineError(f"{p}: not JSON ({exc})") from exc
    return _validated(data, p)


def _validated(data: Any, p: str) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise MetricsBaselineError(f"{p}: not a metrics baseline (format {got!r}, expected {BASELINE_FORMAT!r})")
    for key in ("match_rate", "rmse", "n_references", "settings"):
        if key not in data:
            raise MetricsBaselineError(f"{p}: missing field {key!r}")
    rate = _number(data["match_rate"], "match_rate", p)
    rmse = _number(data["rmse"], "rmse", p, nullable=True)
    if not 0.0 <= rate <= 1.0:
        raise MetricsBaselineError(f"{p}: match_rate {rate} is outside [0, 1]")
    if rmse < 0:
        raise MetricsBaselineError(f"{p}: rmse {rmse} is negative")
    n = data["n_references"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise MetricsBaselineError(f"{p}: n_references must be a positive integer, got {n!r}")
    settings = data["settings"]
    if not isinstance(settings, dict) or any(key not in settings for key in SETTINGS):
        raise MetricsBaselineError(f"{p}: settings must name {list(SETTINGS)}, got {settings!r}")
    return {**data, "match_rate": rate, "rmse": rmse, "_path": p}


# --------------------------------------------------------------------------- comparison
class MetricsRegressionError(AssertionError):
    """The CSP metrics regressed past the baseline's margins (the message is the gate's table)."""

    def __init__(self, message: str, result: MetricsGateResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class MetricsGateResult:
    """Outcome of :func:`compare_metrics`.

    Attributes
    ----------
    passed : bool
    rows : list of dict
        One per metric: ``metric``, ``baseline``, ``current``, ``limit``, ``status``
        (``"ok"``, ``"FAIL"`` or ``"info"`` for the lattice errors, which are not gated).
    metrics : CSPMetrics
    baseline : dict
    margin_match, margin_rmse : float
    lost, gained : list of str
        References matched in the baseline and not now, and the reverse (when both sides know the
        reference ids).
    """

    passed: bool
    rows: list[dict[str, Any]]
    metrics: CSPMetrics
    baseline: dict[str, Any]
    margin_match: float
    margin_rmse: float
    lost: list[str] = field(default_factory=list)
    gained: list[str] = field(default_factory=list)

    def table(self) -> str:
        """The gate's readable table (what the CLI prints and the assertion carries)."""
        from latticesym.audit import text_table

        m = self.metrics
        head = [f"metrics gate: {'PASSED' if self.passed else 'FAILED'}  ({m.n_references} references, "
                f"{'best of ' + str(m.k) if m.k > 1 else '1 sample'}; baseline {self.baseline.get('_path', '-')})"]
        body = [[r["metric"], r["baseline"], r["current"], r["change"], r["limit"], r["status"]] for r in self.rows]
        lines = [*head, text_table(["metric", "baseline", "current", "change", "allowed", "status"], body)]
        for label, names in (("lost matches", self.lost), ("new matches", self.gained)):
            if names:
                more = f", ... ({len(names) - 10} more)" if len(names) > 10 else ""
                lines.append(f"{label} ({len(names)}): {', '.join(names[:10])}{more}")
        return "\n".join(lines)

    def to_json(self) -> str:
        """Report: verdict, rows, the run's summary and the margins."""
        payload = {
            "passed": self.passed,
            "rows": self.rows,
            "lost": self.lost,
            "gained": self.gained,
            "margins": {"match": self.margin_match, "rmse": self.margin_rmse},
            "metrics": json.loads(self.metrics.to_json()),
            "baseline": {k: v for k, v in self.baseline.items() if not k.startswith("_")},
        }

        def clean(x: Any) -> Any:
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, list):
                return [clean(v) for v in x]
            return None if isinstance(x, float) and not math.isfinite(x) else x

        return json.dumps(clean(payload), indent=1)


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.2f} %"


def _num(x: float, digits: int = 4) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def compare_metrics(metrics: CSPMetrics, baseline: Mapping[str, Any], *, margin_match: float = DEFAULT_MARGIN_MATCH,
                    margin_rmse: float = DEFAULT_MARGIN_RMSE, ids: Sequence[Any] | None = None) -> MetricsGateResult:
    """Compare a run with a baseline (see the module doc for the rule).

    ``ids`` (the references' ids, in order) name the references that lost or gained a match when
    the baseline was written with ids too.

    Raises
    ------
    MetricsBaselineError
        Negative or non-finite margins; the run's settings or reference count differ from the baseline's.
    """
    for name, v in (("margin_match", margin_match), ("margin_rmse", margin_rmse)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise MetricsBaselineError(f"{name} must be a finite number >= 0, got {v!r}")
    path = baseline.get("_path", "baseline")
    if "_path" not in baseline:
        baseline = _validated(dict(baseline), str(path))
    then = baseline["settings"]
    differ = [f"{key}: baseline {then.get(key)!r}, this run {metrics.settings.get(key)!r}" for key in SETTINGS
              if then.get(key) != metrics.settings.get(key)]
    if baseline["n_references"] != metrics.n_references:
        differ.append(f"n_references: baseline {baseline['n_references']}, this run {metrics.n_references}")
    if differ:
        raise MetricsBaselineError(f"{path} was written with other settings; refusing to compare: " + "; ".join(differ))
    base_rate, rate = float(baseline["match_rate"]), metrics.match_rate
    base_rmse = float(baseline["rmse"]) if baseline["rmse"] is not None else math.nan
    rmse = metrics.rmse
    rate_limit = base_rate - margin_match
    rate_ok = rate >= rate_limit - 1e-12
    rmse_limit = base_rmse + margin_rmse
    rmse_ok = (not math.isfinite(base_rmse)) or (math.isfinite(rmse) and rmse <= rmse_limit + 1e-12)
    rows = [
        {"metric": "match rate", "baseline": _pct(base_rate), "current": _pct(rate),
         "change": f"{100 * (rate - base_rate):+.2f} pp", "limit": f">= {_pct(rate_limit)}",
         "status": "ok" if rate_ok else "FAIL"},
        {"metric": "RMSE", "baseline": _num(base_rmse), "current": _num(rmse),
         "change": _num(rmse - base_rmse) if math.isfinite(rmse - base_rmse) else "n/a",
         "limit": f"<= {_num(rmse_limit)}" if math.isfinite(base_rmse) else "any",
         "status": "ok" if rmse_ok else "FAIL"},
    ]
    if rows[1]["change"] != "n/a" and not rows[1]["change"].startswith("-"):
        rows[1]["change"] = "+" + rows[1]["change"]
    lat_now = metrics.lattice.summary()
    lat_then = baseline.get("lattice") or {}
    for key, label in (("g6_rel_mean", "lattice G6 error"), ("volume_ratio_mean", "volume ratio")):
        then_v = lat_then.get(key)
        rows.append({"metric": label, "baseline": _num(then_v) if isinstance(then_v, (int, float)) else "n/a",
                     "current": _num(lat_now[key]), "change": "", "limit": "(not gated)", "status": "info"})
    lost: list[str] = []
    gained: list[str] = []
    names = _check_ids(ids, metrics.n_references)
    per_ref = baseline.get("per_reference")
    if names is not None and isinstance(per_ref, dict):
        for name, now in zip(names, metrics.matched):
            if name in per_ref:
                was = per_ref[name] is not None
                if was and not now:
                    lost.append(name)
                elif now and not was:
                    gained.append(name)
    return MetricsGateResult(passed=rate_ok and rmse_ok, rows=rows, metrics=metrics, baseline=dict(baseline),
                             margin_match=float(margin_match), margin_rmse=float(margin_rmse), lost=lost,
                             gained=gained)


def assert_csp_metrics(
    predictions: Any,
    references: Sequence[Any],
    baseline: str | Path | Mapping[str, Any],
    *,
    margin_match: float = DEFAULT_MARGIN_MATCH,
    margin_rmse: float = DEFAULT_MARGIN_RMSE,
    **kwargs: Any,
) -> CSPMetrics:
    """Pytest helper: compute :func:`csp_metrics` and fail with the gate's table on a regression.

    Parameters
    ----------
    predictions, references
        As for :func:`csp_metrics`; ``predictions`` may also be a path (:func:`load_predictions`).
    baseline : path or mapping
        A baseline JSON file (:func:`write_metrics_baseline`) or its loaded content.
    margin_match, margin_rmse : float
        Absolute margins (see the module doc).
    **kwargs
        Passed to :func:`csp_metrics` (``k``, ``ltol``, ``stol``, ``angle_tol``, ``workers``, ...).

    Returns
    -------
    CSPMetrics
        When the gate passes.

    Raises
    ------
    MetricsRegressionError
        An ``AssertionError`` whose message is the table; ``.result`` holds the comparison.
    MetricsBaselineError
        A malformed baseline, or one written with other settings.
    """
    __tracebackhide__ = True
    if isinstance(predictions, (str, Path)):
        predictions = load_predictions(predictions, references)
    base = load_metrics_baseline(baseline) if isinstance(baseline, (str, Path)) else \
        _validated(dict(baseline), str(baseline.get("_path", "baseline")))
    metrics = csp_metrics(predictions, references, **kwargs)
    ids = [r.id for r in references] if all(hasattr(r, "id") for r in references) else None
    result = compare_metrics(metrics, base, margin_match=margin_match, margin_rmse=margin_rmse, ids=ids)
    if not result.passed:
        raise MetricsRegressionError(result.table(), result)
    return metrics


# --------------------------------------------------------------------------- CLI
def cli_gate(args: Any) -> int:
    """``latticesym gate --metrics``: 0 passed (or baseline written), 1 regression, 2 usage / input error."""
    import sys

    if not args.predictions or not args.references:
        print("gate --metrics: needs --predictions and --references", file=sys.stderr)
        return 2
    if not args.baseline:
        print("gate --metrics: needs --baseline FILE (with --write-baseline to create it)", file=sys.stderr)
        return 2
    references = load_references(args.references, parser=args.parser, cif_column=args.cif_column, limit=args.limit)
    if not references:
        print("gate --metrics: no references read", file=sys.stderr)
        return 2
    base = None
    if not args.write_baseline:
        try:
            base = load_metrics_baseline(args.baseline)
        except FileNotFoundError:
            print(f"gate --metrics: baseline {args.baseline} does not exist (use --write-baseline to create it)",
                  file=sys.stderr)
            return 2
    predictions = load_predictions(args.predictions, references, parser=args.parser)
    kwargs: dict[str, Any] = {"ltol": args.ltol, "stol": args.stol, "angle_tol": args.angle_tol, "k": args.k,
                              "workers": args.workers}
    if base is not None and args.k is None:
        kwargs["k"] = int(base["settings"]["k"])
    if base is not None:
        for key in ("ltol", "stol", "angle_tol"):
            if kwargs[key] is None:
                kwargs[key] = base["settings"][key]
    for key, default in (("ltol", 0.3), ("stol", 0.5), ("angle_tol", 10.0)):
        if kwargs[key] is None:
            kwargs[key] = default
    metrics = csp_metrics(predictions, references, **kwargs)
    if args.write_baseline:
        write_metrics_baseline(metrics, args.baseline, ids=_ids(references))
        print(metrics.table())
        print(f"baseline written to {args.baseline}")
        return 0
    assert base is not None
    result = compare_metrics(metrics, base, margin_match=args.margin_match, margin_rmse=args.margin_rmse,
                             ids=_ids(references))
    print(result.table())
    out = getattr(args, "output", None)
    if out and out != "none":
        if out == "-":
            print(result.to_json())
        else:
            Path(out).write_text(result.to_json() + "\n")
    return 0 if result.passed else 1
