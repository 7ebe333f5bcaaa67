"""Host synchronisations of the torch reducer's ``backend="device"``, counted by hooks on CPU.

On a GPU, every read of device data into Python (``bool(t)``, ``t.item()``, ``t.tolist()``,
``t.cpu()``, ``t.numpy()``, ``int(t)`` / ``float(t)``, ``torch.nonzero``, indexing with a boolean
mask) waits for the device.  :class:`SyncCounter` hooks every one of those entry points of
``torch.Tensor`` and ``torch``, so a CPU run counts the synchronisations a CUDA run would make.
The device backend promises ``ceil(steps / check_every)`` of them per reduction (plus one in
:func:`latticesym.torch.niggli_reduce` for its ``ok.all()``), whatever the batch size: tested
here over batch sizes 1 .. 1024 and step counts from 1 to ~60, and the counter is shown to catch
the shrinking-batch backend's hundreds of syncs and a step that sneaks in a single ``.item()``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch

import latticesym.torch as lt
from latticesym.families import generate
from latticesym.groups import random_unimodular
from latticesym.torch import _reduce

#: Tensor methods that read device data into Python.
_TENSOR_READS = ("__bool__", "item", "tolist", "cpu", "numpy", "__int__", "__float__", "__index__", "nonzero",
                 "__array__")
#: torch functions that do (the output size depends on the data).
_TORCH_READS = ("nonzero", "masked_select", "unique", "argwhere")


class SyncCounter:
    """Counts calls that synchronise the host with the device (hooked with ``monkeypatch``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.count = 0
        self.where: list[str] = []
        self.on = False
        for name in _TENSOR_READS:
            if hasattr(torch.Tensor, name):
                monkeypatch.setattr(torch.Tensor, name, self._wrap(getattr(torch.Tensor, name), f"Tensor.{name}"))
        for name in _TORCH_READS:
            monkeypatch.setattr(torch, name, self._wrap(getattr(torch, name), f"torch.{name}"))
        for name in ("__getitem__", "__setitem__"):
            monkeypatch.setattr(torch.Tensor, name, self._wrap_index(getattr(torch.Tensor, name), name))

    def _hit(self, what: str) -> None:
        if self.on:
            self.count += 1
            self.where.append(what)

    def _wrap(self, fn: Callable[..., Any], what: str) -> Callable[..., Any]:
        @functools.wraps(fn)
        def hooked(*args: Any, **kwargs: Any) -> Any:
            self._hit(what)
            was, self.on = self.on, False  # a read counts once, not again for what it calls inside
            try:
                return fn(*args, **kwargs)
            finally:
                self.on = was

        return hooked

    def _wrap_index(self, fn: Callable[..., Any], what: str) -> Callable[..., Any]:
        def has_mask(index: Any) -> bool:
            items = index if isinstance(index, tuple) else (index,)
            return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)

        @functools.wraps(fn)
        def hooked(t: Any, index: Any, *rest: Any) -> Any:
            if has_mask(index):
                self._hit(f"Tensor.{what}[bool mask]")
            was, self.on = self.on, False
            try:
                return fn(t, index, *rest)
            finally:
                self.on = was

        return hooked

    def __enter__(self) -> SyncCounter:
        self.count, self.where, self.on = 0, [], True
        return self

    def __exit__(self, *exc: Any) -> None:
        self.on = False


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> Iterator[SyncCounter]:
    yield SyncCounter(monkeypatch)


def _batch(family: str, n: int, seed: int, shear: int = 3) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    L = generate(family, n, rng)
    U = random_unimodular(n, max_entry=shear, rng=rng).astype(np.float64)
    return torch.tensor(np.einsum("nij,njk->nik", U, L))


def test_counter_sees_every_kind_of_read(syncs: SyncCounter) -> None:
    """The hooks fire on each host-reading call (else the bound below would prove nothing)."""
    t = torch.arange(6.0)
    with syncs:
        bool(t.any())
        t[0].item()
        t.tolist()
        t.numpy()
        int(t[1])
        float(t[2])
        torch.nonzero(t)
        t[t > 2]
        t[t > 2] = 0.0
    assert syncs.count == 9, syncs.where
    with syncs:  # device-side work: none
        u = torch.where(t > 1, t * 2, t)
        u.gather(0, torch.tensor([1, 2]))
        u[torch.tensor([0, 3])]
    assert syncs.count == 0, syncs.where


@pytest.mark.parametrize("check_every", [1, 4, 8])
def test_device_backend_sync_bound(syncs: SyncCounter, check_every: int) -> None:
    """``ceil(steps / k)`` reads per reduction, the same for 1 and for 1024 lattices."""
    counts = {}
    for n in (1, 16, 1024):
        flat = _batch("physical", n, seed=n).reshape(-1, 3, 3)
        with syncs:
            *_, reported, steps = _reduce._reduce_device(flat, 1e-5, 1000, check_every=check_every)
        assert syncs.count == reported == math.ceil(steps / check_every), (n, steps, syncs.where)
        assert steps <= 40
        counts[n] = syncs.count
    assert max(counts.values()) <= math.ceil(40 / check_every)


def test_bound_holds_for_long_runs(syncs: SyncCounter) -> None:
    """Sheared cells (entries to 1e6) take tens of steps; still one read per ``check_every`` steps."""
    flat = _batch("sheared", 64, seed=3)
    with syncs:
        *_, reported, steps = _reduce._reduce_device(flat, 1e-5, 1000, check_every=8)
    assert steps > 16
    assert syncs.count == reported == math.ceil(steps / 8), syncs.where


def test_public_call_adds_one_read(syncs: SyncCounter) -> None:
    """:func:`latticesym.torch.niggli_reduce`: the reduction's reads plus its ``ok.all()``."""
    L = _batch("physical", 256, seed=5)
    with syncs:
        info = lt.niggli_reduce_info(L, backend="device")
    assert syncs.count == info.syncs <= math.ceil(_reduce.step_bound(1000) / _reduce.CHECK_EVERY)
    with syncs:
        lt.niggli_reduce(L, backend="device")
    assert syncs.count == info.syncs + 1, syncs.where


def test_counter_catches_the_shrinking_backend_and_a_sneaky_step(syncs: SyncCounter) -> None:
    """A test that cannot fail is a defect: the old backend and a step with one ``.item()`` are caught."""
    flat = _batch("physical", 64, seed=6)
    with syncs:
        lt.niggli_reduce_info(flat, backend="torch")
    assert syncs.count > 50

    def sneaky(s: Any, eps: float, max_iter: int, skip: int = 0) -> Any:
        s = _reduce._dev_step(s, eps, max_iter, skip)
        s.active.sum().item()  # e.g. a progress counter
        return s

    with syncs:
        *_, reported, steps = _reduce._reduce_device(flat, 1e-5, 1000, step=sneaky)
    assert syncs.count == reported + steps > math.ceil(steps / _reduce.CHECK_EVERY)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_cuda_step_does_not_synchronise() -> None:
    """On a GPU, torch's own sync detector: a fixed-size step raises nothing in ``"error"`` mode."""
    L = _batch("physical", 512, seed=7).cuda()
    from latticesym.reduce import _batch as batch

    x, h, lo, nl, _ = batch.prepare(L, _reduce.TorchOps(L.device))
    s = _reduce._dev_start(x, h, lo, nl, 1e-5)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(8):
            s = _reduce._dev_step(s, 1e-5, 1000)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    info = lt.niggli_reduce_info(L, backend="device")
    assert info.syncs <= math.ceil(_reduce.step_bound(1000) / _reduce.CHECK_EVERY)
