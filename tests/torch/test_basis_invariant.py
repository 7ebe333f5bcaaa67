"""``latticesym.torch.BasisInvariant``: frame averaging over the near-reduced bases of a lattice.

What is checked (issue 10, point 5), each with a deliberately broken wrapper that the check catches:

- non-invariant featurizers (raw first-vector length, a fixed +-2 neighbour-shift sum, cell angles,
  an atom feature) fail :func:`latticesym.testing.invariance_error` bare and pass
  :func:`latticesym.testing.assert_basis_invariant` wrapped, on random re-bases (with rotations,
  permutations and lattice translations), on exact boundary cells (the boundary family and, with
  ``../shared/data``, one exact cell per lattice character of the 44, made with the exact oracle)
  and on both sides of those boundaries;
- continuity across a boundary, measured along a path through it: the bare canonical model jumps,
  the wrapped one moves by at most its Lipschitz bound per step;
- the completeness assumption of the construction (every basis in the band is reached from the
  reducer's basis by the det +1 half of ``S``) on boundary, extreme-aspect and real cells;
- gradients (``gradcheck`` in float64), agreement with ``f(canonicalize(x))`` away from
  boundaries, batched == single calls, invariant models left unchanged, typed errors.
"""

from __future__ import annotations

import csv
import itertools
import re
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from latticesym import families, niggli_reduce  # noqa: E402
from latticesym.datasets import load_structures, shared_data_dir  # noqa: E402
from latticesym.errors import LatticeShapeError, NonFiniteLatticeError, ReductionError  # noqa: E402
from latticesym.reference import is_niggli_reduced  # noqa: E402
from latticesym.structure import canonicalize  # noqa: E402
from latticesym.testing import (  # noqa: E402
    assert_basis_invariant,
    example_structure,
    invariance_error,
    random_transforms,
)
from latticesym.torch import BasisInvariant  # noqa: E402
from latticesym.torch import _frame_average as fa  # noqa: E402

F64 = torch.float64
RNG_SEED = 20261203
ATOL = 1e-12  # outputs that are zero by symmetry (cos 90 deg) come out as +-1e-17


# --------------------------------------------------------------------------- featurizers (not invariant)
def first_length(lattice: Any, frac: Any, species: Any) -> Any:
    """Length of the first basis vector (the issue's example)."""
    return lattice[0].norm()


_SHIFTS = torch.tensor(list(itertools.product(range(-2, 3), repeat=3)), dtype=F64)


def shift_sum(lattice: Any, frac: Any, species: Any) -> Any:
    """A Gaussian sum over the fixed +-2 neighbour shifts n L, n in {-2..2}^3 (the issue's example)."""
    r2 = ((_SHIFTS.to(lattice.dtype) @ lattice) ** 2).sum(-1)
    return torch.exp(-r2 / (lattice * lattice).sum() * 1.5).sum()


def cos_combo(lattice: Any, frac: Any, species: Any) -> Any:
    """cos(alpha) + 2 cos(beta) + 3 cos(gamma): jumps where the reduced basis changes at a boundary."""
    n = lattice.norm(dim=1)
    ca = (lattice[1] @ lattice[2]) / (n[1] * n[2])
    cb = (lattice[0] @ lattice[2]) / (n[0] * n[2])
    cg = (lattice[0] @ lattice[1]) / (n[0] * n[1])
    return ca + 2.0 * cb + 3.0 * cg


_W1 = torch.tensor([1.0, 2.0, 3.0], dtype=F64)
_W2 = torch.tensor([3.0, 1.0, 2.0], dtype=F64)


def atom_feature(lattice: Any, frac: Any, species: Any) -> Any:
    """A smooth periodic function of the fractional coordinates (permutation-invariant, basis-dependent)."""
    z = torch.as_tensor(np.asarray(species), dtype=frac.dtype) if not isinstance(species, torch.Tensor) \
        else species.to(frac.dtype)
    ang = 2.0 * torch.pi * frac
    per_atom = torch.sin(ang) @ _W1.to(frac.dtype) + torch.cos(ang) @ _W2.to(frac.dtype)
    return (z * per_atom).sum() / len(z) + 0.1 * (lattice[0] @ lattice[1]) / (lattice[0] @ lattice[0])


def invariant_model(lattice: Any, frac: Any, species: Any) -> Any:
    """Basis-invariant already: volume and the number of atoms (averaging must leave it unchanged)."""
    return torch.stack([torch.linalg.det(lattice).abs(), torch.tensor(float(len(frac)), dtype=lattice.dtype)])


FEATURIZERS = {"first_length": first_length, "shift_sum": shift_sum, "cos_combo": cos_combo,
               "atom_feature": atom_feature}


def canonical_model(fn: Any) -> Any:
    """The hard switch: ``fn`` on the single canonical structure (no averaging)."""

    def run(lattice: Any, frac: Any, species: Any) -> Any:
        r = canonicalize(lattice.detach().numpy(), frac.detach().numpy(), np.asarray(species))
        return fn(torch.tensor(r.lattice), torch.tensor(r.frac), torch.tensor(r.species))

    run.__qualname__ = f"canonical({fn.__name__})"
    return run


# --------------------------------------------------------------------------- cells
def lattice_from_g6(g6: Any) -> np.ndarray:
    """A lattice (rows) with this G6 vector: the Cholesky factor of its Gram matrix."""
    A, B, C, xi, eta, zeta = (float(x) for x in g6)
    gram = np.array([[A, zeta / 2, eta / 2], [zeta / 2, B, xi / 2], [eta / 2, xi / 2, C]])
    return np.linalg.cholesky(gram)


def _character_g6(row: dict[str, str], rng: np.random.Generator) -> tuple[Fraction, ...]:
    """An exact integer G6 meeting one ITA lattice character's conditions, certified by the exact oracle."""
    sp = pytest.importorskip("sympy")
    syms = sp.symbols("A B C D E F")
    names = dict(zip("ABCDEF", syms, strict=True))
    typ = row["niggli_type"]
    eqs = []
    text = ";".join(filter(None, [row["abc_condition"], row["def_conditions"]]))
    for clause in filter(None, (c.strip() for c in text.split(";"))):
        # |x| is -x in a type-II cell (D, E, F <= 0), x in a type-I cell
        clause = re.sub(r"\|([^|]+)\|", r"(-(\1))" if typ == "II" else r"(\1)", clause)
        clause = re.sub(r"(\d)([A-Za-z(])", r"\1*\2", clause)
        parts = [sp.sympify(p, locals=names) for p in clause.split("=")]
        eqs += [sp.Eq(parts[0], q) for q in parts[1:]]
    sol = sp.solve(eqs, syms, dict=True)[0] if eqs else {}
    free = [s for s in syms if s not in sol]
    for _ in range(20000):
        vals = {s: int(rng.integers(60, 120)) if str(s) in "ABC" else
                (int(rng.integers(1, 40)) if typ == "I" else -int(rng.integers(0, 40))) for s in free}
        full = [sp.Rational(sol[s].subs(vals)) if s in sol else sp.Rational(vals[s]) for s in syms]
        g = [Fraction(int(x.p), int(x.q)) for x in full]
        g6 = (g[0], g[1], g[2], 2 * g[3], 2 * g[4], 2 * g[5])
        if min(g6[:3]) <= 0 or not is_niggli_reduced(g6):
            continue
        if (typ == "I" and all(x > 0 for x in g6[3:])) or (typ == "II" and all(x <= 0 for x in g6[3:])):
            return g6
    raise AssertionError(f"no exact cell found for lattice character {row['number']}")


def character_cells() -> dict[int, np.ndarray]:
    """One exact (integer G6) cell per lattice character of the 44, or {} without ../shared/data."""
    shared = shared_data_dir()
    path = None if shared is None else shared / "niggli_44_lattice_characters.csv"
    if path is None or not path.exists():
        return {}
    rng = np.random.default_rng(RNG_SEED)
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {int(r["number"]): lattice_from_g6(_character_g6(r, rng)) for r in rows}


def boundary_cells(n: int = 14) -> list[np.ndarray]:
    """Exact boundary cells of the boundary family (cubic, fcc, bcc, tetragonal, ... in a random basis)."""
    cells = families.boundary(n, rng=np.random.default_rng(RNG_SEED))
    return [c for c, (_, exact) in zip(cells, families.boundary_labels(n), strict=True) if exact]


def atoms_for(rng: np.random.Generator, n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(0.0, 1.0, size=(n, 3)), rng.choice(np.array([1, 6, 8, 14]), size=n)


def t(x: Any) -> Any:
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


# --------------------------------------------------------------------------- invariance, random re-bases
@pytest.mark.invariance
@pytest.mark.parametrize("family", ["cubic", "hexagonal", "triclinic", "sheared", "flat"])
@pytest.mark.parametrize("name", sorted(FEATURIZERS))
def test_bare_fails_wrapped_passes_random_rebases(family: str, name: str) -> None:
    fn = FEATURIZERS[name]
    ex = example_structure(family, rng=np.random.default_rng(RNG_SEED))
    L, f, s = t(ex.lattice), t(ex.frac_coords), torch.as_tensor(ex.species)
    bare = invariance_error(fn, L, f, s, trials=6, atol=ATOL)
    assert not bare.passed, (family, name, bare.max_error)
    wrapped = BasisInvariant(fn)
    report = assert_basis_invariant(wrapped, L, f, s, trials=6, rotate=True, permute=True, translate=True,
                                    atol=ATOL)
    assert report.max_error < 1e-10


@pytest.mark.invariance
def test_real_structures_random_rebases() -> None:
    """Bundled real structures (carbon_24, perov_5): wrapped passes with rotations, GL(3,Z) re-bases."""
    cells = load_structures("carbon_24")[:3] + load_structures("perov_5")[:3]
    for c in cells:
        L, f, s = t(c.lattice), t(c.frac_coords), torch.as_tensor(np.asarray(c.species))
        assert not invariance_error(atom_feature, L, f, s, trials=6).passed
        assert_basis_invariant(BasisInvariant(atom_feature), L, f, s, trials=6, rotate=True, permute=True,
                               atol=ATOL)


# --------------------------------------------------------------------------- exact boundary cells
def _boundary_report(wrapper_of: Any, cells: list[np.ndarray], names: list[str], trials: int = 6
                     ) -> tuple[int, int]:
    """(failures, checks) of ``wrapper_of(fn)`` over cells x featurizers, random GL(3,Z) re-bases + rotations."""
    rng = np.random.default_rng(RNG_SEED + 1)
    failures = checks = 0
    for L in cells:
        f, s = atoms_for(rng)
        for name in names:
            report = invariance_error(wrapper_of(FEATURIZERS[name]), t(L), t(f), torch.as_tensor(s), trials=trials,
                                      rotate=True, atol=ATOL)
            checks += 1
            failures += not report.passed
    return failures, checks


@pytest.mark.invariance
def test_wrapped_invariant_on_exact_boundary_cells() -> None:
    cells = boundary_cells()
    names = ["atom_feature", "cos_combo"]
    failed, checks = _boundary_report(BasisInvariant, cells, names, trials=3)
    assert (failed, checks) == (0, 2 * len(cells))
    failed_bare, _ = _boundary_report(lambda fn: fn, cells, names, trials=3)
    assert failed_bare == checks
    # the hard switch (f on the one canonical structure) is not invariant on cells with lattice symmetry
    failed_canon, _ = _boundary_report(canonical_model, cells, ["atom_feature"], trials=3)
    assert failed_canon >= len(cells) // 2, failed_canon


@pytest.mark.invariance
@pytest.mark.skipif(shared_data_dir() is None, reason="needs ../shared/data (the 44 lattice characters)")
@pytest.mark.parametrize("names, trials", [
    (["atom_feature"], 3),
    pytest.param(["atom_feature", "cos_combo", "shift_sum"], 10, marks=pytest.mark.slow),
])
def test_wrapped_invariant_on_the_44_lattice_characters(names: list[str], trials: int) -> None:
    chars = character_cells()
    assert len(chars) == 44
    cells = [chars[k] for k in sorted(chars)]
    failed, checks = _boundary_report(BasisInvariant, cells, names, trials=trials)
    assert (failed, checks) == (0, 44 * len(names))
    failed_canon, _ = _boundary_report(canonical_model, cells, ["atom_feature"], trials=trials)
    assert failed_canon > 0


def _perturbed(L: np.ndarray, delta: float, rng: np.random.Generator) -> np.ndarray:
    """``L``'s reduced Gram matrix moved by ``delta`` times its shortest vector squared, in a random basis."""
    R = niggli_reduce(L).lattice
    g = R @ R.T
    d = rng.standard_normal((3, 3))
    d = (d + d.T) / 2
    moved = np.linalg.cholesky(g + delta * g[0, 0] * d / np.abs(d).max())  # A = shortest squared on the cone
    return random_transforms(1, max_entry=2, det="either", rng=rng)[0] @ moved


@pytest.mark.invariance
@pytest.mark.parametrize("delta", [0.002, 0.01, 0.05])
def test_wrapped_invariant_on_both_sides_of_boundaries(delta: float) -> None:
    """Cells moved off the boundary by less than (0.002, 0.01) and more than (0.05) the band 0.02."""
    rng = np.random.default_rng(RNG_SEED + 2)
    cells = [_perturbed(L, delta, rng) for L in boundary_cells() for _ in range(2)]
    failed, checks = _boundary_report(BasisInvariant, cells, ["atom_feature", "cos_combo"], trials=3)
    assert (failed, checks) == (0, 2 * len(cells))
    failed_bare, _ = _boundary_report(lambda fn: fn, cells, ["atom_feature", "cos_combo"], trials=3)
    assert failed_bare == checks  # the bare featurizers are not invariant on either side


# --------------------------------------------------------------------------- continuity across a boundary
def _path(kind: str, n: int = 121, half_width: float = 0.04) -> tuple[np.ndarray, list[np.ndarray]]:
    """Lattices along a straight G6 path through a Niggli boundary, each in a random basis and orientation.

    ``"sign"``: zeta goes through 0 (type I <-> type II: the reduced basis flips c);
    ``"equal"``: A - B goes through 0 (the reduced basis swaps a and b).  The parameter ``u`` is in
    units of the shortest vector squared (A = 1).
    """
    rng = np.random.default_rng(RNG_SEED + 3)
    us = np.linspace(-half_width, half_width, n)
    out = []
    for u in us:
        g6 = [1.0, 1.3, 1.7, 0.5, 0.3, u] if kind == "sign" else [1.0, 1.0 + u, 1.7, 0.9, 0.1, 0.2]
        if kind == "equal" and u < 0:
            g6 = [1.0 + u, 1.0, 1.7, 0.1, 0.9, 0.2]  # the same path, written with A <= B
        L = lattice_from_g6(g6)
        M = random_transforms(1, max_entry=2, det="either", rng=rng)[0]
        q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
        out.append(M @ L @ q.T)
    return us, out


def _outputs(model: Any, lattices: list[np.ndarray]) -> np.ndarray:
    f = torch.tensor([[0.1, 0.2, 0.3], [0.6, 0.5, 0.9]], dtype=F64)
    s = torch.tensor([6, 8])
    return np.array([float(model(t(L), f, s)) for L in lattices])


def continuity(model: Any, kind: str, band: float = 0.02) -> dict[str, float]:
    """Measured along the path: the largest step of the output and the bound a continuous F must meet.

    A frame average blends two values ``f-`` and ``f+`` with weights whose derivative in ``u`` is at
    most 1.875 / band (smootherstep's slope, ``d`` has slope <= 1 in ``u`` here), so one step ``du``
    moves it by at most about ``2 * 1.875 * |f+ - f-| * du / band``.
    """
    us, lattices = _path(kind)
    y = _outputs(model, lattices)
    du = float(us[1] - us[0])
    jump = abs(y[-1] - y[0])
    return {"max_step": float(np.abs(np.diff(y)).max()), "ends": jump,
            "bound": 2.0 * 1.875 * jump * du / band + 1e-9, "du": du}


@pytest.mark.parametrize("kind", ["sign", "equal"])
def test_bare_jumps_wrapped_is_continuous(kind: str) -> None:
    bare = continuity(canonical_model(cos_combo), kind)
    wrapped = continuity(BasisInvariant(cos_combo), kind)
    # bare: one step carries most of the change (a jump); wrapped: spread over the band
    assert bare["max_step"] > max(0.5 * bare["ends"], 0.2), bare
    assert wrapped["max_step"] <= wrapped["bound"], wrapped
    assert wrapped["max_step"] < 0.1 * bare["max_step"], (bare, wrapped)
    assert abs(wrapped["ends"] - bare["ends"]) < 1e-9  # outside the band both are f on the reduced cell


def test_continuity_check_catches_a_hard_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Broken wrapper: 0/1 weights (in the band or not) instead of smootherstep; still invariant, not continuous."""
    monkeypatch.setattr(fa, "smootherstep", lambda x: (x > 0.5).to(x.dtype))
    broken = continuity(BasisInvariant(cos_combo), "sign")
    assert broken["max_step"] > broken["bound"], broken


# --------------------------------------------------------------------------- broken wrappers
class _DropOne(BasisInvariant):
    """Broken: forgets the last candidate of every averaged structure."""

    def _plan(self, lattices: Any) -> Any:
        plan, U = super()._plan(lattices)
        b = plan.structure
        last = torch.ones_like(b, dtype=torch.bool)
        last[:-1] = b[1:] != b[:-1]
        counts = torch.bincount(b, minlength=plan.n_structures)
        keep = ~(last & (counts[b] > 1))
        k = int(keep.sum())
        return plan._replace(structure=b[keep], transform=plan.transform[keep], weight=plan.weight[keep],
                             distance=plan.distance[keep], n_evaluations=k, n_extra=k - plan.n_structures), U[keep]


class _IdentityOnly(BasisInvariant):
    """Broken: evaluates the reducer's basis only (the hard switch in wrapper form)."""

    def _plan(self, lattices: Any) -> Any:
        plan, U = super()._plan(lattices)
        b = plan.structure
        first = torch.ones_like(b, dtype=torch.bool)
        first[1:] = b[1:] != b[:-1]
        n = plan.n_structures
        return plan._replace(structure=b[first], transform=plan.transform[first], weight=plan.weight[first],
                             distance=plan.distance[first], n_evaluations=n, n_extra=0, n_averaged=0), U[first]


@pytest.mark.parametrize("broken", [_DropOne, _IdentityOnly])
def test_boundary_invariance_check_catches_incomplete_averages(broken: type) -> None:
    failed, checks = _boundary_report(broken, boundary_cells(), ["atom_feature"])
    assert failed >= 2, (broken.__name__, failed, checks)


def _invariant_model_error(wrapper_of: Any) -> float:
    rng = np.random.default_rng(RNG_SEED + 4)
    worst = 0.0
    for L in [*boundary_cells(), example_structure("triclinic", rng=rng).lattice]:
        f, s = atoms_for(rng)
        args = (t(L), t(f), torch.as_tensor(s))
        ref = invariant_model(*args)
        worst = max(worst, float(((wrapper_of(invariant_model)(*args) - ref).abs() / ref.abs()).max()))
    return worst


def test_invariant_model_is_unchanged() -> None:
    """Averaging an invariant model gives the model itself (normalised weights), on cells with 24+ candidates."""
    assert _invariant_model_error(BasisInvariant) < 1e-12


def test_unchanged_check_catches_unnormalised_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """Broken: the weighted sum without dividing by the total weight (still invariant and continuous)."""

    def unnormalised(out: Any, w: Any, owner: Any, n: int) -> Any:
        expand = (-1, *([1] * (out.ndim - 1)))
        return out.new_zeros((n, *out.shape[1:])).index_add(0, owner, w.reshape(expand) * out)

    monkeypatch.setattr(fa, "_weighted_mean", unnormalised)
    assert _invariant_model_error(BasisInvariant) > 1.0


# --------------------------------------------------------------------------- completeness of the enumeration
_U2: np.ndarray | None = None


def _unimodular_up_to_2() -> np.ndarray:
    """Every det +1 integer matrix with entries in {-2, ..., 2} (67704 of them)."""
    global _U2
    if _U2 is None:
        rows = np.array(list(itertools.product(range(-2, 3), repeat=3)), dtype=np.int64)  # 125 rows
        r0, r1 = np.meshgrid(np.arange(125), np.arange(125), indexing="ij")
        cross = np.cross(rows[r0.ravel()], rows[r1.ravel()])  # (125^2, 3)
        det = cross @ rows.T  # det [r0; r1; r2] = (r0 x r1) . r2
        i, k = np.nonzero(det == 1)
        _U2 = np.stack([rows[r0.ravel()[i]], rows[r1.ravel()[i]], rows[k]], 1)
    return _U2


def missed_bases(lattice: np.ndarray, band: float) -> int:
    """Bases U R (U in ``_unimodular_up_to_2``) within ``band`` of the cone that the enumeration does not reach."""
    wrapper = BasisInvariant(first_length, band=band)
    plan = wrapper.plan(t(lattice)[None])
    T = plan.transform[0].numpy()  # the reducer's right-handed basis R = T L (identity candidate first)
    R = T @ lattice
    g = R @ R.T
    U = _unimodular_up_to_2()
    scale = float(fa.shortest_vector_sq(torch.tensor([g[0, 0], g[1, 1], g[2, 2], 2 * g[1, 2], 2 * g[0, 2],
                                                      2 * g[0, 1]])))
    # prefilter on the diagonal (d >= A - B and d >= B - C), then the full distance on the survivors
    diag = np.einsum("kij,jl,kil->ki", U, g, U)
    U = U[(diag[:, 0] - diag[:, 1] < band * scale) & (diag[:, 1] - diag[:, 2] < band * scale)]
    gu = (U @ g) @ U.transpose(0, 2, 1)
    g6 = np.stack([gu[:, 0, 0], gu[:, 1, 1], gu[:, 2, 2], 2 * gu[:, 1, 2], 2 * gu[:, 0, 2], 2 * gu[:, 0, 1]], 1)
    d = fa.cone_distance(torch.tensor(g6)).numpy() / scale
    in_band = {tuple((u @ T).ravel()) for u in U[d < band * (1 - 1e-9)]}
    found = {tuple(m.ravel()) for m in plan.transform.numpy()}
    return len(in_band - found)


@pytest.mark.parametrize("band", [0.02, 0.2])
def test_enumeration_reaches_every_basis_in_the_band(band: float) -> None:
    """The assumption of the construction, measured: boundary, extreme-aspect and real cells, entries up to 2."""
    rng = np.random.default_rng(RNG_SEED + 5)
    cells = boundary_cells(14) + list(families.extreme_aspect(6, rng=rng))
    cells += [c.lattice for c in load_structures("carbon_24")[:2]]
    cells += [_perturbed(L, band / 2, rng) for L in boundary_cells()]
    missed = [missed_bases(L, band) for L in cells]
    assert sum(missed) == 0, missed


@pytest.mark.slow
@pytest.mark.skipif(shared_data_dir() is None, reason="needs ../shared/data (the 44 lattice characters)")
@pytest.mark.parametrize("band", [0.02, 0.1, 0.2])
def test_enumeration_reaches_every_basis_in_the_band_44_characters(band: float) -> None:
    rng = np.random.default_rng(RNG_SEED + 6)
    cells = list(character_cells().values()) + boundary_cells(56)
    cells += [c.lattice for name in ("carbon_24", "perov_5") for c in load_structures(name)[:40]]
    cells += [_perturbed(L, delta, rng) for L in cells for delta in (band / 4, band / 2)]
    cells += list(families.extreme_aspect(60, rng=rng))
    missed = [missed_bases(L, band) for L in cells]
    assert sum(missed) == 0, missed


def test_enumeration_check_catches_a_missing_member(monkeypatch: pytest.MonkeyPatch) -> None:
    """Broken table: S+ without one of the cubic automorphisms; the completeness check reports it."""
    table = fa._table(torch.device("cpu"))
    L = np.diag([3.0, 3.0, 3.0])
    plan = BasisInvariant(first_length).plan(t(L)[None])
    # drop the map from the reducer's basis to the second candidate
    M = np.rint(plan.transform[1].numpy() @ np.linalg.inv(plan.transform[0].numpy())).astype(np.int64)
    keep = torch.ones(len(table.mats), dtype=torch.bool)
    idx = int(np.nonzero((table.mats_np == M).all((1, 2)))[0][0])
    keep[idx] = False
    broken = fa._Table.__new__(fa._Table)
    broken.mats_np, broken.mats, broken.k = table.mats_np[keep.numpy()], table.mats[keep], table.k[keep]
    broken.k_flat = broken.k.permute(2, 0, 1).reshape(6, -1).contiguous()
    monkeypatch.setattr(fa, "_table", lambda device: broken)
    assert missed_bases(L, 0.02) >= 1


# --------------------------------------------------------------------------- gradients, agreement, batching
def _in_band_lattice() -> np.ndarray:
    return lattice_from_g6([1.0, 1.3, 1.7, 0.5, 0.3, 0.005])  # zeta = band / 4: two candidates, 0 < w < 1


@pytest.mark.parametrize("where", ["generic", "in_band"])
def test_gradcheck_float64(where: str) -> None:
    L0 = example_structure("triclinic", rng=np.random.default_rng(1)).lattice if where == "generic" \
        else _in_band_lattice()
    M = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 1]])
    wrapped = BasisInvariant(lambda L, f, s: cos_combo(L, f, s) + atom_feature(L, f, s))
    L = torch.tensor(M @ L0, requires_grad=True)
    f = torch.tensor([[0.1, 0.2, 0.3], [0.6, 0.5, 0.9]], dtype=F64, requires_grad=True)
    s = torch.tensor([6, 8])
    assert torch.autograd.gradcheck(lambda L_, f_: wrapped(L_, f_, s), (L, f), eps=1e-7, atol=1e-6)
    plan = wrapped.last_plan
    assert plan is not None
    assert plan.n_evaluations == (1 if where == "generic" else 2)
    if where == "in_band":
        assert 0.0 < float(plan.weight.detach().min()) < 1.0


def test_equals_model_on_canonical_structure_away_from_boundaries() -> None:
    rng = np.random.default_rng(RNG_SEED + 7)
    for family in ("triclinic", "sheared"):
        ex = example_structure(family, rng=rng)
        wrapped = BasisInvariant(atom_feature)
        got = float(wrapped(t(ex.lattice), t(ex.frac_coords), torch.as_tensor(ex.species)))
        assert wrapped.last_plan is not None and wrapped.last_plan.n_evaluations == 1
        ref = float(canonical_model(atom_feature)(t(ex.lattice), t(ex.frac_coords), ex.species))
        assert abs(got - ref) < 1e-12 * max(1.0, abs(ref)), (family, got, ref)


def _batched_feature(lattices: Any, frac: Any, species: Any, n_atoms: Any) -> Any:
    owner = torch.repeat_interleave(torch.arange(len(n_atoms)), n_atoms)
    ang = 2.0 * torch.pi * frac
    per_atom = species.to(frac.dtype) * (torch.sin(ang) @ _W1 + torch.cos(ang) @ _W2)
    sums = frac.new_zeros(len(n_atoms)).index_add(0, owner, per_atom) / n_atoms.to(frac.dtype)
    a, b = lattices[:, 0], lattices[:, 1]
    return sums + 0.1 * (a * b).sum(-1) / (a * a).sum(-1)


def test_batched_equals_single() -> None:
    rng = np.random.default_rng(RNG_SEED + 8)
    cells = [*boundary_cells()[:3], example_structure("triclinic", rng=rng).lattice, _in_band_lattice()]
    atoms = [atoms_for(rng, n) for n in (1, 3, 2, 4, 5)]
    single = torch.stack([BasisInvariant(atom_feature)(t(L), t(f), torch.as_tensor(s))
                          for L, (f, s) in zip(cells, atoms, strict=True)])
    batched = BasisInvariant(_batched_feature, batched=True)
    out = batched(t(np.stack(cells)), t(np.concatenate([f for f, _ in atoms])),
                  torch.as_tensor(np.concatenate([s for _, s in atoms])), torch.tensor([1, 3, 2, 4, 5]))
    assert out.shape == (5,)
    assert torch.allclose(out, single, rtol=0, atol=1e-12), (out - single)
    assert batched.last_plan is not None and batched.last_plan.n_averaged >= 4


def test_module_parameters_and_float32() -> None:
    lin = torch.nn.Linear(9, 2)
    wrapped = BasisInvariant(_LatticeNet(lin))
    assert {id(p) for p in wrapped.parameters()} == {id(p) for p in lin.parameters()}
    ex = example_structure("hexagonal", rng=np.random.default_rng(3))
    L = torch.tensor(ex.lattice, dtype=torch.float32)
    f = torch.tensor(ex.frac_coords, dtype=torch.float32)
    out = wrapped(L, f, torch.as_tensor(ex.species))
    assert out.dtype == torch.float32 and out.shape == (2,)
    assert_basis_invariant(wrapped, L, f, torch.as_tensor(ex.species), trials=5, rotate=True)
    out.sum().backward()
    assert lin.weight.grad is not None and torch.isfinite(lin.weight.grad).all()


class _LatticeNet(torch.nn.Module):  # type: ignore[name-defined]
    def __init__(self, lin: Any):
        super().__init__()
        self.lin = lin

    def forward(self, lattice: Any, frac: Any, species: Any) -> Any:
        return self.lin.to(lattice.dtype)(lattice.reshape(9))


def test_typed_errors() -> None:
    w = BasisInvariant(first_length)
    f, s = torch.zeros(1, 3, dtype=F64), torch.tensor([6])
    with pytest.raises(LatticeShapeError, match=r"\(3, 3\)"):
        w(torch.eye(2, dtype=F64), f, s)
    with pytest.raises(NonFiniteLatticeError, match="NaN"):
        w(torch.full((3, 3), float("nan"), dtype=F64), f, s)
    with pytest.raises(LatticeShapeError, match="species has 2 entries"):
        w(torch.eye(3, dtype=F64), f, torch.tensor([6, 8]))
    with pytest.raises(ValueError, match="band must be in"):
        BasisInvariant(first_length, band=0.0)
    with pytest.raises(ValueError, match="band >= 100"):
        BasisInvariant(first_length, band=0.02, eps=1e-3)
    with pytest.raises(ValueError, match="orientation"):
        BasisInvariant(first_length, orientation="nope")
    with pytest.raises(TypeError, match="callable"):
        BasisInvariant(3)  # type: ignore[arg-type]
    # a reducer that does not reduce: its basis is far outside the cone
    lazy = BasisInvariant(first_length, reduce=lambda L: torch.eye(3, dtype=F64).expand(len(L), 3, 3))
    with pytest.raises(ReductionError, match="outside the closed Niggli cone"):
        lazy(torch.tensor([[1.0, 0, 0], [5.0, 1, 0], [0, 0, 1]], dtype=F64), f, s)
    fractional = BasisInvariant(first_length, reduce=lambda L: 0.5 * torch.eye(3, dtype=F64).expand(len(L), 3, 3))
    with pytest.raises(ReductionError, match="integer transforms"):
        fractional(torch.eye(3, dtype=F64), f, s)
