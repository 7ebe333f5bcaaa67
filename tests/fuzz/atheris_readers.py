"""Coverage-guided fuzzing (atheris / libFuzzer) of the text readers: ``latticesym.io.parse_matrix``
and ``latticesym.io.read_structures`` on CIF and POSCAR text (issue 13).

The random drawers of ``_harness.py`` corrupt a few known-good files; here libFuzzer mutates the
bytes and keeps the inputs that reach new branches of ``latticesym`` (instrumented at import).
The rule is the campaign's rule 1: a call returns or raises ``LatticeError`` / ``TypeError`` /
``StructureReadError``; anything else propagates, and libFuzzer reports it as a crash with the
input saved (``crash-*``).  ``-timeout`` is the per-input bound (rule 2).

    python tests/fuzz/atheris_readers.py -max_total_time=600 -timeout=20 CORPUS_DIR

``scripts/fuzz.py --atheris SECONDS`` (``make fuzz``) runs it with a seed corpus of the good texts.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings

import atheris

with atheris.instrument_imports(include=["latticesym"]):
    from latticesym import io
    from latticesym.errors import LatticeError

ALLOWED = (LatticeError, TypeError, io.StructureReadError)

SEEDS = {
    "matrix": "1 0 0; 0 1 0; 0 0 1",
    "cif": ("data_x\n_cell_length_a 4.0\n_cell_length_b 4.0\n_cell_length_c 4.0\n_cell_angle_alpha 90\n"
            "_cell_angle_beta 90\n_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'P 1'\nloop_\n"
            "_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n"
            "Na1 Na 0 0 0\nCl1 Cl 0.5 0.5 0.5\n"),
    "poscar": "NaCl\n1.0\n4 0 0\n0 4 0\n0 0 4\nNa Cl\n1 1\nDirect\n0 0 0\n0.5 0.5 0.5\n",
}
_KINDS = ("matrix", "cif", "poscar")
_PARSERS = ("auto", "pymatgen", "ase")
_DIR = tempfile.mkdtemp(prefix="ls-atheris-")


def seed_input(kind: str, parser: int = 0) -> bytes:
    """A seed-corpus entry: byte 0 picks the reader, byte 1 the parser, the rest is UTF-8 text."""
    return bytes([_KINDS.index(kind), parser]) + SEEDS[kind].encode()


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    kind = _KINDS[data[0] % 3]
    parser = _PARSERS[data[1] % 3]
    text = data[2:].decode("utf-8", errors="replace")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if kind == "matrix":
                io.parse_matrix(text)
                return
            path = os.path.join(_DIR, "x.cif" if kind == "cif" else "POSCAR")
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
            io.read_structures(path, parser=parser)
        except ALLOWED:
            pass


def write_seed_corpus(folder: str) -> None:
    """The good matrix / CIF / POSCAR texts, once per parser, as libFuzzer corpus files."""
    os.makedirs(folder, exist_ok=True)
    for kind in _KINDS:
        for p in range(len(_PARSERS)):
            with open(os.path.join(folder, f"seed-{kind}-{_PARSERS[p]}"), "wb") as fh:
                fh.write(seed_input(kind, p))


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[1] == "--write-seeds":
        write_seed_corpus(argv[2])
        return
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
