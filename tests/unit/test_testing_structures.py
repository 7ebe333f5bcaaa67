"""latticesym.testing with structure objects and models of structures (issue 10, point 6).

``assert_basis_invariant(model, structure)``: pymatgen ``Structure``, ASE ``Atoms``, tuples, Cells,
``CanonicalStructure`` and bundled ``datasets.Structure`` objects in place of the three arrays; a
model of structures receives an object of the same kind in every trial.  Each check here has a
broken counterpart that it catches (a basis-dependent model, a rebuild that loses site data).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from latticesym import testing
from latticesym.adapters import Cell
from latticesym.errors import LatticeError
from latticesym.testing import (
    BasisInvarianceError,
    assert_basis_equivariant,
    assert_basis_invariant,
    example_structure,
    invariance_error,
)

pmg = pytest.importorskip("pymatgen.core")
ase = pytest.importorskip("ase")


def _pmg_structure(family: str = "triclinic", seed: int = 0) -> Any:
    ex = example_structure(family, rng=np.random.default_rng(seed))
    magmom = np.random.default_rng(seed + 1).uniform(-2, 2, size=len(ex.species)).tolist()
    return pmg.Structure(pmg.Lattice(ex.lattice), [int(z) for z in ex.species], ex.frac_coords,
                         site_properties={"magmom": magmom})


def _ase_atoms(family: str = "triclinic", seed: int = 0) -> Any:
    ex = example_structure(family, rng=np.random.default_rng(seed))
    return ase.Atoms(numbers=ex.species, cell=ex.lattice, scaled_positions=ex.frac_coords, pbc=True,
                     tags=np.arange(len(ex.species)) + 1)


# --------------------------------------------------------------------------- models of structures
@pytest.mark.invariance
def test_pymatgen_structure_model() -> None:
    s = _pmg_structure()
    seen: list[Any] = []

    def density(structure: Any) -> float:
        seen.append(type(structure))
        return float(structure.density)

    report = assert_basis_invariant(density, s, rotate=True, permute=True, translate=True, trials=5)
    assert report.passed and set(seen) == {pmg.Structure}
    with pytest.raises(BasisInvarianceError, match="NOT invariant"):
        assert_basis_invariant(lambda st: st.lattice.abc[0], s, trials=5)


@pytest.mark.invariance
def test_ase_atoms_model() -> None:
    atoms = _ase_atoms("hexagonal")
    assert_basis_invariant(lambda a: a.get_volume(), atoms, rotate=True, permute=True, trials=5)
    assert not invariance_error(lambda a: float(a.cell.lengths()[0]), atoms, trials=5).passed


def test_site_data_follow_their_atoms() -> None:
    """Per-atom outputs built from site data (magmom, tags) permute with the atoms."""
    s = _pmg_structure(seed=3)
    per_site = lambda st: np.array([site.specie.Z * site.properties["magmom"] for site in st])  # noqa: E731
    assert_basis_equivariant(per_site, s, kind="per_atom", permute=True, trials=5)
    atoms = _ase_atoms(seed=3)
    assert_basis_equivariant(lambda a: a.numbers * a.get_tags(), atoms, kind="per_atom", permute=True, trials=5)


def test_site_data_check_catches_a_rebuild_that_drops_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Broken rebuild: the site properties stay in the input order while the atoms are permuted."""
    original = testing._StructureInput.rebuild

    def broken(self: Any, lattice: Any, frac: Any, idx: Any) -> Any:
        out = original(self, lattice, frac, idx)
        if self.kind == "pymatgen":
            for site, value in zip(out, self.obj.site_properties["magmom"], strict=True):
                site.properties["magmom"] = value
        return out

    monkeypatch.setattr(testing._StructureInput, "rebuild", broken)
    per_site = lambda st: np.array([site.specie.Z * site.properties["magmom"] for site in st])  # noqa: E731
    report = testing.equivariance_error(per_site, _pmg_structure(seed=3), kind="per_atom", permute=True, trials=5)
    assert not report.passed


def test_disordered_pymatgen_structure() -> None:
    s = pmg.Structure(pmg.Lattice.hexagonal(3.0, 5.0), [{"Fe": 0.5, "Ni": 0.5}, "O"],
                      [[0, 0, 0], [1 / 3, 2 / 3, 0.5]])
    assert_basis_invariant(lambda st: st.composition.weight / st.volume, s, call="structure", trials=4)
    with pytest.raises(LatticeError, match="disordered"):
        invariance_error(lambda L, f, sp: 0.0, s, trials=2)


# --------------------------------------------------------------------------- structure objects, array models
def _volume(lattice: Any, frac: Any, species: Any) -> float:
    return float(abs(np.linalg.det(lattice)))


def _ordered_z(lattice: Any, frac: Any, species: Any) -> float:
    z = np.asarray(species, dtype=float)
    return float(z @ np.arange(len(z)))  # depends on the atom order: caught with permute=True


@pytest.mark.parametrize("make", ["pymatgen", "ase", "tuple", "cell", "mapping", "canonical", "dataset"])
def test_objects_with_array_models(make: str) -> None:
    ex = example_structure("sheared", rng=np.random.default_rng(5))
    if make == "pymatgen":
        obj: Any = pmg.Structure(pmg.Lattice(ex.lattice), [int(z) for z in ex.species], ex.frac_coords)
    elif make == "ase":
        obj = ase.Atoms(numbers=ex.species, cell=ex.lattice, scaled_positions=ex.frac_coords, pbc=True)
    elif make == "tuple":
        obj = ex  # ExampleStructure, a (lattice, frac_coords, species) tuple like an spglib cell
    elif make == "cell":
        obj = Cell(ex.lattice, ex.frac_coords, ex.species)
    elif make == "mapping":
        obj = {"lattice": ex.lattice, "frac_coords": ex.frac_coords, "species": ex.species}
    elif make == "canonical":
        from latticesym.structure import canonicalize

        obj = canonicalize(ex.lattice, ex.frac_coords, ex.species)
    else:
        from latticesym.datasets import load_structures

        obj = load_structures("perov_5")[0]
    report = assert_basis_invariant(_volume, obj, trials=4, rotate=True)
    assert np.asarray(report.species).dtype.kind == "i"  # the report names real species, not indices
    assert not invariance_error(_ordered_z, obj, trials=6, permute=True).passed


def test_arrays_with_a_cell_model() -> None:
    ex = example_structure("cubic", rng=np.random.default_rng(2))
    seen: list[Any] = []

    def model(cell: Any) -> float:
        seen.append(cell)
        return float(abs(np.linalg.det(cell.lattice)))

    assert_basis_invariant(model, *ex, call="structure", trials=3)
    assert all(isinstance(c, Cell) for c in seen)


def test_auto_chooses_by_arity() -> None:
    s = _pmg_structure()
    calls: list[str] = []

    def arrays(lattice: Any, frac: Any, species: Any) -> float:
        calls.append("arrays")
        return _volume(lattice, frac, species)

    def structure(st: Any, scale: float = 1.0) -> float:
        calls.append("structure")
        return float(st.volume) * scale

    invariance_error(arrays, s, trials=2)
    invariance_error(structure, s, trials=2)
    assert calls == ["arrays"] * 3 + ["structure"] * 3
    with pytest.raises(TypeError):  # forced array call of a one-argument model
        invariance_error(structure, s, trials=2, call="arrays")


def test_plugin_pymatgen_fixture(example_pymatgen_structure: Any) -> None:
    assert "magmom" in example_pymatgen_structure.site_properties
    assert_basis_invariant(lambda st: st.volume, example_pymatgen_structure, trials=3)


def test_plugin_ase_fixture(example_ase_atoms: Any) -> None:
    assert_basis_invariant(lambda a: a.get_volume(), example_ase_atoms, trials=3)


def test_plugin_bundled_fixture(bundled_structure: Any) -> None:
    assert_basis_invariant(_volume, bundled_structure, trials=3)


def test_input_errors() -> None:
    L = np.eye(3)
    with pytest.raises(TypeError, match="needs frac_coords and species"):
        invariance_error(_volume, L)
    with pytest.raises(TypeError, match="both frac_coords and species"):
        invariance_error(_volume, L, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="call must be"):
        invariance_error(_volume, L, np.zeros((1, 3)), [1], call="objects")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cannot read"):
        invariance_error(_volume, object())
    with pytest.raises(ValueError, match="dtype"):
        invariance_error(lambda st: st.volume, _pmg_structure(), dtype="float32")
