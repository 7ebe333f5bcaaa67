"""``latticesym.torch.LatticeLoss``: the DiffCSP-shaped drop-in (lattices or lengths/angles)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import latticesym.torch as lt
from latticesym.errors import LatticeShapeError
from latticesym.groups import random_unimodular
from latticesym.metric import lattice_from_parameters


def test_lattices_and_cell_parameters_give_the_gram_loss() -> None:
    rng = np.random.default_rng(0)
    params = np.array([[3.1, 4.3, 5.2, 78, 83, 95], [4.0, 4.0, 4.0, 90, 90, 90]])
    target = torch.tensor(np.stack([lattice_from_parameters(*p) for p in params]))
    pred = torch.tensor(np.einsum("nij,njk->nik", random_unimodular(2, max_entry=2, rng=rng), target.numpy()))
    loss = lt.LatticeLoss()
    assert float(loss(pred, target)) < 1e-20
    lengths, angles = torch.tensor(params[:, :3]), torch.tensor(params[:, 3:])
    assert float(loss((lengths, angles), target)) < 1e-20
    p2 = (lengths * 1.05).requires_grad_()
    value = loss((p2, angles), (lengths, angles))
    value.backward()
    assert p2.grad is not None and bool(torch.isfinite(p2.grad).all()) and float(value.detach()) > 1e-4
    ref = lt.niggli_proxy_loss(lt.lattice_from_lengths_angles(p2.detach(), angles), target, space="gram")
    assert torch.allclose(value.detach(), ref, rtol=1e-12)


def test_converter_matches_the_numpy_parameters() -> None:
    p = (3.1, 4.3, 5.2, 78.0, 83.0, 95.0)
    f64 = torch.float64
    L = lt.lattice_from_lengths_angles(torch.tensor(p[:3], dtype=f64), torch.tensor(p[3:], dtype=f64)).numpy()
    G = L @ L.T
    G_ref = lattice_from_parameters(*p) @ lattice_from_parameters(*p).T
    assert np.allclose(G, G_ref, rtol=1e-12)


def test_a_broken_converter_is_caught() -> None:
    """Swapping two angles changes the Gram matrix: the comparison above bites."""
    p = (3.1, 4.3, 5.2, 78.0, 83.0, 95.0)
    L = lt.lattice_from_lengths_angles(torch.tensor(p[:3]), torch.tensor((83.0, 78.0, 95.0))).numpy()
    assert not np.allclose(L @ L.T, lattice_from_parameters(*p) @ lattice_from_parameters(*p).T, rtol=1e-6)


def test_bad_shapes() -> None:
    with pytest.raises(LatticeShapeError):
        lt.LatticeLoss()((torch.ones(2, 3), torch.ones(2, 2)), torch.eye(3).expand(2, 3, 3))
    with pytest.raises(TypeError):
        lt.LatticeLoss()("abc", torch.eye(3))
