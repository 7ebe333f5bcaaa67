"""Regenerate the small real-data samples shipped inside the package (latticesym/data/).

Run from the repository root with ``../shared/data`` beside it::

    .venv/bin/python scripts/make_bundled_data.py

Sources (see ../shared/data/README.md for provenance and licences):
CDVAE Perov-5 / Carbon-24 test splits (MIT, Tian Xie & Xiang Fu), spglib's reduction test
lattices (BSD-3-Clause, spglib team) and the transcribed peer Niggli cases (per-case licences).
CIF strings are parsed once here with pymatgen; the package itself reads only JSON.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "latticesym" / "data"
N_PER_SET = 600


def _structures(csv_name: str, n: int) -> list[dict]:
    from pymatgen.core import Structure

    csv.field_size_limit(sys.maxsize)
    out = []
    with open(SHARED / csv_name, newline="") as fh:
        for row in csv.DictReader(fh):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                s = Structure.from_str(row["cif"], fmt="cif")
            props = {k: float(v) for k, v in row.items() if k not in ("", "material_id", "cif", "formula")}
            out.append(
                {
                    "id": row["material_id"],
                    "lattice": s.lattice.matrix.round(10).tolist(),
                    "frac_coords": s.frac_coords.round(10).tolist(),
                    "species": [int(sp.Z) for sp in s.species],
                    "properties": props,
                }
            )
            if len(out) >= n:
                break
    return out


def _dat(name: str) -> list[list[list[float]]]:
    blocks: list[list[list[float]]] = []
    for line in (SHARED / "spglib" / name).read_text().splitlines():
        if re.fullmatch(r"#\s*\d+\s*", line):
            blocks.append([])
        elif line.startswith("#"):
            continue
        elif line.strip():
            blocks[-1].append([float(x) for x in line.split()])
    return blocks


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    payload = {
        "perov_5": {
            "source": "CDVAE perov_5/test.csv (MIT)",
            "structures": _structures("cdvae_perov_5_test.csv", N_PER_SET),
        },
        "carbon_24": {
            "source": "CDVAE carbon_24/test.csv (MIT)",
            "structures": _structures("cdvae_carbon_24_test.csv", N_PER_SET),
        },
    }
    for key, value in payload.items():
        with gzip.open(OUT / f"{key}.json.gz", "wt", encoding="utf-8") as fh:
            json.dump(value, fh, separators=(",", ":"))
    lattices = {
        "source": "spglib test/functional/python/{lattices,niggli_lattices}.dat @ 0c1fca6c (BSD-3-Clause)",
        "lattices": _dat("lattices.dat"),
        "niggli_lattices": _dat("niggli_lattices.dat"),
    }
    with gzip.open(OUT / "spglib_lattices.json.gz", "wt", encoding="utf-8") as fh:
        json.dump(lattices, fh, separators=(",", ":"))
    with gzip.open(OUT / "peer_niggli_cases.json.gz", "wt", encoding="utf-8") as fh:
        fh.write((SHARED / "peer_niggli_cases.json").read_text())
    print("wrote", sorted(p.name for p in OUT.iterdir()))


if __name__ == "__main__":
    main()
