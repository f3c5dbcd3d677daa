"""The study as data: a part runs and resumes, the summary keeps its contract, the README block, claims
against the best of several methods, the choices made on val."""
import dataclasses
import json

import pytest

from common.errors import UserError
from common.report import README_BEGIN, README_END, evaluate_claims, write_readme_block
from HAR_centralized import reproduce
from HAR_centralized.study import EXPERIMENTS, STATIC_GRID, STATIC_WEIGHTS, Study, StudyConfig, _grid_id


def rows_of(method, values, fraction=0.1, mode="linear"):
    """values[seed][draw] -> rows."""
    return [{"method": method, "mode": mode, "fraction": fraction, "pretrain_seed": 42 + s, "draw": d, "macro_f1": v}
            for s, draws in enumerate(values) for d, v in enumerate(draws)]


def test_a_part_runs_resumes_and_the_summary_follows_the_contract(tmp_path, har_cache, capsys):
    flags = ["--part", "tasks", "--pretrain_seeds", "1", "2", "--draws", "1", "--full_draws", "1",
             "--label_fractions", "1.0", "--classifier_flags", "probe=logistic:1",
             "--pretrain_flags", "epochs=1 encoder_width=4 embedding_dim=8 n_variants=1 batch_size=256",
             "--output_dir", str(tmp_path / "out"), "--results_dir", str(tmp_path / "study"),
             "--figures_dir", str(tmp_path / "figures")]
    reproduce.main(flags)
    record = json.loads((tmp_path / "study" / "downstream.json").read_text())
    assert {u["method"] for u in record["units"]} == {"stl_augmentation", "stl_reconstruction", "stl_contrastive",
                                                      "stl_features"}
    assert {u["seed"] for u in record["units"]} == {1, 2} and all(u["commit"] for u in record["units"])
    assert set(record["seconds_per_epoch"]) == {u["method"] for u in record["units"]}
    summary = json.loads((tmp_path / "figures" / "study_summary.json").read_text())
    row = next(r for r in summary["rows"] if r["method"] == "stl_contrastive")
    assert set(row) == {"method", "mode", "fraction", "macro_f1_mean", "macro_f1_std", "n_pretrain_seeds",
                        "n_label_draws", "macro_f1_sd_draws"}
    assert (row["n_pretrain_seeds"], row["n_label_draws"], row["mode"]) == (2, 1, "linear")
    assert (tmp_path / "figures" / "MTL-vs-STL.png").exists() and (tmp_path / "figures" / "results.md").exists()
    assert not (tmp_path / "figures" / "FL.png").exists()  # a figure is drawn only when its method ran
    capsys.readouterr()
    reproduce.main(flags)  # a second invocation reuses every finished pretraining and unit
    assert " -> " not in capsys.readouterr().out


def test_the_readme_block_is_rewritten_between_its_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n{README_BEGIN}\nold table\n{README_END}\nafter\n")
    write_readme_block(readme, ["| new | table |"])
    assert readme.read_text() == f"# title\n\nbefore\n{README_BEGIN}\n| new | table |\n{README_END}\nafter\n"
    readme.write_text("# no markers\n")
    with pytest.raises(UserError, match="no study results block"):
        write_readme_block(readme, ["x"])


def test_a_claim_against_the_best_of_several_takes_the_best_at_each_fraction():
    rows = (rows_of("ours", [[0.90, 0.91]] * 3) + rows_of("weak", [[0.80, 0.81]] * 3)
            + rows_of("strong", [[0.88, 0.89]] * 3) + rows_of("ours", [[0.95]] * 3, 1.0)
            + rows_of("weak", [[0.97]] * 3, 1.0) + rows_of("strong", [[0.90]] * 3, 1.0))
    claim = {"a": ("ours", "linear"), "b_best_of": (("weak", "linear"), ("strong", "linear")), "fractions": (0.1, 1.0)}
    at_10, at_100 = evaluate_claims(rows, [claim])
    assert at_10["b"] == ["strong", "linear"] and at_10["mean"] == pytest.approx(0.02)
    assert at_100["b"] == ["weak", "linear"] and at_100["mean"] == pytest.approx(-0.02)
    with pytest.raises(UserError, match="no results for absent"):
        evaluate_claims(rows, [dict(claim, b_best_of=(("absent", "linear"),))])


def test_the_static_weights_must_still_be_the_best_on_val(tmp_path):
    study = Study(StudyConfig(output_dir=str(tmp_path)))
    scores = {w: 0.95 if w == STATIC_WEIGHTS else 0.90 for w in STATIC_GRID}
    val_rows = [r for w in STATIC_GRID for r in rows_of(_grid_id(w), [[scores[w]]])]
    assert study.choices(val_rows)[0]["chosen"] == list(STATIC_WEIGHTS)
    assert study.choices(val_rows[:1]) == []  # the grid has not finished: no choice to check yet
    other = next(w for w in STATIC_GRID if w != STATIC_WEIGHTS)
    scores[other] = 0.99
    with pytest.raises(UserError, match="best on val are now"):
        study.choices([r for w in STATIC_GRID for r in rows_of(_grid_id(w), [[scores[w]]])])


def test_every_experiment_has_its_own_rows_and_another_tasks_rows_are_prefixed():
    names = [e.row_name(m) for e in EXPERIMENTS for m in e.methods]
    assert len(names) == len(set(names))  # no two experiments' rows mix
    hapt = next(e for e in EXPERIMENTS if e.id == "hapt12_mtl_default")
    assert hapt.row_name("encoder") == "hapt12/mtl_default" and hapt.encoder_id == "mtl_default"
    assert next(e for e in EXPERIMENTS if e.id == "hapt12_baselines").row_name("supervised") == "hapt12/supervised"
    # the grid's val-scored experiments run on the first pretraining seed only
    grid = next(e for e in EXPERIMENTS if e.id == _grid_id(STATIC_GRID[0]))
    from HAR_centralized.study import plan
    units = plan(dataclasses.replace(StudyConfig(), pretrain_seeds=(5, 6)), "all", [grid])
    assert [u[1] for u in units] == [5] and grid.scored_on == "val"


def test_the_federated_part_pretrains_through_the_federated_engine(tmp_path, har_cache):
    flags = ["--part", "federated", "--pretrain_seeds", "1", "--draws", "1", "--full_draws", "1",
             "--label_fractions", "1.0", "--classifier_flags", "probe=logistic:1",
             "--pretrain_flags", "rounds=1 local_epochs=1 num_clients=2 epochs=1 encoder_width=4 embedding_dim=8 "
                                 "n_variants=1 batch_size=256",
             "--output_dir", str(tmp_path / "out"), "--results_dir", str(tmp_path / "study"),
             "--figures_dir", str(tmp_path / "figures")]
    reproduce.main(flags)
    record = json.loads((tmp_path / "study" / "downstream.json").read_text())
    assert [u["method"] for u in record["units"]] == ["federated"] and record["claims"] == []
    config = json.loads(next((tmp_path / "out" / "runs").glob("federated*/config.json")).read_text())
    assert (config["rounds"], config["num_clients"]) == (1, 2)  # the federated config got its own flags only
    assert (tmp_path / "figures" / "FL.png").exists()
