"""The study as data: a part runs and resumes, the summary keeps its contract, the README block, claims
against the best of several methods, the choices made on val."""
import dataclasses
import json

import pytest

from common.config import config_to_dict, parse_config
from ground.errors import UserError
from studies.report import README_BEGIN, README_END, evaluate_claims, write_readme_block
from studies.har import reproduce
from HAR_centralized.config import HARClassifierConfig
from studies.har.config import StudyConfig
from studies.har.manifest import CHOICES, DOWNSTREAM_MODE, EXPERIMENTS, RECIPE
from studies.har.runner import Study, plan


def rows_of(method, values, fraction=0.1, mode="linear"):
    """values[seed][draw] -> rows."""
    return [{"method": method, "mode": mode, "fraction": fraction, "pretrain_seed": 42 + s, "draw": d, "macro_f1": v}
            for s, draws in enumerate(values) for d, v in enumerate(draws)]


def tiny_part_flags(tmp_path, draws="1", fractions="1.0"):
    """A tiny run of the study's tasks part at pretraining seed 1, its folders under tmp_path."""
    return ["--part", "tasks", "--pretrain_seeds", "1", "--draws", draws, "--full_draws", "1",
            "--label_fractions", fractions, "--classifier_flags", "probe=logistic:1",
            "--pretrain_flags", "epochs=1 encoder_width=4 embedding_dim=8 n_variants=1 batch_size=256",
            "--output_dir", str(tmp_path / "out"), "--results_dir", str(tmp_path / "study"),
            "--figures_dir", str(tmp_path / "figures")]


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
    out = capsys.readouterr().out
    assert " -> " not in out and "study budget: 0 units to run (0 pretrainings)" in out
    study = Study(StudyConfig(**{**vars(StudyConfig()), "part": "tasks", "pretrain_seeds": (1, 2, 3), "draws": 1,
                                 "full_draws": 1, "label_fractions": (1.0,), "classifier_flags": "probe=logistic:1",
                                 "pretrain_flags": flags[flags.index("--pretrain_flags") + 1],
                                 "output_dir": str(tmp_path / "out"), "results_dir": str(tmp_path / "study")}))
    todo, seconds = study.budget(plan(study.config, "all", study.experiments))
    assert len(todo) == 4 and seconds > 0  # a third seed: 4 units and 4 pretrainings, timed from the first two


def test_the_readme_block_is_rewritten_between_its_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n{README_BEGIN}\nold table\n{README_END}\nafter\n")
    write_readme_block(readme, ["| new | table |"])
    assert readme.read_text() == f"# title\n\nbefore\n{README_BEGIN}\n| new | table |\n{README_END}\nafter\n"
    readme.write_text("# no markers\n")
    with pytest.raises(UserError, match="has no generated block"):
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


def test_only_the_whole_study_writes_resources_and_the_readme(tmp_path):
    # one experiment, one part or one method reports under its output folder: running it must not replace the
    # whole study's report, figures or README block with its own few rows; its unit records stay the study's
    whole = Study(StudyConfig(output_dir=str(tmp_path)))
    assert whole.readme.name == "README.md" and whole.results.parts[-2:] == ("resources", "study")
    assert whole.results_page.parts[-2:] == ("docs", "results.md")
    for subset in ({"experiments": ("baselines",)}, {"part": "federated"}, {"methods": ("resnet",)},
                   {"only": "probes"}):
        study = Study(StudyConfig(output_dir=str(tmp_path), **subset))
        assert study.readme is None and study.results_page is None
        assert study.results == study.figures == tmp_path / "report"
        assert study.records_dir == whole.records_dir
    assert whole.records_dir.parts[-3:] == ("resources", "study", "units")
    elsewhere = Study(StudyConfig(output_dir=str(tmp_path), results_dir=str(tmp_path / "r")))
    assert elsewhere.records_dir == tmp_path / "r" / "units"


def val_rows_of(choice, scores):
    return [dict(r, experiment=choice.candidate_id(v), downstream="encoder") for v in choice.candidates
            for r in rows_of("mtl_default", [[scores[v], scores[v]]])]


def test_a_choice_made_on_val_must_still_be_the_best_there(tmp_path):
    study = Study(StudyConfig(output_dir=str(tmp_path), results_dir=str(tmp_path / "study")))
    rounds = next(c for c in CHOICES if c.name == "selftrain_rounds")
    scores = {v: 0.95 if v == rounds.chosen else 0.90 for v in rounds.candidates}
    made = next(c for c in study.choices(val_rows_of(rounds, scores)) if c["choice"] == "selftrain_rounds")
    assert made["chosen"] == rounds.chosen
    assert [g["val_macro_f1"] for g in made["grid"]] == [scores[v] for v in rounds.candidates]
    assert study.choices(val_rows_of(rounds, scores)[:2]) == []  # a candidate has not finished: nothing to check yet
    other = next(v for v in rounds.candidates if v != rounds.chosen)
    with pytest.raises(UserError, match=f"selftrain_rounds: the best on val is now {other}, not the study's"):
        study.choices(val_rows_of(rounds, {**scores, other: 0.99}))
    # a partial report records the disagreement (and the candidates still running) instead
    partial = Study(StudyConfig(output_dir=str(tmp_path), results_dir=str(tmp_path / "study"), partial=1))
    made = next(c for c in partial.choices(val_rows_of(rounds, {**scores, other: 0.99})[:-2])
                if c["choice"] == "selftrain_rounds")
    assert made["disagrees"] and made["best_on_val"] == other and made["pending"]


def test_every_experiment_has_its_own_rows_and_another_tasks_rows_are_prefixed():
    rows, fractions = [], {}
    for e in EXPERIMENTS:
        for m, modes in e.methods.items():
            for mode in modes if e.scored_on == "test" else ():
                rows.append((e.row_name(m), mode))
                # no two experiments' test rows mix (val rows are kept by experiment); one method's rows may be
                # split by fraction into units of their own (MiniRocket's self-training)
                taken = set(e.fractions or StudyConfig().label_fractions)
                assert not taken & fractions.get(rows[-1], set()), rows[-1]
                fractions[rows[-1]] = fractions.get(rows[-1], set()) | taken
    # the co-training units are the default encoder's hybrids' rows, in units of their own
    assert ("mtl_default+minirocket", "cotrain") in rows and ("mtl_default+minirocket", "selftrain") in rows
    hapt = next(e for e in EXPERIMENTS if e.id == "hapt12_mtl_default")
    assert hapt.row_name("encoder") == "hapt12/mtl_default" and hapt.encoder_id == "mtl_default"
    assert next(e for e in EXPERIMENTS if e.id == "hapt12_baselines").row_name("supervised") == "hapt12/supervised"
    # a choice's candidates are val-scored experiments on the first pretraining seed, with the candidate's flags
    lr = next(c for c in CHOICES if c.name == "lr")
    candidates = lr.experiments()
    assert [e.classifier for e in candidates] == [("--lr", str(v)) for v in lr.candidates]
    units = plan(dataclasses.replace(StudyConfig(), pretrain_seeds=(5, 6)), "all", candidates[:1])
    assert {u[1] for u in units} == {5} and all(e.scored_on == "val" for e in candidates)
    weights = next(c for c in CHOICES if c.name == "static_weights").experiments()[0]
    at = weights.pretrain.index("--weighting")
    assert weights.pretrain[at: at + 2] == ("--weighting", "static") and weights.encoder_id == weights.id


def test_the_federated_part_pretrains_through_the_federated_engine(tmp_path, har_cache):
    flags = ["--part", "federated", "--pretrain_seeds", "1", "--draws", "1", "--full_draws", "1",
             "--label_fractions", "1.0", "--classifier_flags", "probe=logistic:1",
             "--pretrain_flags", "rounds=1 local_epochs=1 num_clients=2 epochs=1 encoder_width=4 embedding_dim=8 "
                                 "n_variants=1 batch_size=256 pretrain_data=labelled rocket_kernels=84 rocket_dim=8",
             "--output_dir", str(tmp_path / "out"), "--results_dir", str(tmp_path / "study"),
             "--figures_dir", str(tmp_path / "figures")]
    reproduce.main(flags)
    record = json.loads((tmp_path / "study" / "downstream.json").read_text())
    assert [u["method"] for u in record["units"]] == ["federated", "federated_median", "federated_clip"]
    # the aggregations are compared at 10% labels, which this run's 100% does not reach: their claims wait
    assert {c["claim"] for c in record["claims"]} <= {f"federated_{name} (linear) - federated (linear)"
                                                      for name in ("median", "clip")}
    config = json.loads(next((tmp_path / "out" / "runs").glob("federated*/config.json")).read_text())
    assert (config["rounds"], config["num_clients"]) == (1, 2)  # the federated config got its own flags only
    assert (tmp_path / "figures" / "FL.png").exists()


def test_a_record_without_a_newer_field_is_reused_at_its_default(tmp_path):
    from HAR_centralized.config import HARPretrainConfig
    from studies.har.reuse import finished, settings

    config = HARPretrainConfig()
    old = {k: v for k, v in settings(config).items() if k != "projection_dim"}  # written before the field existed
    (tmp_path / "config.json").write_text(json.dumps(old))
    (tmp_path / "summary.json").write_text("{}")
    assert finished(tmp_path, config, "summary.json")
    assert not finished(tmp_path, dataclasses.replace(config, projection_dim=32), "summary.json")
    assert not finished(tmp_path, dataclasses.replace(config, epochs=31), "summary.json")


def test_a_unit_is_reused_whatever_the_fields_its_modes_do_not_use_say(tmp_path):
    from HAR_centralized.config import HARClassifierConfig
    from studies.har.reuse import finished

    probes = HARClassifierConfig(methods=("encoder",), modes=("linear", "selftrain"))
    (tmp_path / "config.json").write_text(json.dumps(config_to_dict(probes)))
    (tmp_path / "results.csv").write_text("")
    assert finished(tmp_path, dataclasses.replace(probes, lr=3e-3, fixmatch_threshold=0.8), "results.csv")
    assert not finished(tmp_path, dataclasses.replace(probes, selftrain_rounds=5), "results.csv")
    networks = HARClassifierConfig(methods=("supervised",), modes=("finetune",))
    (tmp_path / "config.json").write_text(json.dumps(config_to_dict(networks)))
    assert finished(tmp_path, dataclasses.replace(networks, selftrain_rounds=5, minirocket_kernels=840), "results.csv")
    assert not finished(tmp_path, dataclasses.replace(networks, lr=3e-3), "results.csv")


def test_a_unit_run_with_settings_changed_since_is_not_reported(tmp_path, har_cache, capsys):
    flags = tiny_part_flags(tmp_path)
    reproduce.main(flags)
    changed = [("probe=logistic:10" if word == "probe=logistic:1" else word) for word in flags]
    with pytest.raises(SystemExit):  # nothing of this config has finished: the report says so in one line
        reproduce.main(changed + ["--report", "1"])
    assert "no unit of the study has finished yet" in capsys.readouterr().err


def test_candidates_are_compared_on_the_draws_they_share(tmp_path):
    study = Study(StudyConfig(output_dir=str(tmp_path), results_dir=str(tmp_path / "study"), partial=1))
    rounds = next(c for c in CHOICES if c.name == "selftrain_rounds")
    a, b, c = rounds.candidates[:3]
    rows = [dict(r, experiment=rounds.candidate_id(a), downstream="encoder") for r in rows_of("x", [[0.80, 0.80]])]
    rows += [dict(r, experiment=rounds.candidate_id(a), downstream="minirocket") for r in rows_of("y", [[0.99, 0.99]])]
    rows += [dict(r, experiment=rounds.candidate_id(b), downstream="encoder") for r in rows_of("x", [[0.85, 0.85]])]
    rows += [dict(r, experiment=rounds.candidate_id(b), downstream="minirocket") for r in rows_of("y", [[0.90, 0.90]])]
    rows += [dict(r, experiment=rounds.candidate_id(c), downstream="encoder") for r in rows_of("x", [[0.99, 0.99]])]
    made = next(c for c in study.choices(rows) if c["choice"] == "selftrain_rounds")
    # c's MiniRocket unit has not run: c is pending, and does not narrow a's and b's comparison to the encoder
    assert made["best_on_val"] == a and made["grid"][0]["val_macro_f1"] == pytest.approx(0.895)
    assert made["grid"][2].get("pending") and made["grid"][0]["n"] == 4


def test_the_study_names_an_unknown_method_in_one_line(tmp_path):
    with pytest.raises(UserError, match="--methods: unknown method"):
        parse_config(StudyConfig, ["--methods", "resnett"])
    with pytest.raises(UserError, match="--experiments: unknown experiment"):
        parse_config(StudyConfig, ["--experiments", "mtl_defualt"])
    # --experiments narrows the units to those experiments (the default encoder stays reachable)
    study = Study(parse_config(StudyConfig, ["--experiments", "mtl_default_cotrain", "mtl_default_cotrain_minirocket",
                                             "--output_dir", str(tmp_path)]))
    assert [e.id for e in study.experiments] == ["mtl_default_cotrain", "mtl_default_cotrain_minirocket"]
    assert {u[2] for u in plan(study.config, "all", study.experiments)} == {"encoder+minirocket", "encoder+features"}


def test_the_recipe_search_runs_two_seeds_per_candidate_and_reuses_the_encoders_it_names(tmp_path):
    study = Study(StudyConfig(output_dir=str(tmp_path), results_dir=str(tmp_path / "study"), partial=1))
    recipe = next(c for c in CHOICES if c.name == "recipe")
    candidates = {e.id: e for e in recipe.experiments()}
    units = plan(StudyConfig(), "all", list(candidates.values()))
    assert {u[1] for u in units} == {42, 43} and all(e.scored_on == "val" for e in candidates.values())
    default, rocket = candidates[recipe.candidate_id("seed_tasks")], candidates[recipe.candidate_id("rocket_only")]
    # a candidate named by an experiment's id pretrains nothing of its own: that experiment's runs are reused
    assert study.encoder_config(default, 43)[0].run_dir() == study.encoder_config(study.by_id("mtl_seed_tasks"), 43)[
        0].run_dir()
    assert "rocket" in study.encoder_config(rocket, 42)[0].tasks
    # the two seeds' draws are scored apart: seed 43's draw 0 is not seed 42's
    rows = [dict(r, experiment=recipe.candidate_id(v), downstream="encoder")
            for v, values in (("seed_tasks", [[0.80, 0.80], [0.80, 0.80]]),
                              ("rocket_only", [[0.70, 0.70], [0.95, 0.95]]))
            for r in rows_of("x", values)]
    # a candidate's finished pretraining (its recorded config and summary) gives what it cost
    config = study.encoder_config(rocket, 42)[0]
    config.run_dir().mkdir(parents=True)
    (config.run_dir() / "config.json").write_text(json.dumps(config_to_dict(config)))
    (config.run_dir() / "summary.json").write_text(json.dumps({"train_seconds": 3.0}))  # the last process's share
    (config.run_dir() / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"epoch": 1, "seconds": 100.0}, {"epoch": 2, "seconds": 50.0}, {"epoch": 2, "seconds": 23.4}]))
    made = next(c for c in study.choices(rows) if c["choice"] == "recipe")
    assert made["grid"][1]["n"] == 4 and made["grid"][1]["val_macro_f1"] == pytest.approx(0.825)
    assert made["best_on_val"] == "rocket_only" and made["disagrees"]
    assert made["grid"][1]["pretrain_seconds"] == 123.4 and "pretrain_seconds" not in made["grid"][0]


def test_the_downstream_mode_is_judged_on_the_chosen_recipes_val_encoders_on_shared_draws(tmp_path):
    study = Study(StudyConfig(output_dir=str(tmp_path), results_dir=str(tmp_path / "study")))
    probes, networks = "winner_probes_val", "winner_networks_val"

    def rows(scores, extra_draw_of=None):
        out = []
        for mode, score in scores.items():
            experiment = probes if mode in ("linear", "selftrain") else networks
            draws = 3 if mode == extra_draw_of else 2
            out += [dict(r, experiment=experiment, downstream="encoder") for r in rows_of(
                "x", [[score] * draws, [score] * draws], fraction=0.01, mode=mode)]
        return out

    scores = {"linear": 0.90, "selftrain": 0.93, "finetune": 0.89, "fixmatch": 0.88}
    scores = {m: 0.95 if m == DOWNSTREAM_MODE else v - 0.05 for m, v in scores.items()}
    # another recipe's rows, or the search's own probes (scored before subject_norm), do not count; a mode's
    # extra draw is left out of the comparison
    noise = [dict(r, experiment=RECIPE.candidate_id(recipe), downstream="encoder")
             for recipe, mode in (("seed_tasks", "finetune"), (RECIPE.chosen, "linear"))
             for r in rows_of("x", [[0.99] * 2], fraction=0.01, mode=mode)]
    made = next(c for c in study.choices(rows(scores, extra_draw_of="finetune") + noise)
                if c["choice"] == "downstream_mode")
    assert made["chosen"] == made["best_on_val"] == DOWNSTREAM_MODE and not made["pending"]
    assert {g["value"]: g["n"] for g in made["grid"]} == dict.fromkeys(scores, 4)
    other = next(m for m in scores if m != DOWNSTREAM_MODE)
    with pytest.raises(UserError, match=f"downstream mode: the best on val is now {other}"):
        study.choices(rows({**scores, other: 0.99}))
    # before every mode has scored only a partial report judges it, marking the rest pending
    assert not any(c["choice"] == "downstream_mode" for c in study.choices(rows({DOWNSTREAM_MODE: 0.9, other: 0.8})))
    partial = Study(StudyConfig(output_dir=str(tmp_path), results_dir=str(tmp_path / "study"), partial=1))
    made = next(c for c in partial.choices(rows({DOWNSTREAM_MODE: 0.9, other: 0.8}))
                if c["choice"] == "downstream_mode")
    assert made["pending"] and not made["disagrees"]


def test_each_network_gets_its_own_value_chosen_on_its_own_val_scores(tmp_path):
    study = Study(StudyConfig(output_dir=str(tmp_path), results_dir=str(tmp_path / "study")))
    lr = next(c for c in CHOICES if c.name == "lr")
    default, baselines = study.by_id("mtl_default"), study.by_id("baselines")
    encoder = study.unit_config(default, 42, "encoder", ("finetune",), tmp_path)
    supervised = study.unit_config(baselines, 42, "supervised", ("fixmatch",), tmp_path)
    assert (encoder.lr, supervised.lr) == (lr.chosen["encoder"], lr.chosen["supervised"])
    assert study.unit_config(default, 42, "encoder", ("linear", "selftrain"), tmp_path).lr == HARClassifierConfig().lr
    candidate = next(e for e in lr.experiments() if e.id == lr.candidate_id(3e-4))
    assert study.unit_config(candidate, 42, "encoder", ("finetune",), tmp_path).lr == 3e-4  # its own value wins
    # judged per method: supervised's best does not decide the encoder's
    rows = [dict(r, experiment=lr.candidate_id(v), downstream=m)
            for v in lr.candidates for m in ("encoder", "supervised")
            for r in rows_of("x", [[0.9 if v == lr.chosen[m] else 0.8] * 2])]
    made = {c["method"]: c for c in study.choices(rows) if c["choice"] == "lr"}
    assert made["encoder"]["chosen"] == lr.chosen["encoder"] and not made["encoder"]["disagrees"]
    assert set(made) == {"encoder", "supervised"}  # resnet has no scores yet: not judged
    wrong = [dict(r, macro_f1=0.99) if (r["downstream"], r["experiment"]) == ("supervised", lr.candidate_id(3e-4))
             else r for r in rows]
    with pytest.raises(UserError, match="lr for supervised: the best on val is now 0.0003"):
        study.choices(wrong)


def test_a_unit_record_outlives_its_run_folders(tmp_path, har_cache, capsys):
    import shutil

    flags = tiny_part_flags(tmp_path, draws="2", fractions="0.1")
    reproduce.main(flags)
    first = json.loads((tmp_path / "study" / "downstream.json").read_text())
    records = sorted((tmp_path / "study" / "units").rglob("*.json"))
    assert len(records) == 4 and {len(json.loads(p.read_text())["rows"]) for p in records} == {2}
    shutil.rmtree(tmp_path / "out")  # a new machine: the run folders (encoders, unit folders) are gone
    capsys.readouterr()
    reproduce.main(flags)
    out = capsys.readouterr().out
    assert "pretraining ->" not in out and "study budget: 0 units to run (0 pretrainings)" in out
    again = json.loads((tmp_path / "study" / "downstream.json").read_text())
    assert again["rows"] == first["rows"] and again["seconds_per_epoch"] == first["seconds_per_epoch"]
    # a record of other settings is not counted: its unit runs again
    changed = [("probe=logistic:10" if word == "probe=logistic:1" else word) for word in flags]
    study = Study(parse_config(StudyConfig, changed))
    assert study.records() == [] and len(study.stale) == 4
    records[0].write_text("{not json")
    with pytest.raises(UserError, match="is not a unit record of the study"):
        Study(parse_config(StudyConfig, flags)).records()


def test_a_unit_folder_that_scored_an_encoder_replaced_since_is_not_made_a_record(tmp_path, har_cache):
    import os
    import shutil

    flags = tiny_part_flags(tmp_path, draws="2", fractions="0.1")
    reproduce.main(flags)
    shutil.rmtree(tmp_path / "study" / "units")  # only the run folders are left: records are made from them
    encoders = {path: path.read_bytes() for path in sorted((tmp_path / "out").rglob("encoder.pt"))}
    later = max(p.stat().st_mtime for p in (tmp_path / "out").rglob("config.json")) + 60
    for path, weights in encoders.items():  # the same recipe pretrained again in its folder: other weights
        path.write_bytes(weights + b"retrained")
        os.utime(path, (later, later))
    study = Study(parse_config(StudyConfig, flags))
    assert study.records() == [] and len(study.stale) == 4
    for path, weights in encoders.items():  # the weights the units scored (the sha256 their summaries record),
        path.write_bytes(weights)  # written after them: the digest decides, not the time
        os.utime(path, (later, later))
    assert len(Study(parse_config(StudyConfig, flags)).records()) == 4


def test_a_record_names_the_tasks_its_encoder_trained_so_a_new_default_recipe_leaves_it_true():
    from common.pretrain_config import with_trained_tasks
    from common.tasks import THESIS_TASKS
    from HAR_centralized.config import HARPretrainConfig
    from studies.har.reuse import matches

    # written while the thesis's four tasks were the default (no --model_heads, no --tasks)
    recorded = with_trained_tasks(json.loads(json.dumps(config_to_dict(HARPretrainConfig()))), THESIS_TASKS)
    assert recorded["tasks"] == list(THESIS_TASKS) and "model_heads" not in recorded
    assert matches(recorded, HARPretrainConfig(model_heads=(1, 1, 1, 1)))  # the same recipe, by its switches
    assert not matches(recorded, HARPretrainConfig(tasks=("rocket",)))


def test_a_pretraining_field_its_recipe_does_not_use_leaves_the_recipe_the_same():
    from HAR_centralized.config import HARPretrainConfig
    from studies.har.reuse import matches

    seed_four = parse_config(HARPretrainConfig, ["--model_heads", "1", "1", "1", "1", "--pretrain_data", "labelled"])
    recorded = dict(config_to_dict(seed_four), rocket_dim=512, pretrain_step=64)  # unused by that recipe
    assert matches(json.loads(json.dumps(recorded)), seed_four)
    rocket = parse_config(HARPretrainConfig, ["--tasks", "rocket"])  # whole recordings: the step and dim count
    for field, value in (("rocket_dim", 512), ("pretrain_step", 64)):
        assert not matches(json.loads(json.dumps(dict(config_to_dict(rocket), **{field: value}))), rocket)


def test_a_baseline_record_depends_on_its_encoders_data_only():
    from HAR_centralized.config import HARPretrainConfig
    from studies.har.reuse import encoder_fields_unused, matches

    default = HARPretrainConfig()
    unused = encoder_fields_unused("minirocket", default)
    assert {"epochs", "rocket_dim", "pretrain_data"} <= set(unused) and not {"data_source", "standardise"} & set(unused)
    assert encoder_fields_unused("encoder+minirocket", default) == ()  # a hybrid uses the encoder's weights
    earlier = json.loads(json.dumps(dict(config_to_dict(default), epochs=30)))  # a default recipe of before
    assert matches(earlier, default, unused) and not matches(earlier, default)
    other_data = json.loads(json.dumps(dict(config_to_dict(default), standardise="channel")))
    assert not matches(other_data, default, unused)


def test_a_unit_counts_only_for_the_encoder_it_scored(tmp_path):
    import json
    import os

    from common.classification import file_sha256
    from studies.har.reuse import scored_this_encoder
    run, unit = tmp_path / "run", tmp_path / "unit"
    run.mkdir(), unit.mkdir()
    (run / "encoder.pt").write_bytes(b"weights one")
    (unit / "config.json").write_text("{}")
    (unit / "summary.json").write_text(json.dumps({"info": {"encoder_sha256": file_sha256(run / "encoder.pt")}}))
    assert scored_this_encoder(run, unit)
    (run / "encoder.pt").write_bytes(b"weights two")  # pretrained again into the same folder
    assert not scored_this_encoder(run, unit)
    # a unit from before the digest was recorded: the encoder must predate it
    (unit / "summary.json").write_text(json.dumps({"info": {}}))
    os.utime(run / "encoder.pt", (1, 1))
    assert scored_this_encoder(run, unit)
    os.utime(run / "encoder.pt", (4e9, 4e9))
    assert not scored_this_encoder(run, unit)
    (run / "encoder.pt").unlink()
    assert not scored_this_encoder(run, unit)


def test_a_record_from_before_subject_norm_ran_without_it_whatever_the_default_becomes():
    from common.classification import ClassifierConfig
    from common.config import compose_config
    from studies.har.reuse import matches

    def flipped(**values):  # the day the default moves to zscore
        cls = compose_config("Flipped", __name__, (ClassifierConfig,), defaults={"subject_norm": "zscore"})
        return cls(**{"methods": ("encoder",), "modes": ("linear",), **values})

    before = json.loads(json.dumps(config_to_dict(flipped())))
    del before["subject_norm"]  # a unit recorded before the field existed: it ran without normalisation
    assert not matches(before, flipped()) and matches(before, flipped(subject_norm="none"))
    # a network does not use it: its records stay whatever the probes' setting
    network = dict(before, modes=["finetune"])
    assert matches(network, flipped(modes=("finetune",)))
    # and it ran without the networks' own AdaBN, which the probes' records ignore
    del network["network_subject_norm"], before["network_subject_norm"]
    assert not matches(network, flipped(modes=("finetune",), network_subject_norm="adabn"))
    assert matches(before, flipped(subject_norm="none", network_subject_norm="adabn"))


def test_the_choices_made_before_subject_norm_keep_their_records_after_it_was_chosen():
    from studies.har.manifest import CHOICES, CLASSIFIER

    assert CLASSIFIER.subject_norm == "zscore"
    scored_at = {c.name: {x.classifier for x in c.experiments()} for c in CHOICES}
    for name in ("static_weights", "selftrain_rounds", "recipe"):  # probed before it was chosen: without it
        assert all(flags[:2] == ("--subject_norm", "none") for flags in scored_at[name]), name
    assert {flags for flags in scored_at["subject_norm"]} == {("--subject_norm", v) for v in ("none", "zscore",
                                                                                              "adabn")}
