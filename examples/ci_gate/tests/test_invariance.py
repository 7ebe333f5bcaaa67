"""The featurizer's invariance tests: run with ``pytest -m invariance --strict-markers``.

The ``invariance`` marker and the fixtures come from latticesym's pytest plugin, which pytest
loads automatically once latticesym is installed: no conftest.py, no marker registration.
"""

import pytest
from featurizer import neighbour_features, neighbour_features_fixed_shift

from latticesym.datasets import load_structures
from latticesym.testing import BasisInvarianceError, assert_basis_invariant

# A few real cells (AIRSS carbon, CDVAE's Carbon-24 test split) bundled with latticesym.
CARBON = load_structures("carbon_24")[:4]


@pytest.mark.invariance
@pytest.mark.parametrize("structure", CARBON, ids=lambda s: s.id)
def test_neighbour_features_are_basis_invariant(structure):
    assert_basis_invariant(
        neighbour_features, structure.lattice, structure.frac_coords, structure.species, permute=True
    )


@pytest.mark.invariance
def test_neighbour_features_on_example_cells(example_structure):
    # example_structure is a latticesym fixture: cubic, hexagonal, triclinic, sheared, flat cells.
    assert_basis_invariant(neighbour_features, *example_structure, rotate=True)


@pytest.mark.invariance
@pytest.mark.xfail(
    raises=BasisInvarianceError,
    strict=True,
    reason="fixed -2..2 image range: right in a reduced cell, wrong in a sheared one",
)
def test_fixed_shift_features_are_basis_invariant():
    s = CARBON[0]
    assert_basis_invariant(neighbour_features_fixed_shift, s.lattice, s.frac_coords, s.species)


def test_fixed_shift_is_right_in_the_reduced_cell():
    # Why ordinary unit tests miss the bug: on a reduced cell both versions agree.
    import numpy as np

    import latticesym

    s = CARBON[0]
    r = latticesym.niggli_reduce(s.lattice)
    frac = s.frac_coords @ np.linalg.inv(np.asarray(r.transform, dtype=float))
    np.testing.assert_allclose(
        neighbour_features_fixed_shift(r.lattice, frac, s.species), neighbour_features(r.lattice, frac, s.species)
    )
