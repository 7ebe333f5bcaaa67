"""Reading structures and lattices: CIF, POSCAR, CDVAE-style CSV, moyo JSON, bundled sets.

No hand-written file parsers: CIF goes through gemmi (fast; pymatgen or ASE as fallbacks),
POSCAR through pymatgen (ASE as fallback), anything else ASE can read through ``ase.io``.
Each of those libraries is imported only when a file needs it, so reading the bundled
sets needs nothing beyond numpy.

Every reader returns :class:`latticesym.datasets.Structure` records (``id``, ``lattice``
with rows as basis vectors, ``frac_coords`` as written in the file, ``species`` atomic
numbers, ``properties``).  ``properties["source"]`` names the file (and row / block).

Source specifications understood by :func:`read_structures` (and the CLI):

``path/to/file.cif``, ``POSCAR-*``, ``*.vasp``, ``*.csv``, ``*.json``, ``*.npy``, other ASE formats
    one file; a CSV needs a column of CIF strings (``cif`` by default).
``path/to/folder``
    every recognised file below it (recursively), in sorted order.
``"glob/**/POSCAR-*"``
    a glob pattern (recursive).
``bundled:perov_5``, ``bundled:carbon_24``, ``bundled:spglib``
    the sets shipped in the package (:mod:`latticesym.datasets`); ``spglib`` has lattices only.
``shared:relative/path``
    a path below :func:`latticesym.datasets.shared_data_dir` (``../shared/data``).

Examples
--------
>>> cells = read_structures("bundled:perov_5", limit=3)
>>> len(cells), cells[0].lattice.shape
(3, (3, 3))
>>> parse_matrix("1 0 0; 0 2 0; 0 0 3").tolist()
[[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]]
"""

from __future__ import annotations

import csv
import glob
import json
import math
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from latticesym.datasets import Structure
from latticesym.errors import LatticeError, LatticeShapeError, OptionError

__all__ = [
    "StructureReadError",
    "detect_format",
    "expand_sources",
    "iter_structures",
    "parse_matrix",
    "read_structures",
]

_POSCAR_SUFFIXES = (".vasp", ".poscar", ".contcar")
_KNOWN_SUFFIXES = (".cif", ".csv", ".json", ".npy", *_POSCAR_SUFFIXES, ".xyz", ".extxyz")


class StructureReadError(LatticeError):
    """A file could not be read as structures (the message names the file and the parser).

    A :class:`~latticesym.errors.LatticeError`, hence a ``ValueError``.
    """


# --------------------------------------------------------------------------- sources
def detect_format(path: str | Path) -> str:
    """The format of a file from its name: ``cif``, ``poscar``, ``csv``, ``json``, ``npy`` or ``ase``.

    Examples
    --------
    >>> detect_format("x/POSCAR-225-2"), detect_format("a.cif"), detect_format("t.extxyz")
    ('poscar', 'cif', 'ase')
    """
    p = Path(path)
    name, suffix = p.name.upper(), p.suffix.lower()
    if name.startswith(("POSCAR", "CONTCAR")) or suffix in _POSCAR_SUFFIXES:
        return "poscar"
    if suffix in (".cif", ".csv", ".json", ".npy"):
        return suffix[1:]
    return "ase"


def _recognised(path: Path) -> bool:
    return path.is_file() and (
        path.name.upper().startswith(("POSCAR", "CONTCAR")) or path.suffix.lower() in _KNOWN_SUFFIXES
    )


def expand_sources(sources: str | Sequence[str]) -> list[str]:
    """Expand folders, globs and ``shared:`` prefixes into a sorted list of files / ``bundled:`` names.

    Raises
    ------
    FileNotFoundError
        For a path or pattern that matches nothing.
    """
    items = [sources] if isinstance(sources, str) else list(sources)
    out: list[str] = []
    for item in items:
        spec = str(item)
        if spec.startswith("bundled:"):
            out.append(spec)
            continue
        if spec.startswith("shared:"):
            from latticesym.datasets import shared_data_dir

            root = shared_data_dir()
            if root is None:
                raise FileNotFoundError(f"{spec}: no shared data folder (set LATTICESYM_SHARED_DATA)")
            spec = str(root / spec[len("shared:") :])
        path = Path(spec)
        if path.is_dir():
            found = sorted(str(p) for p in path.rglob("*") if _recognised(p))
            if not found:
                raise FileNotFoundError(f"{spec}: no structure files (CIF, POSCAR, CSV, ...) below this folder")
            out.extend(found)
        elif path.is_file():
            out.append(str(path))
        elif any(ch in spec for ch in "*?["):
            found = sorted(p for p in glob.glob(spec, recursive=True) if Path(p).is_file())
            if not found:
                raise FileNotFoundError(f"{spec}: the pattern matches no files")
            out.extend(found)
        else:
            raise FileNotFoundError(f"{spec}: no such file or folder")
    return out


def read_structures(
    sources: str | Sequence[str],
    *,
    parser: str = "auto",
    cif_column: str = "cif",
    limit: int | None = None,
    errors: str = "raise",
) -> list[Structure]:
    """Read every structure of one or more sources (see the module docstring).

    Parameters
    ----------
    sources : str or sequence of str
        Files, folders, glob patterns, ``bundled:NAME`` or ``shared:PATH``.
    parser : {"auto", "gemmi", "pymatgen", "ase"}
        Library for CIF and POSCAR files.  ``auto``: gemmi for CIF (falling back to pymatgen,
        then ASE), pymatgen for POSCAR (falling back to ASE).
    cif_column : str
        Column of CIF strings in CSV files (CDVAE / DiffCSP use ``cif``).
    limit : int, optional
        Stop after this many structures.
    errors : {"raise", "skip"}
        On an unreadable file or CSV row: raise :class:`StructureReadError`, or skip it
        (with a ``warnings.warn``).
    """
    return list(iter_structures(sources, parser=parser, cif_column=cif_column, limit=limit, errors=errors))


def iter_structures(
    sources: str | Sequence[str],
    *,
    parser: str = "auto",
    cif_column: str = "cif",
    limit: int | None = None,
    errors: str = "raise",
) -> Iterator[Structure]:
    """Generator form of :func:`read_structures`."""
    if parser not in ("auto", "gemmi", "pymatgen", "ase"):
        raise OptionError(f"parser must be auto, gemmi, pymatgen or ase, got {parser!r}")
    if errors not in ("raise", "skip"):
        raise OptionError(f"errors must be 'raise' or 'skip', got {errors!r}")
    count = 0
    for spec in expand_sources(sources):
        for item in _read_one(spec, parser=parser, cif_column=cif_column, errors=errors):
            yield item
            count += 1
            if limit is not None and count >= limit:
                return


def _read_one(spec: str, *, parser: str, cif_column: str, errors: str) -> Iterator[Structure]:
    if spec.startswith("bundled:"):
        yield from _bundled(spec[len("bundled:") :])
        return
    fmt = detect_format(spec)
    try:
        if fmt == "csv":
            yield from _read_csv(spec, parser=parser, cif_column=cif_column, errors=errors)
        elif fmt == "cif":
            yield from _read_cif_text(Path(spec).read_text(), source=spec, parser=parser)
        elif fmt == "poscar":
            yield _read_poscar(spec, parser=parser)
        elif fmt == "json":
            yield from _read_json(spec)
        elif fmt == "npy":
            yield from _lattices_only(np.load(spec), source=spec)
        else:
            yield from _read_ase(spec, fmt=None)
    except StructureReadError as exc:
        if errors == "raise":
            raise
        warnings.warn(str(exc), stacklevel=3)


def _bundled(name: str) -> Iterator[Structure]:
    from latticesym import datasets

    if name == "spglib":
        yield from _lattices_only(datasets.load_lattices("spglib"), source="bundled:spglib")
        return
    for s in datasets.load_structures(name):
        yield Structure(s.id, s.lattice, s.frac_coords, s.species, {**s.properties, "source": f"bundled:{name}"})


def _lattices_only(arr: Any, *, source: str) -> Iterator[Structure]:
    lattices = np.asarray(arr, dtype=np.float64).reshape(-1, 3, 3)
    width = len(str(len(lattices)))
    stem = source.split(":", 1)[1] if source.startswith("bundled:") else Path(source).name
    for i, L in enumerate(lattices):
        yield Structure(f"{stem}:{i + 1:0{width}d}", L, np.zeros((0, 3)), (), {"source": source})


# --------------------------------------------------------------------------- CIF
def _read_cif_text(text: str, *, source: str, parser: str) -> Iterator[Structure]:
    order = {
        "auto": ("gemmi", "pymatgen", "ase"),
        "gemmi": ("gemmi",),
        "pymatgen": ("pymatgen",),
        "ase": ("ase",),
    }
    problems = []
    for name in order[parser]:
        try:
            found = _CIF_READERS[name](text, source)
            if not found:
                raise StructureReadError("no structure found")
            yield from found
            return
        except ImportError as exc:
            problems.append(f"{name}: not installed ({exc})")
        except Exception as exc:
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
    raise StructureReadError(f"{source}: could not read CIF ({'; '.join(problems)})")


def _cif_gemmi(text: str, source: str) -> list[Structure]:
    import gemmi

    doc = gemmi.cif.read_string(text)
    out = []
    for block in doc:
        # gemmi falls back to a 1 x 1 x 1 cell when the CIF gives none: require all six numbers.
        values = [block.find_value(f"_cell_{tag}") for tag in _CELL_TAGS]
        if any(v is None or math.isnan(gemmi.cif.as_number(v)) for v in values):
            continue
        small = gemmi.make_small_structure_from_block(block)
        lattice = np.array(small.cell.orth.mat.tolist(), dtype=np.float64).T
        sites = small.get_all_unit_cell_sites()
        frac = np.array([[s.fract.x, s.fract.y, s.fract.z] for s in sites], dtype=np.float64).reshape(-1, 3)
        species = tuple(int(s.element.atomic_number) for s in sites)
        out.append(Structure(block.name, lattice, frac, species, {"source": source, "parser": "gemmi"}))
    if not out:
        raise StructureReadError("no data block with a unit cell")
    return out


def _cif_pymatgen(text: str, source: str) -> list[Structure]:
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cif = CifParser.from_str(text)
        structures = cif.parse_structures(primitive=False)
    ids = list(cif.as_dict().keys())
    out = []
    for i, s in enumerate(structures):
        species = tuple(int(site.specie.Z) for site in s)
        ident = ids[i] if i < len(ids) else f"block{i}"
        out.append(
            Structure(
                ident,
                s.lattice.matrix.copy(),
                s.frac_coords.copy(),
                species,
                {"source": source, "parser": "pymatgen"},
            )
        )
    return out


def _cif_ase(text: str, source: str) -> list[Structure]:
    import io as _io

    import ase.io

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        images = ase.io.read(_io.StringIO(text), format="cif", index=":")
    return [_from_atoms(a, f"block{i}", source, "ase") for i, a in enumerate(images)]


_CELL_TAGS = ("length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma")
_CIF_READERS = {"gemmi": _cif_gemmi, "pymatgen": _cif_pymatgen, "ase": _cif_ase}


# --------------------------------------------------------------------------- POSCAR / ASE
def _read_poscar(path: str, *, parser: str) -> Structure:
    order = {
        "auto": ("pymatgen", "ase"),
        "gemmi": ("pymatgen", "ase"),
        "pymatgen": ("pymatgen",),
        "ase": ("ase",),
    }
    problems = []
    ident = _short_id(path)
    for name in order[parser]:
        try:
            if name == "pymatgen":
                from pymatgen.io.vasp import Poscar

                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    poscar = Poscar.from_file(path, check_for_potcar=False)
                s = poscar.structure
                props: dict[str, Any] = {"source": path, "parser": "pymatgen"}
                if any("Elements in POSCAR cannot be determined" in str(w.message) for w in caught):
                    props["species_are_type_indices"] = True
                species = tuple(int(site.specie.Z) for site in s)
                return Structure(ident, s.lattice.matrix.copy(), s.frac_coords.copy(), species, props)
            import ase.io

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                atoms = ase.io.read(path, format="vasp")
            return _from_atoms(atoms, ident, path, "ase")
        except ImportError as exc:
            problems.append(f"{name}: not installed ({exc})")
        except Exception as exc:
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
    raise StructureReadError(f"{path}: could not read POSCAR ({'; '.join(problems)})")


def _short_id(path: str) -> str:
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def _from_atoms(atoms: Any, ident: str, source: str, parser: str) -> Structure:
    lattice = np.asarray(atoms.cell.array, dtype=np.float64)
    return Structure(
        ident,
        lattice,
        np.asarray(atoms.get_scaled_positions(wrap=False), dtype=np.float64),
        tuple(int(z) for z in atoms.numbers),
        {"source": source, "parser": parser},
    )


def _read_ase(path: str, fmt: str | None) -> Iterator[Structure]:
    try:
        import ase.io

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            images = ase.io.read(path, format=fmt, index=":")
    except Exception as exc:
        raise StructureReadError(f"{path}: ASE could not read it ({type(exc).__name__}: {exc})") from exc
    for i, atoms in enumerate(images):
        yield _from_atoms(atoms, f"{Path(path).name}:{i}", path, "ase")


# --------------------------------------------------------------------------- CSV / JSON
def _read_csv(path: str, *, parser: str, cif_column: str, errors: str) -> Iterator[Structure]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or cif_column not in reader.fieldnames:
            raise StructureReadError(f"{path}: no column {cif_column!r} (columns: {reader.fieldnames})")
        id_column = next((c for c in ("material_id", "id", "mp_id") if c in reader.fieldnames), None)
        for row_number, row in enumerate(reader):
            ident = row[id_column] if id_column else f"{Path(path).name}:{row_number}"
            try:
                blocks = list(_read_cif_text(row[cif_column], source=f"{path}:{row_number}", parser=parser))
            except StructureReadError as exc:
                if errors == "raise":
                    raise
                warnings.warn(str(exc), stacklevel=4)
                continue
            extra = {k: v for k, v in row.items() if k not in (cif_column, "", None)}
            for s in blocks:
                yield Structure(
                    ident, s.lattice, s.frac_coords, s.species, {**s.properties, **extra, "row": row_number}
                )


def _read_json(path: str) -> Iterator[Structure]:
    data = json.loads(Path(path).read_text())
    name = Path(path).name
    if isinstance(data, dict) and "cell" in data and isinstance(data["cell"], dict):
        data = data["cell"]  # moyo's magnetic cells
    if isinstance(data, dict) and "lattice" in data and "positions" in data:
        # moyo Cell JSON: "basis" is column-major, i.e. consecutive triples are a, b, c.
        basis = data["lattice"]["basis"] if isinstance(data["lattice"], dict) else data["lattice"]
        lattice = np.asarray(basis, dtype=np.float64).reshape(3, 3)
        yield Structure(
            name,
            lattice,
            np.asarray(data["positions"], dtype=np.float64).reshape(-1, 3),
            tuple(int(z) for z in data["numbers"]),
            {"source": path},
        )
        return
    if isinstance(data, dict) and "structures" in data:
        data = data["structures"]
    if isinstance(data, list) and data and isinstance(data[0], dict):
        for i, s in enumerate(data):
            yield Structure(
                str(s.get("id", f"{name}:{i}")),
                np.asarray(s["lattice"], dtype=np.float64).reshape(3, 3),
                np.asarray(s.get("frac_coords", np.zeros((0, 3))), dtype=np.float64).reshape(-1, 3),
                tuple(int(z) for z in s.get("species", ())),
                {"source": path},
            )
        return
    try:
        yield from _lattices_only(np.asarray(data, dtype=np.float64), source=path)
    except ValueError as exc:
        raise StructureReadError(f"{path}: not a structure or lattice JSON ({exc})") from exc


# --------------------------------------------------------------------------- matrices
def parse_matrix(text: str) -> NDArray[np.float64]:
    """Parse a 3x3 lattice written as 9 numbers (rows a, b, c), with ``;``, ``,`` or newlines, or JSON.

    Raises
    ------
    LatticeShapeError
        If the text holds a number of values other than 9 (the message has the count).
    LatticeError
        If the text is not numbers (or not JSON numbers, for text starting with ``[``).

    Examples
    --------
    >>> parse_matrix("[[1, 0, 0], [0, 1, 0], [0, 0, 1]]").shape
    (3, 3)
    """
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            values = np.asarray(json.loads(stripped), dtype=np.float64).ravel()
        except (ValueError, TypeError) as exc:  # bad JSON, ragged rows, non-numbers
            raise LatticeError(f"not a 3x3 matrix of JSON numbers: {text!r} ({exc})") from exc
    else:
        tokens = stripped.replace(";", " ").replace(",", " ").split()
        try:
            values = np.array([float(t) for t in tokens], dtype=np.float64)
        except ValueError as exc:
            raise LatticeError(f"not a 3x3 matrix: {text!r}") from exc
    if values.size != 9:
        raise LatticeShapeError(f"a lattice needs 9 numbers (rows a, b, c), got {values.size}")
    return values.reshape(3, 3)
