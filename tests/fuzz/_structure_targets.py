"""Fuzz targets of the structure layer (issue 13, item 1): canonicalization, matching, CSP metrics,
adapters, the torch twins and the ``latticesym canonicalize`` reader path.

Structures are seeded from the bundled real data (``perov_5``, ``carbon_24``: up to 8 atoms, so a
match stays within a few milliseconds) and from the stress families with random sites, then
re-based (a random GL(3,Z) basis, permuted atoms, lattice shifts: the *same* crystal) or
corrupted (NaN / inf / wrong shapes / ragged rows / bad species / objects that are not
structures).  Each returned result is checked on a sample:

- ``canonicalize``: integer ``det +1`` transform, ``lattice == T @ L @ Q.T`` with ``Q``
  orthogonal, G6 the exact metric of ``T @ L``, sites carried exactly (``frac[order] @ inv(T)``
  up to lattice translations and the ``frac_eps`` snap), wrapped into [0, 1), species permuted
  by ``order``; ``canonicalize_batch`` and ``latticesym.torch.canonicalize`` (float64) give what
  ``canonicalize`` gives structure by structure;
- ``match`` / ``reference_match`` / ``match_batch`` / ``csp_metrics``: a re-based copy of a
  structure matches it (rms ~ 0), a batch agrees with the single calls;
- the adapters round-trip (``as_structure`` of ``to_structure``, ``split_batch`` of ``as_batch``).
"""

from __future__ import annotations

import math
import os
import tempfile
from typing import Any

import numpy as np

from latticesym import families

__all__ = ["hostile_structure", "rebased_copy", "seed_structure", "structure_targets"]

_FAMILY_NAMES = tuple(sorted(families.FAMILIES))
_STRUCTS: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
_SYMBOLS = ("H", "C", "N", "O", "Na", "Si", "Cl", "Fe", "Ba", "Ti")


def _bundled_structures() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    if not _STRUCTS:
        from latticesym import datasets

        for name in datasets.STRUCTURE_SETS:
            for s in datasets.load_structures(name)[:200]:
                if len(s.frac_coords) <= 8:
                    _STRUCTS.append((np.asarray(s.lattice, dtype=np.float64),
                                     np.asarray(s.frac_coords, dtype=np.float64), np.asarray(s.species)))
    return _STRUCTS


def seed_structure(rng: np.random.Generator, max_atoms: int = 6) -> tuple[Any, Any, Any]:
    """A valid structure: bundled real data (half the draws) or a stress-family lattice with
    random sites (atomic numbers, sometimes element symbols)."""
    if rng.random() < 0.5:
        b = _bundled_structures()
        L, f, s = b[int(rng.integers(len(b)))]
        return L.copy(), f.copy(), s.copy()
    name = _FAMILY_NAMES[int(rng.integers(len(_FAMILY_NAMES)))]
    L = families.generate(name, 1, rng)[0]
    n = int(rng.integers(1, max_atoms + 1))
    f = rng.random((n, 3))
    if rng.random() < 0.3:
        return L, f, [str(_SYMBOLS[int(i)]) for i in rng.integers(len(_SYMBOLS), size=n)]
    return L, f, rng.integers(1, 90, size=n)


def rebased_copy(rng: np.random.Generator, cell: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
    """The same crystal in a random basis (GL(3,Z), det +1), atoms permuted, shifted by lattice vectors."""
    from latticesym.groups import random_unimodular
    from latticesym.testing import transform_structure

    L, f, s = cell
    M = random_unimodular(1, max_entry=int((1, 2, 3)[int(rng.integers(3))]), rng=rng)[0]
    n = len(f)
    perm = rng.permutation(n)
    shifts = rng.integers(-1, 2, size=(n, 3)) if rng.random() < 0.3 else None
    L2, f2, s2 = transform_structure(L, f, list(s) if not isinstance(s, np.ndarray) else s, M,
                                     permutation=perm, shifts=shifts)
    return L2, f2, s2


def hostile_structure(rng: np.random.Generator) -> tuple[Any, ...]:
    """Arguments ``(lattice, frac, species)`` (or one object) of a structure call: valid, re-based,
    or corrupted in one field, or not a structure at all."""
    from _harness import hostile_lattice

    return _hostile_structure(rng, hostile_lattice)


def _hostile_structure(rng: np.random.Generator, hostile_lattice: Any) -> tuple[Any, ...]:
    r = rng.random()
    cell = seed_structure(rng)
    if r < 0.4:
        return cell
    if r < 0.55:
        return rebased_copy(rng, cell)
    L, f, s = cell
    if r < 0.68:
        return hostile_lattice(rng, allow_batch=False), f, s
    if r < 0.8:
        k = int(rng.integers(7))
        if k == 0:
            f = f.copy()
            f[rng.integers(len(f)), rng.integers(3)] = (np.nan, np.inf, -np.inf, 1e300, -1e-320)[int(rng.integers(5))]
        elif k == 1:
            f = f[:, :2]
        elif k == 2:
            f = [list(row) for row in f] + [[0.5, 0.5]]
        elif k == 3:
            f, s = np.zeros((0, 3)), []
        elif k == 4:
            f = f.astype(np.float32)
        elif k == 5:
            f = [["0", "x", "0"]] * len(f)
        else:
            f = f.reshape(-1)
        return L, f, s
    if r < 0.9:
        n = len(f)
        bad = ([1] * (n + 1), ["Xx"] * n, [-3] * n, [0] * n, [200] * n, [1.5] * n, None, "Si", [[1]] * n,
               np.full(n, 2**62))[int(rng.integers(10))]
        return L, f, bad
    k = int(rng.integers(6))
    return ((None,), ("structure",), ({"lattice": L, "frac": f},), ({"lattice": L, "frac_coords": f, "species": s},),
            ((L, f),), (3.0,))[k]


def _det_int(t: Any) -> int:
    m = [[int(v) for v in row] for row in np.asarray(t).tolist()]
    return (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))


def canonical_problem(L: Any, f: Any, s: Any, r: Any, frac_eps: float = 1e-8) -> str | None:
    """What is wrong with the canonical form ``r`` of the structure ``(L, f, s)`` (None: nothing)."""
    from latticesym.testing import integer_inverse

    L = np.asarray(L, dtype=np.float64)
    f = np.asarray(f, dtype=np.float64).reshape(-1, 3)
    T = np.asarray(r.transform)
    if T.shape != (3, 3) or T.dtype.kind not in "iu" or _det_int(T) != 1:
        return f"transform {T.tolist()} is not an integer det +1 matrix"
    Q = np.asarray(r.rotation, dtype=np.float64)
    if not np.allclose(Q @ Q.T, np.eye(3), atol=1e-12):
        return f"rotation {Q.tolist()} is not orthogonal"
    want = (T.astype(np.float64) @ L) @ Q.T
    scale = float((np.abs(T).astype(np.float64) @ np.abs(L)).max())
    if not np.all(np.abs(np.asarray(r.lattice) - want) <= 1e-9 * scale):
        return f"lattice != T @ L @ Q.T (off by {np.abs(np.asarray(r.lattice) - want).max():.3g}, scale {scale:.3g})"
    g = T.astype(np.float64) @ L
    gram = g @ g.T
    g6 = np.array([gram[0, 0], gram[1, 1], gram[2, 2], 2 * gram[1, 2], 2 * gram[0, 2], 2 * gram[0, 1]])
    if not np.all(np.abs(np.asarray(r.g6) - g6) <= 1e-9 * scale * scale):
        return "g6 is not the metric of T @ L"
    order = np.asarray(r.order)
    n = f.shape[0]
    if order.shape != (n,) or sorted(order.tolist()) != list(range(n)):
        return f"order {order.tolist()} is not a permutation of {n} atoms"
    out = np.asarray(r.frac, dtype=np.float64)
    if out.shape != (n, 3) or not (np.all(out >= 0) and np.all(out < 1)):
        return f"frac not in [0, 1): {out.tolist()}"
    Ti = integer_inverse(T).astype(np.float64)
    carried = f[order] @ Ti
    d = carried - out
    tol = frac_eps + 1e-12 * (1 + np.abs(f).max(initial=0)) * np.abs(Ti).sum(axis=0).max()
    if not np.all(np.abs(d - np.rint(d)) <= tol + 1e-9):
        return f"sites not carried: frac[order] @ inv(T) - frac off integers by {np.abs(d - np.rint(d)).max():.3g}"
    sp = np.asarray(s)[order] if n else np.asarray(s)
    if n and not np.array_equal(np.asarray(r.species), sp):
        return f"species {np.asarray(r.species).tolist()} != species[order] {sp.tolist()}"
    return None


# --------------------------------------------------------------------------------- targets
def structure_targets(Target: Any, hostile_lattice: Any, include_torch: bool = True) -> list[Any]:
    """Every structure-layer entry point present in this tree, as harness ``Target``s."""
    try:
        import latticesym.structure as st
    except ImportError:
        return []

    def hs(rng: np.random.Generator) -> tuple[Any, ...]:
        return _hostile_structure(rng, hostile_lattice)

    def kw_canon(rng: np.random.Generator) -> dict[str, Any]:
        # valid option values only: invalid ones raise plain ValueErrors throughout the library
        # (niggli_reduce's eps too), the Python convention for a bad argument value
        kw: dict[str, Any] = {}
        if rng.random() < 0.2:
            kw["eps"] = (0.0, 1e-9, 1e-3, 0.1)[int(rng.integers(4))]
        if rng.random() < 0.2:
            kw["frac_eps"] = (0.0, 1e-12, 1e-4, 0.25)[int(rng.integers(4))]
        if rng.random() < 0.2:
            kw["orientation"] = ("keep", "parameters")[int(rng.integers(2))]
        if rng.random() < 0.1:
            kw["sort"] = False
        return kw

    def v_canon(args: tuple[Any, ...], kwargs: dict[str, Any], r: Any) -> str | None:
        if len(args) != 3:
            return None
        return canonical_problem(*args, r, frac_eps=float(kwargs.get("frac_eps", 1e-8)))

    def d_batch(rng: np.random.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
        b = int(rng.integers(0, 4))
        cells = [hs(rng) if rng.random() < 0.15 else seed_structure(rng) for _ in range(b)]
        cells = [c for c in cells if len(c) == 3]
        if not cells or rng.random() < 0.1:
            return (np.zeros((0, 3, 3)), np.zeros((0, 3)), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)), {}
        try:
            lat = np.stack([np.asarray(c[0], dtype=np.float64) for c in cells])
            fr = np.concatenate([np.asarray(c[1], dtype=np.float64).reshape(-1, 3) for c in cells])
            sp = np.concatenate([np.asarray([int(v) for v in np.ravel(c[2])]) for c in cells])
        except (ValueError, TypeError):  # a corrupted cell: a corrupted batch
            return (cells[0][0], cells[0][1], cells[0][2], [len(cells[0][1])]), {}
        n_atoms = np.array([len(np.asarray(c[1]).reshape(-1, 3)) for c in cells])
        if rng.random() < 0.1:
            n_atoms = n_atoms + (1, -1)[int(rng.integers(2))] * (np.arange(len(n_atoms)) == 0)
        return (lat, fr, sp, n_atoms), kw_canon(rng)

    def v_batch(args: tuple[Any, ...], kwargs: dict[str, Any], r: Any) -> str | None:
        lat, fr, sp, n_atoms = args
        offs = np.concatenate([[0], np.cumsum(n_atoms)])
        for i in range(min(2, len(n_atoms))):
            sl = slice(int(offs[i]), int(offs[i + 1]))
            one = st.canonicalize(lat[i], fr[sl], sp[sl], **kwargs)
            got_order = np.asarray(r.order)[sl] - offs[i]
            if not (np.array_equal(np.asarray(r.transforms)[i], one.transform)
                    and np.array_equal(np.asarray(r.lattices)[i], one.lattice)
                    and np.array_equal(np.asarray(r.frac)[sl], one.frac) and np.array_equal(got_order, one.order)):
                return f"structure {i} of the batch differs from canonicalize of it alone"
        return None

    def d_match(rng: np.random.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
        a = seed_structure(rng, max_atoms=5)
        p = rng.random()
        if p < 0.5:
            b: Any = rebased_copy(rng, a)
        elif p < 0.7:
            b = seed_structure(rng, max_atoms=5)
        else:
            b = hs(rng)
            b = b if len(b) == 3 else b[0]
        kw: dict[str, Any] = {}
        if rng.random() < 0.15:
            kw["ltol"] = (0.0, 0.2, 1.0, -1.0, float("nan"))[int(rng.integers(5))]
        if rng.random() < 0.1:
            kw["primitive_cell"] = False
        return (a, b, p < 0.5), kw

    def same_verdict(r: Any, copy: bool, lattice: Any) -> str | None:
        # the copy's rows M @ L are rounded: on a sheared basis (rows ~1e7 for a cell of ~10 A)
        # that changes the lattice by about u (longest row / shortest vector)**3 relative (the
        # volume's cancellation), so the rms bound scales with it; the verdict must hold always
        if not copy:
            return None
        import latticesym

        L = np.asarray(lattice, dtype=np.float64)
        short = math.sqrt(float(np.asarray(latticesym.niggli_reduce(L).g6)[0]))
        cond = (float(np.linalg.norm(L, axis=1).max()) / short) ** 3
        # (rms is relative to (V / n)**(1/3); measured worst rms / (u cond): 2.9e3)
        if not (r.matched and r.rms is not None and r.rms <= 1e-4 + 1e5 * 2.0**-53 * cond):
            return f"a re-based copy did not match itself (cond {cond:.3g}): {r}"
        return None

    def c_match(a: Any, b: Any, copy: bool, **kw: Any) -> Any:
        return st.match(a, b, **kw)

    def c_ref(a: Any, b: Any, copy: bool, **kw: Any) -> Any:
        return st.reference_match(a, b, max_triples=200_000, **kw)

    def d_ref(rng: np.random.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
        # the brute-force reference has no lattice-point budget: real cells and their copies only
        # (a hostile lattice there is a hang by design, not a finding)
        b = [c for c in _bundled_structures() if len(c[1]) <= 5]  # 5! atom assignments at most
        a = b[int(rng.integers(len(b)))]
        p = rng.random()
        if p < 0.6:
            other: Any = rebased_copy(rng, a)
        elif p < 0.8:
            other = b[int(rng.integers(len(b)))]
        else:
            L, f, _ = a
            other = (L, f, ([1] * (len(f) + 1), ["Xx"] * len(f), None)[int(rng.integers(3))])
        return (a, other, p < 0.6), {}

    def v_match(args: tuple[Any, ...], kwargs: dict[str, Any], r: Any) -> str | None:
        if kwargs.get("ltol", 0.3) != 0.3 or not kwargs.get("primitive_cell", True):
            return None
        return same_verdict(r, args[2], args[0][0])

    def d_match_batch(rng: np.random.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
        pairs = [d_match(rng)[0] for _ in range(int(rng.integers(0, 4)))]
        a = [p[0] for p in pairs]
        b = [p[1] for p in pairs]
        if rng.random() < 0.1:
            b = b[:-1]
        return (a, b, [p[2] for p in pairs]), {"workers": 1}

    def c_match_batch(a: Any, b: Any, copies: Any, **kw: Any) -> Any:
        return st.match_batch(a, b, **kw)

    def v_match_batch(args: tuple[Any, ...], kwargs: dict[str, Any], r: Any) -> str | None:
        a, b, copies = args
        res = list(r.results) if hasattr(r, "results") else None
        matched = np.asarray(r.matched) if hasattr(r, "matched") else None
        for i in range(min(2, len(a))):
            try:
                one = st.match(a[i], b[i])
            except Exception:
                continue
            got = bool(matched[i]) if matched is not None else bool(res[i].matched) if res is not None else None
            if got is not None and got != one.matched:
                return f"pair {i}: match_batch says {got}, match says {one.matched}"
            if copies[i] and not one.matched:
                return f"pair {i}: a re-based copy did not match itself"
        return None

    def d_csp(rng: np.random.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
        n = int(rng.integers(0, 3))
        refs = [seed_structure(rng, max_atoms=4) for _ in range(n)]
        copies = rng.random() < 0.5
        preds: Any = [rebased_copy(rng, c) if copies else (hs(rng) if rng.random() < 0.3 else seed_structure(rng, 4))
                      for c in refs]
        preds = [p if len(p) == 3 else p[0] for p in preds]
        if rng.random() < 0.1:
            preds = preds[:-1]
        kw: dict[str, Any] = {"workers": 1}
        if rng.random() < 0.2:
            kw["k"] = (1, 2, 0, -1)[int(rng.integers(4))]
        return (preds, refs, copies), kw

    def c_csp(preds: Any, refs: Any, copies: bool, **kw: Any) -> Any:
        return st.csp_metrics(preds, refs, **kw)

    def v_csp(args: tuple[Any, ...], kwargs: dict[str, Any], r: Any) -> str | None:
        preds, refs, copies = args
        if copies and len(preds) == len(refs) and "k" not in kwargs and r.match_rate != 1.0:
            # a copy the validity check rejects (close sites), or a pair beyond the matcher's work
            # bounds (MatchBudgetError: recorded as unmatched), is not expected to count
            for p, q in zip(preds, refs):
                if not (st.structure_validity(p[0], p[1])[0] and st.structure_validity(q[0], q[1])[0]):
                    return None
                try:
                    if not st.match(p, q).matched:
                        return None
                except Exception:
                    return None
            return f"re-based copies of the references, each matched alone: match rate {r.match_rate}, not 1"
        return None

    def d_adapter(rng: np.random.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
        c = hs(rng)
        return ((c if len(c) == 3 else c[0]),), {}

    def v_as_structure(args: tuple[Any, ...], kwargs: dict[str, Any], r: Any) -> str | None:
        cell = r
        if not np.all((cell.species >= 1) & (cell.species <= 118)):
            return None  # any integer labels are kept; only elements convert to pymatgen
        back = st.as_structure(st.to_structure(cell, "pymatgen"))
        if not (np.allclose(back.lattice, cell.lattice, rtol=1e-12, atol=0)
                and np.allclose(back.frac_coords, cell.frac_coords, rtol=0, atol=1e-12)
                and np.array_equal(back.species, cell.species)):
            return "as_structure(to_structure(cell)) != cell"
        return None

    def d_as_batch(rng: np.random.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
        cells = [d_adapter(rng)[0][0] if rng.random() < 0.2 else seed_structure(rng)
                 for _ in range(int(rng.integers(0, 4)))]
        if rng.random() < 0.3 and cells:
            try:
                return (st.to_diffcsp_batch(cells),), {}
            except Exception:
                pass
        return (cells,), {}

    def v_as_batch(args: tuple[Any, ...], kwargs: dict[str, Any], r: Any) -> str | None:
        parts = st.split_batch(r)
        again = st.as_batch(parts)
        if not (np.array_equal(again.species, r.species) and np.array_equal(again.n_atoms, r.n_atoms)):
            return "as_batch(split_batch(b)) != b"
        return None

    def d_validity(rng: np.random.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
        c = hs(rng)
        if len(c) != 3:
            return (c[0], None), {}
        return (c[0], c[1]), ({"reduced": True} if rng.random() < 0.1 else {})

    def d_lattice_errors(rng: np.random.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
        import latticesym

        n = int(rng.integers(1, 4))
        ref = np.asarray(latticesym.niggli_reduce(families.physical(n, rng=rng)).g6)
        pred = ref[None] * rng.uniform(0.8, 1.2, size=(int(rng.integers(1, 3)), n, 6))
        q = rng.random()
        if q < 0.2:
            pred = pred.copy()
            pred.reshape(-1)[int(rng.integers(pred.size))] = (np.nan, np.inf, -1.0, 0.0, 1e300)[int(rng.integers(5))]
        elif q < 0.3:
            ref = ref[:, :5]
        elif q < 0.35:
            pred = "g6"
        return (pred, ref), {}

    def d_files(rng: np.random.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
        from _harness import _cif_text, _poscar_text

        kind = ("cif", "poscar")[int(rng.integers(2))]
        return (kind, _cif_text(rng) if kind == "cif" else _poscar_text(rng)), {}

    def c_files(kind: str, text: str) -> Any:
        d = tempfile.mkdtemp(prefix="lsfuzz")
        name = os.path.join(d, "x.cif" if kind == "cif" else "POSCAR")
        try:
            with open(name, "w") as fh:
                fh.write(text)
            return st.canonicalize_files(name, os.path.join(d, "out"))
        finally:
            for root, dirs, files in os.walk(d, topdown=False):
                for fn in files:
                    os.unlink(os.path.join(root, fn))
                for dn in dirs:
                    os.rmdir(os.path.join(root, dn))
            os.rmdir(d)

    out = [
        Target("structure.canonicalize", lambda rng: (hs(rng), kw_canon(rng)), st.canonicalize, v_canon,
               verify_every=2, bound_s=20.0),
        Target("structure.canonicalize_batch", d_batch, st.canonicalize_batch, v_batch, verify_every=3, bound_s=20.0),
        Target("structure.match", d_match, c_match, v_match, verify_every=1, bound_s=20.0),
        Target("structure.reference_match", d_ref, c_ref, v_match, verify_every=1, bound_s=20.0),
        Target("structure.match_batch", d_match_batch, c_match_batch, v_match_batch, verify_every=3, bound_s=30.0),
        Target("structure.csp_metrics", d_csp, c_csp, v_csp, verify_every=1, bound_s=30.0),
        Target("structure.as_structure", d_adapter, st.as_structure, v_as_structure, verify_every=3),
        Target("structure.as_batch", d_as_batch, st.as_batch, v_as_batch, verify_every=3),
        Target("structure.structure_validity", d_validity, st.structure_validity),
        Target("structure.lattice_errors", d_lattice_errors, st.lattice_errors),
        Target("structure.canonicalize_files", d_files, c_files, bound_s=20.0),
    ]
    if include_torch:
        out += _torch_structure_targets(Target, hs, kw_canon)
    return out


def _torch_structure_targets(Target: Any, hs: Any, kw_canon: Any) -> list[Any]:
    try:
        import torch

        import latticesym.structure as st
        import latticesym.torch as lt
    except ImportError:
        return []
    if not hasattr(lt, "canonicalize"):
        return []

    def d_tc(rng: np.random.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
        c = hs(rng)
        if len(c) != 3:
            return c, {}
        L, f, s = c
        dt = (torch.float64, torch.float64, torch.float32, torch.float16)[int(rng.integers(4))]
        try:
            Lt = torch.as_tensor(np.asarray(L, dtype=np.float64)).to(dt)
            ft = torch.as_tensor(np.asarray(f, dtype=np.float64)).to(dt)
            spec = torch.as_tensor(np.asarray(s, dtype=np.int64))
        except (ValueError, TypeError, OverflowError, RuntimeError):
            return (L, f, s), {}
        if rng.random() < 0.3:
            Lt = Lt.clone().requires_grad_(dt != torch.float16)
        return (Lt, ft, spec), kw_canon(rng)

    def v_tc(args: tuple[Any, ...], kwargs: dict[str, Any], r: Any) -> str | None:
        L, f, s = args
        if not (isinstance(L, torch.Tensor) and L.dtype == torch.float64 and L.dim() == 2):
            return None
        one = st.canonicalize(L.detach().numpy(), f.detach().numpy(), s.numpy(), **kwargs)
        lat = r.lattices[0] if r.lattices.dim() == 3 else r.lattices
        tr = r.transforms[0] if r.transforms.dim() == 3 else r.transforms
        if not (np.array_equal(tr.cpu().numpy(), one.transform) and np.array_equal(lat.detach().numpy(), one.lattice)
                and np.array_equal(r.frac.detach().numpy(), one.frac)):
            return "torch.canonicalize (float64) != structure.canonicalize"
        return None

    out = [Target("torch.canonicalize", d_tc, lt.canonicalize, v_tc, verify_every=3, bound_s=20.0)]
    BI = getattr(lt, "BasisInvariant", None)
    if BI is not None:
        out += _basis_invariant_target(Target, BI, hs)
    return out


def _basis_invariant_target(Target: Any, BI: Any, hs: Any) -> list[Any]:
    """``latticesym.torch.BasisInvariant`` around a model that is *not* basis-invariant (the first
    basis vector and the mean site, weighted by species): hostile structures, and the invariance
    itself on a re-based copy (outputs equal to within the conditioning of the bases)."""
    import torch

    def model(lattice: Any, frac: Any, species: Any) -> Any:
        # periodic in the sites (a wrapped coordinate within rounding of a cell face must not
        # jump), neither basis- nor rotation-invariant
        w = species.reshape(-1).to(lattice.dtype)[:, None] / 100.0
        ang = 2 * math.pi * frac
        return torch.cat([lattice[0] * lattice[0], (w * torch.cos(ang)).sum(0), (w * torch.sin(ang)).sum(0)])

    wrapped = BI(model)

    def as_t(c: Any) -> tuple[Any, ...]:
        L, f, s = c
        return (torch.as_tensor(np.asarray(L, dtype=np.float64)), torch.as_tensor(np.asarray(f, dtype=np.float64)),
                torch.as_tensor(np.asarray(s, dtype=np.int64)))

    def draw(rng: np.random.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if rng.random() < 0.5:
            cell = seed_structure(rng, max_atoms=4)
            try:
                cell = (cell[0], cell[1], np.asarray([int(v) for v in np.ravel(cell[2])]))
            except (TypeError, ValueError):
                cell = (cell[0], cell[1], np.arange(1, len(cell[1]) + 1))
            return (*as_t(cell), *as_t(rebased_copy(rng, cell))), {}
        c = hs(rng)
        if len(c) == 3:
            try:
                return as_t(c), {}
            except (TypeError, ValueError, OverflowError, RuntimeError):
                pass
        return c, {}

    def call(*args: Any) -> Any:
        if len(args) == 6:
            return wrapped(*args[:3]).detach(), wrapped(*args[3:]).detach()
        return wrapped(*args)

    def verify(args: tuple[Any, ...], kwargs: dict[str, Any], r: Any) -> str | None:
        if len(args) != 6:
            return None
        a, b = (np.asarray(v, dtype=np.float64) for v in r)
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            return f"nonfinite output {a.tolist()} on a finite structure"
        # the bases differ by integer transforms T with |T| ~ |L_in| / |shortest vector|: the
        # copy's rows (M @ L, rounded) and T @ L carry rounding errors of about u |T| |L_in|, so
        # agreement scales with cond = (longest input row / shortest lattice vector)**2 (up to
        # 1e11 on the sheared families), times the frame weights' slope (1 / band = 50) and a margin
        import latticesym

        short = math.sqrt(float(np.asarray(latticesym.niggli_reduce(args[0].numpy()).g6)[0]))
        cond = max(float(np.linalg.norm(args[i].numpy(), axis=1).max()) for i in (0, 3)) ** 2 / short**2
        rel = 1e-9 + 1e5 * 2.0**-53 * cond
        if not np.all(np.abs(a - b) <= rel * (1 + np.abs(a).max())):
            return f"not basis-invariant: {a.tolist()} vs {b.tolist()} on a re-based copy (cond {cond:.3g})"
        return None

    return [Target("torch.BasisInvariant", draw, call, verify, verify_every=1, bound_s=20.0)]
