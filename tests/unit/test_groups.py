"""Unit tests of latticesym.groups: GL(3, Z) samplers, the finite ball, exact rotations.

Every check of unimodularity here is exact (Python-int determinants), never ``np.linalg.det``.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import sympy

from latticesym import groups
from latticesym.groups import (
    cayley_rotation,
    exact_det,
    is_unimodular,
    random_rational_rotation,
    random_rotation,
    random_unimodular,
    unimodular_ball,
)

DETS: tuple[Any, ...] = (1, -1, "either")


# --------------------------------------------------------------------------- validation helper
def python_det(m: Any) -> int:
    """Determinant of a 3x3 integer matrix with Python ints (independent of the module)."""
    a = [[int(x) for x in row] for row in np.asarray(m).tolist()]
    return (
        a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
        - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
        + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
    )


def unimodular_failures(batch: Any, *, n: int, max_entry: int, det: Any) -> list[str]:
    """Everything wrong with a sampler's output (empty when it meets the contract)."""
    out: list[str] = []
    arr = np.asarray(batch)
    if arr.dtype != np.int64:
        out.append(f"dtype {arr.dtype}, expected int64")
    if arr.shape != (n, 3, 3):
        out.append(f"shape {arr.shape}, expected {(n, 3, 3)}")
        return out
    if arr.dtype.kind not in "iu":
        return out
    allowed = {1, -1} if det == "either" else {det}
    for idx, m in enumerate(arr):
        d = python_det(m)
        if d not in allowed:
            out.append(f"matrix {idx} has det {d}, expected {sorted(allowed)}: {m.tolist()}")
        big = max(abs(int(x)) for x in m.ravel())
        if big > max_entry:
            out.append(f"matrix {idx} has entry {big} > max_entry={max_entry}")
    return out


def assert_unimodular_batch(batch: Any, *, n: int, max_entry: int, det: Any) -> None:
    __tracebackhide__ = True
    bad = unimodular_failures(batch, n=n, max_entry=max_entry, det=det)
    if bad:
        raise AssertionError(f"{len(bad)} problems, first: " + "; ".join(bad[:3]))


def test_validation_helper_catches_broken_samplers() -> None:
    """Test the tester: outputs that break the contract are reported."""
    good = random_unimodular(5, max_entry=2, det=1, rng=np.random.default_rng(0))
    assert_unimodular_batch(good, n=5, max_entry=2, det=1)

    def det_two_sampler(n: int, **_: Any) -> np.ndarray:
        out = np.broadcast_to(np.eye(3, dtype=np.int64), (n, 3, 3)).copy()
        out[-1, 0, 0] = 2  # one bad matrix in the batch
        return out

    broken = {
        "det 2": det_two_sampler(5),
        "det -1 when +1 asked": np.broadcast_to(np.diag([1, 1, -1]), (5, 3, 3)).astype(np.int64),
        "float": good.astype(np.float64),
        "too large": np.broadcast_to(np.array([[1, 3, 0], [0, 1, 0], [0, 0, 1]]), (5, 3, 3)).astype(np.int64),
        "wrong shape": good[:4],
        # float det rounds this to exactly 0, the exact check sees det == 1
    }
    for name, batch in broken.items():
        with pytest.raises(AssertionError):
            assert_unimodular_batch(batch, n=5, max_entry=2, det=1)
        assert unimodular_failures(batch, n=5, max_entry=2, det=1), name


def test_validation_helper_is_exact_where_float_det_is_not() -> None:
    fib = np.array([[165580141, 102334155, 0], [102334155, 63245986, 0], [0, 0, 1]], dtype=np.int64)
    assert abs(np.linalg.det(fib.astype(float)) - 1) > 0.5  # float det is useless here
    assert_unimodular_batch(fib[None], n=1, max_entry=2 * 10**8, det=1)
    assert exact_det(fib) == 1
    assert is_unimodular(fib) is True
    assert is_unimodular(fib + np.diag([0, 0, 1])) is False


# --------------------------------------------------------------------------- the ball
@pytest.fixture(scope="module")
def brute_force_ball_1() -> dict[int, set[tuple[int, ...]]]:
    """The k=1 ball by brute force over all 3**9 matrices, with Python-int determinants."""
    out: dict[int, set[tuple[int, ...]]] = {1: set(), -1: set()}
    for entries in itertools.product((-1, 0, 1), repeat=9):
        d = python_det(np.array(entries).reshape(3, 3))
        if d in out:
            out[d].add(entries)
    return out


def test_ball_1_size_and_content(brute_force_ball_1: dict[int, set[tuple[int, ...]]]) -> None:
    assert len(brute_force_ball_1[1]) == 3480
    assert len(brute_force_ball_1[-1]) == 3480
    for det in (1, -1):
        ball = unimodular_ball(1, det)
        assert ball.dtype == np.int64 and ball.shape == (3480, 3, 3)
        assert {tuple(m.ravel().tolist()) for m in ball} == brute_force_ball_1[det]
    either = unimodular_ball(1, "either")
    assert len(either) == 6960 and len({m.tobytes() for m in either}) == 6960


def test_ball_2_size_and_content() -> None:
    for det in (1, -1):
        ball = unimodular_ball(2, det)
        assert ball.shape == (67704, 3, 3)
        assert int(np.abs(ball).max()) == 2
        assert len({m.tobytes() for m in ball}) == len(ball)
        assert {int(d) for d in exact_det(ball[::97])} == {det}
    # independent count: every box matrix with |det| == 1 (float det is exact at these sizes)
    vals = np.arange(-2, 3)
    grid = np.stack(np.meshgrid(*([vals] * 9), indexing="ij"), axis=-1).reshape(-1, 3, 3)
    d = np.rint(np.linalg.det(grid.astype(np.float64))).astype(np.int64)
    assert int((d == 1).sum()) == 67704 and int((d == -1).sum()) == 67704


def test_ball_is_cached_and_read_only() -> None:
    assert unimodular_ball(2, 1) is unimodular_ball(2, 1)
    with pytest.raises(ValueError):
        unimodular_ball(1)[0, 0, 0] = 5


@pytest.mark.parametrize("det", [1, -1])
def test_ball_sampler_reaches_every_element_uniformly(
    det: Any, brute_force_ball_1: dict[int, set[tuple[int, ...]]]
) -> None:
    # Coupon collector: 3480 * H_3480 ~ 30,400 draws expected to see all; with 120,000 draws the
    # chance of missing one is < 3480 * exp(-120000 / 3480) ~ 4e-12 (and the seed is fixed).
    draws = 120_000
    m = random_unimodular(draws, max_entry=1, det=det, rng=np.random.default_rng(2024), method="ball")
    assert_unimodular_batch(m[:2000], n=2000, max_entry=1, det=det)
    counts = Counter(tuple(x) for x in m.reshape(draws, 9).tolist())
    assert set(counts) == brute_force_ball_1[det]
    # Chi-square against uniform: df = 3479, mean df, sd sqrt(2 df) ~ 83; accept within 6 sd.
    cells = len(brute_force_ball_1[det])
    expected = draws / cells
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    df = cells - 1
    assert abs(chi2 - df) < 6 * math.sqrt(2 * df), chi2


def test_ball_sampler_either_hits_both_signs_equally() -> None:
    m = random_unimodular(20_000, max_entry=1, det="either", rng=np.random.default_rng(3), method="ball")
    dets = np.array([python_det(x) for x in m[:4000]])
    assert set(dets.tolist()) == {1, -1}
    assert abs((dets == 1).mean() - 0.5) < 0.05


@pytest.mark.parametrize("k", [3, 4, 6])
@pytest.mark.parametrize("det", DETS)
def test_rejection_ball_sampler(k: int, det: Any) -> None:
    m = random_unimodular(300, max_entry=k, det=det, rng=np.random.default_rng(k), method="ball")
    assert_unimodular_batch(m, n=300, max_entry=k, det=det)
    assert int(np.abs(m).max()) == k  # the bound is reached


# --------------------------------------------------------------------------- the word sampler
@pytest.mark.parametrize("max_entry", [1, 2, 7, 100, 10**6, 10**12, 2**53])
@pytest.mark.parametrize("det", DETS)
def test_word_sampler_contract(max_entry: int, det: Any) -> None:
    m = random_unimodular(60, max_entry=max_entry, det=det, rng=np.random.default_rng(11), method="word")
    assert_unimodular_batch(m, n=60, max_entry=max_entry, det=det)


def test_word_sampler_reaches_large_entries() -> None:
    m = random_unimodular(100, max_entry=10**6, rng=np.random.default_rng(5), method="word")
    biggest = np.abs(m).max(axis=(1, 2))
    assert int(biggest.max()) >= 10**4
    assert int(biggest.max()) <= 10**6
    assert np.median(biggest) >= 10**4  # typical, not only the luckiest draw


def test_word_sampler_length_zero_is_a_signed_permutation() -> None:
    m = random_unimodular(50, max_entry=10, det=-1, rng=np.random.default_rng(0), method="word", length=0)
    assert_unimodular_batch(m, n=50, max_entry=1, det=-1)
    assert (np.abs(m).sum(axis=1) == 1).all() and (np.abs(m).sum(axis=2) == 1).all()


def test_auto_method_choice() -> None:
    for k in (1, 2, 3, 6, 7, 1000):
        m = random_unimodular(40, max_entry=k, det=1, rng=np.random.default_rng(k))
        assert_unimodular_batch(m, n=40, max_entry=k, det=1)
    # auto == ball up to 6, word above: same generator, same stream
    cases: tuple[tuple[int, Any], ...] = ((2, "ball"), (6, "ball"), (7, "word"))
    for k, method in cases:
        a = random_unimodular(20, max_entry=k, rng=np.random.default_rng(9))
        b = random_unimodular(20, max_entry=k, rng=np.random.default_rng(9), method=method)
        assert np.array_equal(a, b)


@pytest.mark.parametrize("method", ["ball", "word"])
def test_determinism(method: Any) -> None:
    k = 2 if method == "ball" else 1000
    a = random_unimodular(30, max_entry=k, det="either", rng=np.random.default_rng(123), method=method)
    b = random_unimodular(30, max_entry=k, det="either", rng=np.random.default_rng(123), method=method)
    c = random_unimodular(30, max_entry=k, det="either", rng=np.random.default_rng(124), method=method)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    q1 = random_rotation(3, rng=np.random.default_rng(1))
    q2 = random_rotation(3, rng=np.random.default_rng(1))
    assert np.array_equal(q1, q2)


def test_zero_matrices() -> None:
    methods: tuple[Any, ...] = ("ball", "word")
    for method in methods:
        m = random_unimodular(0, max_entry=3, rng=np.random.default_rng(0), method=method)
        assert m.shape == (0, 3, 3) and m.dtype == np.int64


def test_integral_float_max_entry_is_accepted() -> None:
    m = random_unimodular(3, max_entry=1e6, rng=np.random.default_rng(0))  # type: ignore[arg-type]
    assert_unimodular_batch(m, n=3, max_entry=10**6, det=1)


# --------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"rng": None}, TypeError, "NoneType"),
        ({"rng": 0}, TypeError, "int"),
        ({"rng": np.random.RandomState(0)}, TypeError, "RandomState"),
        ({"det": 2}, ValueError, "det"),
        ({"det": 0}, ValueError, "det"),
        ({"det": True}, ValueError, "det"),
        ({"det": "both"}, ValueError, "det"),
        ({"max_entry": 0}, ValueError, "max_entry"),
        ({"max_entry": -3}, ValueError, "max_entry"),
        ({"max_entry": 2**53 + 1}, ValueError, "max_entry"),
        ({"max_entry": 2.5}, TypeError, "max_entry"),
        ({"max_entry": "3"}, TypeError, "max_entry"),
        ({"n": -1}, ValueError, "n must"),
        ({"n": 2.0}, TypeError, "n must"),
        ({"method": "uniform"}, ValueError, "method"),
        ({"method": "ball", "max_entry": 17}, ValueError, "word"),
        ({"method": "word", "length": -1}, ValueError, "length"),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    args: dict[str, Any] = {"n": 2, "max_entry": 3, "det": 1, "rng": np.random.default_rng(0)}
    args.update(kwargs)
    n = args.pop("n")
    with pytest.raises(error, match=match):
        random_unimodular(n, **args)


def test_bad_arguments_elsewhere() -> None:
    with pytest.raises(ValueError, match="enumerates"):
        unimodular_ball(3)
    with pytest.raises(ValueError, match="det"):
        unimodular_ball(1, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Generator"):
        random_rotation(2, rng=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="skew"):
        cayley_rotation([[0, 1, 0], [1, 0, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="shape"):
        cayley_rotation([1, 2])
    with pytest.raises(TypeError):
        cayley_rotation(["a", 0, 0])
    with pytest.raises(ValueError, match="shape"):
        is_unimodular(np.eye(2))
    with pytest.raises(ValueError, match="max_height"):
        random_rational_rotation(2, rng=np.random.default_rng(0), max_height=0)


# --------------------------------------------------------------------------- is_unimodular
def test_is_unimodular_on_arrays() -> None:
    batch = np.array([np.eye(3), np.diag([1, 1, -1]), 2 * np.eye(3), np.eye(3) / 2])
    assert is_unimodular(batch).tolist() == [True, True, False, False]
    assert is_unimodular(batch.astype(np.int64)[:3]).tolist() == [True, True, False]
    nan = np.eye(3)
    nan[0, 1] = np.nan
    assert is_unimodular(nan) is False
    big = np.array([[1, 2**60, 0], [0, 1, 0], [0, 0, 1]], dtype=np.int64)
    assert is_unimodular(big) is True
    obj = np.array([[Fraction(1), 7, 0], [0, 1, 0], [0, 0, Fraction(-1)]], dtype=object)
    assert is_unimodular(obj) is True
    obj[0, 0] = Fraction(1, 2)
    assert is_unimodular(obj) is False
    assert is_unimodular(np.zeros((2, 4, 3, 3), dtype=np.int64)).shape == (2, 4)


# --------------------------------------------------------------------------- rotations
def exact_identity(q: Any) -> bool:
    prod = q @ q.T
    return all(prod[i, j] == (1 if i == j else 0) for i in range(3) for j in range(3))


@pytest.mark.parametrize(
    "w",
    [(0, 0, 0), (1, 0, 0), (Fraction(1, 2), 2, -1), (Fraction(-7, 3), Fraction(5, 11), Fraction(1, 9)), (0.25, 0, 3)],
)
def test_cayley_rotation_is_exactly_orthogonal(w: tuple[Any, ...]) -> None:
    q = cayley_rotation(w)
    assert q.shape == (3, 3) and q.dtype == object
    assert all(isinstance(x, Fraction) for x in q.ravel())
    assert exact_identity(q) and exact_identity(q.T)
    assert exact_det(q) == 1
    # against the definition (I - S)(I + S)^-1, computed independently with sympy
    s = sympy.Matrix([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]]).applyfunc(sympy.nsimplify)
    eye = sympy.eye(3)
    ref = (eye - s) * (eye + s).inv()
    assert all(sympy.Rational(q[i, j].numerator, q[i, j].denominator) == ref[i, j] for i in range(3) for j in range(3))
    # the skew-matrix form gives the same rotation
    assert (cayley_rotation(np.array(s.tolist(), dtype=object)) == q).all()


def test_random_rational_rotations_are_exact() -> None:
    qs = random_rational_rotation(40, rng=np.random.default_rng(8), max_height=6)
    assert qs.shape == (40, 3, 3) and qs.dtype == object
    for q in qs:
        assert exact_identity(q) and exact_det(q) == 1


@pytest.mark.parametrize("proper", [True, False])
def test_random_rotation_is_orthogonal_and_haar(proper: bool) -> None:
    n = 20_000
    q = random_rotation(n, rng=np.random.default_rng(17), proper=proper)
    assert q.shape == (n, 3, 3) and q.dtype == np.float64
    assert np.abs(q @ q.transpose(0, 2, 1) - np.eye(3)).max() < 1e-12
    dets = np.linalg.det(q)
    assert np.allclose(np.abs(dets), 1.0)
    if proper:
        assert (dets > 0).all()
        # Haar on SO(3): E[Q] = 0 and E[trace Q] = 1 + 2 E[cos theta] = 0.
        assert abs(np.trace(q, axis1=1, axis2=2).mean()) < 0.05
    else:
        assert abs((dets > 0).mean() - 0.5) < 0.02
    assert np.abs(q.mean(axis=0)).max() < 0.03


def test_haar_check_catches_qr_without_sign_fix() -> None:
    """Test the tester: plain QR of a Gaussian matrix is not Haar, and the mean check sees it."""
    z = np.random.default_rng(17).standard_normal((20_000, 3, 3))
    q, _ = np.linalg.qr(z)
    assert np.abs(q.mean(axis=0)).max() > 0.03


def test_all_is_the_public_surface() -> None:
    public = {name for name, obj in vars(groups).items() if not name.startswith("_")
              and callable(obj) and getattr(obj, "__module__", None) == groups.__name__}
    assert public <= set(groups.__all__)
    assert all(hasattr(groups, name) for name in groups.__all__)
