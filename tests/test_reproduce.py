"""The study machinery: aggregation over pretraining seeds, paired claims, resumable parts, the summary file."""
import json

import numpy as np
import pytest
from scipy import stats

from HAR_centralized import reproduce


def rows_of(method, mode, values, fraction=0.1):
    return [{"method": method, "mode": mode, "fraction": fraction, "pretrain_seed": seed, "macro_f1": v}
            for seed, v in zip((42, 43, 44), values)]


def test_aggregate_is_mean_and_std_over_pretraining_seeds():
    table = reproduce.aggregate(rows_of("MTL equal", "linear", [0.90, 0.92, 0.94]))
    assert table == [{"method": "MTL equal", "mode": "linear", "fraction": 0.1, "macro_f1_mean": pytest.approx(0.92),
                      "macro_f1_std": pytest.approx(0.02), "n_pretrain_seeds": 3}]


def test_paired_difference_by_hand():
    rows = rows_of("A", "linear", [0.90, 0.92, 0.95]) + rows_of("B", "linear", [0.88, 0.899, 0.931])
    result = reproduce.paired_difference(rows, ("A", "linear"), ("B", "linear"), 0.1)
    diffs = np.array([0.02, 0.021, 0.019])
    half = stats.t.ppf(0.975, 2) * diffs.std(ddof=1) / np.sqrt(3)
    assert result["mean"] == pytest.approx(0.02) and result["ci95"] == pytest.approx([0.02 - half, 0.02 + half])
    assert result["n"] == 3 and result["holds"] is True  # the whole interval is above 0
    noisy = rows_of("A", "linear", [0.90, 0.92, 0.95]) + rows_of("B", "linear", [0.88, 0.91, 0.92])
    assert reproduce.paired_difference(noisy, ("A", "linear"), ("B", "linear"), 0.1)["holds"] is False
    # a deterministic baseline with one row is compared with every seed
    one = [{"method": "C", "mode": "linear", "fraction": 0.1, "pretrain_seed": 42, "macro_f1": 0.95}]
    against_one = reproduce.paired_difference(rows + one, ("A", "linear"), ("C", "linear"), 0.1)
    assert against_one["mean"] == pytest.approx(np.mean([0.90, 0.92, 0.95]) - 0.95) and against_one["n"] == 3


def test_a_part_runs_resumes_and_the_summary_follows_the_contract(tmp_path, har_cache, capsys):
    flags = ["--part", "tasks", "--pretrain_seeds", "1", "2", "--seeds", "1", "--label_fractions", "1.0",
             "--pretrain_flags", "epochs=1 encoder_width=4 embedding_dim=8 n_variants=1 batch_size=256",
             "--output_dir", str(tmp_path / "out"), "--study_dir", str(tmp_path / "study"),
             "--figures_dir", str(tmp_path / "figures")]
    reproduce.main(flags)
    part = json.loads((tmp_path / "study" / "tasks.json").read_text())
    assert {r["method"] for r in part["rows"]} == {f"STL {t}" for t in reproduce.SEED_TASKS}
    assert {r["pretrain_seed"] for r in part["rows"]} == {1, 2} and part["commit"]
    summary = json.loads((tmp_path / "figures" / "study_summary.json").read_text())
    assert summary["pretrain_seeds"] == [1, 2] and summary["default_method"] == reproduce.DEFAULT
    row = next(r for r in summary["rows"] if r["method"] == "STL contrastive")
    assert set(row) == {"method", "mode", "fraction", "macro_f1_mean", "macro_f1_std", "n_pretrain_seeds"}
    assert row["n_pretrain_seeds"] == 2 and row["mode"] == "linear"
    assert (tmp_path / "figures" / "MTL-vs-STL.png").exists() and (tmp_path / "figures" / "results.md").exists()
    capsys.readouterr()
    reproduce.main(flags)  # a second invocation reuses every finished run and evaluation
    out = capsys.readouterr().out
    assert "pretraining ->" not in out and out.count("reusing") >= 8


def test_hapt12_rows_get_their_own_table_and_claims():
    d = reproduce.DEFAULT
    rows = (rows_of(d, "linear", [0.92, 0.93, 0.94]) + rows_of(f"HAPT-12: {d}", "linear", [0.80, 0.81, 0.82])
            + rows_of("HAPT-12: supervised", "finetune", [0.70, 0.72, 0.71]))
    claims = reproduce.paired_claims(rows, [0.1])
    claim = next(c for c in claims if c["claim"] == f"HAPT-12: {d} (linear) - supervised")
    assert claim["mean"] == pytest.approx(0.10) and claim["holds"]
    lines = reproduce.results_markdown(reproduce.aggregate(rows), claims, {}, reproduce.ReproduceConfig())
    text = "\n".join(lines)
    assert "HAPT's 12 classes" in text and f"| {d} | linear | 0.810 ± 0.010 (3) |" in text
    assert text.index(f"| {d} | linear | 0.930") < text.index("HAPT's 12 classes")  # UCI HAR's table first
