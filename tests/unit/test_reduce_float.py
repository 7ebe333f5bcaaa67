"""The float64 Niggli reducer: contract, agreement with the exact oracle, invalid input, escalation.

Every result is checked by :func:`latticesym.reduce._certify.result_violations`, an exact
``Fraction`` re-derivation that shares no step logic with the reducer; the "test the tester"
tests break the reducer on purpose and require those checks to notice.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from latticesym.errors import (
    BatchReductionError,
    LatticeError,
    LatticeShapeError,
    NonFiniteLatticeError,
    PrecisionError,
    ReductionError,
    SingularLatticeError,
)
from latticesym.groups import random_unimodular
from latticesym.metric import lattice_from_parameters
from latticesym.reduce import Arithmetic, ReduceStatus, is_niggli_reduced, niggli_reduce
from latticesym.reduce._certify import relaxed_niggli_violations, result_violations
from latticesym.reduce._kg import A1, A3, A4, A5, A6, A7, A8
from latticesym.reference import niggli_reduce as exact_reduce


# --------------------------------------------------------------------------- case families
def _physical(rng: np.random.Generator) -> np.ndarray:
    while True:
        abc = rng.uniform(2.0, 10.0, 3)
        ang = rng.uniform(60.0, 120.0, 3)
        try:
            lat = lattice_from_parameters(*abc, *ang)
        except LatticeError:
            continue
        q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
        return lat @ q.T


def _sheared(rng: np.random.Generator, max_entry: int) -> np.ndarray:
    m = random_unimodular(1, max_entry=max_entry, det=1, rng=rng)[0]
    return m.astype(np.float64) @ _physical(rng)


def _relative_volume(lat: np.ndarray) -> float:
    det = float(abs(np.prod(np.linalg.qr(lat.T)[1].diagonal())))
    return det / float(np.prod(np.linalg.norm(lat, axis=1)))


def _near_singular(rng: np.random.Generator, target: float) -> np.ndarray:
    """A sheared physical cell whose input basis has relative volume about ``target``."""
    base = _physical(rng)
    k = max(2, round(target ** -0.5))
    m = np.array([[1, 0, 0], [k, 1, 0], [k * k + 1, k, 1]], dtype=np.int64)
    perm = rng.permutation(3)
    m = m[perm][:, perm]
    if round(np.linalg.det(m)) < 0:
        m[0] = -m[0]
    return m.astype(np.float64) @ base


def _extreme(rng: np.random.Generator, ratio: float) -> np.ndarray:
    ang = rng.uniform(75.0, 105.0, 3)
    kind = rng.integers(3)
    abc = [(1.0, 1.3, ratio), (1.0, ratio ** 0.5, ratio), (1.0, ratio, 1.2 * ratio)][kind]
    lat = lattice_from_parameters(*abc, *ang)
    return random_unimodular(1, max_entry=3, det=1, rng=rng)[0].astype(np.float64) @ lat


def _cases() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(20260311)
    out = [(f"physical-{i}", _physical(rng)) for i in range(12)]
    out += [(f"sheared-{m:g}-{i}", _sheared(rng, m)) for m in (10, 1000, 10**6) for i in range(5)]
    out += [(f"near-singular-{t:g}", _near_singular(rng, t)) for t in (1e-3, 1e-6, 1e-9, 1e-12)]
    out += [(f"extreme-{r:g}-{i}", _extreme(rng, r)) for r in (1e3, 1e5, 1e8) for i in range(3)]
    out += [(f"scaled-{s:g}-{i}", s * _physical(rng)) for s in (1e-8, 1e8) for i in range(3)]
    return out


CASES = _cases()
IDS = [name for name, _ in CASES]
LATTICES = [lat for _, lat in CASES]


def _boundary_distance(g6: tuple[Fraction, ...]) -> Fraction:
    A, B, C, xi, eta, zeta = g6
    return min(abs(A - B), abs(B - C), abs(abs(xi) - B), abs(abs(eta) - A), abs(abs(zeta) - A),
               abs(xi), abs(eta), abs(zeta), abs(xi + eta + zeta + A + B))


def _assert_certified(lat_in: np.ndarray, r: object) -> None:
    __tracebackhide__ = True
    bad = result_violations(lat_in, r.transform, r.lattice, r.g6, r.tolerance)  # type: ignore[attr-defined]
    assert not bad, f"result not certified: {bad}"


# --------------------------------------------------------------------------- contract
@pytest.mark.parametrize("lat", LATTICES, ids=IDS)
def test_contract(lat: np.ndarray) -> None:
    r = niggli_reduce(lat)
    assert r.status == ReduceStatus.OK
    assert r.transform.dtype == np.int64 and round(np.linalg.det(r.transform.astype(float))) == 1
    _assert_certified(lat, r)
    assert is_niggli_reduced(r.lattice)
    # idempotent: reducing the output changes nothing but an automorphism
    r2 = niggli_reduce(r.lattice)
    np.testing.assert_allclose(r2.g6, r.g6, rtol=0, atol=1e-12 * np.max(r.g6))
    assert abs(round(np.linalg.det(r2.transform.astype(float)))) == 1


@pytest.mark.parametrize("lat", LATTICES, ids=IDS)
def test_agrees_with_exact_oracle(lat: np.ndarray) -> None:
    r = niggli_reduce(lat)
    ex = exact_reduce(lat)
    ref = np.array([float(v) for v in ex.g6])
    scale = np.max(np.abs(ref))
    if np.max(np.abs(r.g6 - ref)) <= 1e-6 * scale:
        return
    # within a few e of a Niggli boundary the tolerant form may differ: then basis independence
    assert _boundary_distance(ex.g6) <= 8 * Fraction(r.tolerance), (r.g6, ref)
    assert_basis_independent(r.lattice)


def _round_bits(x: np.ndarray, bits: int) -> np.ndarray:
    m, k = np.frexp(x)
    return np.ldexp(np.round(np.ldexp(m, bits)), k - bits)


def assert_basis_independent(lat: np.ndarray, trials: int = 4) -> None:
    """G6 of reduce(M @ L) equals that of reduce(L) within 16 e, for M @ L exact in float64."""
    __tracebackhide__ = True
    lat = _round_bits(lat, 20)  # so that M @ lat is exact for small M: the same lattice
    base = niggli_reduce(lat)
    rng = np.random.default_rng(7)
    for m in random_unimodular(trials, max_entry=5, det=1, rng=rng):
        other_lat = m.astype(np.float64) @ lat
        exact = [[sum(Fraction(int(m[i, k])) * Fraction(lat[k, j]) for k in range(3)) for j in range(3)]
                 for i in range(3)]
        if any(Fraction(other_lat[i, j]) != exact[i][j] for i in range(3) for j in range(3)):
            continue
        other = niggli_reduce(other_lat)
        diff = np.max(np.abs(other.g6 - base.g6))
        assert diff <= 16 * base.tolerance, (base.g6, other.g6, base.tolerance)


def test_krivy_gruber_example() -> None:
    # Krivy & Gruber (1976): G6 (9, 27, 4, -5, -4, -22) reduces to (4, 9, 9, 9, 3, 4)
    from latticesym.metric import g6_to_gram

    gram = g6_to_gram([9, 27, 4, -5, -4, -22])
    lat = np.linalg.cholesky(gram)
    r = niggli_reduce(lat, eps=1e-9)
    np.testing.assert_allclose(r.g6, [4, 9, 9, 9, 3, 4], atol=1e-9)


def test_shear_one_million_is_logarithmic() -> None:
    # dyadic entries: m @ lat is exact in float64, so it is the same lattice as lat
    lat = np.array([[3.0, 0.125, 0.25], [0.375, 4.0, 0.125], [0.25, 0.125, 5.0]])
    m = np.array([[1, 0, 0], [10**6, 1, 0], [3 * 10**5, -7 * 10**5, 1]], dtype=np.int64)
    r = niggli_reduce(m.astype(float) @ lat)
    assert r.iterations < 60
    ref = niggli_reduce(lat)
    np.testing.assert_allclose(r.g6, ref.g6, rtol=1e-12)
    # unimodular bases with entries up to 1e6 of many random physical cells (16-bit entries: exact)
    rng = np.random.default_rng(3)
    ms = random_unimodular(200, max_entry=10**6, det=1, rng=rng)
    base = _round_bits(np.stack([_physical(rng) for _ in range(200)]), 12)
    sheared = ms.astype(np.float64) @ base
    for k in range(0, 200, 20):
        assert all(Fraction(sheared[k, i, j]) == sum(Fraction(int(ms[k, i, q])) * Fraction(base[k, q, j])
                                                      for q in range(3)) for i in range(3) for j in range(3))
    rs = niggli_reduce(sheared)
    assert rs.ok.all() and rs.iterations.max() < 100
    np.testing.assert_allclose(rs.g6, niggli_reduce(base).g6, rtol=1e-12, atol=0)


def test_scale_invariance() -> None:
    rng = np.random.default_rng(11)
    for _ in range(20):
        lat = _sheared(rng, 50)
        base = niggli_reduce(lat)
        for t in (1e-8, 1e8):
            r = niggli_reduce(t * lat)
            np.testing.assert_array_equal(r.transform, base.transform)
            np.testing.assert_allclose(r.g6, t * t * base.g6, rtol=1e-12, atol=1e-9 * t * t * base.g6.max())
        # powers of two: bit-identical decisions and outputs
        r = niggli_reduce(2.0**-300 * lat)
        np.testing.assert_array_equal(r.transform, base.transform)
        np.testing.assert_array_equal(r.lattice, 2.0**-300 * base.lattice)


def test_tolerance_units_and_eps_zero() -> None:
    lat = np.diag([2.0, 3.0, 4.0])
    r = niggli_reduce(lat)
    assert r.tolerance == pytest.approx(1e-5 * 24.0 ** (2 / 3), rel=1e-14)
    cubic = np.eye(3) * 3.0
    with pytest.raises(PrecisionError):  # eps = 0: exact ties are undecidable in float64
        niggli_reduce(cubic, eps=0.0, precision="float")
    r0 = niggli_reduce(cubic, eps=0.0)
    assert r0.arithmetic in (Arithmetic.MPMATH, Arithmetic.EXACT)
    np.testing.assert_array_equal(r0.g6, [9, 9, 9, 0, 0, 0])


# --------------------------------------------------------------------------- near-singular inputs
@pytest.mark.parametrize("target", [1e-3, 1e-6, 1e-9, 1e-12, 1e-15])
def test_near_singular(target: float) -> None:
    rng = np.random.default_rng(int(-np.log10(target)))
    lats = np.stack([_near_singular(rng, target) for _ in range(10)])
    r = niggli_reduce(lats)
    assert r.ok.all()
    for lat, t, out, g6, e in zip(lats, r.transform, r.lattice, r.g6, r.tolerance):
        assert not result_violations(lat, t, out, g6, e)
    if target >= 1e-12:  # float64 with Dot2 decides these without escalation
        assert (r.arithmetic == Arithmetic.FLOAT64).all()


def test_accurate_product_is_needed() -> None:
    # a plain float T @ L loses the short vectors of this cell; Dot2 keeps them
    lat = _near_singular(np.random.default_rng(5), 1e-12)
    r = niggli_reduce(lat)
    naive = r.transform.astype(np.float64) @ lat
    exact = [[float(sum(Fraction(int(r.transform[i, k])) * Fraction(lat[k, j]) for k in range(3)))
              for j in range(3)] for i in range(3)]
    np.testing.assert_array_equal(r.lattice, exact)
    assert np.max(np.abs(naive - exact)) > 1e-6 * np.max(np.abs(exact))


def test_precision_float_raises_where_auto_escalates() -> None:
    # relative volume ~1e-20: the comparisons need more than float64
    lat = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1e-20]])
    m = np.array([[1, 0, 0], [3, 1, 0], [5, 7, 1]], dtype=np.float64)
    sheared = m @ lat
    r = niggli_reduce(sheared)
    assert r.status == ReduceStatus.OK
    _assert_certified(sheared, r)
    with pytest.raises(PrecisionError):
        niggli_reduce(sheared, precision="float")


# --------------------------------------------------------------------------- invalid input
@pytest.mark.parametrize("bad, err", [
    (np.full((3, 3), np.nan), NonFiniteLatticeError),
    (np.array([[np.inf, 0, 0], [0, 1, 0], [0, 0, 1]]), NonFiniteLatticeError),
    (np.zeros((3, 3)), SingularLatticeError),
    (np.array([[1.0, 2, 3], [2, 4, 6], [0, 0, 1]]), SingularLatticeError),
    (np.array([[1.0, 0, 0], [0, 1, 0], [1, 1, 0]]), SingularLatticeError),
    (np.eye(2), LatticeShapeError),
    (np.ones(9), LatticeShapeError),
    (np.ones((3, 4)), LatticeShapeError),
    ([[1, 0, 0], [0, 1], [0, 0, 1]], LatticeShapeError),
    (np.array([["a", "b", "c"]] * 3), TypeError),
    (np.eye(3) * (1 + 1j), TypeError),
    (np.eye(3, dtype=bool), TypeError),
    ("abc", TypeError),
])
def test_invalid_input(bad: object, err: type[Exception]) -> None:
    with pytest.raises(err):
        niggli_reduce(bad)  # type: ignore[arg-type]


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        niggli_reduce(np.eye(3), eps=-1.0)
    with pytest.raises(ValueError):
        niggli_reduce(np.eye(3), eps=float("nan"))
    with pytest.raises(TypeError):
        niggli_reduce(np.eye(3), eps="1e-5")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        niggli_reduce(np.eye(3), max_iter=0)
    with pytest.raises(ValueError):
        niggli_reduce(np.eye(3), precision="double")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        niggli_reduce(np.eye(3), errors="ignore")  # type: ignore[arg-type]


def test_batch_errors_raise_and_mask() -> None:
    good = np.eye(3) * 2.0
    batch = np.stack([good, np.full((3, 3), np.nan), good, np.zeros((3, 3))]).reshape(2, 2, 3, 3)
    with pytest.raises(BatchReductionError) as info:
        niggli_reduce(batch)
    assert info.value.failed == [(0, 1), (1, 1)]
    assert isinstance(info.value.errors[0], NonFiniteLatticeError)
    assert isinstance(info.value.errors[1], SingularLatticeError)
    r = niggli_reduce(batch, errors="mask")
    assert r.failed == [(0, 1), (1, 1)]
    assert r.status[0, 1] == ReduceStatus.NONFINITE and r.status[1, 1] == ReduceStatus.SINGULAR
    assert np.isnan(r.g6[0, 1]).all() and (r.transform[1, 1] == 0).all()
    np.testing.assert_array_equal(r.g6[0, 0], [4, 4, 4, 0, 0, 0])
    assert r.ok.tolist() == [[True, False], [True, False]]


def test_max_iter_raises_with_state() -> None:
    lat = _sheared(np.random.default_rng(2), 1000)
    with pytest.raises(ReductionError) as info:
        niggli_reduce(lat, max_iter=1)
    assert info.value.iterations >= 1
    r = niggli_reduce(np.stack([lat, lat]), max_iter=1, errors="mask")
    assert (r.status == ReduceStatus.NOT_CONVERGED).all()


def test_result_is_frozen() -> None:
    r = niggli_reduce(np.stack([np.eye(3), 2 * np.eye(3)]))
    with pytest.raises(ValueError):
        r.lattice[0, 0, 0] = 1.0
    with pytest.raises(AttributeError):
        r.g6 = None  # type: ignore[misc]


def test_is_niggli_reduced() -> None:
    assert is_niggli_reduced(np.eye(3))
    assert not is_niggli_reduced([[1.0, 0, 0], [1, 1, 0], [0, 0, 1]])
    assert is_niggli_reduced(np.stack([np.eye(3), np.eye(3)[[1, 0, 2]] * [[1], [-1], [-1]]])).tolist() == [True, True]
    # within the tolerance: A slightly larger than B but within e counts as equal
    assert is_niggli_reduced(np.diag([1.0 + 1e-9, 1.0, 1.0]))
    assert not is_niggli_reduced(np.diag([1.0 + 1e-9, 1.0, 1.0]), eps=0.0)
    with pytest.raises(SingularLatticeError):
        is_niggli_reduced(np.zeros((3, 3)))
    with pytest.raises(NonFiniteLatticeError):
        is_niggli_reduced(np.full((3, 3), np.inf))
    rng = np.random.default_rng(4)
    for lat in [_sheared(rng, 20) for _ in range(20)]:
        r = niggli_reduce(lat)
        assert is_niggli_reduced(r.lattice)
        # the predicate is the reducer's own step logic: reduced iff zero steps are taken
        assert niggli_reduce(lat).iterations > 0 or is_niggli_reduced(lat)


# --------------------------------------------------------------------------- test the tester
# G6 vectors that need one particular step after pre-reduction (which already size-reduces)
_NEEDS = {
    A1: (9, 4, 10, 1, 1, 1),
    A3: (4, 9, 10, -1, -1, 1),
    A4: (4, 9, 10, 1, 1, -1),
    A5: (4, 9, 10, 9.02, 1, 1),
    A6: (4, 9, 10, 1, 4.01, 1),
    A7: (4, 9, 10, 1, 1, 4.01),
    A8: (4, 9, 10, -8, -3, -3),
}


@pytest.mark.parametrize("step", sorted(_NEEDS))
@pytest.mark.parametrize("backend", ["numpy", "python", "numba"])
def test_broken_reducer_is_caught(step: int, backend: str) -> None:
    """A reducer with one Krivy-Gruber step skipped (in its decisions *and* its self-check)."""
    from latticesym.metric import g6_to_gram

    lat = np.linalg.cholesky(g6_to_gram(_NEEDS[step]))
    good = niggli_reduce(lat, backend=backend)
    assert not result_violations(lat, good.transform, good.lattice, good.g6, good.tolerance)
    r = niggli_reduce(lat, backend=backend, _skip=1 << step, errors="mask", precision="float")
    assert r.ok  # the broken reducer believes it succeeded ...
    assert result_violations(lat, r.transform, r.lattice, r.g6, r.tolerance)  # ... the checker does not
    assert not is_niggli_reduced(r.lattice)


def test_tampered_results_are_caught() -> None:
    lat = _sheared(np.random.default_rng(9), 30)
    r = niggli_reduce(lat)
    assert not result_violations(lat, r.transform, r.lattice, r.g6, r.tolerance)
    t = r.transform.copy()
    t[0] = -t[0]  # det -1
    assert result_violations(lat, t, r.lattice, r.g6, r.tolerance)
    out = r.lattice.copy()
    out[1, 2] *= 1 + 1e-12  # not T @ L to rounding
    assert result_violations(lat, r.transform, out, r.g6, r.tolerance)
    g6 = r.g6.copy()
    g6[3] = -g6[3]
    assert result_violations(lat, r.transform, r.lattice, g6, r.tolerance)
    assert relaxed_niggli_violations((2, 1, 3, 0, 0, 0), 0)  # A > B


def test_eps_monotone_tolerance_is_relative() -> None:
    lat = np.diag([1.0, 1.0 + 1e-7, 1.0 + 2e-7]) @ np.array([[1.0, 0, 0], [0.3, 1, 0], [0.2, 0.1, 1]])
    for eps in (1e-9, 1e-5, 1e-2):
        r = niggli_reduce(lat, eps=eps)
        _assert_certified(lat, r)
        assert r.tolerance == pytest.approx(eps * abs(np.linalg.det(lat)) ** (2 / 3), rel=1e-9)


def test_float_cycle_is_a_precision_error_carrying_state() -> None:
    """A near-singular cell whose tolerant float comparisons contradict each other (found by the
    stress suite, relative volume ~1e-19): ``precision="float"`` raises a PrecisionError that also
    carries the ReductionError state; ``"auto"`` escalates and agrees with the exact oracle."""
    import latticesym
    from latticesym.errors import PrecisionError, ReductionCycleError, ReductionError

    lattice = np.array([
        [64.79556341073034, 58.90622814620219, 24.282034632820555],
        [-24.04335989151296, -29.018694275138422, -1.4696218914921337],
        [-37.65345138565955, -68.60225874579592, 22.084256479677226],
    ])
    with pytest.raises(PrecisionError) as info:
        latticesym.niggli_reduce(lattice, precision="float")
    assert isinstance(info.value, ReductionCycleError) and isinstance(info.value, ReductionError)
    assert info.value.iterations > 0
    result = latticesym.niggli_reduce(lattice)
    assert result.g6[1] == pytest.approx(183.660186, rel=1e-6)
