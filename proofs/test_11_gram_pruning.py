"""Proof 11: the pruned candidate search of the Gram-space loss returns the exhaustive minimiser.

See ``proofs/11_gram_pruning.md``.  The residual ``||M G_p M^T - G_t||_F^2`` is a sum of squares whose
first three (diagonal) terms depend on one row of ``M`` each; their partial sums are lower bounds that
only depend on the first rows, so a trie of S by rows can be pruned against the best residual so far
without changing the first minimiser.  Checked here on the shipped expressions
(``latticesym.torch._gram_search``): symbolically (sympy), in float64 (rounding keeps the bounds), and
with an exact-arithmetic walk over the shipped trie against the exhaustive search; two wrong bounds are
caught.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp

from latticesym.torch import _gram_search as gs

from ._exact import g6_of_gram, gram_of_g6, is_niggli_reduced, niggli_reduce_gram

Bound = Callable[[Sequence[Fraction]], Fraction]


# --------------------------------------------------------------------------- item 1: sum of squares
def _sym_gram(v: Sequence[sp.Expr]) -> sp.Matrix:
    A, B, C, xi, eta, zeta = v
    h = sp.Rational(1, 2)
    return sp.Matrix([[A, zeta * h, eta * h], [zeta * h, B, xi * h], [eta * h, xi * h, C]])


def _rational(expr: object) -> sp.Expr:
    """The shipped expressions carry the float constants 0.5 and 2.0: read them as 1/2 and 2."""
    return sp.nsimplify(expr, rational=True)


@pytest.mark.proof
def test_residual_is_the_frobenius_norm_as_a_sum_of_row_squares() -> None:
    g = sp.symbols("A B C xi eta zeta", real=True)
    gt = sp.symbols("A_t B_t C_t xi_t eta_t zeta_t", real=True)
    m = sp.symbols("m0:9", real=True)
    M = sp.Matrix(3, 3, m)
    X = M * _sym_gram(g) * M.T
    D = X - _sym_gram(gt)
    for i in range(3):
        for j in range(3):  # the bilinear form is (M G M^T)_ij
            assert sp.expand(_rational(gs.form(*g, *m[3 * i:3 * i + 3], *m[3 * j:3 * j + 3])) - X[i, j]) == 0
    for k in range(3):  # t_k = (q(m_k) - G_t,kk)^2 = D_kk^2, a function of row k alone
        q = gs.form(*g, *m[3 * k:3 * k + 3], *m[3 * k:3 * k + 3])
        t_k = _rational(gs.diag_term(q, gt[k]))
        assert sp.expand(t_k - D[k, k] ** 2) == 0
        assert t_k.free_symbols <= set(g) | {gt[k]} | set(m[3 * k:3 * k + 3])
    # o_12 = 2 D_12^2 from rows 1 and 2 alone (G6 entry 5 is 2 G_12)
    o12 = _rational(gs.off_term(gs.form(*g, *m[0:3], *m[3:6]), gt[5]))
    assert sp.expand(o12 - 2 * D[0, 1] ** 2) == 0
    assert o12.free_symbols <= set(g) | {gt[5]} | set(m[0:6])
    assert sp.expand(_rational(gs.last_terms(g, gt, m)) - 2 * (D[0, 2] ** 2 + D[1, 2] ** 2)) == 0
    frob = sum(D[i, j] ** 2 for i in range(3) for j in range(3))
    assert sp.expand(_rational(gs.residual(g, gt, m)) - frob) == 0


# --------------------------------------------------------------------------- item 2: float partial sums
@pytest.mark.proof
def test_float_partial_sums_never_exceed_the_computed_residual() -> None:
    pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    mats = gs.trie().mats.reshape(-1, 9)
    n = 2000
    g = rng.uniform(-1.0, 1.0, (n, 6)) * np.array([1, 1, 1, 2, 2, 2]) + np.array([1.0, 1.2, 1.5, 0, 0, 0])
    gt = g + rng.normal(0.0, 10.0 ** rng.uniform(-8, 0, (n, 1)), (n, 6))
    gcol = tuple(g[:, k, None] for k in range(6))
    tcol = tuple(gt[:, k, None] for k in range(6))
    m = tuple(mats[None, :, k] for k in range(9))
    t = [gs.diag_term(gs.form(*gcol, *m[3 * k:3 * k + 3], *m[3 * k:3 * k + 3]), tcol[k]) for k in range(3)]
    o12 = gs.off_term(gs.form(*gcol, *m[0:3], *m[3:6]), tcol[5])
    assert all((x >= 0).all() for x in (*t, o12))
    # the shipped accumulation order: r = (((t_1 + t_2) + o_12) + t_3) + (o_13 + o_23)
    b1 = t[0]
    b2 = (b1 + t[1]) + o12
    b3 = b2 + t[2]
    r = gs.residual(gcol, tcol, m)
    assert np.array_equal(r, b3 + gs.last_terms(gcol, tcol, m))  # the same float operations
    assert (b1 <= b2).all() and (b2 <= b3).all() and (b3 <= r).all()
    assert (t[1] <= b2).all() and (t[2] <= b3).all()  # the row pre-selection's premise


# --------------------------------------------------------------------------- item 3: exact walk
def _right_bound(ds: Sequence[Fraction]) -> Fraction:
    return sum((d * d for d in ds), Fraction(0))


def _no_square(ds: Sequence[Fraction]) -> Fraction:
    """Wrong: drops the square, so a term may be negative or exceed its square (|d| < 1)."""
    return sum(ds, Fraction(0))


def _absolute(ds: Sequence[Fraction]) -> Fraction:
    """Wrong: |d| for d^2 exceeds the square whenever |d| < 1 (the scaled residuals near a boundary)."""
    return sum((abs(d) for d in ds), Fraction(0))


def _merged_squares(ds: Sequence[Fraction]) -> Fraction:
    """Wrong: (d_1 + d_2)^2 for d_1^2 + d_2^2 adds the cross term 2 d_1 d_2 of either sign."""
    if len(ds) == 1:
        return ds[0] * ds[0]
    return (ds[0] + ds[1]) ** 2 + sum((d * d for d in ds[2:]), Fraction(0))


class _Pair:
    """A reduced prediction and target (G6, exact), scaled by s = tr G_t / 3 like the kernel."""

    def __init__(self, name: str, g6_p: Sequence[Fraction], g6_t: Sequence[Fraction]) -> None:
        s = Fraction(g6_t[0] + g6_t[1] + g6_t[2]) / 3
        self.name = name
        self.Gp = gram_of_g6([Fraction(x) / s for x in g6_p])
        self.Gt = gram_of_g6([Fraction(x) / s for x in g6_t])
        self._memo: dict[tuple[tuple[int, ...], tuple[int, ...]], Fraction] = {}

    def bil(self, u: tuple[int, ...], v: tuple[int, ...]) -> Fraction:
        key = (u, v)
        if key not in self._memo:
            self._memo[key] = sum((u[i] * self.Gp[i][j] * v[j] for i in range(3) for j in range(3)), Fraction(0))
        return self._memo[key]

    def ds(self, rows: Sequence[tuple[int, ...]]) -> list[Fraction]:
        return [self.bil(r, r) - self.Gt[k][k] for k, r in enumerate(rows)]

    def residual(self, rows: Sequence[tuple[int, ...]]) -> Fraction:
        d = self.ds(rows)
        off = sum(((self.bil(rows[i], rows[j]) - self.Gt[i][j]) ** 2 for i, j in ((0, 1), (0, 2), (1, 2))),
                  Fraction(0))
        return _right_bound(d) + 2 * off


def _rows(mat: np.ndarray) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(x) for x in row) for row in np.asarray(mat).reshape(3, 3))


E = ((1, 0, 0), (0, 1, 0), (0, 0, 1))


def _exhaustive(pair: _Pair, mats: np.ndarray) -> int:
    best, best_i = None, -1
    for i, mat in enumerate(mats):
        r = pair.residual(_rows(mat))
        if best is None or r < best:
            best, best_i = r, i
    return best_i


def _int_rows(tr: gs.SearchTrie) -> list[tuple[int, ...]]:
    return [tuple(int(x) for x in r) for r in tr.rows]


def _walk(pair: _Pair, tr: gs.SearchTrie, bound: Bound = _right_bound,
          evaluated: list[int] | None = None) -> int:
    """``_gram_search._best`` in exact arithmetic, over the shipped tables and bit sets, with a pluggable bound.

    ``bound`` gets the diagonal differences so far and, at level 2 on, the (1,2) off-diagonal one.
    """
    rows = _int_rows(tr)
    n1 = len(tr.l1_row)
    best, best_i = pair.residual(E), 0
    sel = [sum(1 << r for r in range(len(rows)) if bound([pair.ds([rows[r]] * 3)[k]]) < best) for k in range(3)]
    for r0 in _bits(sel[0] & int(tr.masks[0])):  # the shipped walk: set bits of level mask & children
        if not bound(pair.ds([rows[r0]])) < best:
            continue
        a = int(tr.l1_of[r0])
        for r1 in _bits(sel[1] & int(tr.masks[1 + a])):
            d01 = pair.bil(rows[r0], rows[r1]) - pair.Gt[0][1]
            if not bound(pair.ds([rows[r0], rows[r1]])) + 2 * d01 * d01 < best:
                continue
            b = int(tr.l2_of[a, r1])
            for r2 in _bits(sel[2] & int(tr.masks[1 + n1 + b])):
                if not bound(pair.ds([rows[r0], rows[r1], rows[r2]])) + 2 * d01 * d01 < best:
                    continue
                c = int(tr.c_of[b, r2])
                if evaluated is not None:
                    evaluated.append(int(tr.c_idx[c]))
                r = pair.residual((rows[r0], rows[r1], rows[r2]))
                if r < best:
                    best, best_i = r, int(tr.c_idx[c])
    return best_i


def _bits(mask: int) -> list[int]:
    """The set bits of ``mask``, lowest first (the order in which ``_best`` visits them)."""
    return [u for u in range(mask.bit_length()) if mask >> u & 1]


def _walk_automorphisms(pair: _Pair, tr: gs.SearchTrie, tol: Fraction) -> list[int]:
    """``_gram_search._automorphisms`` in exact arithmetic on the target against itself."""
    target = _Pair("t", g6_of_gram(pair.Gt), g6_of_gram(pair.Gt))
    rows = _int_rows(tr)
    n1 = len(tr.l1_row)
    out = [0] if target.residual(E) <= tol else []
    sel = [sum(1 << r for r in range(len(rows)) if target.ds([rows[r]] * 3)[k] ** 2 <= tol) for k in range(3)]
    for r0 in _bits(sel[0] & int(tr.masks[0])):
        a = int(tr.l1_of[r0])
        for r1 in _bits(sel[1] & int(tr.masks[1 + a])):
            d01 = target.bil(rows[r0], rows[r1]) - target.Gt[0][1]
            if not _right_bound(target.ds([rows[r0], rows[r1]])) + 2 * d01 * d01 <= tol:
                continue
            b = int(tr.l2_of[a, r1])
            for r2 in _bits(sel[2] & int(tr.masks[1 + n1 + b])):
                if target.residual((rows[r0], rows[r1], rows[r2])) <= tol:
                    out.append(int(tr.c_idx[tr.c_of[b, r2]]))
    return out


# reduced boundary forms (exact G6) and two generic cells far from every boundary
BOUNDARY = {
    "cubic": (1, 1, 1, 0, 0, 0),
    "hexagonal": (1, 1, 2, 0, 0, -1),
    "fcc": (1, 1, 1, 1, 1, 1),
    "bcc": (3, 3, 3, -2, -2, -2),
    "rhombohedral": (4, 4, 4, 2, 2, 2),
    "xi = B (A5)": (2, 3, 4, 3, Fraction(1, 2), Fraction(3, 2)),
    "A+B+xi+eta+zeta = 0 (A8)": (2, 3, 4, Fraction(-5, 2), -1, Fraction(-3, 2)),
}
GENERIC = {"generic I": (10, 13, 17, 3, 2, 1), "generic II": (9, 14, 20, -5, -3, -2)}


def _reduced(g6: Sequence[object]) -> tuple[Fraction, ...]:
    _, g, _ = niggli_reduce_gram(gram_of_g6(g6))
    out = g6_of_gram(g)
    assert is_niggli_reduced(out)
    return out


def _pairs(forms: dict[str, tuple], per_form: int, size: int, seed: int) -> list[_Pair]:
    rnd = random.Random(seed)
    out = []
    for name, g0 in forms.items():
        for k in range(per_form):
            g6_p, g6_t = ([Fraction(x) + Fraction(rnd.randint(-size, size), 1000) for x in g0] for _ in range(2))
            out.append(_Pair(f"{name} #{k}", _reduced(g6_p), _reduced(g6_t)))
    return out


@pytest.fixture(scope="module")
def tr() -> gs.SearchTrie:
    pytest.importorskip("torch")
    return gs.trie()


@pytest.fixture(scope="module")
def pairs() -> list[_Pair]:
    return _pairs(BOUNDARY, 2, 20, 110) + _pairs(GENERIC, 1, 20, 111)


@pytest.mark.proof
def test_trie_depth_first_order_is_s_order(tr: gs.SearchTrie) -> None:
    order = [int(tr.c_idx[c]) for a in range(len(tr.l1_row)) for b in range(tr.l1_lo[a], tr.l1_hi[a])
             for c in range(tr.l2_lo[b], tr.l2_hi[b])]
    assert order == list(range(1, len(tr.mats)))
    assert _rows(tr.mats[0]) == E
    rows = _int_rows(tr)
    assert rows == sorted(rows)  # ascending row index within a level is S order
    # the lookup tables are the trie: every candidate is reached exactly once through them
    via_tables = sorted(int(tr.c_idx[c]) for a_row in range(len(rows)) if tr.l1_of[a_row] >= 0
                        for r1 in range(len(rows)) if tr.l2_of[tr.l1_of[a_row], r1] >= 0
                        for r2 in range(len(rows)) if (c := tr.c_of[tr.l2_of[tr.l1_of[a_row], r1], r2]) >= 0)
    assert via_tables == list(range(1, len(tr.mats)))
    for a_row in range(len(rows)):
        a = tr.l1_of[a_row]
        for r1 in range(len(rows)):
            if a >= 0 and tr.l2_of[a, r1] >= 0:
                for r2 in range(len(rows)):
                    c = tr.c_of[tr.l2_of[a, r1], r2]
                    if c >= 0:
                        assert _rows(tr.mats[tr.c_idx[c]]) == (rows[a_row], rows[r1], rows[r2])
    for a in range(len(tr.l1_row)):  # each candidate's rows are the trie path's rows
        for b in range(tr.l1_lo[a], tr.l1_hi[a]):
            for c in range(tr.l2_lo[b], tr.l2_hi[b]):
                path = np.stack([tr.rows[tr.l1_row[a]], tr.rows[tr.l2_row[b]], tr.rows[tr.c_row[c]]])
                assert np.array_equal(path, tr.mats[tr.c_idx[c]])
    # the walk's bit sets are the same trie: bit u of a node's mask iff row u is one of its children
    n1 = len(tr.l1_row)
    assert int(tr.masks[0]) == sum(1 << u for u in range(len(rows)) if tr.l1_of[u] >= 0)
    for a in range(n1):
        assert int(tr.masks[1 + a]) == sum(1 << u for u in range(len(rows)) if tr.l2_of[a, u] >= 0)
    for b in range(len(tr.l2_row)):
        assert int(tr.masks[1 + n1 + b]) == sum(1 << u for u in range(len(rows)) if tr.c_of[b, u] >= 0)
    # the lowest-set-bit index (de Bruijn) is exact for every bit the walk can meet
    assert [int(gs._low_index(np.int64(1) << u)) for u in range(32)] == list(range(32))


@pytest.mark.proof
def test_pruned_walk_returns_the_exhaustive_first_minimiser(tr: gs.SearchTrie, pairs: list[_Pair]) -> None:
    non_identity = 0
    for pair in pairs:
        got = _walk(pair, tr)
        assert got == _exhaustive(pair, tr.mats), pair.name
        non_identity += got != 0
    assert non_identity >= 3  # the pairs straddle boundaries: the search is not trivially the identity


@pytest.mark.proof
def test_pruned_automorphism_filter_returns_the_exhaustive_set(tr: gs.SearchTrie, pairs: list[_Pair]) -> None:
    sizes = []
    for pair in pairs[:6] + [_Pair(n, g, g) for n, g in BOUNDARY.items()]:
        target = _Pair("t", g6_of_gram(pair.Gt), g6_of_gram(pair.Gt))
        exhaustive = [i for i, m in enumerate(tr.mats) if target.residual(_rows(m)) <= 0]
        got = _walk_automorphisms(pair, tr, Fraction(0))
        assert got == exhaustive, pair.name
        sizes.append(len(got))
    assert max(sizes) == 24  # the cubic form: Aut / {+-1} = 48 / 2 in S up to sign


# --------------------------------------------------------------------------- item 4: far cells
@pytest.mark.proof
def test_margin_step_is_a_polynomial_with_non_negative_coefficients() -> None:
    # |u| = 2 s + p, |v| = s - w with s = sqrt(delta) >= 0, p >= 0, 0 <= w <= s:
    # (|u| - |v|)^2 - delta = (s + p + w)^2 - s^2
    s, p, w = sp.symbols("s p w", nonnegative=True)
    poly = sp.Poly(sp.expand(((2 * s + p) - (s - w)) ** 2 - s**2), s, p, w)
    assert all(c >= 0 for c in poly.coeffs())
    # and the triangle step (u + v)^2 >= (|u| - |v|)^2 for real u, v of either sign
    for su in (1, -1):
        for sv in (1, -1):
            a, b = sp.symbols("a b", nonnegative=True)
            diff = sp.expand((su * a + sv * b) ** 2 - (a - b) ** 2)
            assert diff in (0, 4 * a * b)


def _margin_holds(pair: _Pair, tr: gs.SearchTrie) -> bool:
    delta = pair.residual(E)
    for k in range(3):
        pos = {_rows(np.concatenate([r] * 3))[0] for r in tr.mats[1:, k]}
        ek = E[k]
        minus = tuple(-x for x in ek)
        for m in pos - {ek, minus}:
            if (pair.bil(m, m) - pair.Gp[k][k]) ** 2 < 4 * delta:
                return False
    return True


@pytest.mark.proof
def test_far_cells_reach_only_sign_changes_and_boundary_cells_more(tr: gs.SearchTrie) -> None:
    far = _pairs(GENERIC, 3, 20, 112)
    for pair in far:
        assert _margin_holds(pair, tr), pair.name
        seen: list[int] = []
        assert _walk(pair, tr, evaluated=seen) == 0, pair.name
        assert all(np.array_equal(np.abs(tr.mats[i]), np.eye(3)) for i in seen), pair.name
    cubic = _pairs({"cubic": BOUNDARY["cubic"]}, 1, 20, 113)[0]
    assert not _margin_holds(cubic, tr)
    seen = []
    _walk(cubic, tr, evaluated=seen)
    assert any(not np.array_equal(np.abs(tr.mats[i]), np.eye(3)) for i in seen)


# --------------------------------------------------------------------------- broken bounds are caught
def _lower_bound_violations(bound: Bound, pairs: Sequence[_Pair], mats: np.ndarray) -> int:
    """Candidates whose bound at some level exceeds their residual (a valid bound has none)."""
    bad = 0
    for pair in pairs:
        for mat in mats:
            rows = _rows(mat)
            r = pair.residual(rows)
            ds = pair.ds(rows)
            bad += any(bound(ds[:k]) > r for k in (1, 2, 3))
    return bad


@pytest.mark.proof
@pytest.mark.parametrize("bound", [_no_square, _absolute, _merged_squares],
                         ids=["no square", "absolute value", "merged squares"])
def test_a_wrong_bound_fails_the_lower_bound_check(bound: Bound, tr: gs.SearchTrie, pairs: list[_Pair]) -> None:
    sample = pairs[::3]
    assert _lower_bound_violations(_right_bound, sample, tr.mats) == 0
    assert _lower_bound_violations(bound, sample, tr.mats) > 0


@pytest.mark.proof
@pytest.mark.parametrize("bound", [_no_square, _absolute], ids=["no square", "absolute value"])
def test_a_wrong_bound_changes_the_search_result(bound: Bound, tr: gs.SearchTrie, pairs: list[_Pair]) -> None:
    wrong = [p.name for p in pairs if _walk(p, tr, bound) != _exhaustive(p, tr.mats)]
    assert len(wrong) >= 2, "the wrong bound changed (almost) no search result on these pairs"
