"""Invalid option values raise :class:`latticesym.OptionError` (a ``LatticeError``, so a ``ValueError``).

Every public entry point with a checked option is called once with a value outside its domain; the
error must be an ``OptionError`` whose message names the option and the value.  The per-item
handlers (audits, file conversion, the CLI) must re-raise it, not record it against every item.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import latticesym
from latticesym import OptionError, families, testing
from latticesym.errors import LatticeError

CUBIC = np.eye(3) * 4.0


def _cases() -> list[tuple[str, Callable[[], Any], str]]:
    from latticesym import audit, gate, io, peers
    from latticesym.structure import canonicalize

    frac, species = np.zeros((1, 3)), [6]
    cases: list[tuple[str, Callable[[], Any], str]] = [
        ("niggli_reduce eps", lambda: latticesym.niggli_reduce(CUBIC, eps=-1.0), "eps"),
        ("niggli_reduce eps nan", lambda: latticesym.niggli_reduce(CUBIC, eps=float("nan")), "eps"),
        ("niggli_reduce max_iter", lambda: latticesym.niggli_reduce(CUBIC, max_iter=0), "max_iter"),
        ("niggli_reduce backend", lambda: latticesym.niggli_reduce(CUBIC, backend="gpu"), "backend"),
        ("niggli_reduce precision", lambda: latticesym.niggli_reduce(CUBIC, precision="half"), "precision"),
        ("niggli_reduce errors", lambda: latticesym.niggli_reduce(CUBIC, errors="ignore"), "errors"),
        ("is_niggli_reduced eps", lambda: latticesym.is_niggli_reduced(CUBIC, eps=-1.0), "eps"),
        ("mp_niggli_reduce prec", lambda: latticesym.mp_niggli_reduce(CUBIC, prec=10), "prec"),
        ("families n", lambda: families.generate("physical", -1, np.random.default_rng(0)), "n"),
        ("families name", lambda: families.generate("no-such-family", 1, np.random.default_rng(0)), "no-such-family"),
        ("canonicalize orientation", lambda: canonicalize(CUBIC, frac, species, orientation="up"), "orientation"),
        ("canonicalize frac_eps", lambda: canonicalize(CUBIC, frac, species, frac_eps=0.7), "frac_eps"),
        ("read_structures parser", lambda: list(io.read_structures("x.cif", parser="nope")), "parser"),
        ("peer_niggli name", lambda: peers.peer_niggli("nope", CUBIC), "nope"),
        ("assert_basis_invariant trials",
         lambda: testing.assert_basis_invariant(np.linalg.det, CUBIC, trials=0), "trials"),
        ("audit tol", lambda: audit.find_duplicates(np.ones((1, 6)), tol=0.5), "tol"),
        ("gate factor", lambda: gate.compare_with_baseline({}, {"errors": {}}, factor=0.5), "factor"),
    ]
    return cases


CASES = _cases()


@pytest.mark.parametrize(("name", "call", "word"), CASES, ids=[c[0] for c in CASES])
def test_invalid_option_is_an_option_error(name: str, call: Callable[[], Any], word: str) -> None:
    with pytest.raises(OptionError) as info:
        call()
    assert word in str(info.value)
    assert isinstance(info.value, LatticeError) and isinstance(info.value, ValueError)


def test_torch_options() -> None:
    pytest.importorskip("torch")
    import latticesym.torch as lt

    for call, word in [
        (lambda: lt.BasisInvariant(lambda *a: a[0].sum(), band=2.0), "band"),
        (lambda: lt.BasisInvariant(lambda *a: a[0].sum(), orientation="up"), "orientation"),
    ]:
        with pytest.raises(ValueError, match=word) as info:
            call()
        assert isinstance(info.value, LatticeError), f"{word}: {type(info.value).__name__}"


def test_audit_reraises_an_option_error_instead_of_recording_it() -> None:
    from latticesym import audit

    with pytest.raises(OptionError, match="eps"):
        audit.audit_chunk(np.stack([CUBIC, 2 * CUBIC]), eps=-1.0)


def test_cli_reports_an_option_error_once(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    from latticesym.cli import main

    paths = []
    for k, a in enumerate((4.0, 5.0)):
        path = tmp_path / f"POSCAR_{k}"
        path.write_text(f"cubic\n1.0\n{a} 0 0\n0 {a} 0\n0 0 {a}\nC\n1\nDirect\n0 0 0\n")
        paths.append(str(path))
    rc = main(["reduce", "--eps", "-1", *paths])
    out = capsys.readouterr()
    assert rc != 0
    assert (out.out + out.err).count("eps must be") == 1
