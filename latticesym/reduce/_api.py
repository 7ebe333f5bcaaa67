"""Public float64 and mpmath Niggli reducers and the float ``is_niggli_reduced`` predicate.

See :func:`niggli_reduce` for the contract and ``docs/algorithm.md`` for the algorithm.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from enum import IntEnum
from fractions import Fraction
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from latticesym.errors import (
    BatchReductionError,
    LatticeError,
    LatticeShapeError,
    NonFiniteLatticeError,
    OptionError,
    PrecisionError,
    ReductionCycleError,
    ReductionError,
    SingularLatticeError,
)
from latticesym.reduce import _kg
from latticesym.reduce._accurate import UNIT_ROUNDOFF, cbrt_squared, det3_with_bound
from latticesym.reduce._context import ExactContext, FloatContext, MPContext, _mpf_to_fraction, exact_entries

__all__ = [
    "Arithmetic",
    "NiggliResult",
    "ReduceStatus",
    "is_niggli_reduced",
    "mp_niggli_reduce",
    "niggli_reduce",
]

_NO_SCALE = -100000
#: Precisions (bits) of the mpmath stages of the escalation, before the exact stage.
ESCALATION_PRECISIONS = (128, 512)


class ReduceStatus(IntEnum):
    """Per-lattice outcome of a reduction (``NiggliResult.status``; with ``errors="mask"``)."""

    OK = _kg.OK  #: reduced and certified
    NONFINITE = _kg.NONFINITE  #: NaN or infinite entries
    SINGULAR = _kg.SINGULAR  #: linearly dependent rows (exactly zero volume)
    PRECISION = _kg.PRECISION  #: float64 could not decide (only with ``precision="float"``)
    NOT_CONVERGED = _kg.NOT_CONVERGED  #: ``max_iter`` reached
    OVERFLOW = _kg.OVERFLOW  #: transform or output not representable (int64 / float64)
    CYCLE = _kg.CYCLE  #: the steps cycled (only with ``precision="float"``; ``"auto"`` escalates)


class Arithmetic(IntEnum):
    """The arithmetic that produced and certified a result (``NiggliResult.arithmetic``)."""

    FLOAT64 = 0
    MPMATH = 1
    EXACT = 2


@dataclass(frozen=True)
class NiggliResult:
    """Frozen result of :func:`niggli_reduce` / :func:`mp_niggli_reduce` (arrays read-only).

    Attributes
    ----------
    lattice : ndarray, shape (..., 3, 3)
        The reduced basis (rows), ``transform @ input`` rounded faithfully (Dot2 or exact).
    transform : ndarray of int64, shape (..., 3, 3)
        Integer, ``det == +1``.
    g6 : ndarray, shape (..., 6)
        ``(A, B, C, xi, eta, zeta)`` of ``lattice`` (Angstrom**2).  The reduced G6 is unique up to
        the tolerance; the basis only up to the lattice's automorphisms.
    iterations : int or ndarray of int64
        Unimodular steps taken (pre-reduction plus Krivy-Gruber).
    status : ReduceStatus or ndarray of int8
        ``ReduceStatus.OK`` unless ``errors="mask"`` kept a failure (then ``lattice`` and ``g6``
        are NaN and ``transform`` is zero for that lattice).
    arithmetic : Arithmetic or ndarray of int8
        Which arithmetic decided: float64, mpmath (escalated) or exact (escalated further).
    tolerance : float or ndarray
        The absolute tolerance ``e = eps * V**(2/3)`` used (Angstrom**2).
    """

    lattice: Any
    transform: Any
    g6: Any
    iterations: Any
    status: Any
    arithmetic: Any
    tolerance: Any

    @property
    def ok(self) -> Any:
        """Boolean (array): which lattices were reduced."""
        return np.asarray(self.status) == ReduceStatus.OK

    @property
    def failed(self) -> list[tuple[int, ...]]:
        """Index tuples (into the leading shape) of the lattices that failed."""
        return [tuple(int(i) for i in ix) for ix in np.argwhere(~np.atleast_1d(self.ok))] if np.ndim(
            self.status) else ([] if self.status == ReduceStatus.OK else [()])


class _keep_torch_threads:
    """Restore torch's intra-op thread count around numba's parallel kernel, if torch is loaded.

    numba's OpenMP layer shares the runtime with torch, and its first parallel launch leaves the
    calling thread's OpenMP thread count at numba's (measured: ``torch.get_num_threads()`` 1 -> 2),
    so a user's ``torch.set_num_threads(1)`` silently stops holding.  Nothing is imported here:
    without torch in ``sys.modules`` there is nothing to restore.
    """

    def __enter__(self) -> None:
        import sys

        torch = sys.modules.get("torch")
        self.torch = torch if torch is not None and hasattr(torch, "get_num_threads") else None
        self.threads = self.torch.get_num_threads() if self.torch is not None else 0

    def __exit__(self, *exc: object) -> None:
        if self.torch is not None and self.torch.get_num_threads() != self.threads:
            self.torch.set_num_threads(self.threads)


# --------------------------------------------------------------------------- argument checks
def _check_eps(eps: Any) -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps must be a real number, got {type(eps).__name__}")
    eps = float(eps)
    if not (math.isfinite(eps) and eps >= 0):
        raise OptionError(f"eps must be finite and >= 0, got {eps!r}")
    return eps


def _check_max_iter(max_iter: Any) -> int:
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 1:
        raise OptionError(f"max_iter must be an int >= 1, got {max_iter!r}")
    return int(max_iter)


def _as_float_batch(lattice: Any, what: str = "lattice") -> NDArray[np.float64]:
    """Float64 array of shape (..., 3, 3); TypeError for non-numbers, LatticeShapeError for shapes."""
    if isinstance(lattice, str | bytes):
        raise TypeError(f"{what} must be an array of numbers, got a string")
    try:
        arr = np.asarray(lattice)
    except (TypeError, ValueError) as exc:  # ragged nested sequences
        raise LatticeShapeError(f"{what} is not a rectangular array: {exc}") from exc
    if arr.dtype.kind == "c":
        raise TypeError(f"{what} must be real, got complex dtype {arr.dtype}")
    if arr.dtype.kind == "b":
        raise TypeError(f"{what} must be numbers, got booleans")
    if arr.dtype.kind not in "iuf":
        if arr.dtype.kind != "O":
            raise TypeError(f"{what} must be real numbers, got dtype {arr.dtype}")
        if any(isinstance(v, bool | np.bool_ | str | bytes | complex) for v in arr.ravel()):
            raise TypeError(f"{what} entries must be real numbers")
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{what} entries must be real numbers: {exc}") from exc
        except OverflowError as exc:
            raise NonFiniteLatticeError(f"{what} has an entry too large for float64: {exc}") from exc
    if arr.ndim < 2 or arr.shape[-2:] != (3, 3):
        raise LatticeShapeError(f"{what} must have shape (3, 3) or (..., 3, 3), got {arr.shape}")
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(arr, dtype=np.float64)


def _prepare_numpy(src: NDArray[np.float64]) -> tuple[NDArray[Any], ...]:
    """Power-of-two normalisation and Veltkamp split, exactly as the numba ``_prepare``."""
    from latticesym.reduce._batch import prepare

    return prepare(src)


def _backend_name(backend: str, n: int) -> str:
    from latticesym.reduce import _numba

    if backend == "auto":
        if _numba.available():
            if n < 4096:
                return "numba"
            if _numba.compiled("parallel"):
                return "numba-parallel"
            # not compiled yet (seconds on a fresh install): this batch runs serially (bit-identical)
            # while the parallel kernel compiles in the background; latticesym.warmup() does it upfront
            _numba.compile_in_background("parallel")
            return "numba"
        return "python" if n == 1 else "numpy"
    if backend in ("numba", "numba-parallel") and not _numba.available():
        raise ImportError(f"backend={backend!r} needs numba, which is not installed")
    if backend not in ("numba", "numba-parallel", "numpy", "python"):
        raise OptionError(f"backend must be 'auto', 'numba', 'numba-parallel', 'numpy' or 'python', got {backend!r}")
    return backend


def output_arrays(n: int) -> tuple[NDArray[Any], ...]:
    """Uninitialised ``(t, lattice, g6, status, iterations, tolerance)`` for ``n`` lattices, carved
    from one buffer: one allocation instead of six (for large batches numpy backs it with huge
    pages, so first touching the outputs does not cost a page fault per 4 KiB, which measured
    ~75 ns per lattice for six separate arrays)."""
    buf = np.empty(n * 209, np.uint8)
    t = buf[: 72 * n].view(np.int64).reshape(n, 3, 3)
    r = buf[72 * n: 144 * n].view(np.float64).reshape(n, 3, 3)
    g6 = buf[144 * n: 192 * n].view(np.float64).reshape(n, 6)
    it = buf[192 * n: 200 * n].view(np.int64)
    tol = buf[200 * n: 208 * n].view(np.float64)
    st = buf[208 * n:].view(np.int8)
    return t, r, g6, st, it, tol


def _run_float(src: NDArray[np.float64], eps: float, max_iter: int, backend: str, skip: int
               ) -> tuple[NDArray[Any], ...]:
    """Float64 reduction of every lattice of ``src`` (n, 3, 3) with the chosen backend.

    Returns ``(t, lattice, g6, status, iterations, tolerance)`` in the original units: ``t`` int64
    (the transform reached), ``status`` int8 (``NONFINITE`` for NaN/inf input, ``OVERFLOW`` where a
    certified output is not representable), ``tolerance`` ``min(e, TAU_A * A)``.  Failed
    lattices keep the state they reached; the caller escalates them or masks them.
    """
    n = src.shape[0]
    t, r, g6, st, it, tol = output_arrays(n)
    if backend.startswith("numba"):
        from latticesym.reduce import _numba

        if backend == "numba-parallel":
            with _keep_torch_threads():
                _numba.kernel("parallel")(src, eps, max_iter, skip, t, r, g6, st, it, tol)
        else:
            _numba.kernel("serial")(src, eps, max_iter, skip, t, r, g6, st, it, tol)
        return t, r, g6, st, it, tol
    from latticesym.reduce import _batch

    if backend == "numpy":
        return _batch.reduce_raw(src, eps, max_iter, skip)
    # the one-lattice path (no numba; batches use numpy or numba), then the batch's own finishing
    finite = np.isfinite(src).all(axis=(1, 2))
    t[:], r[:], g6[:], st[:], it[:], tol[:] = np.eye(3, dtype=np.int64), np.nan, np.nan, _kg.NONFINITE, 0, np.nan
    run_idx = np.flatnonzero(finite)
    if not run_idx.size:
        return t, r, g6, st, it, tol
    x, _, _, _, k = _batch.prepare(src[run_idx])
    m = run_idx.size
    tf, rr, g6n = np.zeros((m, 3, 3)), np.zeros((m, 3, 3)), np.zeros((m, 6))
    s_f, i_f, et = np.zeros(m, np.int64), np.zeros(m, np.int64), np.zeros(m)
    ctx = FloatContext()
    for i in range(m):
        if k[i] == _NO_SCALE:
            continue
        run = _kg.reduce_with_context(ctx, ctx.prepare(x[i]), eps, max_iter, skip=skip)
        tf[i], rr[i], g6n[i] = run.transform, run.rows, run.g6
        s_f[i], i_f[i], et[i] = run.status, run.iterations, run.e
    t[run_idx], r[run_idx], g6[run_idx], st[run_idx], it[run_idx], tol[run_idx] = _batch.finalize(
        tf, rr, g6n, s_f, i_f, et, k)
    return t, r, g6, st, it, tol


def _exact_volume(src: NDArray[np.float64]) -> Fraction:
    return abs(ExactContext.prepare(src).det)


def _escalate(src: NDArray[np.float64], eps: float, max_iter: int, skip: int) -> tuple[Any, ...]:
    """Reduce one lattice in mpmath, then exactly; returns (status, arithmetic, t, lattice, g6, it, e)."""
    from latticesym.reference import niggli_reduce as exact_reduce

    data = ExactContext.prepare(src)
    if data.det == 0:
        return (_kg.SINGULAR, Arithmetic.EXACT, None, None, None, 0, 0.0)
    mp128 = MPContext(ESCALATION_PRECISIONS[0])
    e_mp = mp128.tolerance(mp128.to_mp(abs(data.det)), eps)
    e_frac = _mpf_to_fraction(e_mp)
    run = None
    for prec in ESCALATION_PRECISIONS:
        ctx = MPContext(prec)
        run = _kg.reduce_with_context(ctx, data, eps, max_iter, e=ctx.to_mp(e_frac), skip=skip)
        if run.status == _kg.OK:
            return _from_exact_run(run, data, Arithmetic.MPMATH, e_frac)
        if run.status == _kg.NOT_CONVERGED:  # the caller's cap, not a matter of precision
            return (run.status, Arithmetic.MPMATH, run.transform, None, None, run.iterations, _float(e_frac))
    t0 = [[int(v) for v in row] for row in exact_reduce(src).transform]
    run = _kg.reduce_with_context(ExactContext, data, eps, max_iter, e=e_frac, transform=t0, skip=skip)
    if run.status == _kg.OK:
        return _from_exact_run(run, data, Arithmetic.EXACT, e_frac)
    if run.status == _kg.CYCLE and not skip:
        # The tolerant comparisons can contradict each other even in exact arithmetic when e is
        # large against the shortest vectors (needle cells: e = eps V**(2/3) reaches the cap A / 16).
        # The oracle's form is reduced with e = 0 (no comparison is tolerant), so report that,
        # honestly, with tolerance 0 (regression: tests/unit/test_reduce_extreme.py).
        run0 = _kg.reduce_with_context(ExactContext, data, eps, max_iter, e=Fraction(0), transform=t0)
        if run0.status == _kg.OK:
            return _from_exact_run(run0, data, Arithmetic.EXACT, Fraction(0))
    return (run.status, Arithmetic.EXACT, run.transform, None, None, run.iterations, _float(e_frac))


def _float(x: Fraction) -> float:
    try:
        return float(x)
    except OverflowError:
        return math.inf


def _from_exact_run(run: _kg.KGRun, data: Any, arith: Arithmetic, e: Fraction) -> tuple[Any, ...]:
    t = run.transform
    rows = [[t[i][0] * data.x[0][j] + t[i][1] * data.x[1][j] + t[i][2] * data.x[2][j] for j in range(3)]
            for i in range(3)]
    gram = [[sum((rows[i][k] * rows[j][k] for k in range(3)), Fraction(0)) for j in range(3)] for i in range(3)]
    g6 = (gram[0][0], gram[1][1], gram[2][2], 2 * gram[1][2], 2 * gram[0][2], 2 * gram[0][1])
    try:
        lat = [[float(v) for v in row] for row in rows]
        g6f = [float(v) for v in g6]
    except OverflowError:
        return (_kg.OVERFLOW, arith, t, None, None, run.iterations, _float(e))
    if max(abs(v) for row in t for v in row) >= 2**63 or not all(math.isfinite(v) for v in g6f):
        return (_kg.OVERFLOW, arith, t, None, None, run.iterations, _float(e))
    if g6f[0] < _kg.G6_MIN or (e != 0 and _float(e) < _kg.NORMAL_MIN):  # underflow, as the float path
        return (_kg.OVERFLOW, arith, t, None, None, run.iterations, _float(e))
    return (_kg.OK, arith, t, lat, g6f, run.iterations, min(_float(e), _kg.TAU_A * g6f[0]))


def _error_for(status: int, index: tuple[int, ...], iterations: int, g6: Any, transform: Any,
               amax: float | None = None) -> LatticeError:
    where = f" (lattice {index})" if index else ""
    if status == _kg.NONFINITE:
        return NonFiniteLatticeError(f"lattice has NaN or infinite entries{where}")
    if status == _kg.SINGULAR:
        return SingularLatticeError(f"basis is linearly dependent: its determinant is exactly 0{where}")
    if status == _kg.PRECISION:
        return PrecisionError(f"float64 cannot decide the tolerant Niggli comparisons for this lattice{where}; "
                              "use precision='auto' to escalate it to mpmath and exact arithmetic")
    if status == _kg.OVERFLOW:
        size = "" if amax is None else f" (largest |entry| {amax:.6g})"
        return PrecisionError(f"the reduction needs transform entries beyond 2**52 (float) / 2**63 (int64) or "
                              f"its G6 or tolerance is not representable in float64{where}{size}: G6 entries "
                              f"overflow beyond 1.8e308 or underflow below {_kg.G6_MIN:.6g} (lattice vectors "
                              "longer than ~1.3e154 or shorter than ~1.5e-154); Niggli reduction is "
                              "scale-invariant, so reduce s * lattice and scale the G6 by 1 / s**2")
    if status == _kg.CYCLE:
        # exact Krivy-Gruber terminates: a float cycle means the tolerant comparisons contradicted each other
        return ReductionCycleError(f"reduction cycled{where} after {iterations} steps: float64 cannot decide "
                                   "this lattice consistently; use precision='auto' to escalate it",
                                   iterations=int(iterations), g6=g6, transform=transform)
    what = "did not converge within max_iter"
    return ReductionError(f"reduction {what}{where} after {iterations} steps",
                          iterations=int(iterations), g6=g6, transform=transform)


def _freeze(*arrays: Any) -> None:
    for a in arrays:
        if isinstance(a, np.ndarray):
            a.flags.writeable = False


# --------------------------------------------------------------------------- public API
def niggli_reduce(lattice: ArrayLike, *, eps: float = 1e-5, max_iter: int = 1000,
                  precision: Literal["auto", "float"] = "auto", errors: Literal["raise", "mask"] = "raise",
                  backend: str = "auto", _skip: int = 0) -> NiggliResult:
    """Niggli-reduce float64 lattices (rows are basis vectors), certified, never silently wrong.

    Parameters
    ----------
    lattice : array_like, shape (3, 3) or (..., 3, 3)
        Rows are the basis vectors a, b, c (Angstrom).  Ints and floats; converted to float64.
    eps : float, keyword-only
        Relative, dimensionless tolerance.  Comparisons use the absolute tolerance
        :math:`e = \\mathrm{eps}\\cdot V^{2/3}` (Angstrom**2, the units of G6), :math:`V = |\\det L|`,
        so a lattice scaled by ``t`` reduces with the same transform for every ``t``.  ``eps = 0``
        gives exact comparisons: lattices on a Niggli boundary (equal lengths, right angles) are
        then undecidable in float64 and escalate (slow), or raise with ``precision="float"``.
    max_iter : int, keyword-only
        Cap on the Krivy-Gruber steps (and separately on the pre-reduction steps).  Reaching it,
        or a cycle, is never a silent stop: :class:`~latticesym.errors.ReductionError`.
    precision : {"auto", "float"}, keyword-only
        ``"auto"``: a lattice whose comparisons float64 cannot decide (near-singular input, a
        state within rounding of a tolerance edge) is re-run in mpmath (128, then 512 bits), and
        finally in exact rational arithmetic, starting from the exact oracle's transform.
        ``"float"``: raise :class:`~latticesym.errors.PrecisionError` instead.
    errors : {"raise", "mask"}, keyword-only
        ``"raise"``: a failing lattice raises its typed error (a batch raises
        :class:`~latticesym.errors.BatchReductionError` naming every failed index).  ``"mask"``:
        return anyway, with ``result.status`` per lattice and ``result.failed`` listing indices.
    backend : {"auto", "numba", "numba-parallel", "numpy", "python"}, keyword-only
        Implementation (all bit-identical): the compiled kernel if numba is installed, else the
        vectorised numpy batch (the Python loop for a single lattice).

    Returns
    -------
    NiggliResult
        ``transform @ lattice == result.lattice`` to rounding (faithful: Dot2, or exact),
        ``det(transform) == +1``, ``result.g6`` reduced within ``e``.  Arrays have the leading
        shape of the input; for a single (3, 3) lattice ``iterations`` is an ``int``.

    Raises
    ------
    TypeError
        Non-numeric input (strings, objects, complex, booleans).
    LatticeShapeError
        Trailing shape not (3, 3).
    NonFiniteLatticeError, SingularLatticeError, PrecisionError, ReductionError
        For a single lattice with ``errors="raise"``.
    BatchReductionError
        For a batch with ``errors="raise"``: ``.failed`` and ``.errors`` per lattice.

    Notes
    -----
    Algorithm (``docs/algorithm.md``): power-of-two normalisation (exact); pre-reduction with
    rounded multiples (iterations grow with ``log(shear)``); Krivy & Gruber (1976) with the
    tolerant comparisons of Grosse-Kunstleve, Sauter & Adams (2004); every step recomputes the
    changed row from the *original input* and the integer transform (a plain product, or Dot2 when
    it cancels); Brent's cycle detection; certification of the final state with rounding-error
    bounds (every comparison must hold beyond its error bound).

    References
    ----------
    I. Krivy & B. Gruber (1976). Acta Cryst. A32, 297-298. https://doi.org/10.1107/S0567739476000636
    R. W. Grosse-Kunstleve, N. K. Sauter & P. D. Adams (2004). Acta Cryst. A60, 1-6.
    https://doi.org/10.1107/S010876730302186X
    T. Ogita, S. M. Rump & S. Oishi (2005). SIAM J. Sci. Comput. 26, 1955-1988.

    Examples
    --------
    >>> r = niggli_reduce([[1.0, 0, 0], [1000.0, 1, 0], [0, 0, 1]])
    >>> r.g6.tolist(), r.transform.tolist()
    ([1.0, 1.0, 1.0, 0.0, 0.0, 0.0], [[1, 0, 0], [-1000, 1, 0], [0, 0, 1]])
    """
    eps = _check_eps(eps)
    max_iter = _check_max_iter(max_iter)
    if precision not in ("auto", "float"):
        raise OptionError(f"precision must be 'auto' or 'float', got {precision!r}")
    if errors not in ("raise", "mask"):
        raise OptionError(f"errors must be 'raise' or 'mask', got {errors!r}")
    arr = _as_float_batch(lattice)
    if arr.shape == (3, 3) and backend in ("auto", "numba") and not _skip and _numba_available():
        fast = _single_fast(arr, eps, max_iter)
        if fast is not None:
            return fast
    lead = arr.shape[:-2]
    src = arr.reshape(-1, 3, 3)
    n = src.shape[0]
    tf, lat, g6, status, iters, etol = _run_float(src, eps, max_iter, _backend_name(backend, n), _skip)
    arith = np.zeros(n, dtype=np.int8)
    bad = np.flatnonzero(status != _kg.OK)
    for i in bad:  # rare: escalate, or name the failure exactly
        if status[i] == _kg.NONFINITE:
            continue
        if precision == "float" or status[i] == _kg.NOT_CONVERGED:
            if _exact_volume(src[i]) == 0:
                status[i] = _kg.SINGULAR
            continue
        st, ar, t, lt, gg, it, ee = _escalate(src[i], eps, max_iter, _skip)
        status[i], arith[i], iters[i], etol[i] = st, ar, it, ee
        if st == _kg.OK:
            tf[i], lat[i], g6[i] = t, lt, gg
    failed = bad[status[bad] != _kg.OK]
    tf[failed] = 0
    lat[failed] = np.nan
    g6[failed] = np.nan
    if errors == "raise" and failed.size:
        idx = [tuple(int(v) for v in np.unravel_index(i, lead)) for i in failed]
        errs = [_error_for(int(status[i]), ix, int(iters[i]), None, None, float(np.abs(src[i]).max()))
                for i, ix in zip(failed, idx)]
        if not lead:
            raise errs[0]
        raise BatchReductionError(
            f"{len(failed)} of {n} lattices failed, first {idx[0]}: {errs[0]}", failed=idx, errors=errs)
    out_lat, out_t, out_g6 = lat.reshape(*lead, 3, 3), tf.reshape(*lead, 3, 3), g6.reshape(*lead, 6)
    if not lead:
        result = NiggliResult(out_lat, out_t, out_g6, int(iters[0]), ReduceStatus(int(status[0])),
                              Arithmetic(int(arith[0])), float(etol[0]))
    else:
        result = NiggliResult(out_lat, out_t, out_g6, iters.reshape(lead), status.reshape(lead),
                              arith.reshape(lead), etol.reshape(lead))
    _freeze(result.lattice, result.transform, result.g6, result.iterations, result.status, result.arithmetic,
            result.tolerance)
    return result


def _numba_available() -> bool:
    from latticesym.reduce import _numba

    return _numba.available()


def _single_fast(arr: NDArray[np.float64], eps: float, max_iter: int) -> NiggliResult | None:
    """One compiled call for one lattice; ``None`` sends anything unusual down the general path."""
    from latticesym.reduce import _numba

    t, r, g6, st, it, tol = _numba.kernel("single")(arr, eps, max_iter)
    if st != _kg.OK:
        return None
    t.flags.writeable = False
    r.flags.writeable = False
    g6.flags.writeable = False
    return NiggliResult(r, t, g6, int(it), ReduceStatus.OK, Arithmetic.FLOAT64, float(tol))


def mp_niggli_reduce(lattice: Any, *, eps: float = 1e-5, prec: int = 113, max_iter: int = 1000) -> NiggliResult:
    """Niggli-reduce one lattice in mpmath at ``prec`` bits (the same algorithm as :func:`niggli_reduce`).

    The step logic is :func:`latticesym.reduce._kg.kg_decide`, run in a private
    ``mpmath.MPContext`` of precision ``prec`` (the global ``mpmath.mp`` is not touched).  Rows of
    ``transform @ lattice`` are computed exactly and rounded once to ``prec`` bits; the tolerance is
    ``e = eps * V**(2/3)`` with the exact volume, capped at ``A / 16`` as in the float path (and
    reported as ``result.tolerance``); the final state is certified with error bounds for unit
    roundoff ``2**-prec``.

    Parameters
    ----------
    lattice : array_like, shape (3, 3)
        Ints, floats (exactly), Fractions, sympy rationals or mpmath numbers.
    eps : float
        Relative tolerance, as in :func:`niggli_reduce`.
    prec : int
        Working precision in bits (>= 53).
    max_iter : int
        Cap on the steps of each phase.

    Returns
    -------
    NiggliResult
        ``lattice`` and ``g6`` are object arrays of ``mpf`` (``prec`` bits); ``transform`` is int64
        (an object array of Python ints if an entry exceeds int64); ``arithmetic`` is MPMATH.

    Raises
    ------
    PrecisionError
        ``prec`` is too low to certify the comparisons (raise it).
    ReductionError, SingularLatticeError, NonFiniteLatticeError, LatticeShapeError, TypeError

    Examples
    --------
    >>> r = mp_niggli_reduce([[1, 0, 0], [1000, 1, 0], [0, 0, 1]], prec=200)
    >>> [int(v) for v in r.g6], r.transform.tolist()
    ([1, 1, 1, 0, 0, 0], [[1, 0, 0], [-1000, 1, 0], [0, 0, 1]])
    """
    eps = _check_eps(eps)
    max_iter = _check_max_iter(max_iter)
    ctx = MPContext(prec)
    data = ctx.prepare(exact_entries(lattice))
    if data.det == 0:
        raise SingularLatticeError("basis is linearly dependent: its determinant is exactly 0")
    run = _kg.reduce_with_context(ctx, data, eps, max_iter)
    if run.status != _kg.OK:
        if run.status == _kg.PRECISION:
            raise PrecisionError(f"{prec} bits cannot certify the tolerant comparisons for this lattice; "
                                 "raise prec")
        raise _error_for(run.status, (), run.iterations, run.g6, run.transform)
    lat = np.empty((3, 3), dtype=object)
    for i in range(3):
        for j in range(3):
            lat[i, j] = run.rows[i][j]
    big = max(abs(v) for row in run.transform for v in row) >= 2**63
    t = np.array(run.transform, dtype=object if big else np.int64)
    g6 = np.empty(6, dtype=object)
    g6[:] = list(run.g6)
    # the tolerance the comparisons used, as the float path reports it: min(e, TAU_A * A) (needle cap)
    tol = min(run.e, run.g6[0] / 16)  # TAU_A = 1/16, a division so the mpf stays exact
    result = NiggliResult(lat, t, g6, run.iterations, ReduceStatus.OK, Arithmetic.MPMATH, tol)
    _freeze(lat, t, g6)
    return result


def is_niggli_reduced(lattice: ArrayLike, *, eps: float = 1e-5) -> Any:
    """Whether lattices are Niggli reduced within ``e = eps * V**(2/3)``: no reducer step applies.

    The predicate is :func:`latticesym.reduce._kg.kg_decide` (the reducer's own step logic)
    evaluated on the G6 of the lattice: a lattice is reduced iff no Krivy-Gruber step fires.  The
    float64 answer is used when rounding-error bounds show that it cannot flip; otherwise the G6
    is recomputed exactly (``Fraction``) and decided exactly, so the answer is always that of the
    exact metric of the float lattice given.

    Parameters
    ----------
    lattice : array_like, shape (3, 3) or (..., 3, 3)
    eps : float, keyword-only
        As in :func:`niggli_reduce` (``eps = 0``: the exact Niggli conditions).

    Returns
    -------
    bool or ndarray of bool

    Raises
    ------
    TypeError, LatticeShapeError, NonFiniteLatticeError, SingularLatticeError

    Examples
    --------
    >>> is_niggli_reduced([[1.0, 0, 0], [0, 1, 0], [0, 0, 1]])
    True
    >>> is_niggli_reduced([[1.0, 0, 0], [1, 1, 0], [0, 0, 1]])
    False
    """
    eps = _check_eps(eps)
    arr = _as_float_batch(lattice)
    lead = arr.shape[:-2]
    src = arr.reshape(-1, 3, 3)
    if not np.isfinite(src).all():
        raise NonFiniteLatticeError("lattice has NaN or infinite entries")
    x, _, _, _, k = _prepare_numpy(src)
    g = np.einsum("nik,njk->nij", x, x)  # plain dot products: error bound below covers any order
    u = UNIT_ROUNDOFF
    det, bound = det3_with_bound(*(x[:, i, j] for i in range(3) for j in range(3)))
    v = np.abs(det)
    reliable = (bound + 2.0**-1020 < _kg.VOLUME_RTOL * v) & (k != _NO_SCALE)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = eps * cbrt_squared(np.where(reliable, v, 1.0), np.frexp, np.ldexp)
    one = 1.0 + 8.0 * u
    nb = [np.sqrt(g[:, i, i]) * one for i in range(3)]
    zero = np.zeros(src.shape[0])
    d = _kg.g6_error_bounds(nb[0], nb[1], nb[2], zero, zero, zero, u, 2.0**-1020)
    code, unsure, _, _, _ = _kg.kg_decide(g[:, 0, 0], g[:, 1, 1], g[:, 2, 2], 2 * g[:, 1, 2], 2 * g[:, 0, 2],
                                          2 * g[:, 0, 1], *d, e, u)
    answer = np.asarray(code) == _kg.REDUCED
    redo = np.flatnonzero(~reliable | np.broadcast_to(np.asarray(unsure), answer.shape))
    for i in redo:
        answer[i] = _exact_is_reduced(src[i], eps)
    return bool(answer[0]) if not lead else answer.reshape(lead)


def _exact_is_reduced(src: NDArray[np.float64], eps: float) -> bool:
    data = ExactContext.prepare(src)
    if data.det == 0:
        raise SingularLatticeError("basis is linearly dependent: its determinant is exactly 0")
    rows = [list(r) for r in data.x]
    g = [[ExactContext.dot(rows[i], rows[j]) for j in range(3)] for i in range(3)]
    mp = MPContext(128)
    e_mp = mp.tolerance(mp.to_mp(abs(data.det)), eps)
    e = _mpf_to_fraction(e_mp)
    z = Fraction(0)
    return bool(_kg.kg_decide(g[0][0], g[1][1], g[2][2], 2 * g[1][2], 2 * g[0][2], 2 * g[0][1],
                              z, z, z, z, z, z, e, z)[0] == _kg.REDUCED)
