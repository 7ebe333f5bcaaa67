"""The device backend's fixed-size step under ``torch.compile``: one graph, the same bits.

``_dev_step`` is written so that dynamo traces it without a graph break (``fullgraph=True``):
no value is read into Python inside a step (the default run checks that with the sync counter of
``test_sync_count.py``, which is what a graph break would need).  Tracing the ~1600 operations
of a step takes tens of seconds on a busy two-core machine and inductor's C++ compile minutes, so
these run under ``slow`` (``make thorough``).  The compiled step must give the eager results bit
for bit: the step's arithmetic is elementwise IEEE operations in a fixed order; a compiler that
contracted ``a * b + c`` into a fused multiply-add would change the Dot2 rows and is caught here.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

import latticesym.torch as lt
from latticesym.families import generate
from latticesym.torch import _reduce

pytestmark = pytest.mark.slow


def _lattices() -> torch.Tensor:
    rng = np.random.default_rng(30)
    return torch.tensor(np.concatenate([generate(name, 12, rng) for name in ("physical", "untrained", "boundary",
                                                                             "sheared", "near_singular")]))


def _check_compiled(backend: str, device: str = "cpu") -> None:
    L = _lattices().to(device)
    ref = lt.niggli_reduce_info(L, backend="device")
    step = torch.compile(_reduce._dev_step, fullgraph=True, dynamic=False, backend=backend)
    t, g6, st, it, syncs, steps = _reduce._reduce_device(L, 1e-5, 1000, step=step, compact=False)
    assert torch.equal(t.to(torch.int64), ref.transform.reshape(-1, 3, 3))
    assert torch.equal(it, ref.iterations) and torch.equal(st == 0, ref.ok)
    assert np.array_equal(torch.nan_to_num(g6).cpu().numpy().view(np.int64),
                          torch.nan_to_num(ref.g6).cpu().numpy().view(np.int64))
    assert syncs == -(-steps // _reduce.CHECK_EVERY)


def test_step_traces_in_one_graph() -> None:
    """dynamo alone (``backend="eager"``): ``fullgraph=True`` raises on any graph break."""
    _check_compiled("eager")


# torch 2.13's inductor calls its own deprecated helpers while lowering (torch.jit.script_method,
# torch._prims_common.check); only on a fresh compile, so a warm inductor cache hides them
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
@pytest.mark.slow  # a fresh inductor compile of the step takes ~2 min on 2 cores; make thorough runs it
def test_inductor_on_cpu() -> None:
    """inductor's generated C++ gives the eager bits (skipped without a C++ compiler)."""
    if importlib.util.find_spec("torch._inductor") is None:
        pytest.skip("torch inductor is not available")
    from torch._inductor import cpp_builder

    try:
        cpp_builder.get_cpp_compiler()
    except Exception as exc:  # no usable C++ compiler on this machine
        pytest.skip(f"inductor has no C++ compiler: {exc}")
    _check_compiled("inductor")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_inductor_on_cuda() -> None:
    """inductor's Triton kernels on a GPU: the CPU bits."""
    _check_compiled("inductor", "cuda")
