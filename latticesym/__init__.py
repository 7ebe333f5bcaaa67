"""latticesym: checkable lattice-basis symmetry for crystal-structure prediction.

Rows of a lattice are its basis vectors a, b, c; a change of basis is ``M @ L`` with ``M``
in GL(3, Z); every reducer returns the reduced ``lattice``, the integer ``transform`` with
``transform @ L_in == lattice``, the ``g6`` vector and the ``iterations`` it took.

Public surface
--------------
- :func:`niggli_reduce`, :func:`is_niggli_reduced`: robust float64 reducer (batched);
  :func:`warmup` compiles its kernels now (first-call latency).
- :mod:`latticesym.reference`: the exact-arithmetic oracle.
- :mod:`latticesym.groups`, :mod:`latticesym.strategies`: GL(3,Z) samplers, hypothesis strategies.
- :mod:`latticesym.testing`: invariance checks for other repositories' tests.
- :func:`match` (:func:`latticesym.structure.match`): StructureMatcher-semantics structure matching;
  ``latticesym.metrics``: CSP match rate / RMSE (``latticesym.metrics.csp_metrics``).
- :mod:`latticesym.torch`: batched torch reducer and proxy losses (optional extra; never
  imported from here).
"""

from __future__ import annotations

import importlib as _importlib
import importlib.abc as _importlib_abc
import importlib.util as _importlib_util
import sys as _sys
from typing import TYPE_CHECKING, Any

from latticesym import metric
from latticesym.errors import (
    BatchReductionError,
    LatticeError,
    LatticeShapeError,
    NonFiniteLatticeError,
    NotExactError,
    OptionError,
    PrecisionError,
    ReductionError,
    SingularLatticeError,
)
from latticesym.metric import cell_parameters, g6, gram, lattice_from_parameters, volume

if TYPE_CHECKING:
    from latticesym.reduce import (
        Arithmetic,
        NiggliResult,
        ReduceStatus,
        is_niggli_reduced,
        mp_niggli_reduce,
        niggli_reduce,
        warmup,
    )

__version__ = "0.1.0"

__all__ = [
    "Arithmetic",
    "BatchReductionError",
    "LatticeError",
    "LatticeShapeError",
    "NiggliResult",
    "NonFiniteLatticeError",
    "NotExactError",
    "OptionError",
    "PrecisionError",
    "ReduceStatus",
    "ReductionError",
    "SingularLatticeError",
    "__version__",
    "cell_parameters",
    "g6",
    "gram",
    "is_niggli_reduced",
    "lattice_from_parameters",
    "match",
    "metric",
    "metrics",
    "mp_niggli_reduce",
    "niggli_reduce",
    "volume",
    "warmup",
]

_LAZY = {"niggli_reduce", "is_niggli_reduced", "NiggliResult", "mp_niggli_reduce", "ReduceStatus", "Arithmetic",
         "warmup"}

# ``latticesym.metrics`` is the CSP-metrics module ``latticesym.structure._metrics`` under a public
# name: both ``import latticesym.metrics`` and ``latticesym.metrics.csp_metrics`` work, and neither
# ``import latticesym`` nor this finder imports it before it is asked for.
_MODULE_ALIASES = {"latticesym.metrics": "latticesym.structure._metrics"}


class _AliasLoader(_importlib_abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: Any) -> Any:
        return _importlib.import_module(self.target)

    def exec_module(self, module: Any) -> None:  # already executed by create_module
        pass


class _AliasFinder(_importlib_abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in _MODULE_ALIASES:
            return None
        return _importlib_util.spec_from_loader(fullname, _AliasLoader(_MODULE_ALIASES[fullname]))


if not any(isinstance(f, _AliasFinder) for f in _sys.meta_path):
    _sys.meta_path.append(_AliasFinder())


def __getattr__(name: str) -> Any:
    # The float reducer is imported on first use so that ``import latticesym`` stays light.
    if name in _LAZY:
        from latticesym import reduce as _reduce

        value = getattr(_reduce, name)
        globals()[name] = value
        return value
    if name == "match":  # the structure matcher (latticesym.structure.match)
        from latticesym.structure import match

        globals()[name] = match
        return match
    if name == "metrics":
        return _importlib.import_module("latticesym.metrics")
    raise AttributeError(f"module 'latticesym' has no attribute {name!r}")
