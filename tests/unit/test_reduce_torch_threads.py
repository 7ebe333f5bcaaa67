"""``latticesym.niggli_reduce`` (numpy API) leaves torch's intra-op thread count alone.

numba's first parallel (OpenMP) launch sets the calling thread's OpenMP thread count, which torch
reads too: ``torch.set_num_threads(1)`` became 2 after one large batch.  The torch reducer restores
it (``tests/torch/test_gram_fast.py``); so does the numpy API when torch is loaded.  Checked in a
fresh process, since only the first launch changes it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

_SCRIPT = """
import numpy as np, torch
torch.set_num_threads(1)
import latticesym
from latticesym.reduce import _api
{patch}
cells = np.eye(3) * np.random.default_rng(0).uniform(1, 2, (4096, 3, 1))
assert torch.get_num_threads() == 1  # (reading it first is what makes the first launch change it)
latticesym.niggli_reduce(cells, backend="numba-parallel")
print(torch.get_num_threads())
"""
_UNGUARDED = "import contextlib; _api._keep_torch_threads = contextlib.nullcontext"


def _threads(patch: str) -> int:
    out = subprocess.run([sys.executable, "-c", _SCRIPT.format(patch=patch)], capture_output=True, text=True,
                         timeout=300, check=True)
    return int(out.stdout.split()[-1])


def test_numpy_api_keeps_torch_thread_count() -> None:
    pytest.importorskip("torch")
    numba = pytest.importorskip("numba")
    assert _threads("") == 1
    if numba.config.NUMBA_NUM_THREADS > 1:  # the check bites: without the guard the count changes
        assert _threads(_UNGUARDED) == numba.config.NUMBA_NUM_THREADS
