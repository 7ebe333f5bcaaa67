"""``match_batch`` on a local Dask cluster gives the serial answers, pair for pair (issue 11, point 5).

The Dask path is the executor :func:`latticesym.audit.map_chunks` already has; here it runs on a
``distributed.LocalCluster`` with two worker threads in this process (``processes=False``: the
compiled kernels release the GIL).  Skipped cleanly when ``dask.distributed`` is not installed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from latticesym.structure import MatchBatch, match_batch

distributed = pytest.importorskip("distributed")


def _pairs() -> tuple[list[Any], list[Any]]:
    from latticesym.datasets import load_structures

    rng = np.random.default_rng(5)
    a: list[Any] = []
    b: list[Any] = []
    for name in ("perov_5", "carbon_24"):
        for s in [s for s in load_structures(name) if len(s.species) <= 10][:8]:
            L, f, z = np.asarray(s.lattice), np.asarray(s.frac_coords), np.asarray(s.species)
            ell = (abs(np.linalg.det(L)) / len(z)) ** (1 / 3)
            for noise in (0.0, 0.2, 0.6):
                cart = f @ L + rng.normal(scale=noise * ell / math.sqrt(3), size=(len(z), 3))
                a.append((L, f, z))
                b.append((L @ np.diag([1.05, 1.0, 0.97]), cart @ np.linalg.inv(L), z))
    a.append((np.full((3, 3), np.nan), np.zeros((1, 3)), [6]))  # an error row
    b.append(b[0])
    a.append(a[0])  # a composition mismatch
    b.append((b[0][0], b[0][1][:-1], b[0][2][:-1]))
    return a, b


def _differences(x: MatchBatch, y: MatchBatch) -> list[int]:
    bad = []
    for i in range(len(x)):
        same = (bool(x.matched[i]), bool(x.matched_by_rms[i]), x.reason[i], int(x.n_lattice_mappings[i])) == (
            bool(y.matched[i]), bool(y.matched_by_rms[i]), y.reason[i], int(y.n_lattice_mappings[i]))
        same &= bool(np.array_equal(x.rms[i], y.rms[i], equal_nan=True))
        same &= bool(np.array_equal(x.max_dist[i], y.max_dist[i], equal_nan=True))
        if not same:
            bad.append(i)
    return bad


def test_match_batch_on_local_dask_cluster_matches_serial() -> None:
    a, b = _pairs()
    serial = match_batch(a, b, workers=1, chunk_size=7)
    assert int(serial.matched.sum()) >= 10 and int((~serial.matched).sum()) >= 10
    assert serial.errors == [len(a) - 2] and serial.reason[-1] == "composition"
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        on_dask = match_batch(a, b, dask_client=client, chunk_size=7)
    assert len(on_dask) == len(serial)
    assert _differences(on_dask, serial) == []


def test_difference_check_catches_reordered_rows() -> None:
    """The comparison above would see chunks returned out of order (rows swapped)."""
    a, b = _pairs()
    serial = match_batch(a, b, workers=1, chunk_size=7)
    swapped = match_batch(a[7:14] + a[:7] + a[14:], b[7:14] + b[:7] + b[14:], workers=1, chunk_size=7)
    assert _differences(swapped, serial)
