"""The study's statistics (nested spreads and intervals, paired claims) and its manifest's plan."""
import json

import numpy as np
import pytest
from scipy import stats

from ground.errors import UserError
from studies.report import (aggregate, claims_table, evaluate_claims, paired_difference, score_table, signed_interval,
                           time_table)
from studies.har.config import StudyConfig
from studies.har.manifest import CLAIMS, DEFAULT, DOWNSTREAM_MODE, EXPERIMENTS, NETWORK_MODES, RECIPE, RECIPES
from studies.har.runner import plan


def rows_of(method, mode, values):
    """values[seed][draw] -> rows at 1% labels."""
    return [{"method": method, "mode": mode, "fraction": 0.01, "pretrain_seed": 42 + s, "draw": d, "macro_f1": v}
            for s, draws in enumerate(values) for d, v in enumerate(draws)]


def test_spreads_and_interval_respect_the_nesting_of_draws_in_seeds():
    values = [[0.80, 0.84, 0.82], [0.86, 0.90, 0.88], [0.83, 0.85, 0.87]]
    entry = aggregate(rows_of("m", "linear", values))[0]
    seed_means = np.mean(values, 1)
    assert entry["macro_f1_mean"] == pytest.approx(seed_means.mean())
    assert entry["macro_f1_std"] == pytest.approx(seed_means.std(ddof=1))  # over seeds, of the per-seed means
    assert entry["macro_f1_sd_draws"] == pytest.approx(np.sqrt(np.mean(np.var(values, 1, ddof=1))))
    half = stats.t.ppf(0.975, 2) * seed_means.std(ddof=1) / np.sqrt(3)  # n = 3 seeds, not 9 draws
    assert entry["ci95"] == pytest.approx([seed_means.mean() - half, seed_means.mean() + half])
    assert (entry["n_pretrain_seeds"], entry["n_label_draws"]) == (3, 3)
    assert "0.850 ± 0.030 [0.020] (3x3)" in "\n".join(score_table([entry]))
    timed = [dict(r, seconds=float(r["draw"] + 1)) for r in rows_of("m", "linear", values)]  # 1, 2, 3 s per draw
    lines = time_table(timed, [{"representation_seconds": {"minirocket": s}} for s in (9.0, 11.0, 30.0)])
    assert "| m | linear | 2.0 |" in lines and lines[-1].endswith("minirocket 11.0.")


def test_signed_interval_is_the_t_interval_as_text():
    half = stats.t.ppf(0.975, 2) * 0.01 / np.sqrt(3)  # sd 0.01 over 3 values
    assert signed_interval([0.01, 0.02, 0.03]) == f"+0.020 [{0.02 - half:+.3f}, {0.02 + half:+.3f}]" \
        == "+0.020 [-0.005, +0.045]"


def test_claims_pair_by_seed_and_draw_and_a_missing_method_is_an_error():
    a = [[0.85, 0.80, 0.90], [0.86, 0.81, 0.91], [0.84, 0.79, 0.89]]
    b = [[v - 0.02 for v in draws] for draws in a]  # always 0.02 below, on the very same draws
    rows = rows_of("ours", "linear", a) + rows_of("them", "linear", b)
    result = paired_difference(rows, ("ours", "linear"), ("them", "linear"), 0.01)
    assert result["mean"] == pytest.approx(0.02) and result["holds"]  # pairing removes the draws' spread
    claim = {"a": ("ours", "linear"), "b": ("them", "linear"), "fractions": (0.01,)}
    assert evaluate_claims(rows, [claim])[0]["mean"] == pytest.approx(0.02)
    table = "\n".join(claims_table(evaluate_claims(rows, [claim])))
    assert "| ours (linear) - them (linear) | +0.020 [+0.020, +0.020] **holds** (3x3) |" in table
    typo = {"a": ("ours", "linear"), "b": ("thme", "linear"), "fractions": (0.01,)}
    with pytest.raises(UserError, match="no results for thme"):
        evaluate_claims(rows, [typo])
    pending = evaluate_claims(rows, [typo], partial=True)
    assert pending[0]["pending"] and "Pending (a method has not finished): 1 claims" in "\n".join(claims_table(pending))


def test_a_method_without_seeds_pairs_with_every_seed_of_the_other_side():
    ours = [[0.85, 0.80, 0.90], [0.88, 0.83, 0.93], [0.82, 0.77, 0.87]]  # seeds 42-44: +0, +0.03, -0.03
    fixed = [dict(r, pretrain_seed=None) for r in rows_of("minirocket", "linear", [[0.84, 0.80, 0.86]])]
    rows = rows_of("ours", "linear", ours) + fixed
    result = paired_difference(rows, ("ours", "linear"), ("minirocket", "linear"), 0.01)
    per_seed = [np.mean(np.subtract(draws, [0.84, 0.80, 0.86])) for draws in ours]
    assert result["mean"] == pytest.approx(np.mean(per_seed)) and result["n_pretrain_seeds"] == 3
    half = stats.t.ppf(0.975, 2) * np.std(per_seed, ddof=1) / np.sqrt(3)  # the interval over our seeds
    assert result["ci95"] == pytest.approx([np.mean(per_seed) - half, np.mean(per_seed) + half])
    reverse = paired_difference(rows, ("minirocket", "linear"), ("ours", "linear"), 0.01)
    assert reverse["mean"] == pytest.approx(-result["mean"])
    assert aggregate(fixed)[0]["n_pretrain_seeds"] == 1


def test_the_confirmation_takes_its_own_seeds_and_a_fixed_experiment_one():
    by_id = {e.id: e for e in EXPERIMENTS}
    config = StudyConfig(pretrain_seeds=(7, 9))
    assert by_id[DEFAULT].seeds(config) == [42, 43, 44, 45, 46]  # the confirmation's five
    assert by_id["baselines"].seeds(config) == [7] and by_id[f"{DEFAULT}_fixmatch"].seeds(config) == [7, 9]
    # the downstream mode chosen on val is confirmed at the five seeds too
    assert any(e.seeds(config) == [42, 43, 44, 45, 46] and DOWNSTREAM_MODE in e.methods.get("encoder", ())
               for e in EXPERIMENTS if e.id.startswith(DEFAULT))
    recipe = next(e for e in EXPERIMENTS if e.id == RECIPE.candidate_id(RECIPE.chosen))
    assert recipe.seeds(StudyConfig(pretrain_seeds=(43,))) == [43]  # a search's seeds: the study's first two


def test_the_default_recipe_is_the_searchs_chosen_and_the_seed_recipe_keeps_its_four_tasks(tmp_path):
    from common.config import parse_config
    from HAR_centralized.config import HARPretrainConfig
    from studies.har.manifest import THESIS_MTL
    from studies.har.reuse import settings
    from studies.har.runner import Study

    chosen = parse_config(HARPretrainConfig, list(RECIPES[RECIPE.chosen]))
    assert settings(chosen) == settings(HARPretrainConfig())  # config.py's defaults are the val winner's flags
    study = Study(StudyConfig(output_dir=str(tmp_path), results_dir=str(tmp_path / "study")))
    seed_recipe = study.encoder_config(study.by_id(THESIS_MTL), 42)[0]
    assert list(seed_recipe.active_tasks()) == ["augmentation", "reconstruction", "contrastive", "features"]
    for experiment in EXPERIMENTS:  # every multi-task experiment of the thesis's recipe names its tasks
        if experiment.id.startswith(("mtl_", "stl_")) and experiment.pretrain and experiment.id != DEFAULT:
            assert "--model_heads" in experiment.pretrain or "--tasks" in experiment.pretrain, experiment.id


def test_the_manifest_plans_every_method_once_per_seed_and_names_every_claim():
    config = StudyConfig(pretrain_seeds=(1, 2))
    units = plan(config, "all")
    expected = sum(len(e.seeds(config)) * ((len([m for m in modes if m not in NETWORK_MODES]) > 0)
                                                      + len([m for m in modes if m in NETWORK_MODES]))
                   for e in EXPERIMENTS for modes in e.methods.values())
    assert len(units) == expected and len({(u[0].id, *u[1:]) for u in units}) == len(units)
    probes = plan(config, "probes")
    assert all(u[3][0] not in NETWORK_MODES for u in probes) and units[: len(probes)] == probes  # cheap first
    resnet = [u for u in units if u[2] == "resnet"]
    assert resnet and units[-len(resnet):] == resnet  # the costliest networks last
    assert plan(config, "all", methods=("resnet",)) == resnet  # a machine with a GPU can take them alone
    named = {(e.row_name(m), mode) for e in EXPERIMENTS for m, modes in e.methods.items() for mode in modes}
    assert all(tuple(c["a"]) in named and all(tuple(b) in named for b in c.get("b_best_of", [c.get("b")]))
               for c in CLAIMS)


def test_the_main_job_runs_the_default_row_and_reuses_what_finished(tmp_path, har_cache, capsys):
    from studies.har import reproduce

    flags = ["--quick", "1", "--demo_draws", "2", "--demo_fractions", "0.05", "0.2", "--demo_network_fractions", "0.05",
             "--demo_selftrain_fractions", "0.05",
             "--pretrain_flags", "epochs=1 encoder_width=4 embedding_dim=8 n_variants=1 batch_size=256",
             "--classifier_flags", "min_steps=4 max_steps=4 eval_every=2 minirocket_kernels=84 selftrain_rounds=1",
             "--output_dir", str(tmp_path / "out"), "--figures_dir", str(tmp_path / "figures")]
    reproduce.main(flags)
    record = json.loads((tmp_path / "figures" / "downstream.json").read_text())
    shown = {(r["method"], r["mode"]) for r in record["rows"]}
    assert {("mtl_default", "linear"), ("mtl_default", "selftrain"), ("mtl_default", "finetune"),
            ("mtl_default", "fixmatch"), ("mtl_default+minirocket", "linear"), ("minirocket", "linear"),
            ("supervised", "fixmatch"), ("expert_features", "selftrain")} <= shown
    network = [r for r in record["rows"] if r["mode"] in NETWORK_MODES]
    assert {r["fraction"] for r in network} == {0.05}  # the networks at their own fractions in the main job
    assert {r["fraction"] for r in record["rows"] if r["mode"] == "selftrain"} == {0.05}  # and self-training
    probe = next(r for r in record["rows"] if (r["method"], r["mode"], r["fraction"]) == ("minirocket", "linear", 0.2))
    assert probe["n_label_draws"] == 2 and probe["n_pretrain_seeds"] == 1
    assert (tmp_path / "figures" / "label_efficiency.png").exists()
    assert "| minirocket | linear |" in (tmp_path / "figures" / "downstream.md").read_text()
    capsys.readouterr()
    reproduce.main(flags)  # everything finished is reused: no pretraining, no unit runs again
    assert " -> " not in capsys.readouterr().out
