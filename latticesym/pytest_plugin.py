"""pytest plugin of latticesym: the ``invariance`` marker, fixtures and options.

Loaded automatically (entry point ``pytest11``) in every pytest run of an environment
where latticesym is installed, so a downstream CSP repository needs no configuration to
run ``pytest -m invariance --strict-markers``.

Marker
------
``invariance``
    Tests of basis-change / rotation invariance.  Registered here so that
    ``--strict-markers`` accepts it; registering it again in a project's own
    configuration is harmless.

Options
-------
``--latticesym-trials N``
    Default number of random basis changes per :func:`latticesym.testing.assert_basis_invariant`
    call (and its relatives) when the call does not pass ``trials=`` itself.
``--latticesym-seed S``
    Seed of the plugin's fixtures and the default seed of the assertion helpers.  Every
    test gets its own random stream derived from ``S`` and its node id, so a failure is
    reproduced by re-running the same test with the same seed.

Fixtures
--------
``unimodular``
    A random integer ``(3, 3)`` matrix with determinant +1 or -1 (GL(3, Z)).
``unimodular_sl``
    The same, determinant +1 only (SL(3, Z), keeps handedness).
``rotation``
    A random proper rotation, ``(3, 3)`` float64 (apply as ``L @ Q.T``).
``float_tolerance``
    Parametrised over float32 and float64: a :class:`latticesym.testing.FloatTolerance`
    (``dtype``, ``rtol``, ``torch_dtype``).
``lattice_family``
    Parametrised over the example families of :data:`latticesym.testing.LATTICE_FAMILIES`
    (``cubic``, ``hexagonal``, ``triclinic``, ``sheared``, ``flat``): one ``(3, 3)`` lattice.
``example_structure``
    Parametrised over the same families: a :class:`latticesym.testing.ExampleStructure`
    ``(lattice, frac_coords, species)`` that unpacks straight into
    :func:`~latticesym.testing.assert_basis_invariant`.
``example_pymatgen_structure``
    Parametrised over the same families: the structure as a pymatgen ``Structure`` with a
    ``magmom`` site property (skipped where pymatgen is not installed).
``example_ase_atoms``
    The same as an ASE ``Atoms`` with ``tags`` (skipped without ASE).
``bundled_structure``
    Parametrised over real structures shipped with latticesym (the first three of the CDVAE
    carbon_24 and perov_5 samples): a :class:`latticesym.datasets.Structure` (``lattice``,
    ``frac_coords``, ``species``, ``id``), accepted by the checks as it is.
``latticesym_rng``
    The test's ``numpy.random.Generator``.

Examples
--------
A downstream test file::

    import pytest
    from latticesym.testing import assert_basis_invariant

    @pytest.mark.invariance
    def test_featurizer(example_structure):
        assert_basis_invariant(my_featurizer, *example_structure)

    @pytest.mark.invariance
    def test_structure_model(example_pymatgen_structure):
        # a model of pymatgen structures is called with a pymatgen Structure in every trial
        assert_basis_invariant(my_model.predict_energy, example_pymatgen_structure, rotate=True)
"""

from __future__ import annotations

import zlib
from typing import Any

import pytest

__all__ = [
    "bundled_structure",
    "example_ase_atoms",
    "example_pymatgen_structure",
    "example_structure",
    "float_tolerance",
    "lattice_family",
    "latticesym_rng",
    "pytest_addoption",
    "pytest_configure",
    "pytest_unconfigure",
    "rotation",
    "unimodular",
    "unimodular_sl",
]

MARKER_LINE = "invariance: tests of lattice-basis change / rotation invariance (latticesym)"

# The families are listed here (not imported from latticesym.testing) so that loading the
# plugin, which happens in every pytest run of the environment, imports nothing heavy.
_FAMILIES = ("cubic", "hexagonal", "triclinic", "sheared", "flat")
_saved_key = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the ``--latticesym-trials`` and ``--latticesym-seed`` options."""
    group = parser.getgroup("latticesym", "lattice-basis invariance checks (latticesym)")
    group.addoption(
        "--latticesym-trials",
        action="store",
        type=int,
        default=None,
        metavar="N",
        help="random basis changes per assert_basis_invariant call that does not set trials= "
        "(default: latticesym.testing.DEFAULT_TRIALS)",
    )
    group.addoption(
        "--latticesym-seed",
        action="store",
        type=int,
        default=None,
        metavar="S",
        help="seed for latticesym fixtures and the default seed of the assertion helpers (default 0)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``invariance`` marker and apply the options to the helpers' defaults."""
    config.addinivalue_line("markers", MARKER_LINE)
    trials = config.getoption("--latticesym-trials", default=None)
    seed = config.getoption("--latticesym-seed", default=None)
    if trials is not None and trials < 1:
        raise pytest.UsageError(f"--latticesym-trials must be >= 1, got {trials}")
    if trials is not None or seed is not None:
        from latticesym import testing

        config.stash[_saved_key] = testing.get_defaults()
        testing.set_defaults(trials=trials, seed=seed)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Restore the helpers' defaults changed in :func:`pytest_configure`."""
    saved = config.stash.get(_saved_key, None)
    if saved is not None:
        from latticesym import testing

        testing.set_defaults(**saved)


def _seed(config: pytest.Config) -> int:
    seed = config.getoption("--latticesym-seed", default=None)
    return 0 if seed is None else int(seed)


@pytest.fixture
def latticesym_rng(request: pytest.FixtureRequest) -> Any:
    """A ``numpy.random.Generator`` seeded from ``--latticesym-seed`` and the test's node id."""
    import numpy as np

    node = zlib.crc32(request.node.nodeid.encode("utf-8"))
    return np.random.default_rng([_seed(request.config), node])


@pytest.fixture
def unimodular(latticesym_rng: Any) -> Any:
    """A random ``(3, 3)`` int64 matrix with determinant +1 or -1 (GL(3, Z))."""
    from latticesym import testing

    return testing.random_transforms(1, det="either", rng=latticesym_rng)[0]


@pytest.fixture
def unimodular_sl(latticesym_rng: Any) -> Any:
    """A random ``(3, 3)`` int64 matrix with determinant +1 (SL(3, Z))."""
    from latticesym import testing

    return testing.random_transforms(1, det=1, rng=latticesym_rng)[0]


@pytest.fixture
def rotation(latticesym_rng: Any) -> Any:
    """A random proper rotation ``Q`` (float64, ``det Q = +1``); rotate a lattice as ``L @ Q.T``."""
    from latticesym import testing

    return testing.random_rotations(1, rng=latticesym_rng)[0]


@pytest.fixture(params=["float32", "float64"])
def float_tolerance(request: pytest.FixtureRequest) -> Any:
    """Parametrised over float32 / float64: a :class:`~latticesym.testing.FloatTolerance`."""
    from latticesym import testing

    return testing.FloatTolerance.for_dtype(request.param)


@pytest.fixture(params=_FAMILIES)
def lattice_family(request: pytest.FixtureRequest, latticesym_rng: Any) -> Any:
    """One ``(3, 3)`` lattice of each example family (parametrised)."""
    from latticesym import testing

    return testing.example_structure(request.param, rng=latticesym_rng).lattice


@pytest.fixture(params=_FAMILIES)
def example_structure(request: pytest.FixtureRequest, latticesym_rng: Any) -> Any:
    """One small structure of each example family (parametrised); unpacks as ``(lattice, frac, species)``."""
    from latticesym import testing

    return testing.example_structure(request.param, rng=latticesym_rng)


@pytest.fixture(params=_FAMILIES)
def example_pymatgen_structure(request: pytest.FixtureRequest, latticesym_rng: Any) -> Any:
    """One small structure of each example family as a pymatgen ``Structure`` (``magmom`` site property)."""
    pytest.importorskip("pymatgen.core")
    from pymatgen.core import Lattice, Structure

    from latticesym import testing

    ex = testing.example_structure(request.param, rng=latticesym_rng)
    magmom = latticesym_rng.uniform(-2.0, 2.0, size=len(ex.species)).tolist()
    return Structure(Lattice(ex.lattice), [int(z) for z in ex.species], ex.frac_coords,  # type: ignore[misc]
                     site_properties={"magmom": magmom})


@pytest.fixture(params=_FAMILIES)
def example_ase_atoms(request: pytest.FixtureRequest, latticesym_rng: Any) -> Any:
    """One small structure of each example family as an ASE ``Atoms`` (``pbc=True``, random ``tags``)."""
    pytest.importorskip("ase")
    from ase import Atoms

    from latticesym import testing

    ex = testing.example_structure(request.param, rng=latticesym_rng)
    tags = latticesym_rng.integers(0, 5, size=len(ex.species))
    return Atoms(numbers=ex.species, cell=ex.lattice, scaled_positions=ex.frac_coords, pbc=True, tags=tags)


_BUNDLED = [("carbon_24", 0), ("carbon_24", 1), ("carbon_24", 2), ("perov_5", 0), ("perov_5", 1), ("perov_5", 2)]


@pytest.fixture(params=_BUNDLED, ids=[f"{name}-{i}" for name, i in _BUNDLED])
def bundled_structure(request: pytest.FixtureRequest) -> Any:
    """A real structure shipped with latticesym (:class:`latticesym.datasets.Structure`), parametrised."""
    from latticesym.datasets import load_structures

    name, index = request.param
    return load_structures(name)[index]
