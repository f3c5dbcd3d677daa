"""The HAR study's runner: the manifest's experiments (studies/har/manifest.py) in resumable units.

Every unit (an experiment's methods at one pretraining seed) is a train_classifier run in its own folder,
over the same label draws (0..draws-1 at every fraction below 100%, --full_draws at 100%). The reuse rule
(studies/har/reuse.py) reuses a unit or a pretraining whose recorded config is the wanted one and that
finished; a killed pretraining resumes from its checkpoint. A finished unit leaves a record beside the report
(resources/study/units/: its per-draw scores, its config and its encoder's, the encoder's epoch seconds),
committed with it, so the study spans machines whose run folders are gone: the report is written from the
records, and a recorded unit runs again only when its settings change. The commit of the code behind each
folder is in the report. Baselines without pretraining pair with a pretraining seed through their own init
seed (the networks' init, MiniRocket's kernels).
"""
import csv
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from common.classification import NETWORK_MODES, PROBE_MODES, load_pretrained_encoder, run_classification
from common.config import config_to_dict, parse_config
from common.encoders import embed
from common.evaluation import rebuild_encoder
from common.pretrain_config import with_trained_tasks
from common.run_folder import RunFolder
from common.tasks import THESIS_TASKS
from common.training import pretrain
from common.weighting import WEIGHTINGS
from data_processing.har import ACTIVITY_NAMES
from ground.errors import UserError
from ground.io import atomic_write_json, atomic_write_text, strict_json
from ground.paths import REPO_ROOT
from HAR_centralized.config import HARClassifierConfig, HARPretrainConfig
from HAR_federated.config import FederatedConfig
from HAR_federated.run import run_local
from har_task import HARTask
from studies.har.manifest import (CHOICES, CLAIMS, CURVES, DEFAULT, DOWNSTREAM_MODE, DOWNSTREAM_MODES, EXPERIMENTS,
                                  HEADLINE, HEADLINE_COLUMNS, RECIPE, SCALING_CURVE, SCALING_FRACTIONS,
                                  SCALING_OPPONENT, WEIGHTING_FIGURE)
from studies.har.reuse import encoder_fields_unused, finished, matches, scored_this_encoder, uses_encoder
from studies.plots import plot_architecture, plot_tsne
from studies.report import (HEADLINE_BEGIN, HEADLINE_END, aggregate, claims_table, draw_figures, draw_scaling_figure,
                            evaluate_claims, fraction_key, headline_table, scaling_table, score_table, time_table,
                            write_readme_block)


def as_flags(words, known=None):
    """NAME=VALUE words as flags (only the fields of `known`, a config class, when given)."""
    flags = []
    for word in words.split():
        name, _, value = word.partition("=")
        if known is None or name in {f.name for f in dataclasses.fields(known)}:
            flags += [f"--{name}", *value.split(",")]
    return flags


def plan(config, only, experiments=EXPERIMENTS, methods=()):
    """[(experiment, seed, method, modes)]: probe units first (minutes), then networks, cheapest first (the
    ResNet's units last: a draw costs it ~20x LP-FT's on a CPU); each experiment at its own seeds (or the
    study's); only those of `methods` when it names some."""
    units = []
    for group in ("probes", "networks"):
        if only not in ("all", group):
            continue
        for experiment in experiments:
            for method, modes in experiment.methods.items():
                if methods and method not in methods:
                    continue
                wanted = [m for m in modes if (m in PROBE_MODES) == (group == "probes")]
                for mode_group in ([wanted] if group == "probes" else [[m] for m in wanted]):
                    if mode_group:
                        units += [(experiment, seed, method, tuple(mode_group))
                                  for seed in experiment.seeds(config)]
    cost = {"encoder": 0, "supervised": 1}
    return sorted(units, key=lambda u: (u[3][0] in NETWORK_MODES, u[2] == "resnet", "fixmatch" in u[3],
                                        cost.get(u[2], 0)))


def seconds_by_epoch(run):
    """{epoch (or federated round): seconds} of a run, from its metrics rows; an epoch run again after a kill
    counts its last time."""
    path = Path(run) / RunFolder.METRICS
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    return {r.get("epoch", r.get("round")): r["seconds"] for r in rows if "seconds" in r}


def epoch_seconds(run):
    """Median seconds per pretraining epoch (or federated round) of a run."""
    seconds = seconds_by_epoch(run)
    return float(np.median(list(seconds.values()))) if seconds else None


class Study:
    def __init__(self, config, experiments=EXPERIMENTS):
        quick = bool(config.quick)
        self.config = config
        self.experiments = [e for e in experiments if config.part in ("all", e.part)
                            and (not config.experiments or e.id in config.experiments)]
        self.out = Path(config.output_dir) if config.output_dir else REPO_ROOT / "HAR_centralized" / "outputs" / (
            "demo" if quick else "study")
        # the whole study reports into resources/, docs/results.md and the README's table; a subset (a part,
        # --experiments, --methods, --only) reports what it ran under its output folder and never overwrites
        # them. The unit records are the study's either way (resources/study/units, or --results_dir's)
        self.whole = (config.part == "all" and not config.experiments and not config.methods
                      and config.only == "all" and not quick)
        subset_report = self.out / "report"
        self.figures = Path(config.figures_dir) if config.figures_dir else (
            self.out / "figures" if quick else REPO_ROOT / "resources" if self.whole else subset_report)
        self.records_dir = (Path(config.results_dir) if config.results_dir else
                        self.figures if quick else REPO_ROOT / "resources" / "study") / "units"
        self.results = Path(config.results_dir) if config.results_dir else (
            self.figures if quick else REPO_ROOT / "resources" / "study" if self.whole else subset_report)
        self.readme = Path(config.readme) if config.readme else (REPO_ROOT / "README.md" if self.whole else None)
        self.results_page = Path(config.results_page) if config.results_page else (
            REPO_ROOT / "docs" / "results.md" if self.whole else None)
        self._splits = {}
        self.stale = set()  # records and run folders of settings the study has changed since

    def by_id(self, experiment_id):
        return next(e for e in EXPERIMENTS if e.id == experiment_id)

    def encoder_config(self, experiment, seed):
        """(config, train) of the experiment's encoder at `seed`; baselines: the default's, which only fixes the
        supervised networks' architecture and the record."""
        owner = self.by_id(experiment.encoder_id or DEFAULT) if experiment.encoder_of or experiment.pretrain is None \
            else experiment
        if owner.federated:
            config_class, train = FederatedConfig, lambda config: run_local(config, HARTask(config).client_datasets())
        else:
            config_class, train = HARPretrainConfig, lambda config: pretrain(config, HARTask(config).pretrain_data())
        config = parse_config(config_class,
                              list(owner.pretrain) + as_flags(self.config.pretrain_flags, config_class) + [
            "--experiment_name", owner.id, "--output_dir", str(self.out / "runs"), "--seed", str(seed),
            "--data_source", self.config.data_source, "--resume", "1"])
        return config, train

    def encoder(self, experiment, seed):
        """The run folder of the experiment's encoder at `seed`: reused, resumed or trained."""
        config, train = self.encoder_config(experiment, seed)
        run = RunFolder(config.run_dir())
        if not finished(run.path, config, run.SUMMARY):
            print(f"[{config.experiment_name} seed {seed}] pretraining -> {run.path}")
            recorded = run / RunFolder.CONFIG
            same = recorded.exists() and matches(json.loads(recorded.read_text()), config)
            if run.holds_a_run() and not (same and run.has_checkpoint()):  # another recipe's run: start again
                config = dataclasses.replace(config, resume=0, overwrite=1)
            train(config)
        return run.path

    def folder(self, experiment, seed, method, modes):
        return self.out / "downstream" / experiment.id / f"seed{seed}" / f"{method}_{'_'.join(modes)}"

    def unit_config(self, experiment, seed, method, modes, encoder):
        fractions = experiment.fractions or ((self.config.network_fractions or self.config.label_fractions)
                                             if modes[0] in NETWORK_MODES else self.config.label_fractions)
        # a network's own values chosen on val (a candidate's own flags, after them, win)
        chosen = [flag for c in CHOICES if c.per_method and modes[0] in NETWORK_MODES and method in c.chosen
                  for flag in c.flags(c.chosen[method])]
        return parse_config(HARClassifierConfig, [*chosen,
            "--encoder", str(encoder), "--output_dir", str(self.folder(experiment, seed, method, modes)),
            "--methods", method, "--modes", *modes,
            "--seeds", str(self.config.tuning_draws if experiment.scored_on == "val" else self.config.draws),
            "--full_seeds", str(self.config.full_draws),
            "--label_fractions", *map(str, fractions), "--init_seed", str(seed),
            "--data_source", self.config.data_source, *experiment.classifier, *as_flags(self.config.classifier_flags)])

    def unit(self, experiment, seed, method, modes):
        """Run one unit unless its record says it finished; its record."""
        record = self.record(experiment, seed, method, modes)
        if record:
            return record
        encoder = self.encoder(experiment, seed)
        folder = self.folder(experiment, seed, method, modes)
        config = self.unit_config(experiment, seed, method, modes, encoder)
        print(f"[{experiment.id} seed {seed}] {method} {' '.join(modes)} -> {folder}")
        (folder / "results.csv").unlink(missing_ok=True)
        key = (str(encoder), config.task, experiment.scored_on)
        if key not in self._splits:
            splits = HARTask(config).labelled_splits(None, str(encoder))
            self._splits[key] = dataclasses.replace(splits,
                                                    test=splits.val) if experiment.scored_on == "val" else splits
        run_classification(config, self._splits[key], Path(encoder) / "encoder.pt")
        return self.record(experiment, seed, method, modes)

    def record_path(self, experiment, seed, method, modes):
        return self.records_dir / experiment.id / f"seed{seed}_{method}_{'_'.join(modes)}.json"

    def record(self, experiment, seed, method, modes):
        """A finished unit's record, or None: its file in the results folder (units/, committed with the report,
        so a study spans machines whose run folders are gone) when the unit and its encoder's recorded configs
        are the wanted ones (matches: the reuse rule); else made from a finished run folder (a unit run before
        the records existed, or just now). Records of other settings are listed in self.stale."""
        path = self.record_path(experiment, seed, method, modes)
        encoder_config, _ = self.encoder_config(experiment, seed)
        config = self.unit_config(experiment, seed, method, modes, encoder_config.run_dir())
        if path.is_file():
            try:
                record = json.loads(path.read_text())
                current = (matches(record["config"], config, ignore=("encoder",))
                           and matches(record["encoder_config"], encoder_config, encoder_fields_unused(method,
                                                                                                  encoder_config)))
            except (ValueError, KeyError, TypeError):
                raise UserError(f"{path} is not a unit record of the study (corrupt): delete it to run the unit "
                                f"again") from None
            if current:
                return record
        folder = self.folder(experiment, seed, method, modes)
        done = (folder / "results.csv").exists() and (folder / RunFolder.CONFIG).exists()
        values = json.loads((folder / RunFolder.CONFIG).read_text()) if done else {}
        if not (done and matches(values, config, ignore=("encoder",))):
            if path.is_file() or (folder / "results.csv").exists():
                self.stale.add(str(path if path.is_file() else folder))
            return None
        # the encoder the unit used: the one its config names (a folder moved since: the experiment's own)
        run = next((Path(r) for r in (values.get("encoder"), encoder_config.run_dir())
                    if r and (Path(r) / RunFolder.CONFIG).is_file()), None)
        if run is None or not matches(json.loads((run / RunFolder.CONFIG).read_text()), encoder_config,
                                      encoder_fields_unused(method, encoder_config)):
            self.stale.add(str(folder))  # its encoder is gone or of another recipe: the unit runs again
            return None
        if uses_encoder(method) and not scored_this_encoder(run, folder):
            self.stale.add(str(folder))  # scored an earlier encoder that a run of this recipe has replaced since
            return None
        summary = json.loads((folder / "summary.json").read_text())
        with open(folder / "results.csv") as f:
            rows = [{"mode": r["mode"], "fraction": float(r["fraction"]), "draw": int(r["seed"]),
                     "macro_f1": float(r["macro_f1"]), "seconds": float(r["seconds"])} for r in csv.DictReader(f)]
        record = {"experiment": experiment.id, "seed": seed, "method": method, "modes": list(modes),
                  "scored_on": experiment.scored_on, "seconds": summary["info"]["seconds"],
                  "commit": summary.get("git_commit"),
                  "representation_seconds": summary["info"].get("representation_seconds", {}),
                  "probe_choices": summary["info"].get("probe_choices", []), "config": values,
                  # the tasks it trained by name: a record stays true when the config's default tasks change
                  "encoder_config": with_trained_tasks(json.loads((run / RunFolder.CONFIG).read_text()),
                                                       getattr(encoder_config, "DEFAULT_TASKS", THESIS_TASKS)),
                  "pretrain_seconds_by_epoch": {str(k): v for k, v in seconds_by_epoch(run).items()}, "rows": rows}
        self.stale.discard(str(path))
        # one line per field: a record is read by the study, and its diff by people
        atomic_write_text(path, "{\n" + ",\n".join(f"{json.dumps(k)}: {strict_json(v, path)}"
                                                   for k, v in record.items()) + "\n}\n")
        return record

    def budget(self, units):
        """The units still to run and an estimate of their hours on this machine: per draw, the median
        seconds of the same (method, mode, fraction) in the finished units; per pretraining, the finished
        pretrainings' median seconds. Unmeasured pieces are counted apart."""
        rows, val_rows, _, _ = self.rows()
        per_draw, todo, unknown, pretrainings = {}, [], set(), {}
        for r in rows + val_rows:
            per_draw.setdefault((r["downstream"], r["mode"], fraction_key(r["fraction"])), []).append(r["seconds"])
        seconds = 0.0
        for experiment, seed, method, modes in units:
            if self.record(experiment, seed, method, modes):
                continue
            config, _ = self.encoder_config(experiment, seed)
            run = RunFolder(config.run_dir())
            if not finished(run.path, config, run.SUMMARY):
                pretrainings[str(run.path)] = config
            unit = self.unit_config(experiment, seed, method, modes, run.path)
            todo.append((experiment.id, seed, method, modes))
            for mode in modes:
                for fraction in unit.label_fractions:
                    draws = unit.full_seeds if fraction >= 1 else unit.seeds
                    measured = per_draw.get((method, mode, fraction_key(fraction)))
                    if measured:
                        seconds += draws * float(np.median(measured))
                    else:
                        unknown.add(f"{method} {mode}")
        finished_runs = [sum(r["pretrain_seconds_by_epoch"].values()) for _, r in self.records()]
        finished_runs = [s for s in finished_runs if s]
        seconds += len(pretrainings) * (float(np.median(finished_runs)) if finished_runs else 0.0)
        print(f"study budget: {len(todo)} units to run ({len(pretrainings)} pretrainings), "
              f"{'at least' if unknown else 'about'} {seconds / 3600:.1f} h on this machine from the finished "
              f"units' timings"
              + (f", besides what is not yet measured: {', '.join(sorted(unknown))}" if unknown else "")
              + ("; pretraining not yet timed" if pretrainings and not finished_runs else ""))
        return todo, seconds

    def run(self):
        start = time.time()
        units = plan(self.config, self.config.only, self.experiments, self.config.methods)
        self.budget(units)
        for unit in units:
            self.unit(*unit)
        print(f"study units done in {(time.time() - start) / 60:.1f} min")

    def records(self):
        """The finished units' records, in plan order: [(experiment, record)]."""
        out = []
        for experiment, seed, method, modes in plan(self.config, "all", self.experiments):
            record = self.record(experiment, seed, method, modes)
            if record:
                out.append((experiment, record))
        return out

    def rows(self):
        """Every finished unit's per-draw rows (test-scored and val-scored apart), named for the report, the
        units' records and the seconds per pretraining epoch of each encoder."""
        rows, val_rows, units, seconds = [], [], [], {}
        self.stale = set()
        for experiment, record in self.records():
            name = experiment.row_name(record["method"])
            if experiment.encoder_id == experiment.id:
                epochs = list(record["pretrain_seconds_by_epoch"].values())
                seconds.setdefault(name, []).append(float(np.median(epochs)) if epochs else None)
            units.append({"method": name, **{k: record[k] for k in (
                "experiment", "seed", "modes", "scored_on", "seconds", "commit", "representation_seconds",
                "probe_choices")}})
            for r in record["rows"]:
                (val_rows if experiment.scored_on == "val" else rows).append({
                    "experiment": experiment.id, "method": name, "downstream": record["method"], **r,
                    "pretrain_seed": None if experiment.fixed else record["seed"]})
        return rows, val_rows, units, {k: [s for s in v if s is not None] for k, v in seconds.items()}

    def choices(self, val_rows):
        """Each choice made on the val subjects whose candidates have all finished (partial: those with a
        finished candidate, the rest marked pending): the val scores and the best. The study's value no longer
        the best is an error that names where to change it (partial: recorded as `disagrees`)."""
        made = []
        for choice in CHOICES:
            for method in choice.methods if choice.per_method else [None]:
                entry = self.judge(choice, [r for r in val_rows if method in (None, r["downstream"])], method)
                if entry:
                    made.append(entry)
        return made + [entry for entry in [self.judge_mode(val_rows)] if entry]

    def judge_mode(self, val_rows):
        """The downstream mode choice (DOWNSTREAM_MODE) on the chosen recipe's val encoders, in judge()'s form;
        None before two modes have scored on shared draws."""
        sources = ("winner_probes_val", "winner_networks_val")
        by_draw = {m: {(r["fraction"], r["pretrain_seed"], r["draw"]): r["macro_f1"] for r in val_rows
                       if r["experiment"] in sources and r["downstream"] == "encoder" and r["mode"] == m}
                   for m in DOWNSTREAM_MODES}
        done = [m for m in DOWNSTREAM_MODES if by_draw[m]]
        common = set.intersection(*(set(by_draw[m]) for m in done)) if done else set()
        if len(done) < 2 or not common or (len(done) < len(DOWNSTREAM_MODES) and not self.config.partial):
            return None
        mean = {m: float(np.mean([by_draw[m][k] for k in sorted(common)])) for m in done}
        best = max(done, key=mean.get)
        if best != DOWNSTREAM_MODE and not self.config.partial:
            raise UserError(f"downstream mode: the best on val is now {best}, not the study's {DOWNSTREAM_MODE}: set "
                            f"DOWNSTREAM_MODE in studies/har/manifest.py to {best} and run again")
        return {"choice": "downstream_mode", "method": None, "chosen": DOWNSTREAM_MODE, "best_on_val": best,
                "disagrees": best != DOWNSTREAM_MODE, "pending": len(done) < len(DOWNSTREAM_MODES),
                "grid": [{"value": m, "val_macro_f1": mean[m], "n": len(common)} if m in mean
                         else {"value": m, "pending": True} for m in DOWNSTREAM_MODES],
                "methods": {"encoder": list(DOWNSTREAM_MODES)}, "fractions": list(RECIPE.fractions),
                "where": "DOWNSTREAM_MODE in studies/har/manifest.py"}

    def judge(self, choice, val_rows, method=None):
        """One choice (per method: one method's) on its val rows: its record, or None before its candidates have
        scored (a partial report: before any has)."""
        chosen = choice.chosen.get(method) if method else choice.chosen
        name = f"{choice.name} for {method}" if method else choice.name
        by_draw = {v: {(r["downstream"], r["mode"], r["fraction"], r["pretrain_seed"], r["draw"]): r["macro_f1"]
                       for r in val_rows if r["experiment"] == choice.candidate_id(v)} for v in choice.candidates}
        done = [v for v in choice.candidates if by_draw[v]]
        # a candidate with fewer scores than the most scored one is still running (its other seeds or methods):
        # pending, so that it does not narrow everyone's comparison to its few draws
        done = [v for v in done if len(by_draw[v]) == max(len(by_draw[d]) for d in done)]
        if done and not set.intersection(*(set(by_draw[v]) for v in done)):
            done = done[:1]  # nothing shared yet: one candidate's scores, no comparison
        # candidates compared on the same methods, fractions and draws: those every scored candidate has
        common = set.intersection(*(set(by_draw[v]) for v in done)) if done else set()
        scores = {v: [by_draw[v][k] for k in sorted(common)] if v in done else [] for v in choice.candidates}
        if not done or (len(done) < len(choice.candidates) and not self.config.partial):
            return None
        grid = [{"value": list(v) if isinstance(v, tuple) else v, "val_macro_f1": float(np.mean(scores[v])),
                 "n": len(scores[v])} if scores[v] else {"value": list(v) if isinstance(v, tuple) else v,
                                                        "pending": True} for v in choice.candidates]
        if choice.pretrain:  # what each candidate costs beside what it scores
            for entry, experiment in zip(grid, choice.experiments()):
                entry.update(self.pretrain_seconds(experiment))
        best = max(done, key=lambda v: np.mean(scores[v])) if len(done) > 1 else chosen  # one: no choice yet
        if best != chosen and not self.config.partial:
            raise UserError(f"{name}: the best on val is now {best}, not the study's {chosen}: set {choice.where} "
                            f"to {best} and run again")
        return {"choice": choice.name, "method": method,
                "chosen": list(chosen) if isinstance(chosen, tuple) else chosen,
                "best_on_val": list(best) if isinstance(best, tuple) else best, "disagrees": best != chosen,
                "pending": len(done) < len(choice.candidates), "grid": grid,
                "methods": {m: list(modes) for m, modes in choice.methods.items() if method in (None, m)},
                "fractions": list(choice.fractions), "where": choice.where}

    def pretrain_seconds(self, experiment):
        """{"pretrain_seconds": median over its seeds' finished pretrainings} of an experiment's encoder, or {}:
        each run's epochs' training seconds summed from metrics.jsonl (or a unit record's copy of them, once
        the run folder is gone), so a resumed run counts every epoch (its summary's train_seconds holds the
        last process's share only)."""
        seconds = []
        for seed in experiment.seeds(self.config):
            config = self.encoder_config(experiment, seed)[0]
            if finished(config.run_dir(), config, RunFolder.SUMMARY):
                seconds.append(sum(seconds_by_epoch(config.run_dir()).values()) or None)
                continue
            for path in sorted((self.records_dir / experiment.id).glob(f"seed{seed}_*.json")):
                record = json.loads(path.read_text())  # the run folder is gone: a unit's record of its encoder
                if matches(record["encoder_config"], config):
                    seconds.append(sum(record["pretrain_seconds_by_epoch"].values()) or None)
                    break
        seconds = [s for s in seconds if s is not None]
        return {"pretrain_seconds": round(float(np.median(seconds)), 1)} if seconds else {}

    def report(self, claims=CLAIMS, title="UCI HAR study: the default MTL encoder against the field's baselines"):
        """downstream.json and downstream.md in the results folder; study_summary.json, results.md and the
        figures in the figures folder; docs/results.md's block and the README's headline table. Returns the
        aggregated table."""
        rows, val_rows, units, seconds = self.rows()
        if not rows and not val_rows:  # a part of choices only (tuning, search) reports their val scores alone
            raise UserError(f"no unit of the study has finished yet under {self.out}: run it first")
        table = aggregate(rows)
        present = {(r["method"], r["mode"]) for r in rows}
        if not self.whole:  # a subset's report: the claims it can answer alone; the whole study's: all
            claims = [c for c in claims if {tuple(m) for m in [c["a"], *c.get("b_best_of", [c.get("b")])]} <= present]
        claims = evaluate_claims(rows, claims, partial=bool(self.config.partial))
        choices = self.choices(val_rows)
        record = {"config": config_to_dict(self.config), "rows": table, "claims": claims, "choices": choices,
                  "units": units, "seconds_per_epoch": seconds,
                  "wall_seconds": round(sum(u["seconds"] for u in units), 1)}
        self.results.mkdir(parents=True, exist_ok=True)
        self.figures.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.results / "downstream.json", record)
        lines = [f"# {title}", "",
                 f"Macro-F1 on the test subjects: mean ± sd over pretraining seeds [sd over label draws within a "
                 f"seed] (seeds x draws). Units: {sum(u['scored_on'] == 'test' for u in units)} scored on the test "
                 f"subjects, {sum(u['scored_on'] == 'val' for u in units)} on val (the choices); "
                 f"{record['wall_seconds'] / 3600:.1f} h of classification on this machine.", ""]
        if self.stale:
            lines += [f"Not counted: {len(self.stale)} units that ran with settings the study has changed since "
                      f"(they run again).", ""]
        if not rows:
            lines += ["No unit of this part is scored on the test subjects: it holds choices made on val only."]
        lines += score_table([r for r in table if "/" not in r["method"]]) if rows else []
        for prefix in sorted({r["method"].split("/")[0] for r in table if "/" in r["method"]}):
            lines += ["", f"{prefix}:", ""]
            lines += score_table([dict(r, method=r["method"].split("/", 1)[1]) for r in table
                                  if r["method"].startswith(prefix + "/")])
        if claims:
            lines += ["", "Claims, paired by seed and draw (per-seed mean difference, 95% t-interval over seeds):", ""]
            lines += claims_table(claims)
        if any(r["method"] == method for r in rows for _, method, _ in SCALING_CURVE[:1]):
            lines += ["", "Unlabelled data: the default recipe pretrained on a share of the train subjects' recordings "
                          "(drawn by the pretraining seed), on all of them (the default) and on 4x their windows (a "
                          "step of 8 samples, 15 epochs: the default's optimiser steps); linear probe, mean test "
                          "macro-F1 and its paired difference to MiniRocket's probe on the same draws (figure "
                          "unlabelled_scaling.png):", ""]
            lines += scaling_table(rows, SCALING_CURVE, SCALING_OPPONENT, SCALING_FRACTIONS)
            draw_scaling_figure(rows, SCALING_CURVE, SCALING_OPPONENT, SCALING_FRACTIONS,
                                self.figures / "unlabelled_scaling.png")
        lines += ["", "Seconds per label draw (one fit and its scoring, median; loaded 2-core CPU):", ""]
        lines += time_table(rows or val_rows, units)
        for choice in choices:
            grid = "; ".join(f"{g['value']} -> " + ("pending" if g.get("pending") else f"{g['val_macro_f1']:.3f}")
                             + (f" ({g['pretrain_seconds']:.0f} s pretraining)" if "pretrain_seconds" in g else "")
                             for g in choice["grid"])
            finished_candidates = sum(not g.get("pending") for g in choice["grid"])
            what = (f"the study ran {choice['chosen']}, val prefers {choice['best_on_val']} so far: set "
                    f"{choice['where']} and run its units again" if choice["disagrees"] else
                    f"running, {finished_candidates} of {len(choice['grid'])} candidates scored"
                    if finished_candidates < 2 else f"{choice['chosen']}" + (" (so far)" if choice["pending"] else ""))
            lines += ["", f"Chosen on the val subjects: {choice['choice']}"
                      + (f" for {choice['method']}" if choice["method"] else "") + f": {what} (mean val macro-F1 of "
                      f"{', '.join(choice['methods'])} at {', '.join(f'{100 * f:g}%' for f in choice['fractions'])}: "
                      f"{grid})"]
        atomic_write_text(self.results / "downstream.md", "\n".join(lines) + "\n")
        atomic_write_text(self.figures / "results.md", "\n".join(lines) + "\n")
        keep = ("method", "mode", "fraction", "macro_f1_mean", "macro_f1_std", "n_pretrain_seeds", "n_label_draws",
                "macro_f1_sd_draws")
        atomic_write_json(self.figures / "study_summary.json", {
            "pretrain_seeds": list(self.config.pretrain_seeds), "label_draws": self.config.draws,
            "default_method": DEFAULT, "rows": [{k: r[k] for k in keep} for r in table], "claims": claims,
            "choices": choices})
        draw_figures(table, CURVES, self.figures, seconds={k: seconds[k] for k in WEIGHTING_FIGURE[1] if k in seconds},
                     weighting_path=WEIGHTING_FIGURE[0],
                     band="macro_f1_sd_draws" if len(self.config.pretrain_seeds) == 1 else "macro_f1_std")
        if self.results_page is not None:
            write_readme_block(self.results_page, lines[2:])
        if self.readme is not None:
            write_readme_block(self.readme, headline_table(table, HEADLINE, HEADLINE_COLUMNS),
                               (HEADLINE_BEGIN, HEADLINE_END))
        print("\n".join(lines))
        return table

    def draw_model_figures(self):
        """The figures drawn from a model rather than from results: t-SNE of the default encoder's test
        embeddings (beside the raw windows and expert features) and the architecture."""
        run = self.encoder(EXPERIMENTS[0], self.config.pretrain_seeds[0])
        test = HARTask(HARPretrainConfig(data_source=self.config.data_source)).uci("test")
        model_args, state_dict = load_pretrained_encoder(Path(run) / "encoder.pt")
        representations = {"raw": test.x, "features": test.features,
                           "embeddings": embed(rebuild_encoder(model_args, state_dict), test.x).numpy()}
        plot_tsne(representations, test.y, ACTIVITY_NAMES, str(self.figures / "tsne_all_activity_{}.png"))
        plot_architecture(HARTask(HARPretrainConfig()).model(), list(WEIGHTINGS), self.figures / "MTL-architecture.png",
                          input_label="sensor window\n9 x 128")
