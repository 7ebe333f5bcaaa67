r"""Canonicalize structure files: read with pymatgen / ASE, :func:`canonicalize_batch`, write back.

:func:`canonicalize_files` (the ``latticesym canonicalize IN OUT`` command) reads CIF, POSCAR,
extxyz (and every other format :mod:`latticesym.io` reads: CDVAE CSV splits, other ASE formats)
through pymatgen or ASE -- never a parser of our own --, brings every structure to its canonical
form (:func:`latticesym.structure.canonicalize_batch`, one batched reduction per file) and writes
the result with pymatgen (CIF, POSCAR) or ASE (extxyz), in the input's format or a chosen one.

Output paths.  A single input file goes to the file ``OUT``, or to ``OUT/<name>`` when ``OUT`` is
an existing folder or ends with ``/``; a folder (or several inputs) goes to the folder ``OUT``
with the same relative paths.  A CIF holds only the cell parameters, so the orientation of the
lattice survives in POSCAR and extxyz output only.  A format change replaces the
suffix (``.cif``, ``.vasp``, ``.extxyz``).  A file with several structures (a multi-block CIF, an
extxyz trajectory, a CSV split) stays one file in CIF, extxyz and CSV; in POSCAR, which holds one
structure, structure ``k`` goes to ``<stem>_<k>.vasp``.

The :class:`ConversionReport` counts, per input format and in total: files, structures, *basis
changed* (the Niggli transform :math:`T \ne I`), *matrix changed* (the written lattice differs
from the input's by more than :math:`10^{-9}` of its scale: a new basis or a new orientation),
*boundary* (``near_boundary``: the canonical basis is unique only up to the reducer's tolerance)
and *failures*, each with its reason (an unreadable file, a singular lattice, ...).  A failure
never stops the run: the other files are converted.

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "POSCAR").write_text("Si\n1.0\n1 0 0\n5 1 0\n0 0 1\nSi\n1\nDirect\n0.5 0 0\n")
>>> report = canonicalize_files(d / "POSCAR", d / "out")
>>> report.structures, report.basis_changed, report.failures
(1, 1, [])
"""

from __future__ import annotations

import csv
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from latticesym.errors import BatchReductionError, LatticeError, OptionError

__all__ = ["ConversionReport", "FileConversion", "canonicalize_files", "demo_table", "run_cli"]

OutFormat = Literal["same", "cif", "poscar", "extxyz", "csv"]
_SUFFIX = {"cif": ".cif", "poscar": ".vasp", "extxyz": ".extxyz", "csv": ".csv"}


@dataclass
class FileConversion:
    """What happened to one input file.

    Attributes
    ----------
    source : str
        The input file.
    format : str
        Its format (``cif``, ``poscar``, ``csv``, ``ase`` for extxyz and other ASE formats).
    outputs : list of str
        The files written.
    structures : int
        Structures read.
    basis_changed, matrix_changed, boundary, type_index_species : int
        Counts among the converted structures (see the module docstring); ``type_index_species``:
        POSCARs without element names, whose species pymatgen numbered by type (1, 2, ...).
    failures : list of (int or None, str)
        ``(structure index or None for the whole file, reason)``.
    """

    source: str
    format: str
    outputs: list[str] = field(default_factory=list)
    structures: int = 0
    basis_changed: int = 0
    matrix_changed: int = 0
    boundary: int = 0
    type_index_species: int = 0
    failures: list[tuple[int | None, str]] = field(default_factory=list)


@dataclass
class ConversionReport:
    """Summary of :func:`canonicalize_files`: one :class:`FileConversion` per input file."""

    files: list[FileConversion]

    def _total(self, name: str) -> int:
        return sum(int(getattr(f, name)) for f in self.files)

    @property
    def structures(self) -> int:
        """Structures read, over all files."""
        return self._total("structures")

    @property
    def basis_changed(self) -> int:
        """Structures whose Niggli transform is not the identity."""
        return self._total("basis_changed")

    @property
    def matrix_changed(self) -> int:
        """Structures whose written lattice matrix differs from the input's (basis or orientation)."""
        return self._total("matrix_changed")

    @property
    def boundary(self) -> int:
        """Structures flagged ``near_boundary``."""
        return self._total("boundary")

    @property
    def failures(self) -> list[tuple[str, int | None, str]]:
        """``(file, structure index or None, reason)`` for every failure."""
        return [(f.source, k, why) for f in self.files for k, why in f.failures]

    def table(self) -> str:
        """The summary table: one row per input format, then the total."""
        from latticesym.audit import text_table

        head = ["format", "files", "structures", "basis changed", "matrix changed", "boundary", "failures"]
        groups: dict[str, list[FileConversion]] = {}
        for f in self.files:
            groups.setdefault(f.format, []).append(f)

        def row(name: str, fs: list[FileConversion]) -> list[str]:
            return [name, str(len(fs)), str(sum(f.structures for f in fs)), str(sum(f.basis_changed for f in fs)),
                    str(sum(f.matrix_changed for f in fs)), str(sum(f.boundary for f in fs)),
                    str(sum(len(f.failures) for f in fs))]

        rows = [row(name, fs) for name, fs in sorted(groups.items())]
        rows.append(row("total", self.files))
        text = text_table(head, rows, rule_before_last=True)
        typed = self._total("type_index_species")
        if typed:
            text += (f"\n({typed} POSCAR structure(s) have no element names: pymatgen numbered their species by "
                     "type, and they are written as such)")
        return text

    def failure_table(self, limit: int | None = 20) -> str:
        """The failures with their reasons (the first ``limit``; ``None`` for all)."""
        from latticesym.audit import text_table

        fails = self.failures
        if not fails:
            return "no failures"
        shown = fails if limit is None else fails[:limit]
        rows = [[src, "-" if k is None else str(k), why if len(why) <= 160 else why[:157] + "..."]
                for src, k, why in shown]
        text = text_table(["file", "structure", "reason"], rows)
        if len(shown) < len(fails):
            text += f"\n... and {len(fails) - len(shown)} more"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: totals and the per-file records."""
        return {
            "files": len(self.files), "structures": self.structures, "basis_changed": self.basis_changed,
            "matrix_changed": self.matrix_changed, "boundary": self.boundary,
            "failures": [{"file": s, "structure": k, "reason": why} for s, k, why in self.failures],
            "per_file": [f.__dict__ for f in self.files],
        }


def _out_format(in_fmt: str, source: str, fmt: OutFormat) -> str:
    if fmt != "same":
        return fmt
    if in_fmt in ("cif", "poscar", "csv"):
        return in_fmt
    if in_fmt == "ase" and Path(source).suffix.lower() in (".xyz", ".extxyz"):
        return "extxyz"
    raise LatticeError(f"{source}: no writer for input format {in_fmt!r}; choose --format cif, poscar or extxyz")


def _target(source: Path, root: Path | None, output: Path, out_fmt: str, to_file: bool) -> Path:
    """Where the canonical form of ``source`` goes (see the module docstring)."""
    if root is not None:
        rel = source.relative_to(root)
        dest = output / rel
    elif to_file:
        return output
    else:
        dest = output / source.name
    keep = {"poscar": dest.name.upper().startswith(("POSCAR", "CONTCAR")) or dest.suffix.lower() in
            (".vasp", ".poscar", ".contcar"), "extxyz": dest.suffix.lower() in (".xyz", ".extxyz")}
    if keep.get(out_fmt, dest.suffix.lower() == _SUFFIX.get(out_fmt)):
        return dest
    return dest.with_name(dest.stem + _SUFFIX[out_fmt]) if dest.suffix else dest.with_name(dest.name + _SUFFIX[out_fmt])


def _pymatgen(lattice: Any, frac: Any, species: Any) -> Any:
    from latticesym.adapters import to_pymatgen

    return to_pymatgen(lattice, frac, species)


def _cif_text(structure: Any, name: str) -> str:
    from pymatgen.io.cif import CifWriter

    text = str(CifWriter(structure))
    lines = text.splitlines()
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "structure"
    for i, line in enumerate(lines):
        if line.startswith("data_"):
            lines[i] = f"data_{safe}"
            break
    return "\n".join(lines) + "\n"


def _write(out_fmt: str, dest: Path, items: list[tuple[str, Any, dict[str, Any]]]) -> list[str]:
    """Write the ``(id, CanonicalStructure, properties)`` items of one input file; return the paths."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if out_fmt == "cif":
        dest.write_text("".join(_cif_text(_pymatgen(r.lattice, r.frac, r.species), ident) for ident, r, _ in items))
        return [str(dest)]
    if out_fmt == "csv":
        columns: list[str] = []
        for _, _, props in items:
            columns.extend(k for k in props if k not in columns)
        columns.append("cif")
        with dest.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            for ident, r, props in items:
                writer.writerow({**props, "cif": _cif_text(_pymatgen(r.lattice, r.frac, r.species), ident)})
        return [str(dest)]
    if out_fmt == "extxyz":
        import ase.io

        from latticesym.adapters import to_ase

        ase.io.write(str(dest), [to_ase(r.lattice, r.frac, r.species) for _, r, _ in items], format="extxyz")
        return [str(dest)]
    from pymatgen.io.vasp import Poscar

    paths = [dest] if len(items) == 1 else [dest.with_name(f"{dest.stem}_{k}{dest.suffix or '.vasp'}")
                                            for k in range(len(items))]
    for path, (ident, r, _) in zip(paths, items):
        Poscar(_pymatgen(r.lattice, r.frac, r.species), comment=ident).write_file(str(path))
    return [str(p) for p in paths]


def _canonical_items(structures: list[Any], record: FileConversion, kwargs: dict[str, Any]) -> list[Any]:
    """``canonicalize_batch`` on one file's structures; per-structure failures go to ``record``."""
    from latticesym.structure._canonical import canonicalize, canonicalize_batch

    results: list[Any] = [None] * len(structures)
    ok = list(range(len(structures)))
    for k, s in enumerate(structures):  # input errors (NaN, shapes) would stop the whole batch: check each
        if not np.isfinite(s.lattice).all() or not np.isfinite(s.frac_coords).all():
            record.failures.append((k, f"NaN or inf in the lattice or coordinates of {s.id}"))
            ok.remove(k)
    while ok:
        sub = [structures[k] for k in ok]
        try:
            batch = canonicalize_batch(np.stack([s.lattice for s in sub]),
                                       np.concatenate([np.asarray(s.frac_coords).reshape(-1, 3) for s in sub]),
                                       np.concatenate([np.asarray(s.species, dtype=np.int64) for s in sub]),
                                       [len(s.species) for s in sub], **kwargs)
        except BatchReductionError as exc:
            bad = sorted({ok[int(i[0])] for i in exc.failed})
            for k in bad:
                try:
                    canonicalize(structures[k].lattice, structures[k].frac_coords, list(structures[k].species),
                                 **kwargs)
                    reason = "failed in the batch"  # pragma: no cover - a batch failure is a per-cell failure
                except OptionError:  # the caller's option, not one structure's failure
                    raise
                except LatticeError as err:
                    reason = f"{type(err).__name__}: {err}"
                record.failures.append((k, reason))
            ok = [k for k in ok if k not in bad]
            continue
        for k, r in zip(ok, batch.structures()):
            results[k] = r
        break
    return results


def canonicalize_files(inputs: str | Path | Sequence[str | Path], output: str | Path, *,
                       fmt: OutFormat = "same", parser: str = "pymatgen", eps: float = 1e-5,
                       frac_eps: float = 1e-8, orientation: Literal["parameters", "keep"] = "parameters",
                       sort: bool = True, progress: bool = False) -> ConversionReport:
    """Canonicalize every structure of ``inputs`` and write the results below ``output``.

    Parameters
    ----------
    inputs : path or sequence of paths
        Files (CIF, POSCAR, extxyz, CDVAE CSV, other ASE formats) or folders (every recognised
        file below them).
    output : path
        A file (single input file) or a folder (created as needed).
    fmt : {"same", "cif", "poscar", "extxyz", "csv"}
        Output format; ``"same"`` keeps the input's (extxyz for ``.xyz``).  ``"csv"`` only for CSV
        input (the named CDVAE columns are kept, an unnamed index column is dropped, ``cif`` holds
        the canonical CIF).
    parser : {"pymatgen", "ase", "auto"}
        Reader of CIF and POSCAR files (:func:`latticesym.io.read_structures`); extxyz is read by ASE.
    eps, frac_eps, orientation, sort
        As in :func:`latticesym.structure.canonicalize_batch`.
    progress : bool
        A tqdm progress bar over the files on stderr (when tqdm is installed).

    Returns
    -------
    ConversionReport

    Raises
    ------
    FileNotFoundError
        An input that does not exist or a folder without structure files.
    LatticeError
        Bad options (an unknown format, ``csv`` output for non-CSV input is a per-file failure).
    """
    from latticesym import io

    if fmt not in ("same", *_SUFFIX):
        raise LatticeError(f"fmt must be same, cif, poscar, extxyz or csv; got {fmt!r}")
    if parser not in ("pymatgen", "ase", "auto"):
        raise LatticeError(f"parser must be pymatgen, ase or auto; got {parser!r}")
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    out = Path(output)
    jobs: list[tuple[Path, Path | None]] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            jobs.extend((Path(f), p) for f in io.expand_sources(str(p)))
        elif p.is_file():
            jobs.append((p, None))
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    # one input file and an OUT that is neither an existing folder nor written with a trailing separator
    single = len(jobs) == 1 and jobs[0][1] is None and not (out.is_dir() or str(output).endswith(("/", os.sep)))
    kwargs = {"eps": eps, "frac_eps": frac_eps, "orientation": orientation, "sort": sort}
    bar = _bar(len(jobs), progress)
    report = ConversionReport([])
    try:
        for source, root in jobs:
            record = _convert_one(source, root, out, fmt, parser, single, kwargs)
            report.files.append(record)
            bar.update(1)
    finally:
        bar.close()
    return report


def _convert_one(source: Path, root: Path | None, out: Path, fmt: OutFormat, parser: str, single: bool,
                 kwargs: dict[str, Any]) -> FileConversion:
    from latticesym import io

    in_fmt = io.detect_format(source)
    label = "extxyz" if in_fmt == "ase" and source.suffix.lower() in (".xyz", ".extxyz") else in_fmt
    record = FileConversion(str(source), label)
    try:
        out_fmt = _out_format(in_fmt, str(source), fmt)
        if out_fmt == "csv" and in_fmt != "csv":
            raise LatticeError(f"{source}: csv output needs a CSV input (got {in_fmt})")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structures = io.read_structures(str(source), parser=parser, errors="raise")
    except OptionError:
        raise
    except (LatticeError, OSError, ValueError) as exc:
        record.failures.append((None, f"{type(exc).__name__}: {exc}"))
        return record
    record.structures = len(structures)
    results = _canonical_items(structures, record, kwargs)
    written = []
    for s, r in zip(structures, results):
        if r is None:
            continue
        if not np.array_equal(r.transform, np.eye(3, dtype=np.int64)):
            record.basis_changed += 1
        scale = float(np.abs(s.lattice).max())
        if float(np.abs(r.lattice - s.lattice).max()) > 1e-9 * scale:
            record.matrix_changed += 1
        record.boundary += int(r.near_boundary)
        record.type_index_species += int(bool(s.properties.get("species_are_type_indices")))
        props = {k: v for k, v in s.properties.items() if k not in ("source", "parser", "row",
                                                                    "species_are_type_indices")}
        written.append((s.id, r, props))
    if written:
        try:
            with warnings.catch_warnings():  # pymatgen warns on exotic elements (no electronegativity, ...)
                warnings.simplefilter("ignore")
                record.outputs = _write(out_fmt, _target(source, root, out, out_fmt, single), written)
        except Exception as exc:  # a writer's failure is this file's failure, not the run's
            record.failures.append((None, f"writing failed: {type(exc).__name__}: {exc}"))
    return record


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc="canonicalize", unit="file", file=sys.stderr, leave=False)


def run_cli(args: Any) -> int:
    """The ``latticesym canonicalize IN... OUT`` command (``args`` from :func:`latticesym.cli.build_parser`).

    Prints the summary table (and the failures); exit status 0 when every structure was converted,
    1 when some failed (they are listed), 2 for bad usage (raised to the CLI's handler).
    """
    import json
    import time

    t0 = time.perf_counter()
    progress = not args.no_progress and sys.stderr.isatty()
    report = canonicalize_files(args.inputs, args.output, fmt=args.format, parser=args.parser, eps=args.eps,
                                frac_eps=args.frac_eps, orientation=args.orientation, sort=not args.no_sort,
                                progress=progress)
    seconds = time.perf_counter() - t0
    if args.json:
        payload = json.dumps({**report.to_dict(), "seconds": seconds}, indent=1, default=str)
        if args.json == "-":
            print(payload)
        else:
            Path(args.json).write_text(payload + "\n")
    if args.json != "-":
        print(report.table())
        if report.failures:
            print("\nfailures:")
            print(report.failure_table(limit=args.show_failures))
        written = sum(len(f.outputs) for f in report.files)
        print(f"\n{written} file(s) written below {args.output} in {seconds:.1f} s")
    return 1 if report.failures else 0


def demo_table(n: int = 100, *, progress: bool = False) -> str:
    """The ``make demo`` section: the bundled structures written as files, then canonicalized.

    The first ``n`` structures of the bundled perov_5 set go to one multi-block CIF (pymatgen
    ``CifWriter``), the first ``n`` of carbon_24 to one POSCAR file each (pymatgen ``Poscar``) and
    the next ``n // 2`` of carbon_24 to an extxyz trajectory (ASE), all in a temporary folder;
    :func:`canonicalize_files` converts the folder and its summary table is returned.

    Raises
    ------
    ImportError
        Without pymatgen or ASE.
    """
    import tempfile

    import ase.io
    from pymatgen.io.vasp import Poscar

    from latticesym.adapters import to_ase
    from latticesym.datasets import load_structures

    perov, carbon = load_structures("perov_5")[:n], load_structures("carbon_24")[: n + n // 2]
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = Path(tmp) / "bundled"
        (src / "poscar").mkdir(parents=True)
        (src / "perov_5.cif").write_text(
            "".join(_cif_text(_pymatgen(s.lattice, s.frac_coords, s.species), s.id) for s in perov))
        for k, s in enumerate(carbon[:n]):
            Poscar(_pymatgen(s.lattice, s.frac_coords, s.species), comment=s.id).write_file(
                str(src / "poscar" / f"POSCAR-carbon-{k:03d}"))
        ase.io.write(str(src / "carbon_24.extxyz"), [to_ase(s.lattice, s.frac_coords, s.species) for s in carbon[n:]],
                     format="extxyz")
        report = canonicalize_files(src, Path(tmp) / "canonical", progress=progress)
    return report.table()
