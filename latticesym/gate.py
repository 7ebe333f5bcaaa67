"""Regression gate: invariance errors of a user's function over a dataset, against a baseline.

``latticesym gate MODULE:FUNCTION --structures DATA --baseline FILE`` runs
:func:`latticesym.testing.invariance_error` (or :func:`~latticesym.testing.equivariance_error`)
on every structure of ``DATA`` and fails (exit status 1) when

- an error exceeds the tolerance (the per-dtype default of :data:`latticesym.testing.TOLERANCES`
  or ``--tolerance``), or
- an error *regressed* past the baseline: it is larger than ``regression_factor`` times the
  error the baseline recorded for the same structure id, and larger than
  ``regression_floor`` (errors at the level of float64 rounding never count as regressions).
  The largest error over the dataset is compared in the same way.

The JSON report lists every structure's error and worst basis change.  ``--write-baseline``
stores this run's errors as the new baseline (the exit status still reports tolerance
failures, so a broken function cannot be baselined silently).

Examples
--------
>>> import numpy as np
>>> from latticesym.datasets import Structure
>>> def volume(lattice, frac_coords, species):
...     return abs(np.linalg.det(lattice))
>>> cells = [Structure("x", np.diag([3.0, 4.0, 5.0]), np.zeros((1, 3)), (6,))]
>>> report = run_gate(volume, cells, trials=4)
>>> report["passed"], report["n_structures"]
(True, 1)
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from latticesym.errors import MetricsBaselineError, OptionError

__all__ = [
    "DEFAULT_REGRESSION_FACTOR",
    "DEFAULT_REGRESSION_FLOOR",
    "compare_with_baseline",
    "load_baseline",
    "load_function",
    "run_gate",
    "write_baseline",
]

DEFAULT_REGRESSION_FACTOR = 10.0
DEFAULT_REGRESSION_FLOOR = 1e-12
BASELINE_FORMAT = "latticesym-gate-baseline/1"


def load_function(spec: str) -> Callable[..., Any]:
    """Import ``module.sub:function`` (or ``path/to/file.py:function``; dotted attributes allowed).

    The current directory is put on ``sys.path`` first, as ``python -m`` does.

    Raises
    ------
    ValueError
        If ``spec`` has no ``:``.
    ImportError, AttributeError
        If the module or the function does not exist.

    Examples
    --------
    >>> load_function("math:hypot")(3, 4)
    5.0
    """
    if ":" not in spec:
        raise OptionError(f"expected MODULE:FUNCTION, got {spec!r}")
    module_name, _, attr = spec.rpartition(":")
    if module_name.endswith(".py") or "/" in module_name:
        path = Path(module_name).resolve()
        mod_spec = importlib.util.spec_from_file_location(path.stem, path)
        if mod_spec is None or mod_spec.loader is None:
            raise ImportError(f"cannot import {module_name}")
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules.setdefault(path.stem, module)
        mod_spec.loader.exec_module(module)
    else:
        cwd = str(Path.cwd())
        if cwd not in sys.path:
            sys.path.insert(0, cwd)
        module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{spec} is not callable")
    return obj


def _unique_ids(structures: Sequence[Any]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for k, s in enumerate(structures):
        ident = str(getattr(s, "id", k))
        seen[ident] = seen.get(ident, 0) + 1
        out.append(ident if seen[ident] == 1 else f"{ident}#{seen[ident]}")
    return out


def run_gate(
    fn: Callable[..., Any],
    structures: Sequence[Any],
    *,
    function_name: str | None = None,
    baseline: Mapping[str, Any] | None = None,
    kind: str = "invariant",
    trials: int | None = None,
    seed: int | None = None,
    max_entry: int | None = None,
    det: Any = "either",
    rotate: bool = False,
    translate: bool = False,
    permute: bool = False,
    tolerance: float | None = None,
    atol: float = 0.0,
    regression_factor: float = DEFAULT_REGRESSION_FACTOR,
    regression_floor: float = DEFAULT_REGRESSION_FLOOR,
    progress: bool = False,
) -> dict[str, Any]:
    """Measure ``fn``'s invariance error on every structure; return the JSON-ready report.

    Parameters
    ----------
    fn : callable
        ``fn(lattice, frac_coords, species)``.
    structures : sequence
        Records with ``id``, ``lattice``, ``frac_coords``, ``species``
        (:class:`latticesym.datasets.Structure`, :func:`latticesym.io.read_structures`).
    baseline : mapping, optional
        A baseline written by :func:`write_baseline` (see :func:`compare_with_baseline`).
    kind : str
        ``"invariant"`` or an equivariant kind of :data:`latticesym.testing.KINDS`.
    trials, seed, max_entry, det, rotate, translate, permute, tolerance, atol
        Passed to :func:`latticesym.testing.invariance_error`.
    regression_factor, regression_floor : float
        See the module docstring.

    Returns
    -------
    dict
        ``passed``, ``max_error``, ``worst``, ``failures`` (ids over tolerance),
        ``regressions``, ``errors`` (id -> error), ``structures`` (per-structure details) and
        the settings.
    """
    from latticesym import testing
    from latticesym.audit import _progress_bar

    settings: dict[str, Any] = {
        "kind": kind,
        "trials": testing.get_defaults()["trials"] if trials is None else int(trials),
        "seed": testing.get_defaults()["seed"] if seed is None else int(seed),
        "max_entry": testing.DEFAULT_MAX_ENTRY if max_entry is None else int(max_entry),
        "det": det,
        "rotate": rotate,
        "translate": translate,
        "permute": permute,
        "tolerance": tolerance,
        "atol": atol,
    }
    ids = _unique_ids(structures)
    details = []
    errors: dict[str, float] = {}
    failures = []
    bar = _progress_bar(total=len(structures), enabled=progress, desc="gate")
    t0 = time.perf_counter()
    try:
        for ident, s in zip(ids, structures):
            entry: dict[str, Any] = {"id": ident, "num_atoms": len(s.species)}
            try:
                rep = testing.equivariance_error(
                    fn,
                    s.lattice,
                    s.frac_coords,
                    s.species,
                    kind=kind,  # type: ignore[arg-type]
                    trials=settings["trials"],
                    seed=settings["seed"],
                    max_entry=settings["max_entry"],
                    det=det,
                    rotate=rotate,
                    translate=translate,
                    permute=permute,
                    tolerance=tolerance,
                    atol=atol,
                )
            except Exception as exc:
                entry.update(
                    max_error=math.inf,
                    tolerance=tolerance,
                    passed=False,
                    exception=f"{type(exc).__name__}: {exc}",
                )
            else:
                entry.update(
                    max_error=rep.max_error,
                    tolerance=rep.tolerance,
                    dtype=rep.dtype,
                    passed=rep.passed,
                    failed_trials=rep.n_failed,
                    worst_transform=rep.transform.tolist(),
                )
            errors[ident] = float(entry["max_error"])
            if not entry["passed"]:
                failures.append(ident)
            details.append(entry)
            bar.update(1)
    finally:
        bar.close()
    max_error = max(errors.values(), default=0.0)
    worst = max(errors, key=lambda k: errors[k]) if errors else None
    report: dict[str, Any] = {
        "function": function_name or getattr(fn, "__qualname__", repr(fn)),
        "latticesym_version": _version(),
        "settings": settings,
        "n_structures": len(structures),
        "max_error": max_error,
        "worst": worst,
        "failures": failures,
        "regressions": [],
        "errors": errors,
        "structures": details,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if baseline is not None:
        report["regressions"] = compare_with_baseline(
            report, baseline, factor=regression_factor, floor=regression_floor
        )
        report["baseline_settings_differ"] = _settings_differ(settings, baseline.get("settings", {}))
    report["passed"] = not failures and not report["regressions"]
    return report


def _version() -> str:
    try:
        import latticesym

        return str(latticesym.__version__)
    except Exception:  # pragma: no cover - partial installs
        return "unknown"


def _settings_differ(now: Mapping[str, Any], then: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in now if k in then and now[k] != then[k])


def compare_with_baseline(
    report: Mapping[str, Any],
    baseline: Mapping[str, Any],
    *,
    factor: float = DEFAULT_REGRESSION_FACTOR,
    floor: float = DEFAULT_REGRESSION_FLOOR,
) -> list[dict[str, Any]]:
    """Regressions of ``report`` against ``baseline``: ids whose error grew past ``factor`` x baseline.

    An error counts as a regression when it is larger than ``factor * baseline_error`` and
    larger than ``floor``.  Structures missing from the baseline are not compared (they are
    still held to the tolerance).  The dataset's ``max_error`` is compared too (id ``"*"``).

    Examples
    --------
    >>> compare_with_baseline({"errors": {"a": 1e-6, "b": 1e-15}, "max_error": 1e-6},
    ...                       {"errors": {"a": 1e-9, "b": 1e-16}, "max_error": 1e-9})
    [{'id': 'a', 'error': 1e-06, 'baseline': 1e-09}, {'id': '*', 'error': 1e-06, 'baseline': 1e-09}]
    """
    if not factor >= 1:
        raise OptionError(f"regression factor must be >= 1, got {factor}")
    out = []
    then = baseline.get("errors", {})
    for ident, err in report["errors"].items():
        if ident not in then:
            continue
        old = _num(then[ident])
        if _regressed(float(err), old, factor, floor):
            out.append({"id": ident, "error": float(err), "baseline": old})
    if "max_error" in baseline:
        old = _num(baseline["max_error"])
        if _regressed(float(report["max_error"]), old, factor, floor):
            out.append({"id": "*", "error": float(report["max_error"]), "baseline": old})
    return out


def _num(x: Any) -> float:
    return math.inf if x is None else float(x)


def _regressed(err: float, old: float, factor: float, floor: float) -> bool:
    if math.isinf(old):
        return False
    return err > floor and err > factor * old


def load_baseline(path: str | Path) -> dict[str, Any]:
    """Read a baseline JSON file written by :func:`write_baseline`."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or "errors" not in data:
        raise MetricsBaselineError(f"{path}: not a latticesym gate baseline (no 'errors')")
    return data


def write_baseline(report: Mapping[str, Any], path: str | Path) -> None:
    """Store a gate report's errors as a baseline (JSON; ``inf`` is written as ``null``)."""
    data = {
        "format": BASELINE_FORMAT,
        "function": report.get("function"),
        "latticesym_version": report.get("latticesym_version"),
        "settings": report.get("settings", {}),
        "max_error": _finite_or_none(report.get("max_error")),
        "errors": {k: _finite_or_none(v) for k, v in report["errors"].items()},
    }
    Path(path).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def _finite_or_none(x: Any) -> float | None:
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def report_to_json(report: Mapping[str, Any]) -> str:
    """The report as JSON (non-finite numbers become ``null``)."""
    from latticesym.audit import _jsonable

    return json.dumps(_jsonable(dict(report)), indent=1)


def summary_text(report: Mapping[str, Any]) -> str:
    """A short human-readable summary of a gate report."""
    lines = [
        f"gate {report['function']}: {'PASSED' if report['passed'] else 'FAILED'}  "
        f"({report['n_structures']} structures, {report['settings']['trials']} basis changes each, "
        f"seed {report['settings']['seed']}, {report['seconds']:.1f} s)",
        f"  max error {report['max_error']:.3g}" + (f" on {report['worst']}" if report["worst"] else ""),
    ]
    fails = report["failures"]
    if fails:
        shown = ", ".join(fails[:8]) + (" ..." if len(fails) > 8 else "")
        lines.append(f"  {len(fails)} over tolerance: {shown}")
    for reg in report["regressions"][:8]:
        lines.append(f"  regression {reg['id']}: {reg['error']:.3g} (baseline {reg['baseline']:.3g})")
    if len(report["regressions"]) > 8:
        lines.append(f"  ... {len(report['regressions']) - 8} more regressions")
    differ = report.get("baseline_settings_differ")
    if differ:
        lines.append(f"  note: baseline was recorded with different settings: {', '.join(differ)}")
    worst = next((d for d in report["structures"] if d["id"] == report["worst"]), None)
    if worst and not worst["passed"]:
        if "exception" in worst:
            lines.append(f"  {worst['id']} raised {worst['exception']}")
        else:
            lines.append(f"  worst basis change M = {np.array(worst['worst_transform']).tolist()}")
    return "\n".join(lines)
