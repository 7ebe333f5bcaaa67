"""Round trips of latticesym.adapters (pymatgen, ASE, spglib, DiffCSP) and latticesym.io readers."""

from __future__ import annotations

import numpy as np
import pytest

from latticesym import adapters
from latticesym.adapters import Cell, as_cell
from latticesym.metric import gram, lattice_from_parameters


def _cells() -> list[Cell]:
    rng = np.random.default_rng(0)
    out = []
    for k, params in enumerate(
        [(3.1, 4.2, 5.3, 80, 95, 101), (4.0, 4.0, 4.0, 90, 90, 90), (2.5, 2.5, 6.0, 90, 90, 120)]
    ):
        L = lattice_from_parameters(*params)
        if k == 0:
            L = np.array([[1, 2, 0], [0, 1, 0], [-1, 0, 1]]) @ L  # a non-reduced basis
        if k == 2:
            L = np.diag([1, 1, -1]) @ L  # left-handed
        n = k + 2
        out.append(Cell(L, rng.uniform(-0.1, 1.1, size=(n, 3)), rng.integers(1, 90, size=n)))
    return out


def _assert_same(a: Cell, b: Cell, *, exact: bool = True) -> None:
    if exact:
        np.testing.assert_array_equal(a.lattice, b.lattice)
        np.testing.assert_array_equal(a.frac_coords, b.frac_coords)
    else:
        np.testing.assert_allclose(a.lattice, b.lattice, rtol=0, atol=1e-12)
        np.testing.assert_allclose(a.frac_coords, b.frac_coords, rtol=0, atol=1e-12)
    assert a.species.tolist() == b.species.tolist()
    assert b.species.dtype == np.int64 and b.lattice.dtype == np.float64


@pytest.mark.parametrize("cell", _cells())
def test_pymatgen_round_trip(cell):
    pytest.importorskip("pymatgen.core")
    s = adapters.to_pymatgen(*cell)
    assert len(s) == len(cell.species)
    _assert_same(cell, adapters.from_pymatgen(s))
    assert as_cell(s).species.tolist() == cell.species.tolist()


def test_from_pymatgen_structure_built_by_pymatgen():
    pmg = pytest.importorskip("pymatgen.core")
    s = pmg.Structure.from_spacegroup("Fm-3m", pmg.Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    cell = adapters.from_pymatgen(s)
    assert sorted(set(cell.species.tolist())) == [11, 17] and len(cell.species) == 8
    back = adapters.to_pymatgen(*cell)
    assert back.matches(s)


def test_pymatgen_disordered_is_refused():
    pmg = pytest.importorskip("pymatgen.core")
    s = pmg.Structure(pmg.Lattice.cubic(3.0), [{"Fe": 0.5, "Ni": 0.5}], [[0, 0, 0]])
    with pytest.raises(ValueError, match="disordered"):
        adapters.from_pymatgen(s)


@pytest.mark.parametrize("cell", _cells())
def test_ase_round_trip(cell):
    pytest.importorskip("ase")
    atoms = adapters.to_ase(*cell)
    assert atoms.pbc.all()
    np.testing.assert_array_equal(atoms.cell.array, cell.lattice)
    np.testing.assert_allclose(atoms.positions, cell.frac_coords @ cell.lattice, atol=1e-12)
    _assert_same(cell, adapters.from_ase(atoms), exact=False)
    assert as_cell(atoms).species.tolist() == cell.species.tolist()


@pytest.mark.parametrize("cell", _cells())
def test_spglib_round_trip(cell):
    t = adapters.to_spglib(*cell)
    assert t[0].flags["C_CONTIGUOUS"] and t[2].dtype == np.intc
    _assert_same(cell, adapters.from_spglib(t))
    _assert_same(cell, adapters.from_spglib((*t, np.zeros(len(cell.species)))))  # with magmoms


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # spglib's OLD_ERROR_HANDLING notice
def test_spglib_reads_our_cells():
    spglib = pytest.importorskip("spglib")
    L = 5.64 * np.eye(3)
    frac = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]] * 2, dtype=float)
    frac[4:] += 0.5
    species = [11] * 4 + [17] * 4
    dataset = spglib.get_symmetry_dataset(adapters.to_spglib(L, frac, species), symprec=1e-5)
    assert dataset.number == 225


def test_diffcsp_round_trip_with_lattices():
    cells = _cells()
    batch = adapters.to_diffcsp(cells)
    assert batch["num_atoms"].tolist() == [2, 3, 4]
    assert batch["batch"].tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 2]
    assert batch["frac_coords"].shape == (9, 3) and batch["lattices"].shape == (3, 3, 3)
    for a, b in zip(cells, adapters.from_diffcsp(batch)):
        _assert_same(a, b)


def test_diffcsp_round_trip_with_lengths_and_angles():
    cells = _cells()
    batch = adapters.to_diffcsp(cells)
    back = adapters.from_diffcsp(
        frac_coords=batch["frac_coords"],
        atom_types=batch["atom_types"],
        num_atoms=batch["num_atoms"],
        lengths=batch["lengths"],
        angles=batch["angles"],
    )
    for a, b in zip(cells, back):
        np.testing.assert_allclose(gram(b.lattice), gram(a.lattice), rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(a.frac_coords, b.frac_coords)
        assert np.linalg.det(b.lattice) > 0  # parameters carry no handedness
    again = adapters.to_diffcsp(back)
    np.testing.assert_allclose(again["lengths"], batch["lengths"], rtol=1e-12)
    np.testing.assert_allclose(again["angles"], batch["angles"], rtol=1e-12)


def test_diffcsp_orientation_matches_pymatgen_from_parameters():
    pmg = pytest.importorskip("pymatgen.core")
    params = np.array([[3.1, 4.2, 5.3, 80.0, 95.0, 101.0], [2.5, 2.5, 6.0, 90.0, 90.0, 120.0]])
    ours = adapters.diffcsp_lattice_from_parameters(params[:, :3], params[:, 3:])
    for p, L in zip(params, ours):
        np.testing.assert_allclose(L, pmg.Lattice.from_parameters(*p).matrix, atol=1e-12)


def test_diffcsp_torch_round_trip():
    torch = pytest.importorskip("torch")
    cells = _cells()
    batch = adapters.to_diffcsp(cells, backend="torch", dtype=torch.float64)
    assert batch["frac_coords"].dtype == torch.float64 and batch["atom_types"].dtype == torch.long

    class Batch:  # attribute access, like a torch_geometric Batch
        pass

    obj = Batch()
    for key, value in batch.items():
        setattr(obj, key, value)
    for a, b in zip(cells, adapters.from_diffcsp(obj)):
        _assert_same(a, b)


def test_diffcsp_errors():
    with pytest.raises(ValueError, match="needs frac_coords"):
        adapters.from_diffcsp({"frac_coords": np.zeros((1, 3))})
    with pytest.raises(ValueError, match="lattices, or lengths"):
        adapters.from_diffcsp(frac_coords=np.zeros((1, 3)), atom_types=[1], num_atoms=[1])
    with pytest.raises(ValueError, match="num_atoms sums"):
        adapters.from_diffcsp(frac_coords=np.zeros((2, 3)), atom_types=[1, 1], num_atoms=[1], lattices=[np.eye(3)])
    with pytest.raises(ValueError, match="backend"):
        adapters.to_diffcsp(_cells(), backend="jax")


def test_as_cell_accepts_many_types():
    from latticesym.datasets import Structure

    L, f, z = np.eye(3), np.zeros((1, 3)), [6]
    for obj in ((L, f, z), [L, f, z], {"lattice": L, "frac_coords": f, "species": z}, Structure("x", L, f, (6,))):
        c = as_cell(obj)
        assert isinstance(c, Cell) and c.species.tolist() == [6]
    with pytest.raises(TypeError):
        as_cell(42)
    with pytest.raises(ValueError, match="species"):
        as_cell((L, f, [6, 8]))
    # element symbols are read as atomic numbers, as match() and canonicalize() read them
    assert as_cell((L, f, ["C"])).species.tolist() == [6]
    assert as_cell((L, np.zeros((2, 3)), np.array([b"Si", "O"], dtype=object))).species.tolist() == [14, 8]
    with pytest.raises(ValueError, match="unknown element symbol 'Xx'"):
        as_cell((L, f, ["Xx"]))
    with pytest.raises(ValueError, match="atomic numbers"):
        as_cell((L, f, [6.5]))


# --------------------------------------------------------------------------- io
from latticesym import io  # noqa: E402
from latticesym.datasets import shared_data_dir  # noqa: E402

SHARED = shared_data_dir()
needs_shared = pytest.mark.skipif(SHARED is None, reason="../shared/data not present")


def test_parse_matrix():
    for text in (
        "1 0 0 0 2 0 0 0 3",
        "1,0,0; 0,2,0; 0,0,3",
        "[[1, 0, 0], [0, 2, 0], [0, 0, 3]]",
        "1 0 0\n0 2 0\n0 0 3",
    ):
        assert io.parse_matrix(text).tolist() == np.diag([1.0, 2.0, 3.0]).tolist()
    with pytest.raises(ValueError, match="9 numbers"):
        io.parse_matrix("1 2 3")
    with pytest.raises(ValueError, match="not a 3x3"):
        io.parse_matrix("a b c d e f g h i")


@pytest.mark.parametrize("parser", ["gemmi", "pymatgen", "ase"])
def test_cif_round_trip_through_each_parser(tmp_path, parser):
    pmg = pytest.importorskip("pymatgen.core")
    pytest.importorskip(parser if parser != "pymatgen" else "pymatgen.io.cif")
    cell = _cells()[0]
    s = adapters.to_pymatgen(cell.lattice, cell.frac_coords % 1.0, cell.species)
    path = tmp_path / "x.cif"
    s.to(filename=str(path))
    (read,) = io.read_structures(str(path), parser=parser)
    assert read.properties["parser"] == parser
    np.testing.assert_allclose(gram(read.lattice), gram(cell.lattice), rtol=1e-6)
    back = pmg.Structure(read.lattice, list(read.species), read.frac_coords)
    assert back.matches(s)


@needs_shared
def test_read_cdvae_csv_rows():
    cells = io.read_structures(str(SHARED / "cdvae_carbon_24_test.csv"), limit=5)
    assert len(cells) == 5 and all(set(c.species) == {6} for c in cells)
    assert cells[0].properties["row"] == 0 and "energy_per_atom" in cells[0].properties
    from latticesym.datasets import load_structures

    bundled = load_structures("carbon_24")[0]
    assert cells[0].id == bundled.id
    np.testing.assert_allclose(gram(cells[0].lattice), gram(bundled.lattice), atol=1e-6)


@needs_shared
def test_read_spglib_poscars_without_symbols():
    files = sorted((SHARED / "spglib" / "poscars" / "cubic").glob("POSCAR-*"))[:3]
    cells = io.read_structures([str(f) for f in files])
    assert len(cells) == 3 and cells[0].id == "cubic/POSCAR-195"
    assert cells[0].properties.get("species_are_type_indices") is True
    np.testing.assert_allclose(cells[0].lattice, 10.3499951298926707 * np.eye(3))


@needs_shared
def test_read_moyo_json():
    (cell,) = io.read_structures(str(SHARED / "moyo_assets" / "mp-1201492.json"))
    assert cell.lattice.shape == (3, 3) and len(cell.species) == len(cell.frac_coords) > 0


def test_bundled_and_expand_sources(tmp_path):
    assert len(io.read_structures("bundled:spglib", limit=4)) == 4
    assert len(io.read_structures(["bundled:perov_5", "bundled:carbon_24"], limit=7)) == 7
    np.save(tmp_path / "lat.npy", np.stack([np.eye(3), 2 * np.eye(3)]))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "notes.txt").write_text("not a structure")
    (tmp_path / "sub" / "POSCAR-1").write_text("x\n1.0\n2 0 0\n0 2 0\n0 0 2\nSi\n1\nDirect\n0 0 0\n")
    found = io.expand_sources(str(tmp_path))
    assert [p.split("/")[-1] for p in found] == ["lat.npy", "POSCAR-1"]
    cells = io.read_structures(str(tmp_path))
    assert [c.species for c in cells] == [(), (), (14,)]
    assert io.expand_sources(str(tmp_path / "**" / "POSCAR-*")) == found[1:]
    with pytest.raises(FileNotFoundError):
        io.expand_sources(str(tmp_path / "missing.cif"))
    with pytest.raises(FileNotFoundError):
        io.expand_sources(str(tmp_path / "*.cif"))


def test_unreadable_file_raises_or_skips(tmp_path):
    bad = tmp_path / "bad.cif"
    bad.write_text("data_x\n_cell_length_a oops\n")
    with pytest.raises(io.StructureReadError, match=r"bad\.cif"):
        io.read_structures(str(bad))
    with pytest.warns(UserWarning, match=r"bad\.cif"):
        assert io.read_structures(str(bad), errors="skip") == []
