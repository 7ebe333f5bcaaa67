"""The boundary-map set S ships as package data beside its derivation (latticesym/_tables/niggli_neighbours)."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from latticesym._tables import niggli_neighbours as nn
from latticesym._tables.niggli_neighbours import derive
from latticesym.errors import LatticeError

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "latticesym._tables.niggli_neighbours"


def test_data_file_is_a_package_resource():
    res = resources.files(PACKAGE).joinpath(nn.DATA_FILE)
    assert res.is_file()
    assert nn.parse_table(res.read_text(encoding="ascii")) == nn.niggli_neighbour_transforms()


def test_pyproject_package_data_covers_the_data_file():
    """setuptools ships exactly what [tool.setuptools.package-data] globs match (relative to latticesym/)."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = conf["tool"]["setuptools"]["package-data"]["latticesym"]
    rel = f"_tables/niggli_neighbours/{nn.DATA_FILE}"
    assert any(fnmatch.fnmatch(rel, g) for g in globs), globs


def test_table_shape_order_and_closure():
    s = nn.niggli_neighbour_transforms()
    arr = nn.niggli_neighbour_array()
    assert len(s) == 1992 and arr.shape == (1992, 3, 3) and arr.dtype == np.int64
    assert list(s) == sorted(s) and len(set(s)) == 1992
    assert np.array_equal(arr, np.asarray(s)) and not arr.flags.writeable
    assert set(np.unique(arr).tolist()) == {-1, 0, 1}
    as_set = {m.tobytes() for m in arr}
    assert all((-m).tobytes() in as_set for m in arr)
    assert all(np.rint(np.linalg.inv(m)).astype(np.int64).tobytes() in as_set for m in arr)
    assert nn.NIGGLI_NEIGHBOUR_TRANSFORMS is s


def test_torch_candidate_set_is_the_table_up_to_sign():
    pytest.importorskip("torch")
    from latticesym.torch import neighbour_transforms

    got = neighbour_transforms()
    assert got.shape == (996, 3, 3) and got.dtype == np.int64
    assert got[0].tolist() == np.eye(3, dtype=int).tolist()
    table = {m.tobytes() for m in nn.niggli_neighbour_array()}
    assert all(m.tobytes() in table and (-m).tobytes() in table for m in got)


def test_rederiving_gives_the_shipped_table(capsys):
    assert derive.main(["--check"]) == 0
    assert "|S| = 1992" in capsys.readouterr().out


def test_check_fails_on_a_wrong_derivation(monkeypatch, capsys):
    """--check can fail: a derivation that loses one member (or gains a wrong one) is caught."""
    members, decisions = derive.enumerate_neighbours()
    monkeypatch.setattr(derive, "enumerate_neighbours", lambda: (members[:-1], decisions))
    assert derive.main(["--check"]) == 1
    extra = ((2, 0, 0), (0, 1, 0), (0, 0, 1))
    monkeypatch.setattr(derive, "enumerate_neighbours", lambda: (tuple(sorted((*members[1:], extra))), decisions))
    assert derive.main(["--check"]) == 1
    assert "differs" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "match"),
    [("1 0 0 0 1 0 0 0\n", "8 entries"), ("1 0 0 0 1 0 0 0 x\n", "not integers"), ("2 0 0 0 1 0 0 0 1\n", "det = 2")],
)
def test_parse_rejects_corrupt_lines(text, match):
    with pytest.raises(LatticeError, match=match):
        nn.parse_table("# header\n" + text)


@pytest.mark.slow
def test_wheel_ships_the_data_file(tmp_path):
    """Build a wheel from a copy of the project (no isolation, no deps; the working tree gets no
    build/ folder) and read the table from the wheel, the layout an installed copy has."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "latticesym", src / "latticesym", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(src)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("latticesym-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        path = f"latticesym/_tables/niggli_neighbours/{nn.DATA_FILE}"
        assert path in names and "latticesym/_tables/niggli_neighbours/derive.py" in names
        assert nn.parse_table(zf.read(path).decode("ascii")) == nn.niggli_neighbour_transforms()
