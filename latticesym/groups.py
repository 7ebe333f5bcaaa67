"""Samplers for GL(3, Z) / SL(3, Z) (integer basis changes) and for rotations.

A change of basis of a lattice is an integer matrix :math:`M` with :math:`\\det M = \\pm 1`
acting on the left, ``L' = M @ L`` (rows are basis vectors, see ``CONVENTIONS.md``);
``det = +1`` (SL(3, Z)) keeps the handedness of the basis, ``det = -1`` mirrors the basis
(not space).  A rotation :math:`Q` acts on the right, ``L' = L @ Q.T``.

GL(3, Z) is an infinite discrete group: it has **no uniform distribution**.  What this
module offers instead, and says so in each docstring:

- :func:`unimodular_ball` enumerates the finite *ball*
  :math:`B_k = \\{M \\in GL(3, Z) : \\max_{ij} |M_{ij}| \\le k\\}` (``k <= 2``);
- :func:`random_unimodular` with ``method="ball"`` draws **uniformly from** :math:`B_k`
  (by table look-up for ``k <= 2``, by exact rejection sampling from the box for ``k <= 16``);
- :func:`random_unimodular` with ``method="word"`` runs a random walk of elementary row
  operations that stays inside :math:`B_k`; its law is *not* uniform on anything, it is
  designed to reach entries of every size up to ``max_entry``.

Every sampler takes an explicit ``numpy.random.Generator``; the same generator state gives
the same output (no global random state is touched).

Sizes of the balls (computed by :func:`unimodular_ball`, checked by brute force in the tests):
:math:`|B_1 \\cap SL| = |B_1 \\cap \\{\\det = -1\\}| = 3480` and
:math:`|B_2 \\cap SL| = |B_2 \\cap \\{\\det = -1\\}| = 67704`.

References
----------
Mezzadri, F. (2007). How to generate random matrices from the classical compact groups.
Notices of the AMS 54(5), 592-604.  https://arxiv.org/abs/math-ph/0609050
"""

from __future__ import annotations

import functools
import math
import numbers
from fractions import Fraction
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from latticesym.errors import LatticeError, LatticeShapeError, NonFiniteLatticeError

__all__ = [
    "AUTO_BALL_LIMIT",
    "BALL_ENUMERATION_LIMIT",
    "BALL_REJECTION_LIMIT",
    "MAX_ENTRY_LIMIT",
    "cayley_rotation",
    "default_word_length",
    "exact_det",
    "is_unimodular",
    "random_rational_rotation",
    "random_rotation",
    "random_unimodular",
    "unimodular_ball",
]

Det = Literal[1, -1, "either"]
Method = Literal["auto", "ball", "word"]

#: Largest ``max_entry`` whose ball :func:`unimodular_ball` enumerates (``5**9`` candidates at 2).
BALL_ENUMERATION_LIMIT = 2
#: Largest ``max_entry`` for which ``method="ball"`` is allowed (rejection from the box; the
#: acceptance rate falls roughly like ``k**-3``: about 3 % at ``k = 3``, 0.1 % at ``k = 10``).
BALL_REJECTION_LIMIT = 16
#: ``method="auto"`` uses the (uniform) ball sampler up to this ``max_entry`` and the word sampler above.
AUTO_BALL_LIMIT = 6
#: Largest ``max_entry`` accepted: entries stay exactly representable in float64 (``2**53``).
MAX_ENTRY_LIMIT = 2**53

# Rough acceptance probability of det == +1 (one sign) for a uniform box draw, used only to size
# the rejection chunks (the result does not depend on it being accurate).
_ACCEPT_ONE_SIGN = {3: 0.0158, 4: 0.0066, 5: 0.0044, 6: 0.0025}


# --------------------------------------------------------------------------- validation
def _check_n(n: Any) -> int:
    if isinstance(n, bool | np.bool_) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be a non-negative int, got {type(n).__name__} {n!r}")
    if n < 0:
        raise LatticeError(f"n must be a non-negative int, got {n}")
    return int(n)


def _check_rng(rng: Any) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            "rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(seed)), "
            f"got {type(rng).__name__} {rng!r}"
        )
    return rng


def _check_max_entry(max_entry: Any) -> int:
    if isinstance(max_entry, bool | np.bool_):
        raise TypeError(f"max_entry must be a positive int, got bool {max_entry!r}")
    if isinstance(max_entry, float | np.floating) and float(max_entry).is_integer():
        max_entry = int(max_entry)
    if not isinstance(max_entry, numbers.Integral):
        raise TypeError(f"max_entry must be a positive int, got {type(max_entry).__name__} {max_entry!r}")
    k = int(max_entry)
    if not 1 <= k <= MAX_ENTRY_LIMIT:
        raise LatticeError(f"max_entry must be an int in [1, 2**53], got {k}")
    return k


def _check_det(det: Any) -> int | str:
    if isinstance(det, str):
        if det == "either":
            return det
    elif isinstance(det, numbers.Integral) and not isinstance(det, bool | np.bool_) and det in (1, -1):
        return int(det)
    raise LatticeError(f"det must be 1, -1 or 'either', got {det!r}")


# --------------------------------------------------------------------------- exact determinants
def _det3(m: Any) -> Any:
    """Cofactor determinant over the last two axes (exact for ints/Fractions/object arrays)."""
    return (
        m[..., 0, 0] * (m[..., 1, 1] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 1])
        - m[..., 0, 1] * (m[..., 1, 0] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 0])
        + m[..., 0, 2] * (m[..., 1, 0] * m[..., 2, 1] - m[..., 1, 1] * m[..., 2, 0])
    )


def _as_array(m: ArrayLike) -> NDArray[Any]:
    try:
        return np.asarray(m)
    except ValueError as exc:  # ragged nested sequences
        raise LatticeShapeError(f"expected shape (3, 3) or (..., 3, 3), got a ragged sequence ({exc})") from exc


def _check_matrix_shape(arr: NDArray[Any]) -> None:
    if arr.ndim < 2 or arr.shape[-2:] != (3, 3):
        raise LatticeShapeError(f"expected shape (3, 3) or (..., 3, 3), got {arr.shape}")


def _to_exact_object(m: ArrayLike) -> tuple[NDArray[Any], NDArray[np.bool_]]:
    """Entries as Python ints / Fractions in an object array, and a mask of integral matrices."""
    arr = _as_array(m)
    _check_matrix_shape(arr)
    if arr.dtype.kind == "b":
        raise TypeError("expected integer matrices, got a boolean array")
    if arr.dtype.kind in "iu":
        return arr.astype(object), np.ones(arr.shape[:-2], dtype=bool)
    if arr.dtype.kind == "f":
        integral = np.all(np.isfinite(arr) & (arr == np.round(arr)), axis=(-2, -1))
        safe = np.where(np.isfinite(arr), arr, 0.0)
        out = np.empty(arr.shape, dtype=object)
        for idx in np.ndindex(arr.shape):
            xf = float(safe[idx])
            out[idx] = int(xf) if xf.is_integer() else Fraction(xf)
        return out, np.asarray(integral)
    if arr.dtype == object:
        out = np.empty(arr.shape, dtype=object)
        integral = np.ones(arr.shape[:-2], dtype=bool)
        for idx in np.ndindex(arr.shape):
            x = arr[idx]
            if isinstance(x, bool | np.bool_) or not isinstance(x, numbers.Real):
                raise TypeError(f"matrix entries must be real numbers, got {type(x).__name__} {x!r}")
            if isinstance(x, numbers.Integral):
                out[idx] = int(x)
                continue
            if isinstance(x, float | np.floating) and not math.isfinite(float(x)):
                out[idx] = 0
                integral[idx[:-2]] = False
                continue
            q = Fraction(x) if not isinstance(x, numbers.Rational) else Fraction(x.numerator, x.denominator)
            out[idx] = int(q) if q.denominator == 1 else q
            if q.denominator != 1:
                integral[idx[:-2]] = False
        return out, integral
    raise TypeError(f"expected a numeric matrix, got dtype {arr.dtype}")


def exact_det(m: ArrayLike) -> Any:
    """Exact determinant of one ``(3, 3)`` matrix or a batch ``(..., 3, 3)``.

    Entries are converted to Python ``int`` (or ``Fraction`` for non-integers; floats
    exactly), so the result never overflows or rounds, unlike ``numpy.linalg.det``.

    Returns
    -------
    int or Fraction, or numpy.ndarray of dtype object
        A Python number for a single matrix, an object array of shape ``(...)`` for a batch.

    Examples
    --------
    >>> exact_det([[1, 2, 0], [0, 1, 0], [0, 0, -1]])
    -1
    >>> F = [[165580141, 102334155, 0], [102334155, 63245986, 0], [0, 0, 1]]   # Fibonacci numbers
    >>> exact_det(F), float(np.linalg.det(np.array(F, dtype=float))) == 1.0
    (1, False)
    """
    obj, _ = _to_exact_object(m)
    d = _det3(obj)
    if obj.ndim == 2:
        return int(d) if isinstance(d, numbers.Integral) else d
    return np.asarray(d, dtype=object)


def is_unimodular(m: ArrayLike) -> Any:
    """Whether ``m`` is an integer matrix with :math:`\\det m = \\pm 1`, decided exactly.

    Parameters
    ----------
    m : array_like, shape (3, 3) or (..., 3, 3)
        Integer, float (must hold integral values) or object (Python ints, Fractions) entries.
        Non-integral or non-finite entries make the answer ``False`` (not an error).

    Returns
    -------
    bool or numpy.ndarray of bool
        A Python ``bool`` for one matrix, a boolean array of shape ``(...)`` for a batch.

    Raises
    ------
    LatticeShapeError
        If ``m`` is not of shape ``(3, 3)`` or ``(..., 3, 3)`` (the message has the shape).

    Examples
    --------
    >>> is_unimodular([[1, 5, 0], [0, 1, 0], [0, 0, 1]])
    True
    >>> is_unimodular([[2, 0, 0], [0, 1, 0], [0, 0, 1]]), is_unimodular(np.eye(3) / 2)
    (False, False)
    >>> is_unimodular(np.array([np.eye(3), 2 * np.eye(3)])).tolist()
    [True, False]
    """
    arr = _as_array(m)
    _check_matrix_shape(arr)
    if arr.dtype.kind in "iu" and arr.size and np.abs(arr).max() < 2**19:
        # |3! * (2**19)**3| < 2**63: the int64 cofactor expansion is exact.
        d = _det3(arr.astype(np.int64))
        ok = np.abs(d) == 1
    else:
        obj, integral = _to_exact_object(arr)
        d = _det3(obj)
        ok = integral & np.vectorize(lambda x: abs(x) == 1, otypes=[bool])(d)
    ok = np.asarray(ok, dtype=bool)
    return bool(ok) if ok.ndim == 0 else ok


# --------------------------------------------------------------------------- the finite ball
@functools.cache
def _ball(k: int, det: int) -> NDArray[np.int64]:
    # Rows r of the box [-k, k]^3; det(r0, r1, r2) = r0 . (r1 x r2), computed in int64 (exact).
    vals = np.arange(-k, k + 1, dtype=np.int64)
    rows = np.stack(np.meshgrid(vals, vals, vals, indexing="ij"), axis=-1).reshape(-1, 3)
    nr = len(rows)
    r1 = np.repeat(rows, nr, axis=0)
    r2 = np.tile(rows, (nr, 1))
    cross = np.cross(r1, r2)  # (nr*nr, 3), pairs in lexicographic order
    dets = rows @ cross.T  # (nr, nr*nr): dets[a, b*nr + c] = det(rows[a], rows[b], rows[c])
    ia, ibc = np.nonzero(dets == det)
    out = np.stack([rows[ia], rows[ibc // nr], rows[ibc % nr]], axis=1)
    out.flags.writeable = False
    return out


def unimodular_ball(max_entry: int, det: Det = 1) -> NDArray[np.int64]:
    """Every integer matrix with :math:`\\max |M_{ij}| \\le k` and the requested determinant.

    .. math:: B_k^{\\pm} = \\{M \\in \\mathbb{Z}^{3\\times 3} : \\max_{ij} |M_{ij}| \\le k,\\
              \\det M = \\pm 1\\}

    Parameters
    ----------
    max_entry : int
        The bound ``k``; ``1 <= k <= BALL_ENUMERATION_LIMIT`` (= 2).
    det : {1, -1, "either"}
        ``1``: SL(3, Z) part; ``-1``: the other coset; ``"either"``: both (det +1 first).

    Returns
    -------
    numpy.ndarray, shape (m, 3, 3), int64, read-only
        The matrices in lexicographic order of their 9 entries (row-major); cached.
        ``m`` is 3480 (``k = 1``) or 67704 (``k = 2``) per sign.

    Examples
    --------
    >>> [len(unimodular_ball(1, d)) for d in (1, -1, "either")]
    [3480, 3480, 6960]
    >>> unimodular_ball(1)[0].tolist()
    [[-1, -1, -1], [-1, -1, 0], [-1, 0, -1]]
    """
    k = _check_max_entry(max_entry)
    d = _check_det(det)
    if k > BALL_ENUMERATION_LIMIT:
        raise LatticeError(
            f"unimodular_ball enumerates max_entry <= {BALL_ENUMERATION_LIMIT} only ({2 * k + 1}**9 "
            f"candidates at max_entry={k}); use random_unimodular(..., method='ball') to sample it"
        )
    if d == "either":
        both = np.concatenate([_ball(k, 1), _ball(k, -1)])
        both.flags.writeable = False
        return both
    return _ball(k, int(d))


# --------------------------------------------------------------------------- samplers
def _ball_by_table(n: int, k: int, det: int | str, rng: np.random.Generator) -> NDArray[np.int64]:
    table = unimodular_ball(k, det)  # type: ignore[arg-type]
    return table[rng.integers(0, len(table), size=n)].copy()


def _ball_by_rejection(n: int, k: int, det: int | str, rng: np.random.Generator) -> NDArray[np.int64]:
    # Uniform on the box [-k, k]^9 conditioned on the determinant: uniform on the ball.
    p = _ACCEPT_ONE_SIGN.get(k, 0.5 / (k + 0.5) ** 3) * (2 if det == "either" else 1)
    out = np.empty((n, 3, 3), dtype=np.int64)
    filled = 0
    while filled < n:
        need = n - filled
        chunk = int(min(max(1.3 * need / p + 256, 1024), 2**19))
        # int32 is exact here: |det| <= 6 * 16**3.
        cand = rng.integers(-k, k + 1, size=(chunk, 3, 3), dtype=np.int8).astype(np.int32)
        d = _det3(cand)
        ok = np.abs(d) == 1 if det == "either" else d == det
        take = cand[ok][:need].astype(np.int64)
        out[filled : filled + len(take)] = take
        filled += len(take)
    return out


_SIGNED_PERMUTATIONS = np.array(
    [
        np.diag(signs)[list(perm)]
        for perm in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))
        for signs in np.array(np.meshgrid([1, -1], [1, -1], [1, -1], indexing="ij")).reshape(3, -1).T
    ],
    dtype=np.int64,
)
_SIGNED_PERMUTATION_DETS = np.rint(np.linalg.det(_SIGNED_PERMUTATIONS)).astype(np.int64)


def _word(n: int, k: int, det: int | str, length: int, rng: np.random.Generator) -> NDArray[np.int64]:
    # W <- E_ij(q) W, i.e. row_i += q * row_j, with q drawn so that every entry stays in [-k, k].
    w = np.broadcast_to(np.eye(3, dtype=np.int64), (n, 3, 3)).copy()
    rows = np.arange(n)
    for _ in range(length):
        i = rng.integers(0, 3, size=n)
        j = (i + rng.integers(1, 3, size=n)) % 3
        ri, rj = w[rows, i], w[rows, j]
        # q * rj[c] must lie in [-k - ri[c], k - ri[c]] for every column c with rj[c] != 0.
        pos, neg = rj > 0, rj < 0
        safe = np.where(rj == 0, 1, rj)
        hi_pos = np.floor_divide(k - ri, safe)
        lo_pos = -np.floor_divide(k + ri, safe)  # ceil((-k - ri) / rj)
        hi_neg = np.floor_divide(-k - ri, safe)  # floor((-k - ri) / rj) for rj < 0
        lo_neg = -np.floor_divide(ri - k, safe)  # ceil((k - ri) / rj) for rj < 0
        big = np.int64(MAX_ENTRY_LIMIT * 4)
        qhi = np.min(np.where(pos, hi_pos, np.where(neg, hi_neg, big)), axis=1)
        qlo = np.max(np.where(pos, lo_pos, np.where(neg, lo_neg, -big)), axis=1)
        up_ok, down_ok = qhi >= 1, qlo <= -1
        go_up = np.where(up_ok & down_ok, rng.random(n) < 0.5, up_ok)
        qmax = np.where(go_up, qhi, -qlo)
        # |q| log-uniform on [1, qmax]: every scale of entries is visited, not only the largest.
        u = rng.random(n)
        mag = np.floor(np.exp(u * np.log1p(np.maximum(qmax, 1).astype(np.float64))))
        mag = np.clip(mag.astype(np.int64), 1, np.maximum(qmax, 1))
        q = np.where(up_ok | down_ok, np.where(go_up, mag, -mag), 0)
        w[rows, i] = ri + q[:, None] * rj
    # Random signed permutations on both sides move the entries around and fix the determinant.
    left = rng.integers(0, 48, size=n)
    d_left = _SIGNED_PERMUTATION_DETS[left]
    want = rng.choice(np.array([1, -1]), size=n) if det == "either" else np.full(n, det, dtype=np.int64)
    right = np.empty(n, dtype=np.int64)
    for sign in (1, -1):
        pool = np.flatnonzero(np.equal(_SIGNED_PERMUTATION_DETS, sign))
        sel = (d_left * want) == sign
        right[sel] = pool[rng.integers(0, len(pool), size=int(sel.sum()))]
    return np.einsum("nij,njk,nkl->nil", _SIGNED_PERMUTATIONS[left], w, _SIGNED_PERMUTATIONS[right])


def default_word_length(max_entry: int) -> int:
    """Default number of elementary moves of the word sampler: ``8 + 2 * ceil(log2(max_entry + 1))``.

    >>> default_word_length(1), default_word_length(10**6)
    (10, 48)
    """
    return 8 + 2 * math.ceil(math.log2(max_entry + 1))


def random_unimodular(
    n: int,
    *,
    max_entry: int,
    det: Det = 1,
    rng: np.random.Generator,
    method: Method = "auto",
    length: int | None = None,
) -> NDArray[np.int64]:
    """``n`` random unimodular integer matrices with :math:`\\max_{ij} |M_{ij}| \\le` ``max_entry``.

    GL(3, Z) is infinite and discrete, so it has **no uniform distribution**; "random
    unimodular matrix" only means something once a distribution is named.  Two are offered:

    ``method="ball"``
        Uniform on the finite ball :math:`B_k = \\{M \\in GL(3,Z) : \\max|M_{ij}| \\le k,\\
        \\det M = d\\}` with ``k = max_entry``.  For ``k <= 2`` by a uniform index into the
        enumerated ball (:func:`unimodular_ball`); for ``3 <= k <= 16`` by rejection: draw the 9
        entries uniformly in ``[-k, k]`` and keep draws whose exact integer determinant is ``d``
        (the acceptance rate falls like :math:`k^{-3}`, hence the limit).
    ``method="word"``
        A random walk: start from the identity, apply ``length`` moves
        :math:`r_i \\leftarrow r_i + q\\, r_j` (:math:`i \\ne j`) where ``q`` is drawn
        among the nonzero integers that keep every entry in ``[-k, k]`` (``|q|``
        log-uniform on ``[1, q_max]``; a move with no admissible ``q`` is skipped), then
        multiply by uniformly random signed permutation matrices on both sides, the right one
        chosen to give the requested determinant.  The law of the result is **not uniform on
        anything**; it is designed so that entries of every size up to ``max_entry`` occur
        (for ``max_entry = 10**6`` the largest entry is typically above ``10**4``).
    ``method="auto"``
        ``"ball"`` for ``max_entry <= 6`` (uniform), ``"word"`` above.

    Parameters
    ----------
    n : int
        Number of matrices (``n >= 0``).
    max_entry : int
        Bound on the absolute value of every entry, ``1 <= max_entry <= 2**53`` (so that
        entries, and ``M @ L`` for integer ``L``, stay exact in float64).  The ball sampler
        reaches the bound; the word sampler never exceeds it.
    det : {1, -1, "either"}
        ``1``: SL(3, Z) (keeps handedness); ``-1``: the other coset of GL(3, Z);
        ``"either"``: GL(3, Z) (for ``"ball"``, uniform on both signs together; for ``"word"``,
        each sign with probability 1/2).
    rng : numpy.random.Generator
        The only source of randomness (required; ``None`` or an int seed is refused).  The same
        generator state gives the same output.
    method : {"auto", "ball", "word"}
        See above.
    length : int, optional
        Number of moves of the word sampler (default :func:`default_word_length`).

    Returns
    -------
    numpy.ndarray, shape (n, 3, 3), int64
        Each matrix is integral with determinant exactly ``det``.

    Raises
    ------
    TypeError
        ``rng`` is not a ``numpy.random.Generator``; ``n`` or ``max_entry`` is not an int.
    LatticeError
        ``n < 0``; ``max_entry`` outside ``[1, 2**53]``; ``det`` not in ``{1, -1, "either"}``;
        unknown ``method``; ``method="ball"`` with ``max_entry > 16``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> M = random_unimodular(1000, max_entry=1, det=-1, rng=rng)
    >>> M.shape, M.dtype, int(np.abs(M).max()), set(exact_det(M).tolist())
    ((1000, 3, 3), dtype('int64'), 1, {-1})
    >>> W = random_unimodular(100, max_entry=10**6, rng=np.random.default_rng(1))
    >>> bool(is_unimodular(W).all()), int(np.abs(W).max()) <= 10**6
    (True, True)
    >>> bool((random_unimodular(5, max_entry=9, rng=np.random.default_rng(7))
    ...       == random_unimodular(5, max_entry=9, rng=np.random.default_rng(7))).all())
    True
    """
    n = _check_n(n)
    k = _check_max_entry(max_entry)
    d = _check_det(det)
    rng = _check_rng(rng)
    if method not in ("auto", "ball", "word"):
        raise LatticeError(f"method must be 'auto', 'ball' or 'word', got {method!r}")
    if method == "auto":
        method = "ball" if k <= AUTO_BALL_LIMIT else "word"
    if method == "ball":
        if k > BALL_REJECTION_LIMIT:
            raise LatticeError(
                f"method='ball' samples max_entry <= {BALL_REJECTION_LIMIT} (rejection from the "
                f"box would accept about 1 draw in {int(2 * (k + 0.5) ** 3)} at max_entry={k}); "
                "use method='word'"
            )
        if k <= BALL_ENUMERATION_LIMIT:
            return _ball_by_table(n, k, d, rng)
        return _ball_by_rejection(n, k, d, rng)
    if length is None:
        length = default_word_length(k)
    if isinstance(length, bool) or not isinstance(length, numbers.Integral) or length < 0:
        raise LatticeError(f"length must be a non-negative int, got {length!r}")
    return _word(n, k, d, int(length), rng)


# --------------------------------------------------------------------------- rotations
def random_rotation(n: int, *, rng: np.random.Generator, proper: bool = True) -> NDArray[np.float64]:
    """``n`` Haar-random orthogonal matrices (rotate a lattice as ``L @ Q.T``).

    QR-decompose a matrix :math:`Z` of independent standard normals, :math:`Z = QR`, and fix
    the signs, :math:`Q \\leftarrow Q\\,\\mathrm{diag}(\\mathrm{sign}\\, R_{ii})`; this is Haar
    on O(3) (Mezzadri 2007; without the sign fix the law is not Haar).  With ``proper=True`` a
    matrix with :math:`\\det Q = -1` has its first column negated, which maps Haar on O(3) to
    Haar on SO(3).

    Parameters
    ----------
    n : int
        Number of matrices.
    rng : numpy.random.Generator
        The only source of randomness.
    proper : bool
        ``True``: SO(3) (det +1); ``False``: O(3) (det +1 or -1, each with probability 1/2).

    Returns
    -------
    numpy.ndarray, shape (n, 3, 3), float64

    Examples
    --------
    >>> Q = random_rotation(4, rng=np.random.default_rng(0))
    >>> bool(np.allclose(Q @ Q.transpose(0, 2, 1), np.eye(3))), np.round(np.linalg.det(Q), 12).tolist()
    (True, [1.0, 1.0, 1.0, 1.0])
    """
    n = _check_n(n)
    rng = _check_rng(rng)
    z = rng.standard_normal((n, 3, 3))
    q, r = np.linalg.qr(z)
    s = np.sign(np.diagonal(r, axis1=-2, axis2=-1))
    s[s == 0] = 1.0
    q = q * s[:, None, :]
    if proper:
        flip = np.linalg.det(q) < 0
        q[flip, :, 0] *= -1.0
    return np.ascontiguousarray(q, dtype=np.float64)


def _as_fraction(x: Any) -> Fraction:
    if isinstance(x, bool | np.bool_) or not isinstance(x, numbers.Real):
        raise TypeError(f"entries must be rational numbers, got {type(x).__name__} {x!r}")
    if isinstance(x, float | np.floating) and not math.isfinite(float(x)):
        raise NonFiniteLatticeError(f"entries must be finite, got {x!r}")
    if isinstance(x, numbers.Rational):
        return Fraction(int(x.numerator), int(x.denominator))
    return Fraction(float(x))


def cayley_rotation(skew: Any) -> NDArray[Any]:
    """Exact rotation :math:`Q = (I - S)(I + S)^{-1}` of a rational skew-symmetric :math:`S`.

    With :math:`S = [w]_\\times` (so :math:`S v = w \\times v`) the Cayley transform is

    .. math:: Q = \\frac{(1 - w\\cdot w)\\, I + 2\\, w w^T - 2\\, S}{1 + w \\cdot w},

    which is exactly orthogonal with :math:`\\det Q = +1` for every rational :math:`w`
    (:math:`I + S` is always invertible: its eigenvalues are :math:`1` and
    :math:`1 \\pm i|w|`).  ``Q`` is the rotation by :math:`2\\arctan|w|` about the axis
    :math:`-w`.  Rotations by exactly :math:`\\pi` are limits, not values, of this map.

    Parameters
    ----------
    skew : array_like
        Either the vector ``w`` (length 3) or the skew-symmetric matrix
        ``[[0, -w3, w2], [w3, 0, -w1], [-w2, w1, 0]]``; ints, Fractions or floats (converted
        exactly).

    Returns
    -------
    numpy.ndarray, shape (3, 3), dtype object
        ``Fraction`` entries; ``Q @ Q.T`` is exactly the identity.

    Examples
    --------
    >>> Q = cayley_rotation([1, 0, 0])
    >>> [[str(x) for x in row] for row in Q]
    [['1', '0', '0'], ['0', '0', '1'], ['0', '-1', '0']]
    >>> Q = cayley_rotation([Fraction(1, 2), 2, -1])
    >>> bool((Q @ Q.T == np.eye(3, dtype=int)).all()), exact_det(Q)
    (True, Fraction(1, 1))
    """
    arr = np.asarray(skew, dtype=object)
    if arr.shape == (3,):
        w = [_as_fraction(x) for x in arr]
    elif arr.shape == (3, 3):
        s = [[_as_fraction(arr[i, j]) for j in range(3)] for i in range(3)]
        if any(s[i][j] != -s[j][i] for i in range(3) for j in range(3)):
            raise LatticeError(f"matrix is not skew-symmetric: {[[str(x) for x in row] for row in s]}")
        w = [s[2][1], s[0][2], s[1][0]]
    else:
        raise LatticeShapeError(f"skew must be a 3-vector or a 3x3 skew-symmetric matrix, got shape {arr.shape}")
    s_mat = [[Fraction(0), -w[2], w[1]], [w[2], Fraction(0), -w[0]], [-w[1], w[0], Fraction(0)]]
    ww = w[0] * w[0] + w[1] * w[1] + w[2] * w[2]
    out = np.empty((3, 3), dtype=object)
    for i in range(3):
        for j in range(3):
            out[i, j] = ((1 - ww) * (i == j) + 2 * w[i] * w[j] - 2 * s_mat[i][j]) / (1 + ww)
    return out


def random_rational_rotation(n: int, *, rng: np.random.Generator, max_height: int = 4) -> NDArray[Any]:
    """``n`` exact rotations with ``Fraction`` entries, by :func:`cayley_rotation`.

    Each component of ``w`` is ``p / q`` with ``p`` uniform in ``[-max_height, max_height]`` and
    ``q`` uniform in ``[1, max_height]``.  The rotations are exact (``Q @ Q.T == I``, ``det Q = 1``
    in rational arithmetic); their law is not Haar.

    Returns
    -------
    numpy.ndarray, shape (n, 3, 3), dtype object

    Examples
    --------
    >>> Q = random_rational_rotation(3, rng=np.random.default_rng(0))
    >>> Q.shape, all((q @ q.T == np.eye(3, dtype=int)).all() for q in Q)
    ((3, 3, 3), True)
    """
    n = _check_n(n)
    rng = _check_rng(rng)
    if isinstance(max_height, bool) or not isinstance(max_height, numbers.Integral) or max_height < 1:
        raise LatticeError(f"max_height must be a positive int, got {max_height!r}")
    p = rng.integers(-max_height, max_height + 1, size=(n, 3))
    q = rng.integers(1, max_height + 1, size=(n, 3))
    out = np.empty((n, 3, 3), dtype=object)
    for t in range(n):
        out[t] = cayley_rotation([Fraction(int(a), int(b)) for a, b in zip(p[t], q[t])])
    return out
