"""Tests of latticesym.testing and its pytest plugin: the checkers must catch what they claim to catch."""

from __future__ import annotations

import numpy as np
import pytest

from latticesym import testing
from latticesym.testing import (
    BasisInvarianceError,
    assert_basis_equivariant,
    assert_basis_invariant,
    equivariance_error,
    integer_inverse,
    invariance_error,
    transform_structure,
    wrap_frac,
)

pytestmark = pytest.mark.invariance

TRIALS = 12


def _structure(kind: str = "triclinic", seed: int = 3) -> testing.ExampleStructure:
    return testing.example_structure(kind, n_atoms=4, rng=seed)


# --------------------------------------------------------------------------- featurizers
def volume(lattice, frac_coords, species):
    return abs(np.linalg.det(lattice))


def density(lattice, frac_coords, species):
    return np.sum(species) / abs(np.linalg.det(lattice))


def first_vector_length(lattice, frac_coords, species):
    return np.linalg.norm(lattice[0])


def sorted_cell_lengths(lattice, frac_coords, species):
    return np.sort(np.linalg.norm(lattice, axis=1))


def wrapped_cartesian_radii(lattice, frac_coords, species):
    cart = (np.asarray(frac_coords) % 1.0) @ np.asarray(lattice)
    return np.sort(np.linalg.norm(cart, axis=1))


def signed_volume(lattice, frac_coords, species):
    """Subtle: invariant under SL(3, Z), flips sign under det -1 basis changes."""
    return np.linalg.det(lattice)


def _pair_distances(lattice, frac_coords, reach):
    L = np.asarray(lattice, dtype=np.float64)
    f = np.asarray(frac_coords, dtype=np.float64)
    r = np.arange(-reach, reach + 1)
    shifts = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    d = f[:, None, None, :] - f[None, :, None, :] + shifts[None, None, :, :]
    return np.linalg.norm(d @ L, axis=-1)


def neighbour_count_fixed_images(lattice, frac_coords, species, cutoff=3.2):
    """Subtle: right in a reduced cell (images -1..1 suffice), wrong in a sheared one."""
    dist = _pair_distances(lattice, frac_coords, 1)
    return float(np.sum((dist > 1e-8) & (dist < cutoff)))


def first_atom_feature(lattice, frac_coords, species):
    """Subtle: depends on the order of the atoms (caught only with permute=True)."""
    return float(np.asarray(species)[0])


def slightly_noisy_volume(lattice, frac_coords, species):
    """Subtle: relative error 1e-7 from the first basis vector: fine in float32, not in float64."""
    return abs(np.linalg.det(lattice)) * (1 + 1e-7 * np.sin(np.linalg.norm(lattice[0])))


def _reduced(lattice, frac_coords):
    from latticesym.reference import niggli_reduce as exact_reduce

    T = np.array(exact_reduce(np.asarray(lattice, dtype=np.float64)).transform.tolist(), dtype=np.int64)
    Lr = T.astype(np.float64) @ np.asarray(lattice, dtype=np.float64)
    fr = wrap_frac(np.asarray(frac_coords, dtype=np.float64) @ integer_inverse(T).astype(np.float64))
    return Lr, fr


def displacement_to_atom0(lattice, frac_coords, species):
    """Per-atom Cartesian minimum-image vector to atom 0, searched in the reduced cell (equivariant)."""
    Lr, fr = _reduced(lattice, frac_coords)
    r = np.arange(-2, 3)
    shifts = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    d = (fr[0] - fr)[:, None, :] + shifts[None]
    cart = d @ Lr
    best = np.argmin(np.linalg.norm(cart, axis=-1), axis=1)
    return cart[np.arange(len(fr)), best]


# --------------------------------------------------------------------------- invariant functions pass
@pytest.mark.parametrize("fn", [volume, density])
@pytest.mark.parametrize("kind", testing.LATTICE_FAMILIES)
def test_invariant_featurizers_pass(fn, kind):
    report = assert_basis_invariant(fn, *_structure(kind), trials=TRIALS, rotate=True, permute=True, translate=True)
    assert report.passed and report.max_error < 1e-10
    assert report.trials == TRIALS and report.dtype == "float64" and report.tolerance == 1e-9


def test_reduced_g6_is_invariant():
    from latticesym.reference import niggli_reduce as exact_reduce

    def reduced_g6(lattice, frac_coords, species):
        return np.array([float(x) for x in exact_reduce(np.asarray(lattice)).g6])

    assert_basis_invariant(reduced_g6, *_structure("sheared"), trials=6)


# --------------------------------------------------------------------------- the checker catches
@pytest.mark.parametrize(
    "fn", [first_vector_length, sorted_cell_lengths, wrapped_cartesian_radii, neighbour_count_fixed_images]
)
def test_non_invariant_functions_are_caught(fn):
    with pytest.raises(BasisInvarianceError) as info:
        assert_basis_invariant(fn, *_structure("triclinic"), trials=TRIALS)
    assert isinstance(info.value, AssertionError)
    report = info.value.report
    assert not report.passed and report.max_error > report.tolerance
    assert report.n_failed >= 1
    M = report.transform
    assert abs(round(np.linalg.det(M))) == 1


def test_fixed_image_neighbour_count_is_right_in_the_reduced_cell():
    """The subtle featurizer agrees with a wide search on the reduced cell, so only basis changes expose it."""
    L, f, s = _structure("cubic", seed=1)
    wide = float(np.sum((lambda d: (d > 1e-8) & (d < 3.2))(_pair_distances(L, f, 4))))
    assert neighbour_count_fixed_images(L, f, s) == wide


def test_signed_volume_caught_only_with_det_minus_one():
    st = _structure()
    assert_basis_invariant(signed_volume, *st, det=1, trials=TRIALS)
    with pytest.raises(BasisInvarianceError):
        assert_basis_invariant(signed_volume, *st, det="either", trials=TRIALS)
    report = invariance_error(signed_volume, *st, det=-1, trials=4)
    assert np.all(report.errors > 1.9)  # every det -1 trial flips the sign: error 2


def test_atom_order_dependence_caught_only_with_permute():
    L, f, _ = _structure()
    species = [1, 6, 8, 14]
    assert_basis_invariant(first_atom_feature, L, f, species, trials=TRIALS)
    with pytest.raises(BasisInvarianceError) as info:
        assert_basis_invariant(first_atom_feature, L, f, species, trials=TRIALS, permute=True)
    assert info.value.report.permutation is not None
    assert "atom permutation" in str(info.value)


def test_tolerance_depends_on_dtype():
    st = _structure()
    with pytest.raises(BasisInvarianceError):
        assert_basis_invariant(slightly_noisy_volume, *st, trials=TRIALS)
    report = assert_basis_invariant(slightly_noisy_volume, *st, trials=TRIALS, dtype="float32")
    assert report.dtype == "float32" and report.tolerance == testing.TOLERANCES["float32"]


def test_float32_inputs_are_passed_as_float32():
    seen = []

    def fn(lattice, frac_coords, species):
        seen.append((lattice.dtype, frac_coords.dtype))
        assert np.all((frac_coords >= 0) & (frac_coords < 1))
        return np.float32(abs(np.linalg.det(lattice)))

    L, f, s = _structure()
    report = assert_basis_invariant(fn, L.astype(np.float32), f.astype(np.float32), s, trials=4)
    assert set(seen) == {(np.dtype("float32"), np.dtype("float32"))}
    assert report.dtype == "float32"


def test_message_is_readable():
    with pytest.raises(BasisInvarianceError) as info:
        assert_basis_invariant(first_vector_length, *_structure(), trials=5, seed=7)
    text = str(info.value)
    first = text.splitlines()[0]
    assert first.startswith("first_vector_length is NOT invariant")
    assert "seed 7" in first and "tolerance" in first
    for part in (
        "M (det",
        "input lattice",
        "transformed lattice",
        "output on the input",
        "output on the transformed input",
        "reproduce",
    ):
        assert part in text


def test_traceback_is_hidden():
    with pytest.raises(BasisInvarianceError) as info:
        assert_basis_invariant(first_vector_length, *_structure(), trials=3)
    names = [entry.name for entry in info.traceback.filter(info)]
    assert "assert_basis_invariant" not in names


def test_report_reproduces_worst_trial():
    st = _structure()
    report = invariance_error(sorted_cell_lengths, *st, trials=8, seed=11)
    L2, f2, s2 = transform_structure(*st, report.transform)
    np.testing.assert_allclose(sorted_cell_lengths(L2, f2, s2), report.actual)
    np.testing.assert_allclose(report.expected, sorted_cell_lengths(*st))
    again = invariance_error(sorted_cell_lengths, *st, trials=8, seed=11)
    np.testing.assert_array_equal(again.errors, report.errors)
    assert report.max_error == report.errors.max() == report.errors[report.worst]


# --------------------------------------------------------------------------- wrapping
def test_wrap_frac_snaps_to_integers():
    out = wrap_frac([-1e-17, 0.9999999999999998, 1.0, 2.5, -0.25, 0.99999])
    assert out.tolist() == [0.0, 0.0, 0.0, 0.5, 0.75, 0.99999]
    assert np.all((out >= 0) & (out < 1))
    assert wrap_frac([1 - 1e-12], eps=0).tolist() == [1 - 1e-12]


def test_wrap_tolerance_prevents_spurious_errors():
    """1/3 @ inv(M) lands on 2.9999999999999996: without the snap it wraps to ~1, not 0."""
    M = np.array([[-3, -3, -1], [-2, 2, 3], [-3, -2, 0]])
    L = np.diag([3.0, 4.0, 5.0])
    f = np.array([[1 / 3, 2 / 3, 0.1], [0.2, 1 / 3, 2 / 3]])
    _, raw, _ = transform_structure(L, f, [1, 1], M, wrap_eps=0.0)
    _, snapped, _ = transform_structure(L, f, [1, 1], M)
    assert raw.max() > 0.999 and snapped[0, 0] == 0.0
    # Cartesian positions agree modulo the new lattice either way.
    for frac in (raw, snapped):
        d = (frac @ (M @ L) - f @ L) @ np.linalg.inv(M @ L)
        np.testing.assert_allclose(d, np.rint(d), atol=1e-9)


def test_transform_structure_keeps_the_crystal():
    L, f, s = _structure("sheared")
    M = testing.random_transforms(1, rng=5)[0]
    Q = testing.random_rotations(1, rng=6)[0]
    perm = np.array([2, 0, 3, 1])
    L2, f2, s2 = transform_structure(L, f, s, M, rotation=Q, permutation=perm)
    np.testing.assert_allclose(L2, M @ L @ Q.T)
    assert np.all((f2 >= 0) & (f2 < 1))
    assert s2.tolist() == s[perm].tolist()
    # Cartesian positions (rotated back) differ from the originals by lattice vectors.
    d = (f2 @ L2 @ Q - f[perm] @ L) @ np.linalg.inv(L)
    np.testing.assert_allclose(d, np.rint(d), atol=1e-8)


def test_integer_inverse():
    M = testing.random_transforms(20, max_entry=4, rng=1)
    for m in M:
        assert (m @ integer_inverse(m)).tolist() == np.eye(3, dtype=int).tolist()
    with pytest.raises(ValueError, match="determinant"):
        integer_inverse([[2, 0, 0], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match="integer"):
        integer_inverse([[1.5, 0, 0], [0, 1, 0], [0, 0, 1]])


# --------------------------------------------------------------------------- equivariance
def test_lattice_equivariance():
    st = _structure()

    def doubled(lattice, frac_coords, species):
        return 2.0 * np.asarray(lattice)

    assert_basis_equivariant(doubled, *st, kind="lattice", rotate=True, trials=TRIALS)

    def reduced_lattice(lattice, frac_coords, species):
        return _reduced(lattice, frac_coords)[0]

    with pytest.raises(BasisInvarianceError) as info:
        assert_basis_equivariant(reduced_lattice, *st, kind="lattice", trials=TRIALS)
    assert "M @ out" in str(info.value)


def test_per_atom_equivariance():
    L, f, _ = _structure()
    species = np.array([1, 6, 8, 14])

    def per_atom_z(lattice, frac_coords, species):
        return np.asarray(species, dtype=float) * abs(np.linalg.det(lattice))

    assert_basis_equivariant(per_atom_z, L, f, species, kind="per_atom", permute=True, trials=TRIALS)

    def per_atom_frac_x(lattice, frac_coords, species):
        return np.asarray(frac_coords)[:, 0]

    with pytest.raises(BasisInvarianceError):
        assert_basis_equivariant(per_atom_frac_x, L, f, species, kind="per_atom", trials=TRIALS)


def test_per_atom_cartesian_and_fractional_equivariance():
    st = _structure("triclinic", seed=8)
    assert_basis_equivariant(displacement_to_atom0, *st, kind="per_atom_cartesian", rotate=True, trials=6)

    def frac_displacement(lattice, frac_coords, species):
        return displacement_to_atom0(lattice, frac_coords, species) @ np.linalg.inv(lattice)

    assert_basis_equivariant(frac_displacement, *st, kind="per_atom_fractional", trials=6)
    with pytest.raises(BasisInvarianceError):
        assert_basis_equivariant(frac_displacement, *st, kind="per_atom_cartesian", trials=6)

    def wrapped_cart(lattice, frac_coords, species):
        return (np.asarray(frac_coords) % 1.0) @ np.asarray(lattice)

    with pytest.raises(BasisInvarianceError):
        assert_basis_equivariant(wrapped_cart, *st, kind="per_atom_cartesian", trials=6)


def test_equivariance_validates_kind_and_shape():
    st = _structure()
    with pytest.raises(ValueError, match="kind"):
        equivariance_error(volume, *st, kind="vector")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        equivariance_error(volume, *st, kind="lattice", trials=2)


# --------------------------------------------------------------------------- outputs and inputs
def test_structured_outputs_and_shape_changes():
    st = _structure()

    def mixed(lattice, frac_coords, species):
        return {"v": abs(np.linalg.det(lattice)), "parts": (len(species), [1.0, 2.0])}

    assert_basis_invariant(mixed, *st, trials=4)

    def shape_changes(lattice, frac_coords, species):
        return np.zeros(round(np.linalg.norm(lattice[0])))

    report = invariance_error(shape_changes, *st, trials=TRIALS)
    assert report.max_error == np.inf and "shape changed" in report.summary()

    def nan_sometimes(lattice, frac_coords, species):
        return np.nan if lattice[0, 0] < 0 else 1.0

    assert invariance_error(nan_sometimes, *st, trials=TRIALS).max_error == np.inf


def test_zero_output_and_atol():
    st = _structure()

    def tiny(lattice, frac_coords, species):
        return 1e-14 * lattice[0, 0]

    assert invariance_error(tiny, *st, trials=4).max_error > 1e-9  # relative to a tiny output
    assert invariance_error(tiny, *st, trials=4, atol=1e-12).passed


def test_exceptions_in_fn_propagate_with_a_note():
    calls = []

    def fragile(lattice, frac_coords, species):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("boom")
        return 1.0

    with pytest.raises(RuntimeError, match="boom") as info:
        invariance_error(fragile, *_structure(), trials=3)
    notes = getattr(info.value, "__notes__", [])
    assert not notes or "trial 0" in notes[0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"trials": 0}, "trials"), ({"det": 2}, "det"), ({"max_entry": 0}, "max_entry"), ({"tolerance": -1}, "tolerance")],
)
def test_argument_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        invariance_error(volume, *_structure(), **kwargs)


def test_input_validation():
    L, f, s = _structure()
    with pytest.raises(ValueError, match="species"):
        invariance_error(volume, L, f, s[:2])
    with pytest.raises(ValueError, match="shape"):
        invariance_error(volume, np.eye(2), f, s)
    with pytest.raises(TypeError):
        invariance_error("volume", L, f, s)  # type: ignore[arg-type]


def test_defaults_can_be_changed_and_restored():
    before = testing.get_defaults()
    try:
        testing.set_defaults(trials=3, seed=42)
        report = invariance_error(volume, *_structure())
        assert report.trials == 3 and report.seed == 42
    finally:
        testing.set_defaults(**before)
    assert testing.get_defaults() == before
    with pytest.raises(ValueError):
        testing.set_defaults(trials=0)


def test_float_tolerance():
    t = testing.FloatTolerance.for_dtype(np.float32)
    assert (t.name, t.rtol, t.dtype) == ("float32", 1e-3, np.dtype("float32"))
    with pytest.raises(ValueError, match="no tolerance"):
        testing.FloatTolerance.for_dtype("int32")


def test_example_structures_are_valid():
    for kind in testing.LATTICE_FAMILIES:
        s = testing.example_structure(kind, rng=0)
        assert abs(np.linalg.det(s.lattice)) > 1.0
        assert s.frac_coords.shape == (4, 3) and s.species.shape == (4,)
    with pytest.raises(ValueError, match="unknown family"):
        testing.example_structure("amorphous")


# --------------------------------------------------------------------------- torch
def test_torch_functions():
    torch = pytest.importorskip("torch")
    L, f, s = _structure()

    def torch_volume(lattice, frac_coords, species):
        assert isinstance(lattice, torch.Tensor)
        return torch.linalg.det(lattice).abs()

    def torch_first_length(lattice, frac_coords, species):
        return torch.linalg.norm(lattice[0])

    for dtype, name in ((torch.float64, "float64"), (torch.float32, "float32")):
        Lt, ft = torch.tensor(L, dtype=dtype), torch.tensor(f, dtype=dtype)
        st = torch.tensor(s)
        report = assert_basis_invariant(torch_volume, Lt, ft, st, trials=6, permute=True)
        assert report.dtype == name
        with pytest.raises(BasisInvarianceError):
            assert_basis_invariant(torch_first_length, Lt, ft, st, trials=6)

    def numpy_volume_of_tensor(lattice, frac_coords, species):
        return float(abs(np.linalg.det(lattice.detach().numpy())))

    lt = torch.tensor(L, requires_grad=True)
    assert_basis_invariant(numpy_volume_of_tensor, lt, torch.tensor(f), s, trials=3, dtype=torch.float64)


# --------------------------------------------------------------------------- the plugin's fixtures
def test_fixture_unimodular(unimodular, unimodular_sl):
    assert unimodular.shape == (3, 3) and unimodular.dtype == np.int64
    assert abs(round(np.linalg.det(unimodular))) == 1
    assert round(np.linalg.det(unimodular_sl)) == 1


def test_fixture_rotation(rotation):
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)


def test_fixture_float_tolerance(float_tolerance):
    L, f, s = _structure()
    report = assert_basis_invariant(
        volume, L.astype(float_tolerance.dtype), f.astype(float_tolerance.dtype), s, trials=3
    )
    assert report.tolerance == float_tolerance.rtol


def test_fixture_example_structure(example_structure, lattice_family):
    assert_basis_invariant(density, *example_structure, trials=3)
    assert lattice_family.shape == (3, 3) and abs(np.linalg.det(lattice_family)) > 1


def test_plugin_registers_marker(pytestconfig):
    markers = pytestconfig.getini("markers")
    assert any(m.startswith("invariance:") for m in markers)


# --------------------------------------------------------------------------- property: basis changes
def test_transform_structure_property():
    strategies = pytest.importorskip("latticesym.strategies")
    from hypothesis import given

    L, f, s = _structure("triclinic", seed=4)
    # Small entries: frac @ inv(M) loses absolute precision like max|inv(M)| * 1e-16 in float64.
    matrices = strategies.unimodular_matrices(max_entry=4)

    @given(M=matrices)
    def check(M):
        M = np.asarray(M, dtype=np.int64)
        L2, f2, _ = transform_structure(L, f, s, M)
        assert np.all((f2 >= 0) & (f2 < 1))
        d = (f2 @ L2 - f @ L) @ np.linalg.inv(L)  # Cartesian moves are lattice vectors of L
        np.testing.assert_allclose(d, np.rint(d), atol=1e-6)
        assert abs(volume(L2, f2, s) - volume(L, f, s)) <= 1e-9 * volume(L, f, s) * np.abs(M).max() ** 3

    check()
