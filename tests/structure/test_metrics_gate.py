"""Tests of the CSP-metrics regression gate: ``latticesym gate --metrics`` and ``assert_csp_metrics``.

Passing and failing runs (the failure carries the table), broken baseline files (typed
``MetricsBaselineError``, exit status 2), settings that differ from the baseline's, predictions as
an ``.npz`` of DiffCSP-style arrays and as a folder of CIF files, and the example in
``examples/ci_gate/metrics``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latticesym import cell_parameters, datasets
from latticesym.cli import main
from latticesym.errors import LatticeShapeError, MetricsBaselineError
from latticesym.structure import (
    MetricsRegressionError,
    assert_csp_metrics,
    compare_metrics,
    csp_metrics,
    load_metrics_baseline,
    load_predictions,
    write_metrics_baseline,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "ci_gate" / "metrics"


def _refs() -> list[Any]:
    return datasets.load_structures("perov_5")[:6] + datasets.load_structures("carbon_24")[:6]


def _predict(refs: list[Any], noise: float, seed: int = 0) -> list[tuple[Any, Any, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for s in refs:
        L = np.asarray(s.lattice)
        ell = (abs(np.linalg.det(L)) / s.num_atoms) ** (1 / 3)
        d = rng.normal(size=(s.num_atoms, 3)) * noise * ell / np.sqrt(3)
        out.append((L, (s.frac_coords @ L + d) @ np.linalg.inv(L), np.array(s.species)))
    return out


def _npz(path: Path, preds: list[tuple[Any, Any, Any]]) -> Path:
    p = cell_parameters(np.stack([x[0] for x in preds]))
    np.savez(path, frac_coords=np.concatenate([x[1] for x in preds]), atom_types=np.concatenate([x[2] for x in preds]),
             lengths=p[:, :3], angles=p[:, 3:], num_atoms=np.array([len(x[2]) for x in preds]))
    return path


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("metrics_gate")
    refs = _refs()
    good, bad = _predict(refs, 0.1), _predict(refs, 0.5, seed=1)
    m_good = csp_metrics([good], refs)
    baseline = tmp / "baseline.json"
    write_metrics_baseline(m_good, baseline)
    return {"tmp": tmp, "refs": refs, "good": good, "bad": bad, "m_good": m_good, "baseline": baseline,
            "good_npz": _npz(tmp / "good.npz", good), "bad_npz": _npz(tmp / "bad.npz", bad)}


def test_pytest_helper_passes_and_fails_with_the_table(case: dict[str, Any]) -> None:
    m = assert_csp_metrics([case["good"]], case["refs"], case["baseline"])
    assert m.match_rate == case["m_good"].match_rate
    with pytest.raises(MetricsRegressionError) as info:
        assert_csp_metrics([case["bad"]], case["refs"], case["baseline"])
    text = str(info.value)
    assert "metrics gate: FAILED" in text and "FAIL" in text.split("match rate", 1)[1].splitlines()[0]
    assert info.value.result.metrics.match_rate < case["m_good"].match_rate - 0.01
    assert isinstance(info.value, AssertionError)


def test_lost_matches_are_named(case: dict[str, Any], tmp_path: Path) -> None:
    refs = case["refs"]
    ids = [s.id for s in refs]
    write_metrics_baseline(case["m_good"], tmp_path / "b.json", ids=ids)
    base = load_metrics_baseline(tmp_path / "b.json")
    assert sorted(base["per_reference"]) == sorted(ids)
    bad = csp_metrics([case["bad"]], refs)
    r = compare_metrics(bad, base, ids=ids)
    expected_lost = [i for i, was, now in zip(ids, case["m_good"].matched, bad.matched) if was and not now]
    assert r.lost == expected_lost and len(r.lost) > 0
    assert f"lost matches ({len(expected_lost)}): {expected_lost[0]}" in r.table()
    with pytest.raises(MetricsRegressionError, match="lost matches"):
        assert_csp_metrics([case["bad"]], refs, tmp_path / "b.json")
    with pytest.raises(LatticeShapeError, match="3 reference ids for 12 references"):
        compare_metrics(bad, base, ids=ids[:3])


def test_margins_decide(case: dict[str, Any]) -> None:
    bad = csp_metrics([case["bad"]], case["refs"])
    base = load_metrics_baseline(case["baseline"])
    drop = case["m_good"].match_rate - bad.match_rate
    assert drop > 0
    assert not compare_metrics(bad, base, margin_match=drop - 1e-6, margin_rmse=10).passed
    assert compare_metrics(bad, base, margin_match=drop + 1e-6, margin_rmse=10).passed
    rise = bad.rmse - case["m_good"].rmse
    r = compare_metrics(bad, base, margin_match=1, margin_rmse=rise - 1e-6)
    assert not r.passed and [row["status"] for row in r.rows[:2]] == ["ok", "FAIL"]
    with pytest.raises(MetricsBaselineError, match="margin_rmse"):
        compare_metrics(bad, base, margin_rmse=-1)


def test_no_match_at_all_fails_against_a_baseline_with_an_rmse(case: dict[str, Any]) -> None:
    nan = [(np.full((3, 3), np.nan), p[1], p[2]) for p in case["good"]]
    r = compare_metrics(csp_metrics([nan], case["refs"]), load_metrics_baseline(case["baseline"]), margin_match=1)
    assert not r.passed and r.rows[1]["current"] == "n/a" and r.rows[1]["status"] == "FAIL"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not JSON"),
        (json.dumps({"format": "latticesym-gate-baseline/1"}), "not a metrics baseline"),
        (json.dumps({"format": "latticesym-metrics-baseline/1", "match_rate": 0.5}), "missing field 'rmse'"),
        (json.dumps({"format": "latticesym-metrics-baseline/1", "match_rate": 1.5, "rmse": 0.1, "n_references": 3,
                     "settings": {}}), "outside"),
        (json.dumps({"format": "latticesym-metrics-baseline/1", "match_rate": "high", "rmse": 0.1,
                     "n_references": 3, "settings": {}}), "finite number"),
        (json.dumps({"format": "latticesym-metrics-baseline/1", "match_rate": 0.5, "rmse": 0.1, "n_references": 3,
                     "settings": {"ltol": 0.3}}), "settings must name"),
    ],
    ids=["not-json", "other-format", "missing", "rate-range", "not-number", "settings"],
)
def test_broken_baseline_files_raise_typed_errors(tmp_path: Path, content: str, match: str,
                                                  case: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "broken.json"
    p.write_text(content)
    with pytest.raises(MetricsBaselineError, match=match):
        load_metrics_baseline(p)
    status = main(["gate", "--metrics", "--predictions", str(case["good_npz"]), "--references", "bundled:perov_5",
                   "--limit", "3", "--baseline", str(p)])
    assert status == 2 and "error" in capsys.readouterr().err


def test_other_settings_refuse_to_compare(case: dict[str, Any]) -> None:
    base = load_metrics_baseline(case["baseline"])
    m = csp_metrics([case["good"]], case["refs"], stol=0.4)
    with pytest.raises(MetricsBaselineError, match=r"stol: baseline 0.5, this run 0.4"):
        compare_metrics(m, base)
    fewer = csp_metrics([case["good"][:5]], case["refs"][:5])
    with pytest.raises(MetricsBaselineError, match="n_references: baseline 12, this run 5"):
        compare_metrics(fewer, base)


def test_cli_npz_pass_fail_and_report(case: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    refs_csv = tmp_path / "refs.csv"
    _write_csv(refs_csv, case["refs"])
    base = tmp_path / "base.json"
    args = ["gate", "--metrics", "--references", str(refs_csv), "--baseline", str(base)]
    assert main([*args, "--predictions", str(case["good_npz"]), "--write-baseline"]) == 0
    assert "baseline written" in capsys.readouterr().out
    report = tmp_path / "report.json"
    assert main([*args, "--predictions", str(case["good_npz"]), "-o", str(report)]) == 0
    assert "metrics gate: PASSED" in capsys.readouterr().out
    assert json.loads(report.read_text())["passed"] is True
    assert main([*args, "--predictions", str(case["bad_npz"]), "-o", "none"]) == 1
    out = capsys.readouterr().out
    assert "metrics gate: FAILED" in out and "match rate" in out and "allowed" in out
    assert main([*args, "--predictions", str(case["bad_npz"]), "--margin-match", "1", "--margin-rmse", "1",
                 "-o", "none"]) == 0
    assert main(["gate", "--metrics", "--references", str(refs_csv), "--predictions", str(case["good_npz"]),
                 "--baseline", str(tmp_path / "missing.json")]) == 2
    assert main(["gate", "--metrics", "--predictions", str(case["good_npz"]), "--baseline", str(base)]) == 2


def _write_csv(path: Path, refs: list[Any]) -> None:
    import csv

    from pymatgen.io.cif import CifWriter

    from latticesym.adapters import to_pymatgen

    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["", "material_id", "cif"])
        for i, s in enumerate(refs):
            w.writerow([i, s.id, str(CifWriter(to_pymatgen(s.lattice, s.frac_coords, s.species)))])


def _write_cifs(folder: Path, preds: list[Any], names: list[str]) -> None:
    from pymatgen.io.cif import CifWriter

    from latticesym.adapters import to_pymatgen

    folder.mkdir(parents=True, exist_ok=True)
    for (L, f, z), name in zip(preds, names):
        (folder / f"{name}.cif").write_text(str(CifWriter(to_pymatgen(L, f - np.floor(f), z))))


def test_cif_folder_predictions(case: dict[str, Any], tmp_path: Path) -> None:
    pytest.importorskip("pymatgen")
    refs = case["refs"]
    ids = [s.id for s in refs]
    _write_cifs(tmp_path / "one", case["good"], ids)
    samples = load_predictions(tmp_path / "one", refs)
    assert len(samples) == 1 and all(x is not None for x in samples[0])
    from_cif = csp_metrics(samples, refs)
    direct = case["m_good"]
    assert from_cif.n_matched == direct.n_matched
    np.testing.assert_allclose(from_cif.pair_rms, direct.pair_rms, rtol=1e-5, atol=1e-6)  # CIF keeps 8 digits
    assert_csp_metrics(tmp_path / "one", refs, case["baseline"])
    # k samples in sub-folders, one file missing (counts as no match), numbered files
    _write_cifs(tmp_path / "k" / "0", case["bad"], ids)
    _write_cifs(tmp_path / "k" / "1", case["good"][1:], ids[1:])
    two = csp_metrics(load_predictions(tmp_path / "k", refs), refs)
    assert two.k == 2 and two.reasons[1][0] == "invalid: missing"
    _write_cifs(tmp_path / "numbered", case["good"], [str(i) for i in range(len(refs))])
    assert csp_metrics(load_predictions(tmp_path / "numbered", refs), refs).n_matched == direct.n_matched
    _write_cifs(tmp_path / "stray", case["good"][:1], ["not-a-reference"])
    with pytest.raises(LatticeShapeError, match="name no reference"):
        load_predictions(tmp_path / "stray", refs)


def test_cif_folder_through_the_cli(case: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refs = case["refs"]
    refs_csv = tmp_path / "refs.csv"
    _write_csv(refs_csv, refs)
    _write_cifs(tmp_path / "pred", case["bad"], [s.id for s in refs])
    status = main(["gate", "--metrics", "--predictions", str(tmp_path / "pred"), "--references", str(refs_csv),
                   "--baseline", str(case["baseline"]), "-o", "none"])
    assert status == 1 and "FAIL" in capsys.readouterr().out


def test_example_gate_passes_and_catches_a_regressed_model(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The files in examples/ci_gate/metrics: the stored baseline passes, a noisier model fails."""
    if not EXAMPLE.is_dir():
        pytest.skip("examples/ci_gate/metrics not present")
    args = ["gate", "--metrics", "--references", str(EXAMPLE / "references.csv"),
            "--baseline", str(EXAMPLE / "metrics_baseline.json"), "-o", "none"]
    assert main([*args, "--predictions", str(EXAMPLE / "predictions.npz")]) == 0
    assert "PASSED" in capsys.readouterr().out
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_sample", EXAMPLE / "make_sample.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    worse = tmp_path / "worse.npz"
    np.savez(worse, **mod.predict(0.45, 1, 0, True))
    assert main([*args, "--predictions", str(worse)]) == 1
    assert "FAILED" in capsys.readouterr().out
    # the stored sample is what make_sample.py makes
    again = mod.predict(0.15, 1, 0, True)
    with np.load(EXAMPLE / "predictions.npz") as stored:
        for key, value in again.items():
            np.testing.assert_allclose(stored[key], value)


def test_torch_pt_predictions_with_a_samples_axis(case: dict[str, Any], tmp_path: Path) -> None:
    """DiffCSP saves eval_diff.pt as a dict of tensors with a leading sample axis (--multi_eval)."""
    torch = pytest.importorskip("torch")
    rows = [case["bad"], case["good"]]
    p = np.stack([cell_parameters(np.stack([x[0] for x in row])) for row in rows])
    data = {
        "frac_coords": torch.tensor(np.stack([np.concatenate([x[1] for x in row]) for row in rows])),
        "atom_types": torch.tensor(np.stack([np.concatenate([x[2] for x in row]) for row in rows])),
        "lengths": torch.tensor(p[..., :3]), "angles": torch.tensor(p[..., 3:]),
        "num_atoms": torch.tensor(np.stack([[len(x[2]) for x in row] for row in rows])),
    }
    torch.save(data, tmp_path / "eval_diff.pt")
    samples = load_predictions(tmp_path / "eval_diff.pt")
    m = csp_metrics(samples, case["refs"])
    direct = csp_metrics(rows, case["refs"])
    assert m.k == 2 and m.n_matched == direct.n_matched
    np.testing.assert_allclose(m.pair_rms, direct.pair_rms, rtol=1e-9, atol=1e-12)
    assert csp_metrics(samples, case["refs"], k=1).n_matched == csp_metrics([case["bad"]], case["refs"]).n_matched


def test_gate_without_function_or_metrics_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gate", "--structures", "bundled:perov_5"]) == 2
    assert "needs MODULE:FUNCTION" in capsys.readouterr().err
    assert main(["gate", "--metrics", "--references", "bundled:perov_5", "--baseline", "x.json"]) == 2
    assert "needs --predictions" in capsys.readouterr().err


def test_baseline_as_a_mapping_is_checked_too(case: dict[str, Any]) -> None:
    data = json.loads(Path(case["baseline"]).read_text())
    assert assert_csp_metrics([case["good"]], case["refs"], data).n_matched == case["m_good"].n_matched
    with pytest.raises(MetricsBaselineError, match="missing field 'settings'"):
        assert_csp_metrics([case["good"]], case["refs"], {k: v for k, v in data.items() if k != "settings"})
    with pytest.raises(MetricsBaselineError, match="not a metrics baseline"):
        compare_metrics(case["m_good"], {"match_rate": 0.5})
