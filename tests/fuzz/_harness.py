"""Fuzz harness of issue 13: hostile inputs for every public entry point, and the rules each call obeys.

Rules (:func:`check_call`):

1. a call returns, or raises :class:`~latticesym.errors.LatticeError` (or ``TypeError`` for
   non-numbers) with a non-empty message; anything else is an *untyped* finding;
2. it finishes within the per-call bound (``SIGALRM`` interrupts Python code; compiled code that
   overruns is flagged when it returns): a *hang*;
3. its inputs are unchanged afterwards (numpy/torch/lists compared NaN-aware): a *mutation*;
4. a returned reduction is equivalent to the input and reduced (the target's ``verify``, run on a
   sample, with the exact oracle): an *inequivalent* finding;
5. losses: finite inputs give a finite loss and finite gradients (NaN input may propagate, torch's
   convention).

Inputs are drawn from the stress families (:mod:`latticesym.families`) and the bundled real
lattices, then corrupted: every dtype, NaN/inf/subnormal/huge/tiny entries, wrong and empty and
ragged shapes, wrong types, torch tensors of mixed dtypes.  ``scripts/fuzz.py`` drives the
campaign (``make fuzz``); ``tests/fuzz/test_fuzz_targets.py`` runs a short version of each target.
"""

from __future__ import annotations

import copy
import math
import os
import signal
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

import latticesym
from latticesym import families
from latticesym.errors import LatticeError

__all__ = ["Campaign", "Finding", "Hang", "Target", "check_call", "hostile_lattice", "make_targets"]


class Hang(BaseException):
    """Raised by the alarm inside a call that overran its bound (a BaseException: code under test
    that catches ``Exception`` cannot swallow it)."""


@dataclass
class Finding:
    target: str
    kind: str  # untyped | valueerror | hang | mutation | inequivalent | nonfinite
    detail: str
    args: Any = None
    kwargs: Any = None


@dataclass
class Target:
    name: str
    draw: Callable[[np.random.Generator], tuple[tuple[Any, ...], dict[str, Any]]]
    call: Callable[..., Any]
    verify: Callable[[tuple[Any, ...], dict[str, Any], Any], str | None] | None = None
    verify_every: int = 10
    bound_s: float = 5.0
    ok_errors: tuple[type[BaseException], ...] = (LatticeError, TypeError)


@dataclass
class Campaign:
    counts: Counter[str] = field(default_factory=Counter)
    raised: Counter[str] = field(default_factory=Counter)
    verified: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)

    #: findings of each (target, kind, exception type) beyond this many are counted, not kept
    keep: int = 20
    kinds: Counter[tuple[str, str]] = field(default_factory=Counter)
    _seen: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def add(self, f: Finding) -> None:
        self.kinds[(f.target, f.kind)] += 1
        key = (f.target, f.kind, f.detail.split(":")[0][:60])
        self._seen[key] += 1
        if self._seen[key] <= self.keep:
            self.findings.append(f)

    def summary(self) -> dict[str, int]:
        kinds: Counter[str] = Counter()
        for (_, k), v in self.kinds.items():
            kinds[k] += v
        names = ("untyped", "valueerror", "hang", "mutation", "inequivalent", "nonfinite")
        return {"calls": sum(self.counts.values()), **{k: kinds.get(k, 0) for k in names}}


# ------------------------------------------------------------------------------ snapshots
def _snapshot(x: Any) -> Any:
    try:
        import torch
        if isinstance(x, torch.Tensor):
            return ("torch", x.detach().clone())
    except ImportError:  # pragma: no cover
        pass
    if isinstance(x, np.ndarray):
        return ("np", x.copy())
    if isinstance(x, list | tuple | dict):
        return ("py", copy.deepcopy(x))
    return ("other", None)


def _same(x: Any, snap: Any) -> bool:
    kind, old = snap
    if kind == "torch":
        import torch
        if x.shape != old.shape or x.dtype != old.dtype:
            return False
        a, b = x.detach(), old
        if a.is_floating_point() or a.is_complex():
            return bool(torch.equal(torch.nan_to_num(a, 1.5), torch.nan_to_num(b, 1.5))
                        and torch.equal(torch.isnan(a), torch.isnan(b)))
        return bool(torch.equal(a, b))
    if kind == "np":
        if x.shape != old.shape or x.dtype != old.dtype:
            return False
        try:
            return bool(np.array_equal(x, old, equal_nan=x.dtype.kind in "fc"))
        except TypeError:
            return bool(np.array_equal(x, old))
    if kind == "py":
        return _py_same(x, old)
    return True


def _py_same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(_py_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_py_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return _same(a, ("np", b)) if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) else False
    try:
        return bool(a == b)
    except Exception:
        return a is b


def _alarm(signum: int, frame: Any) -> None:
    raise Hang()


def check_call(target: Target, args: tuple[Any, ...], kwargs: dict[str, Any], campaign: Campaign,
               verify: bool = False) -> Any:
    """One call of ``target`` held to the rules; findings are appended to ``campaign``."""
    snaps = [_snapshot(a) for a in args] + [_snapshot(v) for v in kwargs.values()]
    campaign.counts[target.name] += 1
    use_alarm = hasattr(signal, "setitimer")
    if use_alarm:
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, target.bound_s)
    t0 = time.perf_counter()
    result: Any = None
    try:
        try:
            result = target.call(*args, **kwargs)
        finally:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)
    except Hang:
        campaign.add(Finding(target.name, "hang", f"interrupted after {target.bound_s} s", args, kwargs))
        return None
    except target.ok_errors as exc:
        campaign.raised[target.name] += 1
        if not str(exc).strip():
            campaign.add(Finding(target.name, "untyped", f"{type(exc).__name__} with no message", args, kwargs))
        result = exc
    except Exception as exc:
        # a plain ValueError (not rooted at LatticeError) is a contract finding of its own kind;
        # anything else (IndexError, KeyError, numpy's AxisError, MemoryError, ...) is a crash
        plain = type(exc) is ValueError
        campaign.add(Finding(target.name, "valueerror" if plain else "untyped",
                                         f"{type(exc).__name__}: {exc}"[:300], args, kwargs))
        result = exc
    took = time.perf_counter() - t0
    if took > target.bound_s:
        campaign.add(Finding(target.name, "hang", f"took {took:.2f} s > {target.bound_s} s", args, kwargs))
    allv = list(args) + list(kwargs.values())
    for a, s in zip(allv, snaps):
        if not _same(a, s):
            campaign.add(Finding(target.name, "mutation", f"an input of type {type(a).__name__} changed",
                                             args, kwargs))
            break
    if verify and target.verify is not None and not isinstance(result, BaseException):
        campaign.verified[target.name] += 1
        try:
            problem = target.verify(args, kwargs, result)
        except Exception as exc:  # the checker itself must not crash on a returned result
            problem = f"verification raised {type(exc).__name__}: {exc}"
        if problem:
            kind = "nonfinite" if problem.startswith("nonfinite") else "inequivalent"
            campaign.add(Finding(target.name, kind, problem[:300], args, kwargs))
    return result


def run_target(target: Target, rng: np.random.Generator, calls: int, campaign: Campaign,
               seconds: float | None = None) -> None:
    """``calls`` calls of ``target`` (or until ``seconds`` have passed)."""
    t_end = None if seconds is None else time.perf_counter() + seconds
    for i in range(calls):
        # warnings are not findings (the rules are about errors, time, mutation and results); the
        # test suite's filterwarnings=error would turn them into exceptions
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            args, kwargs = target.draw(rng)
            if rng.random() < HOSTILE_OPTION_RATE:
                kwargs = hostile_options(rng, target, kwargs)
                check_call(target, args, kwargs, campaign, verify=False)
            else:
                check_call(target, args, kwargs, campaign, verify=(i % target.verify_every == 0))
        if t_end is not None and (i & 15) == 0 and time.perf_counter() > t_end:
            break


# ------------------------------------------------------------------------------ options
#: share of calls whose keyword options are made hostile (one option, a value outside its domain)
HOSTILE_OPTION_RATE = float(os.environ.get("LATTICESYM_FUZZ_OPTION_RATE", "0.03"))
_HOSTILE_OPTION_VALUES: tuple[Any, ...] = (-1, -1.0, -1e-300, math.nan, math.inf, -math.inf, 0,
                                           "bogus", "", None, [1.0], (0, 1), True, b"x", 1j)
_OPTION_NAMES: dict[str, tuple[str, ...]] = {}


def _option_names(target: Target) -> tuple[str, ...]:
    """The keyword parameters (with defaults) of a target's callable, when its signature says."""
    if target.name not in _OPTION_NAMES:
        import inspect

        try:
            params = inspect.signature(target.call).parameters.values()
            names = tuple(p.name for p in params if p.default is not inspect.Parameter.empty
                          and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
                          and not p.name.startswith("_"))  # private switches are not options
        except (TypeError, ValueError):
            names = ()
        _OPTION_NAMES[target.name] = names
    return _OPTION_NAMES[target.name]


def hostile_options(rng: np.random.Generator, target: Target, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with one option (drawn, or one of the callable's own) set to a hostile value: the
    call must still return or raise ``LatticeError`` / ``TypeError`` (a plain ``ValueError`` for a
    bad option value is a finding)."""
    names = sorted(set(kwargs) | set(_option_names(target)))
    if not names:
        return kwargs
    out = dict(kwargs)
    out[names[int(rng.integers(len(names)))]] = _HOSTILE_OPTION_VALUES[int(rng.integers(len(_HOSTILE_OPTION_VALUES)))]
    return out


# ------------------------------------------------------------------------------ inputs
_SPECIAL = (math.nan, math.inf, -math.inf, 5e-324, -5e-324, 2.2250738585072014e-308 / 3, 1e308, -1e308,
            1e-300, 1e300, 0.0, -0.0, 1e154, 1e-154, 2.0**52 + 1, 2.0**63)
_FAMILY_NAMES = tuple(sorted(families.FAMILIES))
_BUNDLED: list[np.ndarray] = []


def _bundled() -> list[np.ndarray]:
    """The bundled real lattices: spglib's 783 Niggli test inputs and the perov_5 / carbon_24 cells."""
    if not _BUNDLED:
        from latticesym import datasets

        _BUNDLED.extend(np.asarray(datasets.load_lattices("spglib"), dtype=np.float64))
        for name in datasets.STRUCTURE_SETS:
            _BUNDLED.extend(np.asarray(s.lattice, dtype=np.float64) for s in datasets.load_structures(name)[:300])
    return _BUNDLED


def seed_lattices(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` valid lattices: a stress family (or the bundled real data, or a sheared needle/plate)."""
    pick = rng.integers(len(_FAMILY_NAMES) + 2)
    if pick == len(_FAMILY_NAMES):
        b = _bundled()
        return np.stack([b[int(i)] for i in rng.integers(len(b), size=n)])
    if pick == len(_FAMILY_NAMES) + 1:
        return families.extreme_aspect(n, rng=rng, shapes=("needle", "plate"), shear=(1, 1e3))
    return families.generate(_FAMILY_NAMES[int(pick)], n, rng)


def hostile_lattice(rng: np.random.Generator, *, allow_batch: bool = True) -> Any:
    """A lattice-like input: valid (about half of the draws), corrupted, or not a lattice at all."""
    r = rng.random()
    if r < 0.45:
        n = int(rng.integers(1, 6)) if allow_batch else 1
        lat = seed_lattices(rng, n)
        if not allow_batch or rng.random() < 0.6:
            return lat[0].copy()
        return lat
    if r < 0.7:  # special values injected
        lat = seed_lattices(rng, 1)[0].copy()
        for _ in range(int(rng.integers(1, 4))):
            lat[rng.integers(3), rng.integers(3)] = _SPECIAL[int(rng.integers(len(_SPECIAL)))]
        if rng.random() < 0.3:
            lat *= 10.0 ** float(rng.integers(-300, 300))
        return lat
    if r < 0.8:  # dtypes
        lat = seed_lattices(rng, 1)[0]
        dt = (np.float16, np.float32, np.int8, np.int64, np.uint8, np.bool_, np.complex128, object, np.longdouble,
              "U8")[int(rng.integers(10))]
        with np.errstate(all="ignore"):
            return lat.astype(dt)
    if r < 0.9:  # shapes
        shape = tuple(int(v) for v in rng.integers(0, 5, size=int(rng.integers(0, 5))))
        return rng.normal(size=shape)
    k = int(rng.integers(9))  # not arrays
    return ([[1.0, 0.0], [0.0, 1.0, 0.0], [0, 0, 1]], [[1, 0, 0], [0, 1, 0], [0, 0, "x"]], None, "lattice",
            {"a": 1}, [[Fraction(1, 3), 0, 0], [0, 1, 0], [0, 0, 1]], [], 3.0, [[[1e308] * 3] * 3])[k]


# ------------------------------------------------------------------------------ verification
def _det_int(t: Any) -> int:
    m = [[int(v) for v in row] for row in np.asarray(t).tolist()]
    return (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))


def reduction_problem(lattice: Any, transform: Any, g6: Any, tolerance: float) -> str | None:
    """Exact check of one float reduction: integer det +1 transform, g6 the metric of
    ``transform @ lattice`` (to 1e-9 relative), reduced within ``tolerance`` (exact conditions)."""
    from latticesym.peers import niggli_violations_tol

    t = np.asarray(transform)
    if t.shape != (3, 3) or np.any(t != np.rint(t)):
        return f"transform not an integer 3x3: {t.tolist()}"
    if _det_int(t) != 1:
        return f"det(transform) = {_det_int(t)}"
    rows = [[Fraction(float(v)) for v in r] for r in np.asarray(lattice, dtype=np.float64)]
    ex = [[sum(int(t[i][k]) * rows[k][j] for k in range(3)) for j in range(3)] for i in range(3)]

    def d(a: list[Fraction], b: list[Fraction]) -> Fraction:
        return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]

    gx = (d(ex[0], ex[0]), d(ex[1], ex[1]), d(ex[2], ex[2]), 2 * d(ex[1], ex[2]), 2 * d(ex[0], ex[2]),
          2 * d(ex[0], ex[1]))
    big = float(max(gx[:3]))
    gap = max(abs(float(a) - float(b)) for a, b in zip(np.asarray(g6, dtype=np.float64), gx))
    if not gap <= 1e-9 * big:
        return f"g6 off the exact metric of transform @ input by {gap:.3g} (scale {big:.3g})"
    if not (math.isfinite(tolerance) and tolerance >= 0):
        return f"tolerance {tolerance!r}"
    bad = niggli_violations_tol(gx, Fraction(tolerance))
    return f"not reduced within {tolerance:.3g}: {bad}" if bad else None


def _verify_float(args: tuple[Any, ...], kwargs: dict[str, Any], r: Any) -> str | None:
    src = np.asarray(args[0], dtype=np.float64)
    lead = src.shape[:-2]
    if np.shape(r.lattice) != src.shape or np.shape(r.transform) != src.shape:
        return f"result shape {np.shape(r.lattice)} for input {src.shape}"
    flat = src.reshape(-1, 3, 3)
    ok = np.atleast_1d(np.asarray(r.ok)).reshape(-1)
    for i in np.flatnonzero(ok)[:2]:
        tol = float(np.asarray(r.tolerance).reshape(-1)[i]) if lead else float(r.tolerance)
        p = reduction_problem(flat[i], np.asarray(r.transform).reshape(-1, 3, 3)[i],
                              np.asarray(r.g6).reshape(-1, 6)[i], tol)
        if p:
            return f"lattice {i}: {p}"
    return None


def _verify_exact(args: tuple[Any, ...], kwargs: dict[str, Any], r: Any) -> str | None:
    from latticesym.reference import reduction_problems

    probs = reduction_problems(args[0], r)
    return "; ".join(probs) if probs else None


def _verify_torch(args: tuple[Any, ...], kwargs: dict[str, Any], r: Any) -> str | None:
    import torch

    lat = args[0]
    reduced, t = r
    if reduced.shape != lat.shape or t.shape != lat.shape:
        return f"shapes {tuple(reduced.shape)}, {tuple(t.shape)} for input {tuple(lat.shape)}"
    if not bool(torch.isfinite(lat).all()):
        return None
    flat = lat.detach().double().reshape(-1, 3, 3).numpy()
    tt = t.reshape(-1, 3, 3).cpu().numpy()
    rr = reduced.detach().double().reshape(-1, 3, 3).numpy()
    u, tiny = torch_roundoff(reduced.dtype)
    for i in range(min(2, flat.shape[0])):
        if _det_int(tt[i]) != 1:
            return f"lattice {i}: det(transform) = {_det_int(tt[i])}"
        want = tt[i].astype(np.float64) @ flat[i]
        scale = float((np.abs(tt[i]).astype(np.float64) @ np.abs(flat[i])).max())
        if not np.all(np.isfinite(rr[i])):
            return (f"lattice {i}: reduced has non-finite entries {rr[i].tolist()} for finite input "
                    f"({reduced.dtype}; transform @ input = {want.tolist()})")
        bound = TORCH_GROWTH * u * (scale + tiny)
        gap = float(np.abs(rr[i] - want).max())
        if not gap <= bound:
            return f"lattice {i}: reduced != transform @ input by {gap:.3g} > {bound:.3g} ({reduced.dtype})"
    return None


#: Growth factor of the torch check's bound ``TORCH_GROWTH * u * (scale + tiny)``: each entry of
#: ``transform @ input`` is a 3-term dot product, so its rounding error in the output dtype is at
#: most ``gamma_3 * scale`` (about ``3 u scale``), plus one rounding of the cast and an absolute
#: ``u * tiny`` per rounding in the subnormal range; 8 leaves a factor of 2 over that.  Measured
#: worst cases on 6,000 fuzz draws (``max |reduced - T @ L| / (u * scale)``): float64 1.97,
#: float32 1.19, float16 0.79.
TORCH_GROWTH = 8.0


def torch_roundoff(dtype: Any) -> tuple[float, float]:
    """``(unit roundoff, smallest normal)`` of a torch dtype (float64's for integer dtypes)."""
    import torch

    fi = torch.finfo(dtype if dtype.is_floating_point else torch.float64)
    return float(fi.eps) / 2, float(fi.tiny)


def _verify_loss(args: tuple[Any, ...], kwargs: dict[str, Any], r: Any) -> str | None:
    loss, grads, finite_in = r
    if finite_in and not all(bool(np.isfinite(v)) for v in np.ravel(loss)):
        return f"nonfinite loss {loss} on finite input"
    if finite_in and grads is not None and not np.all(np.isfinite(grads)):
        return "nonfinite gradient on finite, non-degenerate input"
    return None


# ------------------------------------------------------------------------------ targets
def _kw_float(rng: np.random.Generator) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if rng.random() < 0.3:
        kw["eps"] = float((0.0, 1e-9, 1e-5, 1e-3, 0.1)[int(rng.integers(5))])
    if rng.random() < 0.3:
        kw["errors"] = "mask"
    if rng.random() < 0.1:
        kw["precision"] = "float"
    if rng.random() < 0.05:
        kw["max_iter"] = int(rng.integers(1, 5))
    return kw


def _torch_lattice(rng: np.random.Generator) -> Any:
    import torch

    x = hostile_lattice(rng)
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "fiu" or x.dtype == np.longdouble:
        x = seed_lattices(rng, int(rng.integers(1, 4)))
    dt = (torch.float64, torch.float32, torch.float64, torch.float16, torch.int64)[int(rng.integers(5))]
    with np.errstate(all="ignore"):
        return torch.as_tensor(np.ascontiguousarray(x, dtype=np.float64)).to(dt)


def _loss_draw(rng: np.random.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
    import torch

    n = int(rng.integers(1, 5))
    pred = torch.as_tensor(seed_lattices(rng, n))
    target = torch.as_tensor(seed_lattices(rng, n))
    if rng.random() < 0.3:
        pred = pred.clone()
        pred.view(-1)[int(rng.integers(pred.numel()))] = float(_SPECIAL[int(rng.integers(len(_SPECIAL)))])
    if rng.random() < 0.15:
        pred = pred.float()
    if rng.random() < 0.1:
        target = target[: max(0, n - 1)]
    if rng.random() < 0.05:
        pred = pred.reshape(-1)[: int(rng.integers(0, 9))]
    name = ("proxy_lattice", "proxy_gram", "gram_mse")[int(rng.integers(3))]
    return (name, pred, target), {}


def _loss_call(name: str, pred: Any, target: Any) -> tuple[Any, Any, bool]:
    import torch

    import latticesym.torch as lt

    p = pred.detach().clone().requires_grad_(pred.is_floating_point())
    if name == "gram_mse":
        loss = lt.gram_mse(p, target)
    else:
        loss = lt.niggli_proxy_loss(p, target, space="lattice" if name == "proxy_lattice" else "gram")
    finite_in = bool(torch.isfinite(pred).all() and torch.isfinite(target).all())
    if finite_in:  # degenerate (singular / beyond float range) inputs are held to "finite or raise" only
        with np.errstate(all="ignore"):
            arr = pred.detach().double().reshape(-1, 3, 3).numpy()
            vol = np.abs(np.linalg.det(arr))
            scale = np.prod(np.linalg.norm(arr, axis=-1), axis=-1)
            tgt = target.detach().double().reshape(-1, 3, 3).numpy()
            # representable: the loss is a 4th power of entries over a squared scale, so entries
            # stay below finfo.max**(1/8) of the prediction's dtype, and the two scales within 1e6
            top = float(torch.finfo(pred.dtype).max) ** 0.125
            sp, st = np.abs(arr).max(axis=(1, 2)), np.abs(tgt).max(axis=(1, 2))
            finite_in = bool(np.all(vol > 1e-6 * scale) and np.all(sp < top) and np.all(sp > 1e-30)
                             and np.all(st < top) and np.all(sp < 1e6 * st) and np.all(st < 1e6 * sp))
    grads = None
    if p.requires_grad and loss.requires_grad:
        (g,) = torch.autograd.grad(loss.sum(), p)
        grads = g.detach().double().numpy()
    return loss.detach().double().numpy(), grads, finite_in


def _small_int(rng: np.random.Generator) -> Any:
    return (0, 1, 2, 5, -1, 10**6, 2**40, 1.5, "3", None, True, np.int64(3))[int(rng.integers(12))]


def _count(rng: np.random.Generator) -> Any:
    """A sample count: small, zero, negative or not an int (large counts only cost memory and time)."""
    return (0, 1, 2, 7, -1, 1.5, "3", None, True, np.int64(3))[int(rng.integers(10))]


def _cif_text(rng: np.random.Generator) -> str:
    good = ("data_x\n_cell_length_a 4.0\n_cell_length_b 4.0\n_cell_length_c 4.0\n_cell_angle_alpha 90\n"
            "_cell_angle_beta 90\n_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'P 1'\nloop_\n"
            "_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n"
            "Na1 Na 0 0 0\nCl1 Cl 0.5 0.5 0.5\n")
    return _corrupt_text(good, rng)


def _poscar_text(rng: np.random.Generator) -> str:
    good = "NaCl\n1.0\n4 0 0\n0 4 0\n0 0 4\nNa Cl\n1 1\nDirect\n0 0 0\n0.5 0.5 0.5\n"
    return _corrupt_text(good, rng)


def _corrupt_text(text: str, rng: np.random.Generator) -> str:
    chars = list(text)
    for _ in range(int(rng.integers(0, 6))):
        op = int(rng.integers(4))
        pos = int(rng.integers(len(chars) + 1))
        if op == 0 and chars:
            del chars[min(pos, len(chars) - 1)]
        elif op == 1:
            chars.insert(pos, str(rng.choice(list("0123456789-.e nan inf\n_'#;"))))
        elif op == 2:
            chars[pos:pos] = list(("nan", "inf", "1e400", "-0", "?", ".", "\x00", "1e-320")[int(rng.integers(8))])
        else:
            chars = chars[:pos]
    return "".join(chars)


def _read_text(kind: str, text: str) -> Any:
    import os
    import tempfile

    from latticesym.io import read_structures

    fd, path = tempfile.mkstemp(suffix=".cif" if kind == "cif" else "", prefix="POSCAR_" if kind == "poscar" else "x")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        if kind == "poscar":
            new = os.path.join(os.path.dirname(path), "POSCAR_fuzz_" + os.path.basename(path))
            os.replace(path, new)
            path = new
        return read_structures(path)
    finally:
        os.unlink(path)


def _read_errors() -> tuple[type[BaseException], ...]:
    from latticesym.io import StructureReadError  # the readers' own typed error (a ValueError)

    return (LatticeError, TypeError, StructureReadError)


_READ_ERRORS = _read_errors()


def make_targets(include_torch: bool = True, include_io: bool = True) -> list[Target]:
    """Every public entry point, with its input drawer and its checker."""
    from latticesym import adapters, groups, testing
    from latticesym import reference as ref
    from latticesym.io import parse_matrix

    lat1 = lambda rng: ((hostile_lattice(rng),), _kw_float(rng))  # noqa: E731
    one = lambda rng: ((hostile_lattice(rng, allow_batch=False),), {})  # noqa: E731
    out = [
        Target("niggli_reduce", lat1, latticesym.niggli_reduce, _verify_float, verify_every=5),
        Target("is_niggli_reduced", lambda rng: ((hostile_lattice(rng),), {}), latticesym.is_niggli_reduced),
        Target("mp_niggli_reduce", lambda rng: ((hostile_lattice(rng, allow_batch=False),),
                                                {"prec": int((53, 64, 113, 200)[int(rng.integers(4))])}),
               latticesym.mp_niggli_reduce, verify_every=1000000),
        Target("reference.niggli_reduce", one, ref.niggli_reduce, _verify_exact, verify_every=3, bound_s=20.0),
        Target("reference.is_niggli_reduced", one, ref.is_niggli_reduced, bound_s=20.0),
        Target("groups.random_unimodular",
               lambda rng: ((_count(rng),), {"max_entry": _small_int(rng),
                                                 "det": (1, -1, "either", 0, 2)[int(rng.integers(5))],
                                                 "rng": np.random.default_rng(int(rng.integers(1 << 30)))}),
               lambda n, **kw: groups.random_unimodular(n, **kw)),
        Target("groups.is_unimodular", one, groups.is_unimodular),
        Target("groups.exact_det", one, groups.exact_det),
        Target("adapters.lattice_to_parameters", lambda rng: ((hostile_lattice(rng),), {}),
               adapters.lattice_to_parameters),
        Target("adapters.diffcsp_lattice_from_parameters",
               lambda rng: ((np.abs(rng.normal(5, 3, size=3)) if rng.random() < .5 else hostile_lattice(rng),
                             rng.uniform(0, 200, size=3) if rng.random() < .7 else hostile_lattice(rng)), {}),
               adapters.diffcsp_lattice_from_parameters),
        Target("adapters.as_cell", lambda rng: (((hostile_lattice(rng), rng.random((2, 3)), [1, 8]),), {}),
               adapters.as_cell),
        Target("testing.integer_inverse", lambda rng: ((hostile_lattice(rng) if rng.random() < .5 else
                                                        groups.random_unimodular(1, max_entry=5, rng=rng)[0],), {}),
               testing.integer_inverse),
        Target("testing.wrap_frac", lambda rng: ((hostile_lattice(rng),), {}), testing.wrap_frac),
        Target("testing.transform_structure",
               lambda rng: ((hostile_lattice(rng, allow_batch=False), rng.random((2, 3)), [1, 8],
                             groups.random_unimodular(1, max_entry=3, rng=rng)[0] if rng.random() < .7
                             else hostile_lattice(rng)), {}),
               testing.transform_structure),
        Target("io.parse_matrix", lambda rng: ((_corrupt_text("1 0 0; 0 1 0; 0 0 1", rng),), {}), parse_matrix),
    ]
    if include_io:
        out += [
            Target("io.read_structures[cif]", lambda rng: (("cif", _cif_text(rng)), {}), _read_text, bound_s=20.0,
                   ok_errors=_READ_ERRORS),
            Target("io.read_structures[poscar]", lambda rng: (("poscar", _poscar_text(rng)), {}), _read_text,
                   bound_s=20.0, ok_errors=_READ_ERRORS),
        ]
    if include_torch:
        try:
            import latticesym.torch as lt
        except ImportError:
            lt = None
        if lt is not None:
            out += [
                Target("torch.niggli_reduce", lambda rng: ((_torch_lattice(rng),), {}), lt.niggli_reduce,
                       _verify_torch, verify_every=4),
                Target("torch.is_niggli_reduced", lambda rng: ((_torch_lattice(rng),), {}), lt.is_niggli_reduced),
                Target("torch.losses", _loss_draw, _loss_call, _verify_loss, verify_every=1),
            ]
    from _structure_targets import structure_targets

    out += structure_targets(Target, hostile_lattice, include_torch=include_torch)
    return out
