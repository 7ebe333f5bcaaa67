"""Structure adapters (latticesym.structure._adapters): pymatgen, ASE, spglib, DiffCSP batches in and out.

Round trips are exact (the adapters copy lattice rows and fractional coordinates), and every
output is also checked against the foreign library's own view of it (pymatgen's / ASE's Cartesian
positions, spglib's space group, DiffCSP's lattice-from-parameters metric), so that an adapter
that is wrong in a self-consistent way (transposing the lattice on the way out and back in) is
still caught: ``adapter_defects`` is that checker, and it is run on deliberately broken adapters.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from latticesym.adapters import Cell
from latticesym.datasets import load_structures
from latticesym.errors import LatticeError, LatticeShapeError, NonFiniteLatticeError
from latticesym.structure import (
    CanonicalBatch,
    RaggedBatch,
    StructureAdapterError,
    as_batch,
    as_structure,
    canonicalize,
    canonicalize_batch,
    split_batch,
    to_diffcsp_batch,
    to_structure,
)

pytest.importorskip("pymatgen.core")
pytest.importorskip("ase")


def _cells(k: int = 12) -> list[Cell]:
    """Real structures: bundled perov_5 and carbon_24, some with coordinates outside [0, 1)."""
    out = []
    for name in ("perov_5", "carbon_24"):
        for s in load_structures(name)[: k // 2]:
            out.append(Cell(np.asarray(s.lattice, dtype=float), np.asarray(s.frac_coords, dtype=float),
                            np.asarray(s.species, dtype=np.int64)))
    rng = np.random.default_rng(3)
    out[1] = Cell(out[1].lattice, out[1].frac_coords + rng.integers(-2, 3, size=out[1].frac_coords.shape),
                  out[1].species)
    return out


def _cart_pymatgen(obj: Any) -> tuple[np.ndarray, list[int]]:
    return np.asarray(obj.cart_coords), [site.specie.Z for site in obj]


def _cart_ase(obj: Any) -> tuple[np.ndarray, list[int]]:
    return np.asarray(obj.get_positions()), obj.numbers.tolist()


def _cart_spglib(obj: Any) -> tuple[np.ndarray, list[int]]:
    lattice, positions, numbers = obj
    return np.asarray(positions) @ np.asarray(lattice), np.asarray(numbers).tolist()


def adapter_defects(to_fn: Callable[[Cell], Any], from_fn: Callable[[Any], Cell],
                    cart_of: Callable[[Any], tuple[np.ndarray, list[int]]], cells: list[Cell]) -> list[str]:
    """What is wrong with an out/in adapter pair on ``cells`` (empty list: nothing found).

    Checks (1) the foreign object's own Cartesian positions and species equal ``frac @ lattice``
    (so the lattice went out as rows and no site was lost or moved), (2) the round trip
    ``from_fn(to_fn(cell))`` returns the lattice exactly and the coordinates to 1e-12.
    """
    defects = []
    for k, cell in enumerate(cells):
        obj = to_fn(cell)
        cart, z = cart_of(obj)
        want = cell.frac_coords @ cell.lattice
        if cart.shape != want.shape or z != cell.species.tolist():
            defects.append(f"cell {k}: {len(z)} sites out for {len(cell.species)} in")
            continue
        err = float(np.abs(cart - want).max()) if len(want) else 0.0
        if err > 1e-9 * max(1.0, float(np.abs(want).max())):
            defects.append(f"cell {k}: Cartesian positions off by {err:.3g} A")
        back = from_fn(obj)
        # ASE stores Cartesian positions, so its scaled positions come back to rounding (1e-12), not bits
        if not (np.array_equal(back.lattice, cell.lattice) and back.frac_coords.shape == cell.frac_coords.shape
                and np.allclose(back.frac_coords, cell.frac_coords, rtol=0, atol=1e-12)
                and back.species.tolist() == cell.species.tolist()):
            defects.append(f"cell {k}: round trip changed the structure")
    return defects


KINDS = {"pymatgen": _cart_pymatgen, "ase": _cart_ase, "spglib": _cart_spglib}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_round_trip_and_foreign_view(kind):
    cells = _cells()
    assert adapter_defects(lambda c: to_structure(c, kind), as_structure, KINDS[kind], cells) == []


def test_round_trip_keeps_dtypes_and_reads_symbols():
    c = as_structure((np.eye(3) * 4, [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]], ["Na", "Cl"]))
    assert c.species.tolist() == [11, 17]
    assert c.lattice.dtype == np.float64 and c.frac_coords.dtype == np.float64 and c.species.dtype == np.int64
    out = to_structure(c, "cell")
    assert isinstance(out, Cell) and all(np.array_equal(x, y) for x, y in zip(out, c))


def _transposing_to_pymatgen(cell: Cell) -> Any:
    from pymatgen.core import Lattice, Structure

    return Structure(Lattice(cell.lattice.T), cell.species.tolist(), cell.frac_coords, to_unit_cell=False)


def _transposing_from_pymatgen(obj: Any) -> Cell:
    c = as_structure(obj)
    return Cell(c.lattice.T.copy(), c.frac_coords, c.species)


def _dropping_to_ase(cell: Cell) -> Any:
    return to_structure(Cell(cell.lattice, cell.frac_coords[:-1], cell.species[:-1]), "ase")


def _wrapping_to_spglib(cell: Cell) -> Any:
    lattice, positions, numbers = to_structure(cell, "spglib")
    return lattice, positions % 1.0, numbers


def test_broken_adapters_are_caught():
    cells = _cells()
    # Transposed on the way out and back in: the round trip is exact, the foreign view is not.
    defects = adapter_defects(_transposing_to_pymatgen, _transposing_from_pymatgen, _cart_pymatgen, cells)
    assert any("Cartesian" in d for d in defects)
    assert adapter_defects(_dropping_to_ase, as_structure, _cart_ase, cells)
    defects = adapter_defects(_wrapping_to_spglib, as_structure, _cart_spglib, cells)
    assert any("cell 1:" in d for d in defects)  # the one with coordinates outside [0, 1)


@pytest.mark.filterwarnings("ignore:Set OLD_ERROR_HANDLING:DeprecationWarning")
def test_spglib_sees_the_same_symmetry():
    spglib = pytest.importorskip("spglib")
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    for cell in _cells(6):
        ours = spglib.get_symmetry_dataset(to_structure(cell, "spglib"), symprec=1e-3)
        theirs = SpacegroupAnalyzer(to_structure(cell, "pymatgen"), symprec=1e-3).get_space_group_number()
        assert ours.number == theirs


def _diffcsp_dict(cells: list[Cell]) -> dict[str, Any]:
    """A batch as CDVAE builds it: lengths / angles from pymatgen, frac_coords, atom_types, num_atoms."""
    from pymatgen.core import Lattice

    params = [Lattice(c.lattice).parameters for c in cells]
    return {"frac_coords": np.concatenate([c.frac_coords for c in cells]),
            "atom_types": np.concatenate([c.species for c in cells]),
            "num_atoms": np.array([len(c.species) for c in cells]),
            "lengths": np.array([p[:3] for p in params]), "angles": np.array([p[3:] for p in params])}


def _gram(lat: np.ndarray) -> np.ndarray:
    return lat @ np.swapaxes(lat, -1, -2)


def test_diffcsp_batch_in_dict_tensors_and_object():
    torch = pytest.importorskip("torch")
    cells = _cells()
    d = _diffcsp_dict(cells)
    b = as_batch(d)
    assert isinstance(b, RaggedBatch) and b.n_atoms.tolist() == [len(c.species) for c in cells]
    np.testing.assert_allclose(_gram(b.lattices), _gram(np.stack([c.lattice for c in cells])), rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(b.frac, d["frac_coords"])
    tensors = {k: torch.as_tensor(v) for k, v in d.items()}
    bt = as_batch(tensors)
    np.testing.assert_array_equal(bt.lattices, b.lattices)
    obj = SimpleNamespace(**tensors)  # a torch_geometric-like Batch: attributes, not keys
    np.testing.assert_array_equal(as_batch(obj).frac, b.frac)
    # lattices given directly win over lengths / angles
    d2 = dict(d, lattices=np.stack([c.lattice for c in cells]))
    np.testing.assert_array_equal(as_batch(d2).lattices, d2["lattices"])


def test_ragged_round_trips():
    torch = pytest.importorskip("torch")
    cells = _cells()
    b = as_batch(cells)
    back = split_batch(b)
    assert len(back) == len(cells)
    for c, r in zip(cells, back):
        np.testing.assert_array_equal(c.lattice, r.lattice)
        np.testing.assert_array_equal(c.frac_coords, r.frac_coords)
        assert c.species.tolist() == r.species.tolist()
    out = to_diffcsp_batch(b)
    again = as_batch(out)
    for x, y in zip(again, b):
        np.testing.assert_array_equal(x, y)
    assert out["batch"].tolist() == np.repeat(np.arange(len(cells)), b.n_atoms).tolist()
    t = to_diffcsp_batch(b, backend="torch", dtype=torch.float64)
    assert t["frac_coords"].dtype == torch.float64 and t["atom_types"].dtype == torch.long
    np.testing.assert_array_equal(as_batch(t).lattices, b.lattices)
    # the lengths / angles written out rebuild the same metric in DiffCSP's frame
    rebuilt = as_batch({k: v for k, v in out.items() if k != "lattices"})
    np.testing.assert_allclose(_gram(rebuilt.lattices), _gram(b.lattices), rtol=1e-12, atol=1e-9)
    assert as_batch([]).n_atoms.shape == (0,)


def test_canonicalize_accepts_objects():
    cells = _cells()
    pmg = [to_structure(c, "pymatgen") for c in cells]
    for c, s in zip(cells, pmg):
        ref = canonicalize(*c)
        for obj in (s, to_structure(c, "ase"), to_structure(c, "spglib"), c):
            r = canonicalize(obj)
            np.testing.assert_array_equal(r.lattice, ref.lattice)
            np.testing.assert_array_equal(r.transform, ref.transform)
            np.testing.assert_array_equal(r.order, ref.order)
            # ASE keeps Cartesian positions, so its scaled positions differ from ours by rounding
            atol = 1e-12 if type(obj).__module__.startswith("ase") else 0.0
            np.testing.assert_allclose(r.frac, ref.frac, rtol=0, atol=atol)
    arrays = as_batch(cells)
    ref_b = canonicalize_batch(*arrays)
    for obj in (pmg, to_diffcsp_batch(arrays)):
        got = canonicalize_batch(obj)
        np.testing.assert_array_equal(got.lattices, ref_b.lattices)
        np.testing.assert_array_equal(got.frac, ref_b.frac)
        np.testing.assert_array_equal(got.order, ref_b.order)


def test_canonical_results_go_out_as_the_same_crystal():
    from pymatgen.analysis.structure_matcher import StructureMatcher

    cells = _cells(6)
    b = canonicalize_batch(cells)
    assert isinstance(b, CanonicalBatch)
    singles = b.structures()
    matcher = StructureMatcher(primitive_cell=False, scale=False, attempt_supercell=False)
    for c, r in zip(cells, singles):
        ref = canonicalize(*c)
        np.testing.assert_array_equal(r.order, ref.order)
        np.testing.assert_array_equal(r.frac, ref.frac)
        out = r.to("pymatgen")
        np.testing.assert_allclose(out.lattice.matrix, r.lattice, rtol=0, atol=0)
        assert matcher.fit(to_structure(c, "pymatgen"), out)
        atoms = r.to("ase")
        np.testing.assert_allclose(atoms.get_positions(), r.frac @ r.lattice, atol=1e-12)
    d = b.to_diffcsp()
    # the canonical lattices are DiffCSP's lattice_params_to_matrix of their own lengths / angles
    rebuilt = as_batch({k: v for k, v in d.items() if k != "lattices"})
    np.testing.assert_allclose(rebuilt.lattices, b.lattices, rtol=0, atol=1e-9)


def test_typed_errors():
    with pytest.raises(StructureAdapterError, match="cannot read a int"):
        as_structure(3)
    with pytest.raises(StructureAdapterError, match="species"):
        as_structure({"lattice": np.eye(3), "frac_coords": [[0, 0, 0]]})
    with pytest.raises(LatticeShapeError, match=r"species has length 2 but frac has 1 rows"):
        as_structure((np.eye(3), [[0.0, 0.0, 0.0]], [1, 2]))
    with pytest.raises(NonFiniteLatticeError):
        as_structure((np.eye(3), [[np.nan, 0.0, 0.0]], [1]))
    with pytest.raises(LatticeShapeError, match=r"n_atoms sums to 3 but frac has 2 rows"):
        as_batch({"frac_coords": np.zeros((2, 3)), "atom_types": [1, 1], "num_atoms": [1, 2],
                  "lattices": np.stack([np.eye(3)] * 2)})
    with pytest.raises(StructureAdapterError, match="lengths and angles"):
        as_batch({"frac_coords": np.zeros((1, 3)), "atom_types": [1], "num_atoms": [1]})
    with pytest.raises(StructureAdapterError, match="atom_types"):
        as_batch({"frac_coords": np.zeros((1, 3)), "num_atoms": [1], "lattices": np.eye(3)[None]})
    with pytest.raises(LatticeShapeError, match=r"structure 1: .*frac must have shape"):
        as_batch([(np.eye(3), [[0.0, 0.0, 0.0]], [1]), (np.eye(3), [[0.0, 0.0]], [1])])
    with pytest.raises(StructureAdapterError, match="kind must be one of"):
        to_structure((np.eye(3), [[0.0, 0.0, 0.0]], [1]), "cif")  # type: ignore[arg-type]
    with pytest.raises(StructureAdapterError, match="backend"):
        to_diffcsp_batch([(np.eye(3), [[0.0, 0.0, 0.0]], [1])], backend="jax")  # type: ignore[arg-type]
    with pytest.raises(LatticeShapeError, match="one structure object alone"):
        canonicalize(np.eye(3), [[0.0, 0.0, 0.0]])
    with pytest.raises(LatticeShapeError, match="one batch object alone"):
        canonicalize_batch(np.eye(3)[None], np.zeros((1, 3)), [1])
    from pymatgen.core import Lattice, Structure

    disordered = Structure(Lattice.cubic(3.0), [{"Fe": 0.5, "Co": 0.5}], [[0, 0, 0]])
    with pytest.raises(LatticeError, match="disordered"):
        canonicalize(disordered)
    ordered = Structure(Lattice.cubic(3.0), ["Fe"], [[0, 0, 0]])
    with pytest.raises(LatticeError, match="structure 1: disordered"):
        as_batch([ordered, disordered])
    from pymatgen.core import DummySpecies

    with pytest.raises(StructureAdapterError, match="dummy species"):
        as_structure(Structure(Lattice.cubic(3.0), [DummySpecies("X")], [[0, 0, 0]]))
    # ragged nested sequences are typed errors (fuzz finding in tests/fuzz/test_fuzz_regressions.py)
    ragged = [[0.0, 0.0, 0.0], [0.5, 0.5]]
    with pytest.raises(LatticeShapeError, match="frac is a ragged sequence"):
        canonicalize(np.eye(3), ragged, [1, 1])
    with pytest.raises(LatticeShapeError, match="frac is a ragged sequence"):
        as_structure((np.eye(3), ragged, [1, 1]))
    with pytest.raises(LatticeShapeError, match="structure 0: frac is a ragged sequence"):
        as_batch([(np.eye(3), ragged, [1, 1])])
    with pytest.raises(LatticeShapeError, match="n_atoms is a ragged sequence"):
        canonicalize_batch([np.eye(3)], [[0.0, 0.0, 0.0]], [1], [[1], [1, 2]])
    with pytest.raises(LatticeShapeError, match="lattice is a ragged sequence"):
        canonicalize([[1, 0, 0], [0, 1]], [[0.0, 0.0, 0.0]], [1])
    # mixed symbols and atomic numbers take the slow path and still work
    assert as_batch([(np.eye(3), [[0.0, 0.0, 0.0]], ["Na"]), (np.eye(3), [[0.0, 0.0, 0.0]], [17])]).species.tolist() \
        == [11, 17]
