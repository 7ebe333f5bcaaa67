"""Invariance properties of latticesym.structure.canonicalize, each shown to catch a broken canonicalizer.

Properties (``-m invariance``): the canonical form is unchanged by a GL(3, Z) re-basing
``(M L, F M^{-1})``, by a rotation ``L Q^T`` (``orientation="parameters"``), by a permutation of
the atoms, and by integer lattice translations of the coordinates ``F + n``; and canonicalizing
twice changes nothing (idempotence).  Cells within the reducer's tolerance of a Niggli boundary
(``near_boundary``) are excluded from the re-basing and rotation properties: there the Niggli
basis is legitimately not unique.  Every property is also run against a deliberately broken
canonicalizer and must fail on it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from latticesym.groups import random_rotation, random_unimodular
from latticesym.metric import g6
from latticesym.strategies import lattices, rotations, unimodular_matrices
from latticesym.structure import canonicalize
from latticesym.structure._frame import frame_from_g6

pytestmark = pytest.mark.invariance

Canon = Callable[..., Any]
PROPERTY_SETTINGS = settings(max_examples=50, deadline=None)


def _atoms(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-2.0, 3.0, size=(n, 3)), rng.integers(1, 4, size=n)


def _same(r: Any, s: Any, scale: float, tol: float = 1e-9, *, modulo: bool = True) -> bool:
    """Same canonical structure: lattices, species in order, and coordinates (modulo 1) agree."""
    if r.frac.shape != s.frac.shape or not np.array_equal(r.species, s.species):
        return False
    d = r.frac - s.frac
    if modulo:
        d -= np.round(d)
    return bool(np.abs(r.lattice - s.lattice).max() <= tol * scale and np.abs(d).max(initial=0.0) <= tol)


def _inv_int(m: np.ndarray) -> np.ndarray:
    return np.round(np.linalg.inv(m)).astype(np.int64)


# --------------------------------------------------------------------------- the properties
def prop_rebasing(canon: Canon, lat, frac, sp, m) -> bool:
    r = canon(lat, frac, sp)
    if getattr(r, "near_boundary", False):
        return True
    s = canon(m @ lat, frac @ _inv_int(m), sp)
    return _same(r, s, np.abs(lat).max())


def prop_rotation(canon: Canon, lat, frac, sp, q) -> bool:
    r = canon(lat, frac, sp)
    if getattr(r, "near_boundary", False):
        return True
    return _same(r, canon(lat @ q.T, frac, sp), np.abs(lat).max())


def prop_permutation(canon: Canon, lat, frac, sp, perm) -> bool:
    r, s = canon(lat, frac, sp), canon(lat, frac[perm], sp[perm])
    return bool(np.array_equal(r.frac, s.frac) and np.array_equal(r.species, s.species)
                and np.array_equal(r.lattice, s.lattice))


def prop_translation(canon: Canon, lat, frac, sp, shifts) -> bool:
    # Not modulo 1: the canonical coordinates themselves (in [0, 1)) must not depend on the shift.
    return _same(canon(lat, frac, sp), canon(lat, frac + shifts, sp), np.abs(lat).max(), modulo=False)


def prop_idempotent(canon: Canon, lat, frac, sp, _: Any = None) -> bool:
    r = canon(lat, frac, sp)
    return _same(r, canon(r.lattice, r.frac, r.species), np.abs(lat).max())


# --------------------------------------------------------------------------- hypothesis runs
structures = st.tuples(lattices(), st.integers(0, 2**32 - 1), st.integers(1, 6))


@PROPERTY_SETTINGS
@given(structures, unimodular_matrices(max_entry=3))
def test_invariant_under_gl3z_rebasing(structure, m):
    lat, seed, n = structure
    frac, sp = _atoms(seed, n)
    r = canonicalize(lat, frac, sp)
    assume(not r.near_boundary)
    assert prop_rebasing(canonicalize, lat, frac, sp, m)
    assert prop_rebasing(partial(canonicalize, orientation="keep"), lat, frac, sp, m)


@PROPERTY_SETTINGS
@given(structures, rotations())
def test_invariant_under_rotation(structure, q):
    lat, seed, n = structure
    frac, sp = _atoms(seed, n)
    assume(not canonicalize(lat, frac, sp).near_boundary)
    assert prop_rotation(canonicalize, lat, frac, sp, np.asarray(q, dtype=np.float64))


@PROPERTY_SETTINGS
@given(structures, st.randoms(use_true_random=False))
def test_invariant_under_atom_permutation(structure, rnd):
    lat, seed, n = structure
    frac, sp = _atoms(seed, n)
    perm = np.array(rnd.sample(range(n), n))
    assert prop_permutation(canonicalize, lat, frac, sp, perm)


@PROPERTY_SETTINGS
@given(structures, st.integers(0, 2**32 - 1))
def test_invariant_under_lattice_translation_of_frac(structure, shift_seed):
    lat, seed, n = structure
    frac, sp = _atoms(seed, n)
    shifts = np.random.default_rng(shift_seed).integers(-3, 4, size=(n, 3)).astype(np.float64)
    assert prop_translation(canonicalize, lat, frac, sp, shifts)


@PROPERTY_SETTINGS
@given(structures, st.sampled_from(["parameters", "keep"]))
def test_idempotent(structure, orientation):
    lat, seed, n = structure
    frac, sp = _atoms(seed, n)
    assert prop_idempotent(partial(canonicalize, orientation=orientation), lat, frac, sp)


# --------------------------------------------------------------------------- broken canonicalizers
def _no_reduction(lat, frac, sp):
    """Parameters frame of the *input* basis: no Niggli reduction (not GL(3,Z)-invariant)."""
    lat = np.asarray(lat, dtype=np.float64)
    w = np.asarray(frac) - np.floor(frac)
    return SimpleNamespace(lattice=frame_from_g6(g6(lat)[None])[0], frac=w, species=np.asarray(sp))


def _no_wrap(lat, frac, sp):
    """The right lattice and order, but the carried coordinates are not wrapped into [0, 1)."""
    r = canonicalize(lat, frac, sp)
    carried = np.asarray(frac)[r.order] @ _inv_int(r.transform).astype(np.float64)
    return SimpleNamespace(lattice=r.lattice, frac=carried, species=r.species)


def _drifting(lat, frac, sp):
    """Shifts every coordinate by 0.1 each call, so applying it twice is not applying it once."""
    r = canonicalize(lat, frac, sp)
    return SimpleNamespace(lattice=r.lattice, frac=(r.frac + 0.1) % 1.0, species=r.species)


def _cases(k: int = 20):
    rng = np.random.default_rng(7)
    for i in range(k):
        lat = rng.normal(size=(3, 3)) * 2.0 + np.eye(3) * 5.0
        frac, sp = _atoms(1000 + i, 5)
        yield lat, frac, sp, rng


BROKEN = [
    ("rebasing", prop_rebasing, _no_reduction, lambda rng: random_unimodular(1, max_entry=3, rng=rng)[0]),
    ("rotation", prop_rotation, partial(canonicalize, orientation="keep"),
     lambda rng: random_rotation(1, rng=rng)[0]),
    ("permutation", prop_permutation, partial(canonicalize, sort=False), lambda rng: rng.permutation(5)),
    ("translation", prop_translation, _no_wrap,
     lambda rng: rng.integers(-3, 4, size=(5, 3)).astype(np.float64)),
    ("idempotence", prop_idempotent, _drifting, lambda rng: None),
]


@pytest.mark.parametrize(("name", "prop", "broken", "extra"), BROKEN, ids=[b[0] for b in BROKEN])
def test_each_property_catches_its_broken_canonicalizer(name, prop, broken, extra):
    caught = passed = 0
    for lat, frac, sp, rng in _cases():
        e = extra(rng)
        passed += prop(canonicalize, lat, frac, sp, e)
        caught += not prop(broken, lat, frac, sp, e)
    assert passed == 20, f"{name}: the real canonicalizer failed {20 - passed} of 20 cases"
    assert caught >= 15, f"{name}: the broken canonicalizer was caught in only {caught} of 20 cases"
