"""``latticesym canonicalize IN OUT`` (latticesym.structure._convert) on temporary CIF, POSCAR, extxyz, CSV files.

Every written file is read back through pymatgen / ASE and checked by ``output_defects``: it must
hold the canonical form (re-canonicalizing it changes nothing: identity transform, same lattice,
same coordinates) of the same crystal as its input (pymatgen ``StructureMatcher``).  The checker is
shown to catch a converter that writes its input unchanged and one that drops a site.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latticesym.adapters import to_ase, to_pymatgen
from latticesym.cli import main
from latticesym.datasets import load_structures
from latticesym.structure import canonicalize, canonicalize_files

pytest.importorskip("pymatgen.core")
ase_io = pytest.importorskip("ase.io")


def _sheared(k: int, m: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bundled carbon_24 / perov_5 structure k, re-based by a unimodular M (so it is not reduced)."""
    s = (load_structures("carbon_24") + load_structures("perov_5"))[k * 37]
    M = np.array([[1, m, 0], [0, 1, 0], [0, -1, 1]])
    lat = M @ np.asarray(s.lattice, dtype=float)
    frac = np.asarray(s.frac_coords, dtype=float) @ np.linalg.inv(M)
    return lat, frac, np.asarray(s.species, dtype=np.int64)


def _write_cif(path: Path, structures: list[tuple[Any, ...]]) -> None:
    from pymatgen.io.cif import CifWriter

    path.write_text("".join(str(CifWriter(to_pymatgen(*s))).replace("data_", f"data_s{k}_", 1)
                            for k, s in enumerate(structures)))


def _read(path: Path) -> list[Any]:
    """pymatgen structures in a written file (any of the formats)."""
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.io.cif import CifParser

    if path.suffix == ".cif":
        return CifParser(str(path)).parse_structures(primitive=False)
    if path.suffix == ".extxyz":
        return [AseAtomsAdaptor.get_structure(a) for a in ase_io.read(str(path), index=":")]
    from pymatgen.io.vasp import Poscar

    return [Poscar.from_file(str(path), check_for_potcar=False).structure]


def output_defects(inputs: list[tuple[Any, ...]], written: list[Any]) -> list[str]:
    """What is wrong with ``written`` (pymatgen structures) as the canonical forms of ``inputs``."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    matcher = StructureMatcher(primitive_cell=False, scale=False, attempt_supercell=False)
    defects = []
    if len(written) != len(inputs):
        return [f"{len(written)} structures written for {len(inputs)}"]
    for k, (inp, out) in enumerate(zip(inputs, written)):
        lat = out.lattice.matrix
        r = canonicalize(lat, out.frac_coords, [site.specie.Z for site in out])
        if not np.array_equal(r.transform, np.eye(3, dtype=np.int64)):
            defects.append(f"structure {k}: not Niggli-reduced (transform {r.transform.tolist()})")
        elif not np.allclose(r.lattice, lat, rtol=0, atol=1e-6 * np.abs(lat).max()):
            defects.append(f"structure {k}: not in the parameters frame")
        if not matcher.fit(to_pymatgen(*inp), out):
            defects.append(f"structure {k}: not the same crystal as its input")
    return defects


@pytest.fixture
def inputs() -> list[tuple[Any, ...]]:
    return [_sheared(k) for k in range(4)]


def test_cif_file_multi_block(tmp_path, inputs):
    src = tmp_path / "in.cif"
    _write_cif(src, inputs)
    report = canonicalize_files(src, tmp_path / "out.cif")
    assert report.structures == 4 and report.basis_changed == 4 and report.matrix_changed == 4
    assert report.failures == []
    assert output_defects(inputs, _read(tmp_path / "out.cif")) == []


def test_poscar_and_format_change(tmp_path, inputs):
    from pymatgen.io.vasp import Poscar

    src = tmp_path / "POSCAR-x"
    Poscar(to_pymatgen(*inputs[0])).write_file(str(src))
    assert canonicalize_files(src, tmp_path / "POSCAR-out").failures == []
    assert output_defects(inputs[:1], _read(tmp_path / "POSCAR-out")) == []
    report = canonicalize_files(src, f"{tmp_path / 'as_cif'}/", fmt="cif")  # a trailing / names a folder
    assert report.files[0].outputs == [str(tmp_path / "as_cif" / "POSCAR-x.cif")]
    assert output_defects(inputs[:1], _read(tmp_path / "as_cif" / "POSCAR-x.cif")) == []


def test_extxyz_trajectory(tmp_path, inputs):
    src = tmp_path / "traj.extxyz"
    ase_io.write(str(src), [to_ase(*s) for s in inputs], format="extxyz")
    (tmp_path / "o").mkdir()
    report = canonicalize_files(src, tmp_path / "o")  # an existing folder
    out = Path(report.files[0].outputs[0])
    assert out == tmp_path / "o" / "traj.extxyz"
    assert output_defects(inputs, _read(out)) == []
    # one structure per POSCAR when converting a trajectory to POSCAR
    report = canonicalize_files(src, f"{tmp_path / 'p'}/", fmt="poscar")
    assert [Path(p).name for p in report.files[0].outputs] == [f"traj_{k}.vasp" for k in range(4)]
    assert output_defects(inputs[:1], _read(Path(report.files[0].outputs[0]))) == []


def test_cli_on_a_folder_with_a_malformed_file(tmp_path, inputs, capsys):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    _write_cif(folder / "a.cif", inputs[:2])
    ase_io.write(str(folder / "sub" / "b.extxyz"), [to_ase(*inputs[2])], format="extxyz")
    (folder / "broken.cif").write_text("data_x\n_cell_length_a 3\nthis is not a CIF\n")
    status = main(["canonicalize", str(folder), str(tmp_path / "out"), "--no-progress", "--json",
                   str(tmp_path / "r.json")])
    text = capsys.readouterr().out
    assert status == 1  # a failure is reported, the rest converted
    assert "failures" in text and "broken.cif" in text and "StructureReadError" in text
    assert output_defects(inputs[:2], _read(tmp_path / "out" / "a.cif")) == []
    assert output_defects(inputs[2:3], _read(tmp_path / "out" / "sub" / "b.extxyz")) == []
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["files"] == 3 and data["structures"] == 3 and len(data["failures"]) == 1
    assert data["failures"][0]["file"].endswith("broken.cif")
    total = next(line for line in text.splitlines() if line.startswith("total")).split()
    assert total == ["total", "3", "3", "3", "3", "0", "1"]


def test_cli_clean_run_exit_zero_and_keep_orientation(tmp_path, inputs, capsys):
    # extxyz keeps the lattice matrix (a CIF keeps only the cell parameters, so the orientation is lost)
    src = tmp_path / "x.extxyz"
    ase_io.write(str(src), [to_ase(*inputs[0])], format="extxyz")
    assert main(["canonicalize", str(src), str(tmp_path / "y.extxyz"), "--orientation", "keep",
                 "--no-progress"]) == 0
    out = ase_io.read(str(tmp_path / "y.extxyz"))
    r = canonicalize(*inputs[0], orientation="keep")
    np.testing.assert_allclose(out.cell.array, r.lattice, rtol=0, atol=1e-9)
    assert "1 file(s) written" in capsys.readouterr().out


def test_singular_cell_is_a_failure_not_a_crash(tmp_path, inputs):
    src = tmp_path / "two.json"
    flat = np.array([[1.0, 0, 0], [0, 1, 0], [1, 1, 0]]) * 3
    src.write_text(json.dumps([{"id": "ok", "lattice": inputs[0][0].tolist(), "frac_coords": inputs[0][1].tolist(),
                                "species": inputs[0][2].tolist()},
                               {"id": "flat", "lattice": flat.tolist(), "frac_coords": [[0, 0, 0]], "species": [6]}]))
    report = canonicalize_files(src, tmp_path / "o.extxyz", fmt="extxyz")
    assert report.structures == 2
    assert [(k, why.split(":")[0]) for _, k, why in report.failures] == [(1, "SingularLatticeError")]
    assert output_defects(inputs[:1], _read(tmp_path / "o.extxyz")) == []
    # ASE cannot even read a singular extxyz cell (scaled positions): the whole file is the failure
    atoms = to_ase(*inputs[0])
    atoms.cell = flat
    ase_io.write(str(tmp_path / "flat.extxyz"), [atoms], format="extxyz")
    report = canonicalize_files(tmp_path / "flat.extxyz", tmp_path / "o2.extxyz")
    assert report.structures == 0 and report.failures[0][1] is None


def test_csv_split_keeps_columns(tmp_path, inputs):
    import csv

    from pymatgen.io.cif import CifWriter

    src = tmp_path / "split.csv"
    with src.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["material_id", "cif", "formation_energy"])
        w.writeheader()
        for k, s in enumerate(inputs):
            w.writerow({"material_id": f"m{k}", "cif": str(CifWriter(to_pymatgen(*s))), "formation_energy": -k})
    report = canonicalize_files(src, tmp_path / "out.csv")
    assert report.failures == [] and report.structures == 4
    from pymatgen.core import Structure

    with (tmp_path / "out.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["material_id"] for r in rows] == ["m0", "m1", "m2", "m3"]
    assert [r["formation_energy"] for r in rows] == ["0", "-1", "-2", "-3"]
    assert output_defects(inputs, [Structure.from_str(r["cif"], fmt="cif") for r in rows]) == []


def test_the_output_checker_catches_broken_converters(tmp_path, inputs):
    # writing the input unchanged: not reduced
    assert any("not Niggli-reduced" in d for d in output_defects(inputs, [to_pymatgen(*s) for s in inputs]))
    # dropping a site: not the same crystal
    r = canonicalize(*inputs[0])
    dropped = to_pymatgen(r.lattice, r.frac[:-1], r.species[:-1])
    assert any("same crystal" in d for d in output_defects(inputs[:1], [dropped]))
    # writing with orientation="keep" where the parameters frame is wanted
    k = canonicalize(*inputs[1], orientation="keep")
    assert any("parameters frame" in d for d in output_defects(inputs[1:2], [to_pymatgen(k.lattice, k.frac,
                                                                                           k.species)]))


def test_bad_usage(tmp_path):
    with pytest.raises(FileNotFoundError):
        canonicalize_files(tmp_path / "missing.cif", tmp_path / "o")
    assert main(["canonicalize", str(tmp_path / "missing.cif"), str(tmp_path / "o"), "--no-progress"]) == 2
    src = tmp_path / "x.json"
    src.write_text(json.dumps([{"lattice": np.eye(3).tolist(), "frac_coords": [[0, 0, 0]], "species": [6]}]))
    report = canonicalize_files(src, tmp_path / "o")
    assert "no writer for input format" in report.failures[0][2]
    assert canonicalize_files(src, tmp_path / "o", fmt="cif").failures == []


def test_demo_table_on_bundled_structures():
    from latticesym.structure._convert import demo_table

    text = demo_table(n=10)
    total = next(line for line in text.splitlines() if line.startswith("total")).split()
    assert total[:3] == ["total", "12", "25"] and total[-1] == "0"  # 1 CIF + 10 POSCARs + 1 extxyz; no failures
    assert {line.split()[0] for line in text.splitlines()[2:5]} == {"cif", "extxyz", "poscar"}
