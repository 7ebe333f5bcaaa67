"""A quick version of ``examples/loss_experiment.py``: what the losses guarantee, on Perov-5 cells.

The Gram-space loss is invariant under any change of basis of the label, so trained on labels in
random bases it sees the same targets as plain MSE on canonical labels (the bar) and must end
within a small factor of it; plain MSE on random-basis labels has no consistent target and must do
worse.  A loss that ignores the basis alignment (the plain Gram MSE, no reduction) must be caught.
No number of a particular run is asserted.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

torch = pytest.importorskip("torch")
lt = pytest.importorskip("latticesym.torch")

ROOT = Path(__file__).resolve().parents[2]
FACTOR = 2.0  # the Gram loss on random-basis labels ends within FACTOR x bar + SLACK
SLACK = 0.01
EPOCHS = 12


@pytest.fixture(scope="module")
def experiment() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location(
        "_latticesym_loss_experiment", ROOT / "examples" / "loss_experiment.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def data(experiment: ModuleType):
    torch.set_num_threads(1)
    return experiment.load_data(("perov_5",), n_per_set=150, seed=0)


def _error(experiment: ModuleType, data, loss: str | Callable, setting: str) -> float:
    run = experiment.train(data, loss, setting, epochs=EPOCHS, eval_every=EPOCHS, seed=0, batch=32)
    return float(run.final["all"])


@pytest.fixture(scope="module")
def bar(experiment: ModuleType, data) -> float:
    return _error(experiment, data, "mse", "canonical")


def test_descriptor_is_basis_and_rotation_invariant(experiment: ModuleType) -> None:
    from latticesym.datasets import Structure, load_structures
    from latticesym.groups import random_rotation, random_unimodular

    rng = np.random.default_rng(1)
    for s in load_structures("carbon_24")[:5] + load_structures("perov_5")[:3]:
        U = random_unimodular(1, max_entry=2, det="either", rng=rng)[0].astype(np.float64)
        Q = random_rotation(1, rng=rng)[0]
        moved = Structure(
            id=s.id,
            lattice=U @ s.lattice @ Q.T,
            frac_coords=s.frac_coords @ np.linalg.inv(U),
            species=s.species,
            properties=s.properties,
        )
        np.testing.assert_allclose(experiment.descriptor(moved), experiment.descriptor(s), rtol=1e-7, atol=1e-7)
        np.testing.assert_allclose(
            experiment.canonical_lattice(moved.lattice), experiment.canonical_lattice(s.lattice), rtol=1e-9, atol=1e-9
        )


def test_gram_loss_on_random_bases_reaches_the_canonical_mse_bar(experiment: ModuleType, data, bar: float) -> None:
    gram = _error(experiment, data, "gram", "random bases + rotations")
    mse = _error(experiment, data, "mse", "random bases")
    assert bar < 0.5, f"the canonical-label bar did not learn Perov-5: median G6 error {bar:.3f}"
    assert gram <= FACTOR * bar + SLACK, f"gram on random-basis labels {gram:.4f} vs bar {bar:.4f}"
    assert mse > gram, f"plain MSE on random-basis labels {mse:.4f} not worse than gram {gram:.4f}"


def test_quick_check_catches_a_loss_ignoring_the_basis_alignment(experiment: ModuleType, data, bar: float) -> None:
    """The plain Gram MSE compares G = L L^T without reducing: rotation-invariant, not basis-invariant."""

    def unaligned_gram(pred, label):
        return lt.gram_mse(pred, label)

    broken = _error(experiment, data, unaligned_gram, "random bases + rotations")
    assert broken > FACTOR * bar + SLACK, f"a basis-blind Gram MSE passed the check: {broken:.4f} vs bar {bar:.4f}"


def test_match_rate_accepts_the_truth_in_any_basis_and_catches_a_stretched_cell(experiment: ModuleType,
                                                                                 data) -> None:
    """The experiment's structure match metric: true cells in random bases and rotations all match; the
    same cells stretched by 40 % along one axis (a wrong lattice, same coordinates) do not."""
    test = data.test[:30]
    sub = experiment.Data(**{**data.__dict__, "test": test})
    truth = data.labels("random bases + rotations")[test]
    good = experiment.evaluate(truth, sub, match=True)
    assert good["match"] == 1.0 and good["all"] < 1e-9
    stretched = truth.copy()
    stretched[:, 0] *= 1.4
    bad = experiment.evaluate(stretched, sub, match=True)
    assert bad["match"] <= 0.2, bad
