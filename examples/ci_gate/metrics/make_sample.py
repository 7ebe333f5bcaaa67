"""Make the metrics-gate sample: 20 references (CDVAE CSV) and a toy model's predictions (npz).

The references are the first 10 Perov-5 and the first 10 Carbon-24 test structures bundled with
latticesym, written as a CDVAE-style CSV (a ``cif`` column).  The "model" predicts each structure
with its atoms displaced by ``--noise`` (in units of ``(V/N)^(1/3)``) and its cell strained by
``--noise / 5``, emitted in a random basis (``--rebase``) as a model would, and saved in DiffCSP's
layout (``frac_coords``, ``atom_types``, ``lengths``, ``angles``, ``num_atoms``; a leading axis of
``--samples`` samples).  The defaults write ``references.csv`` and ``predictions.npz`` next to
this script (``-o`` is relative to the current folder):

    python metrics/make_sample.py                            # the stored sample
    python metrics/make_sample.py --noise 0.45 -o worse.npz  # a regressed model
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from latticesym import cell_parameters, datasets
from latticesym.adapters import to_pymatgen
from latticesym.groups import random_unimodular


def references() -> list[datasets.Structure]:
    return datasets.load_structures("perov_5")[:10] + datasets.load_structures("carbon_24")[:10]


def write_references(path: str) -> None:
    from pymatgen.io.cif import CifWriter

    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["", "material_id", "cif"])
        for i, s in enumerate(references()):
            w.writerow([i, s.id, str(CifWriter(to_pymatgen(s.lattice, s.frac_coords, s.species)))])


def predict(noise: float, samples: int, seed: int, rebase: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {"frac_coords": [], "atom_types": [], "lengths": [], "angles": [],
                                         "num_atoms": []}
    for _ in range(samples):
        frac, types, params, counts = [], [], [], []
        for s in references():
            L = s.lattice @ np.diag(1 + rng.normal(scale=noise / 5, size=3))
            ell = (abs(np.linalg.det(L)) / s.num_atoms) ** (1 / 3)
            d = rng.normal(size=(s.num_atoms, 3)) * noise * ell / np.sqrt(3)
            f = (s.frac_coords @ L + d) @ np.linalg.inv(L)
            if rebase:
                M = random_unimodular(1, max_entry=2, rng=rng)[0]
                L, f = M @ L, f @ np.linalg.inv(M)
            frac.append(f - np.floor(f))
            types.append(np.array(s.species))
            params.append(cell_parameters(L))
            counts.append(s.num_atoms)
        p = np.array(params)
        out["frac_coords"].append(np.concatenate(frac))
        out["atom_types"].append(np.concatenate(types))
        out["lengths"].append(p[:, :3])
        out["angles"].append(p[:, 3:])
        out["num_atoms"].append(np.array(counts))
    return {k: np.stack(v) if samples > 1 else v[0] for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--noise", type=float, default=0.15)
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-rebase", action="store_true")
    here = Path(__file__).resolve().parent
    ap.add_argument("-o", "--output", default=str(here / "predictions.npz"))
    ap.add_argument("--references", default=str(here / "references.csv"))
    args = ap.parse_args()
    write_references(args.references)
    np.savez_compressed(args.output, **predict(args.noise, args.samples, args.seed, not args.no_rebase))


if __name__ == "__main__":
    main()
