"""Exact Krivy-Gruber Niggli reduction on an integer Gram matrix, tracking the transform.

Every comparison is exact (eps = 0): the Gram matrix is scaled to Python integers, each step
applies an integer matrix ``M`` (det +1) as ``G <- M G M^T`` and ``T <- M T``, so
``T @ L_in`` is the reduced basis and ``G == T G_in T^T`` holds exactly at every step.

Two phases (docs/algorithm.md):

1. *Pre-reduction* by Gauss-Lagrange steps with rounded multiples ``v_i <- v_i - q v_j``,
   taken only when they strictly shorten ``v_i``.  The integer trace of ``G`` decreases at each
   step, so the phase terminates, and a basis sheared by ``n`` needs ``O(log n)`` steps rather
   than the ``O(n)`` of single-multiple Krivy-Gruber steps.
2. *Krivy & Gruber (1976)* steps A1-A8, with A5-A7 generalised to rounded multiples
   ``q = round(xi / 2B)`` (ties away from zero) instead of ``q = sign(xi)``.  On the boundary
   ``|xi| == B`` that is exactly Krivy-Gruber's single step; beyond it, it removes every whole
   multiple at once.  Any integer multiple is a unimodular step, and the final state is decided
   by the Niggli conditions alone, so the result is the unique form.

References
----------
I. Krivy & B. Gruber (1976). Acta Cryst. A32, 297-298. https://doi.org/10.1107/S0567739476000636
R. W. Grosse-Kunstleve, N. K. Sauter & P. D. Adams (2004). Acta Cryst. A60, 1-6.
https://doi.org/10.1107/S010876730302186X
"""

from __future__ import annotations

from dataclasses import dataclass, field

from latticesym.errors import ReductionError

IntMatrix = list[list[int]]

# Fixed step matrices (rows convention: new_basis = M @ basis), each with det +1.
_A1 = ((0, -1, 0), (-1, 0, 0), (0, 0, -1))  # swap a, b (A1)
_A2 = ((-1, 0, 0), (0, 0, -1), (0, -1, 0))  # swap b, c (A2)
_A8 = ((1, 0, 0), (0, 1, 0), (1, 1, 1))  # c <- c + a + b (A8)


def _mul(m: tuple[tuple[int, ...], ...] | IntMatrix, x: IntMatrix) -> IntMatrix:
    return [[m[i][0] * x[0][j] + m[i][1] * x[1][j] + m[i][2] * x[2][j] for j in range(3)] for i in range(3)]


def _congruence(m: tuple[tuple[int, ...], ...] | IntMatrix, g: IntMatrix) -> IntMatrix:
    mg = _mul(m, g)
    return [[mg[i][0] * m[j][0] + mg[i][1] * m[j][1] + mg[i][2] * m[j][2] for j in range(3)] for i in range(3)]


def _elementary(i: int, j: int, q: int) -> IntMatrix:
    """Row operation ``v_i <- v_i - q v_j`` as a matrix."""
    m = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    m[i][j] = -q
    return m


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


def _round_div(num: int, den: int) -> int:
    """Nearest integer to ``num / den`` (``den > 0``), ties rounded away from zero."""
    q, r = divmod(abs(num), den)
    if 2 * r >= den:
        q += 1
    return q if num >= 0 else -q


@dataclass
class KGState:
    """Mutable state of an exact reduction: integer Gram ``g`` and transform ``t``."""

    g: IntMatrix
    t: IntMatrix = field(default_factory=lambda: [[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    iterations: int = 0
    max_iter: int = 100_000
    phase: str = "pre-reduction"

    def apply(self, m: tuple[tuple[int, ...], ...] | IntMatrix) -> None:
        """One step: ``G <- M G M^T``, ``T <- M T``; the ``max_iter + 1``-th step raises instead.

        Raises
        ------
        ReductionError
            Carrying the state reached after ``max_iter`` steps (exact Krivy-Gruber always
            terminates, so this is a guard against a caller's too-small cap, never a silent stop).
        """
        if self.iterations >= self.max_iter:
            raise ReductionError(
                f"exact reduction did not finish within max_iter={self.max_iter} steps ({self.phase}); "
                f"last G6 (scaled to integers) = {self.g6()}",
                iterations=self.iterations,
                g6=self.g6(),
                transform=[row[:] for row in self.t],
            )
        self.g = _congruence(m, self.g)
        self.t = _mul(m, self.t)
        self.iterations += 1

    def g6(self) -> tuple[int, int, int, int, int, int]:
        g = self.g
        return g[0][0], g[1][1], g[2][2], 2 * g[1][2], 2 * g[0][2], 2 * g[0][1]


def pre_reduce(state: KGState, max_iter: int) -> None:
    """Gauss-Lagrange size reduction with rounded multiples until no vector shortens."""
    state.max_iter, state.phase = max_iter, "pre-reduction"
    while True:
        steps_before_sweep = state.iterations
        for i in range(3):
            for j in range(3):
                if i == j:
                    continue
                gij, gjj = state.g[i][j], state.g[j][j]
                if 2 * abs(gij) > gjj:  # strictly shortens v_i
                    state.apply(_elementary(i, j, _round_div(gij, gjj)))
        if state.iterations == steps_before_sweep:  # a full sweep without a step: size-reduced
            return


def krivy_gruber(state: KGState, max_iter: int, *, skip: frozenset[str] = frozenset()) -> None:
    """Run Krivy-Gruber steps A1-A8 exactly until the Niggli conditions hold.

    ``skip`` names steps to leave out; it exists only so tests can build deliberately broken
    reducers and check that the suite catches them.
    """
    state.max_iter, state.phase = max_iter, "Krivy-Gruber"
    while True:
        A, B, C, xi, eta, zeta = state.g6()
        # A1, Krivy & Gruber 1976
        if "A1" not in skip and (A > B or (A == B and abs(xi) > abs(eta))):
            state.apply(_A1)
            continue
        # A2
        if "A2" not in skip and (B > C or (B == C and abs(eta) > abs(zeta))):
            state.apply(_A2)
            continue
        l, m, n = _sign(xi), _sign(eta), _sign(zeta)
        if l * m * n > 0:
            # A3: make xi, eta, zeta all positive with diag(i, j, k), ijk = 1
            if "A3" not in skip and (l, m, n) != (1, 1, 1):
                state.apply([[l, 0, 0], [0, m, 0], [0, 0, n]])
        elif 1 in (l, m, n) and "A4" not in skip:
            # A4: make all non-positive; a zero entry absorbs the sign that keeps det = +1
            state.apply(_a4_matrix(l, m, n))
        A, B, C, xi, eta, zeta = state.g6()
        # A5
        if "A5" not in skip and (abs(xi) > B or (xi == B and 2 * eta < zeta) or (xi == -B and zeta < 0)):
            state.apply(_elementary(2, 1, _round_div(xi, 2 * B)))
            continue
        # A6
        if "A6" not in skip and (abs(eta) > A or (eta == A and 2 * xi < zeta) or (eta == -A and zeta < 0)):
            state.apply(_elementary(2, 0, _round_div(eta, 2 * A)))
            continue
        # A7
        if "A7" not in skip and (abs(zeta) > A or (zeta == A and 2 * xi < eta) or (zeta == -A and eta < 0)):
            state.apply(_elementary(1, 0, _round_div(zeta, 2 * A)))
            continue
        # A8
        s = xi + eta + zeta + A + B
        if "A8" not in skip and (s < 0 or (s == 0 and 2 * (A + eta) + zeta > 0)):
            state.apply(_A8)
            continue
        return


def _a4_matrix(l: int, m: int, n: int) -> IntMatrix:
    """A4 sign matrix diag(i, j, k), ijk = 1, mapping (xi, eta, zeta) to all <= 0.

    With ijk = 1 the diagonal congruence sends xi -> i*xi, eta -> j*eta, zeta -> k*zeta.  Flip
    every positive entry; if that leaves ijk = -1, flip one zero entry too (one exists, because
    l*m*n <= 0 with an odd number of flips means some entry is zero).
    """
    signs = [-1 if v > 0 else 1 for v in (l, m, n)]
    if signs[0] * signs[1] * signs[2] < 0:
        zero = [v == 0 for v in (l, m, n)].index(True)
        signs[zero] = -signs[zero]
    return [[signs[0], 0, 0], [0, signs[1], 0], [0, 0, signs[2]]]
