"""Named regression tests for what the fuzz campaign found, each with its minimal input (issue 13).

Fixed ones pass; the ones in files this campaign's author does not own are strict xfails, to be
turned into passing tests by their owners (see docs/testing.md).
"""

from __future__ import annotations

import numpy as np
import pytest

from latticesym.errors import LatticeError

pytestmark = pytest.mark.fuzz


@pytest.mark.xfail(strict=True, raises=IndexError,
                   reason="adapters.diffcsp_lattice_from_parameters: scalar angles give numpy AxisError")
def test_diffcsp_parameters_scalar_angles_raise_a_typed_error() -> None:
    from latticesym.adapters import diffcsp_lattice_from_parameters

    with pytest.raises((LatticeError, TypeError)):
        diffcsp_lattice_from_parameters(np.array([4.0, 5.0, 6.0]), 90.0)


@pytest.mark.xfail(strict=True, reason="io.parse_matrix raises a plain ValueError, not a LatticeError")
def test_parse_matrix_eight_numbers_raise_a_lattice_error() -> None:
    from latticesym.io import parse_matrix

    with pytest.raises(LatticeError):
        parse_matrix("0 0; 0 1 0; 0 0 1")


@pytest.mark.xfail(strict=True, reason="groups.random_unimodular raises a plain ValueError for max_entry=0")
def test_random_unimodular_max_entry_zero_raises_a_lattice_error() -> None:
    from latticesym.groups import random_unimodular

    with pytest.raises(LatticeError):
        random_unimodular(1, max_entry=0, rng=np.random.default_rng(0))


@pytest.mark.xfail(strict=True, reason="testing.integer_inverse raises a plain ValueError for a non-integer matrix")
def test_integer_inverse_of_a_non_integer_matrix_raises_a_lattice_error() -> None:
    from latticesym.testing import integer_inverse

    with pytest.raises(LatticeError):
        integer_inverse(np.eye(3) * 0.5)


@pytest.mark.xfail(strict=True, reason="groups.is_unimodular raises a plain ValueError for shape (4,)")
def test_is_unimodular_wrong_shape_raises_a_lattice_error() -> None:
    from latticesym.groups import is_unimodular

    with pytest.raises(LatticeError):
        is_unimodular(np.zeros(4))


# Found by the campaign of 2026-12-03 (docs/testing.md), open:
TINY = np.array([[-1.425e-254, -0.0, -4.275e-254], [0.0, -2.850e-254, 1.425e-254], [0.0, -1.425e-254, 1.425e-254]])


@pytest.mark.xfail(strict=True, reason="niggli_reduce on a cell scaled near 1e-254: the reported tolerance and G6 "
                                       "underflow (tolerance 0.0), so the result is not reduced within the "
                                       "reported tolerance; should report it or raise PrecisionError")
def test_tiny_cell_result_is_reduced_within_its_reported_tolerance() -> None:
    sys_path_harness()
    import _harness as h

    import latticesym

    r = latticesym.niggli_reduce(TINY)
    assert h.reduction_problem(TINY, r.transform, r.g6, r.tolerance) is None


@pytest.mark.xfail(strict=True, raises=OverflowError,
                   reason="reference.niggli_reduce: singular input with a 1e300 entry raises OverflowError "
                          "instead of SingularLatticeError (latticesym/reference, not this helper's file)")
def test_reference_singular_huge_entry_raises_singular_error() -> None:
    from latticesym.errors import SingularLatticeError
    from latticesym.reference import niggli_reduce

    with pytest.raises(SingularLatticeError):
        niggli_reduce(np.array([[1.0, 0, 0], [0, 0, 0], [1e300, 0, 1]]))


def sys_path_harness() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
