"""Regenerate the HAR results: a study over pretraining seeds in resumable parts, or the quick main job.

Usage:
    python HAR_centralized/reproduce.py --quick 1            # the main job (make demo): one seed, < 10 min
    python HAR_centralized/reproduce.py --part weighting_loss      # one part of the study; each ends by
    python HAR_centralized/reproduce.py --part weighting_gradient  #   writing resources/study/<part>.json
    python HAR_centralized/reproduce.py --part tasks
    python HAR_centralized/reproduce.py --part baselines
    python HAR_centralized/reproduce.py --part data
    python HAR_centralized/reproduce.py --part federated
    python HAR_centralized/reproduce.py --part hapt12        # HAPT's 12 classes: default encoder vs baselines
    python HAR_centralized/reproduce.py --part summary       # merge the parts: figures, results.md,
                                                             #   resources/study_summary.json
    python HAR_centralized/reproduce.py                      # every part, then the summary (hours on 2 cores)
Every encoder is pretrained with each of --pretrain_seeds and probed with --seeds label subsets per fraction;
results are reported as mean +- std over pretraining seeds (label seeds averaged inside), and claims as
paired differences with 95% intervals. A finished run is reused only when the sources it depends on are
unchanged (their digest is in its provenance.json); a killed one is resumed.
"""
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

from common.classification import load_pretrained_encoder, run_classification
from common.config import config_to_dict, field, parse_config
from common.encoders import embed
from common.errors import UserError, exit_on_user_error
from common.evaluation import markdown_table, rebuild_encoder
from common.har_task import HARClassifierDataConfig, HARDataConfig, har_client_datasets, har_labelled_splits, har_model, har_pretrain_data
from common.io import atomic_write_json, atomic_write_text
from common.paths import REPO_ROOT
from common.plots import plot_architecture, plot_label_efficiency, plot_tsne, plot_weighting_study
from common.provenance import source_digest
from common.run_folder import RunFolder
from common.tasks import SEED_TASKS
from common.training import pretrain
from common.weighting import WEIGHTINGS
from data_processing.har import ACTIVITY_NAMES, load_har
from HAR_centralized.config import HARClassifierConfig, HARPretrainConfig
from HAR_centralized.study import DEMO_EXPERIMENTS, StudyConfig
from HAR_centralized.study import Study as DownstreamStudy
from HAR_federated.config import FederatedConfig
from HAR_federated.run import run_local

PARTS = ("weighting_loss", "weighting_gradient", "tasks", "baselines", "data", "federated", "hapt12")
# the weighting study in two parts of under an hour each on 2 cores: methods that weight the losses, and
# methods that look at the tasks' gradients (a backward pass per task: slower)
WEIGHTING_PARTS = {"weighting_loss": ("equal", "static", "uncertainty", "dwa", "famo"),
                   "weighting_gradient": ("gradnorm", "cagrad", "upgrad")}
DEFAULT_WEIGHTING = HARPretrainConfig().weighting
DEFAULT = f"MTL {DEFAULT_WEIGHTING}"
HAPT12 = "HAPT-12: "  # the methods of the 12-class benchmark are named with this prefix
# static weights (augmentation, reconstruction, contrastive, features) tried on the val subjects: the losses
# differ in scale by ~100x (masked MSE ~0.05, features ~0.02, cross-entropies ~1-2), so the grid up-weights
# the small ones
STATIC_GRID = ((1, 10, 1, 10), (1, 30, 1, 30), (1, 10, 2, 30), (0.5, 30, 1, 30))
# the sources each kind of result depends on: a change elsewhere does not make it stale
SOURCES = {"pretrain": ("common.training", "common.har_task"), "classify": ("common.classification", "common.har_task"),
           "federated": ("HAR_federated.run", "common.har_task")}
TARGETS = {("linear", 0.01): 0.90, ("linear", 0.1): 0.95, ("linear", 1.0): 0.96, ("finetune", 1.0): 0.97}


@dataclasses.dataclass
class ReproduceConfig:
    quick: int = field(0, "1: the main job: the downstream study's default row at one seed (HAR_centralized/study.py)")
    part: str = field("all", "which part of the study to run", choices=("all", *PARTS, "summary"))
    pretrain_seeds: tuple[int, ...] = field((42, 43, 44), "pretraining seeds of every encoder of the study")
    seeds: int = field(3, "label subsets (and classifier inits) per fraction, inside each pretraining seed")
    label_fractions: tuple[float, ...] = field((0.01, 0.1, 1.0), "shares of the train labels")
    pretrain_flags: str = field("", "extra train_encoder.py flags for every pretraining, as NAME=VALUE words "
                                    "(e.g. \"epochs=5 encoder_width=16\" for a smoke run)")
    classifier_flags: str = field("", "--quick 1: extra train_classifier.py flags, as NAME=VALUE words")
    demo_fractions: tuple[float, ...] = field((0.01, 0.1), "--quick 1: the probed methods' label fractions")
    demo_network_fractions: tuple[float, ...] = field((0.01,), "--quick 1: the gradient-trained methods' fractions")
    data_source: str = field("auto", "UCI HAR source")
    output_dir: str = field("", "runs; empty: HAR_centralized/outputs/reproduce (or /demo)")
    study_dir: str = field("", "the parts' results files; empty: resources/study (or <output_dir>/study)")
    figures_dir: str = field("", "figures, results.md, study_summary.json; empty: resources/ (or <output_dir>/figures)")

    def validate(self):
        if self.seeds < 1 or not self.pretrain_seeds:
            raise UserError("--seeds must be at least 1 and --pretrain_seeds name at least one seed")
        if any(not 0 < f <= 1 for f in self.label_fractions):
            raise UserError("--label_fractions must be in (0, 1]")
        for name in ("pretrain_flags", "classifier_flags"):
            if any("=" not in word for word in getattr(self, name).split()):
                raise UserError(f"--{name} takes NAME=VALUE words, got {getattr(self, name)!r}")


class Study:
    """Pretrains, probes and records; every step reuses what a previous invocation finished."""

    def __init__(self, config):
        self.config = config
        quick = bool(config.quick)
        self.out = Path(config.output_dir) if config.output_dir else REPO_ROOT / "HAR_centralized" / "outputs" / (
            "demo" if quick else "reproduce")
        self.study_dir = Path(config.study_dir) if config.study_dir else (
            self.out / "study" if quick else REPO_ROOT / "resources" / "study")
        self.figures = Path(config.figures_dir) if config.figures_dir else (
            self.out / "figures" if quick else REPO_ROOT / "resources")
        self.digests = {kind: source_digest(*roots) for kind, roots in SOURCES.items()}
        self._splits = None

    def extra_flags(self):
        flags = []
        for word in self.config.pretrain_flags.split():
            name, _, value = word.partition("=")
            flags += [f"--{name}", *value.split(",")]
        return flags

    @property
    def splits(self):
        if self._splits is None:
            self._splits = har_labelled_splits(HARDataConfig(data_source=self.config.data_source))
        return self._splits

    # ------------------------------------------------------------------ pretraining
    def _trained(self, what, config, digest, train):
        """The run folder of `config` once trained by train(config): reused when finished by the same sources
        and config, resumed when killed, trained again over a run of other code or flags."""
        run = RunFolder(config.run_dir())
        settings = {k: v for k, v in json.loads(json.dumps(config_to_dict(config))).items() if k not in ("resume", "overwrite")}
        wanted = {"source_digest": digest, "config": settings}
        recorded = json.loads((run / "provenance.json").read_text()) if (run / "provenance.json").exists() else {}
        same = recorded.get("source_digest") == digest and settings == {
            k: v for k, v in recorded.get("config", {}).items() if k not in ("resume", "overwrite")}
        if same and (run / run.SUMMARY).exists():
            print(f"[{what}] reusing {run.path}")
            return run.path
        if not same:  # another code version or config left this folder: start it again
            config = dataclasses.replace(config, resume=0, overwrite=1)
        print(f"[{what}] pretraining -> {run.path}")
        run.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run / "provenance.json", wanted)
        train(config)
        return run.path

    def pretrain(self, label, flags, seed):
        """The finished run of `label` (flags) and seed: reused, resumed, or trained."""
        name = "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")
        base = ["--experiment_name", name, "--output_dir", str(self.out / "runs"), "--seed", str(seed),
                "--data_source", self.config.data_source]
        config = parse_config(HARPretrainConfig, flags + self.extra_flags() + base + ["--resume", "1"])
        return self._trained(f"{label}, seed {seed}", config, self.digests["pretrain"],
                             lambda config: pretrain(config, har_pretrain_data(config)))

    def federated(self, seed):
        config = parse_config(FederatedConfig, ["--output_dir", str(self.out / "runs"), "--seed", str(seed),
                                                "--data_source", self.config.data_source, "--experiment_name",
                                                "federated", "--resume", "1"])
        return self._trained(f"federated, seed {seed}", config, self.digests["federated"],
                             lambda config: run_local(config, har_client_datasets(config)))

    # ------------------------------------------------------------------ evaluation
    def classify(self, encoder_dir, out, methods, modes, splits=None, extra=(), scored_on="test"):
        """run_classification (on `splits`, default UCI HAR's), reused when its config, encoder and sources
        are unchanged: summary rows. scored_on names what splits.test holds."""
        config = parse_config(HARClassifierConfig, [
            "--encoder", str(encoder_dir), "--output_dir", str(out), "--seeds", str(self.config.seeds),
            "--data_source", self.config.data_source, "--label_fractions", *map(str, self.config.label_fractions),
            "--methods", *methods, "--modes", *modes, "--probe", "logistic:1", *extra])
        wanted = {"source_digest": self.digests["classify"], "config": json.loads(json.dumps(config_to_dict(config))),
                  "encoder_mtime": Path(encoder_dir, "encoder.pt").stat().st_mtime_ns,
                  "scored_on": scored_on}
        provenance = Path(out) / "provenance.json"
        if provenance.exists() and json.loads(provenance.read_text()) == wanted and (Path(out) / "results.csv").exists():
            return json.loads((Path(out) / "summary.json").read_text())["summary"]
        _, summary, _ = run_classification(config, splits or self.splits)
        atomic_write_json(provenance, wanted)
        return summary

    def rows(self, label, seed, summary, rename=None):
        return [{"method": (rename or {}).get(s["method"], label), "mode": s["mode"], "fraction": s["fraction"],
                 "pretrain_seed": seed, "macro_f1": s["macro_f1_mean"], "accuracy": s["accuracy_mean"],
                 "label_seed_std": s["macro_f1_std"]} for s in summary]

    def probe_encoder(self, label, flags, seeds=None, modes=("linear",)):
        rows, runs = [], {}
        for seed in seeds or self.config.pretrain_seeds:
            run = self.pretrain(label, flags, seed)
            runs[seed] = run
            rows += self.rows(label, seed, self.classify(run, run / "classifier", ("encoder",), modes))
        return rows, runs

    # ------------------------------------------------------------------ parts
    def weighting_part(self, weightings):
        extra = {}
        if "static" in weightings:
            static = self.tune_static_weights()
            extra = {"static_weights": list(static), "static_grid": self._grid}
        rows, seconds = [], {}
        for weighting in weightings:
            flags = ["--weighting", weighting] + (["--task_weights", *map(str, static)] if weighting == "static" else [])
            part_rows, runs = self.probe_encoder(f"MTL {weighting}", flags)
            rows += part_rows
            seconds[f"MTL {weighting}"] = [epoch_seconds(run) for run in runs.values()]
        return rows, {"seconds_per_epoch": seconds, **extra}

    def part_weighting_loss(self):
        return self.weighting_part(WEIGHTING_PARTS["weighting_loss"])

    def part_weighting_gradient(self):
        return self.weighting_part(WEIGHTING_PARTS["weighting_gradient"])

    def tune_static_weights(self):
        """The static weights whose encoder (first pretraining seed) probes best on the val subjects at 10%
        labels: chosen without looking at a test subject."""
        on_val = dataclasses.replace(self.splits, test=self.splits.val)
        self._grid = []
        for weights in STATIC_GRID:
            label = "static grid " + " ".join(map(str, weights))
            run = self.pretrain(label, ["--weighting", "static", "--task_weights", *map(str, weights)],
                                self.config.pretrain_seeds[0])
            summary = self.classify(run, run / "classifier_val", ("encoder",), ("linear",), on_val,
                                    ["--label_fractions", "0.1"], scored_on="val")
            self._grid.append({"weights": list(weights), "val_macro_f1": summary[0]["macro_f1_mean"]})
        best = max(self._grid, key=lambda g: g["val_macro_f1"])
        print(f"static weights chosen on the val subjects: {best['weights']} (val macro-F1 {best['val_macro_f1']:.3f})")
        return tuple(best["weights"])

    def part_tasks(self):
        rows = []
        for i, task in enumerate(SEED_TASKS):
            rows += self.probe_encoder(f"STL {task}", ["--model_heads", *("1" if i == j else "0" for j in range(4))])[0]
        return rows, {}

    def part_baselines(self):
        """The default MTL encoder fine-tuned (LP-FT); supervised from scratch with one init seed per
        pretraining seed (paired with them); logistic regression on the expert features and raw windows."""
        rows = self.probe_encoder(DEFAULT, [], modes=("finetune",))[0]
        rename = {"supervised": "supervised", "expert_features": "expert_features", "raw": "raw"}
        for seed in self.config.pretrain_seeds:
            run = self.pretrain(DEFAULT, [], seed)  # the encoder only fixes the architecture of supervised
            methods = ("supervised", "expert_features", "raw") if seed == self.config.pretrain_seeds[0] else ("supervised",)
            summary = self.classify(run, run / "classifier_baselines", methods, ("linear", "finetune"),
                                    extra=["--init_seed", str(seed)])
            rows += self.rows(None, seed, summary, rename)
        return rows, {}

    def part_data(self):
        rows, windows = [], {}
        for label, flags in ((f"{DEFAULT} + all recordings", ["--pretrain_data", "all"]),
                             (f"{DEFAULT} + all recordings, step 32", ["--pretrain_data", "all", "--pretrain_step", "32"])):
            part_rows, runs = self.probe_encoder(label, flags)
            rows += part_rows
            windows[label] = json.loads((next(iter(runs.values())) / "summary.json").read_text())["windows"]
        windows[DEFAULT] = json.loads((self.pretrain(DEFAULT, [], self.config.pretrain_seeds[0]) / "summary.json")
                                      .read_text())["windows"]
        return rows, {"windows": windows}

    def part_federated(self):
        rows, seconds = [], []
        for seed in self.config.pretrain_seeds:
            run = self.federated(seed)
            rows += self.rows("federated", seed, self.classify(run, run / "classifier", ("encoder",), ("linear",)))
            seconds.append(json.loads((run / "summary.json").read_text())["train_seconds"])
        return rows, {"train_seconds": seconds}

    def part_hapt12(self):
        """HAPT's 12 classes (6 activities + 6 postural transitions) from the same recordings: the default
        encoder (linear, LP-FT) against supervised from scratch (paired init seeds) and expert features."""
        splits = har_labelled_splits(HARClassifierDataConfig(data_source=self.config.data_source, task="hapt12"))
        rows = []
        for seed in self.config.pretrain_seeds:
            run = self.pretrain(DEFAULT, [], seed)
            methods = ("encoder", "supervised") + (("expert_features",) if seed == self.config.pretrain_seeds[0] else ())
            summary = self.classify(run, run / "classifier_hapt12", methods, ("linear", "finetune"), splits,
                                    ["--init_seed", str(seed), "--task", "hapt12"], scored_on="hapt12 test")
            rows += self.rows(None, seed, summary, {"encoder": f"{HAPT12}{DEFAULT}", "supervised": f"{HAPT12}supervised",
                                                    "expert_features": f"{HAPT12}expert_features"})
        return rows, {"classes": 12, "windows": {name: len(getattr(splits, name)["y"]) for name in ("train", "val", "test")}}

    def run_part(self, part):
        start = time.time()
        rows, extra = getattr(self, f"part_{part}")()
        record = {"part": part, "commit": RunFolder(self.out).commit, "source_digests": self.digests,
                  "config": config_to_dict(self.config), "wall_seconds": round(time.time() - start, 1),
                  "rows": rows, **extra}
        atomic_write_json(self.study_dir / f"{part}.json", record)
        print(f"part {part}: {len(rows)} rows in {record['wall_seconds'] / 60:.1f} min -> {self.study_dir / part}.json")

    # ------------------------------------------------------------------ summary
    def summary(self):
        parts = {p: json.loads((self.study_dir / f"{p}.json").read_text()) for p in PARTS
                 if (self.study_dir / f"{p}.json").exists()}
        if not parts:
            raise UserError(f"no part of the study has finished yet in {self.study_dir}: run --part NAME first")
        rows = [r for part in parts.values() for r in part["rows"]]
        table = aggregate(rows)
        claims = paired_claims(rows, self.config.label_fractions)
        self.figures.mkdir(parents=True, exist_ok=True)
        summary = {"pretrain_seeds": list(self.config.pretrain_seeds), "label_seeds": self.config.seeds,
                   "default_method": DEFAULT, "parts": {p: {"commit": v["commit"], "wall_seconds": v["wall_seconds"]}
                                                        for p, v in parts.items()},
                   "rows": [{k: r[k] for k in ("method", "mode", "fraction", "macro_f1_mean", "macro_f1_std",
                                               "n_pretrain_seeds")} for r in table],
                   "claims": claims}
        atomic_write_json(self.figures / "study_summary.json", summary)
        self.draw(table, parts)
        lines = results_markdown(table, claims, parts, self.config)
        atomic_write_text(self.figures / "results.md", "\n".join(lines) + "\n")
        print("\n".join(lines))
        print(f"\nfigures, results.md and study_summary.json in {self.figures}")

    def draw(self, table, parts):
        bands = [dict(r, label=f"{r['method']} ({r['mode']})") for r in table]
        curves = [(f"{DEFAULT} (linear)", {"color": "C3", "linewidth": 2.5}),
                  (f"{DEFAULT} (finetune)", {"color": "C3", "linestyle": "--"})]
        curves += [(f"STL {t} (linear)", {"linewidth": 1.2, "color": c}) for t, c in zip(SEED_TASKS, ("C0", "C1", "C2", "C9"))]
        curves += [("supervised (finetune)", {"color": "k", "linestyle": ":"}), ("expert_features (linear)", {"color": "0.5"})]
        n = len(self.config.pretrain_seeds)
        plot_label_efficiency(bands, curves, self.figures / "MTL-vs-STL.png",
                              title=f"UCI HAR: mean ± std over {n} pretraining seeds")
        seconds = {m: v for p in WEIGHTING_PARTS if p in parts for m, v in parts[p]["seconds_per_epoch"].items()}
        if seconds:
            plot_weighting_study(table, seconds, self.figures / "weighting.png")
        if "federated" in parts:
            plot_label_efficiency(bands, [(f"{DEFAULT} (linear)", {"color": "C3", "linewidth": 2}),
                                          ("federated (linear)", {"color": "C0", "linewidth": 2})],
                                  self.figures / "FL.png", title="Federated vs centralized pretraining, frozen encoder")
        default_run = self.pretrain(DEFAULT, [], self.config.pretrain_seeds[0])
        test = load_har("test", self.config.data_source)
        model_args, state_dict = load_pretrained_encoder(default_run / "encoder.pt")
        representations = {"raw": test.x, "features": test.features,
                           "embeddings": embed(rebuild_encoder(model_args, state_dict), test.x).numpy()}
        self.quality = plot_tsne(representations, test.y, ACTIVITY_NAMES, str(self.figures / "tsne_all_activity_{}.png"))
        plot_architecture(har_model(HARPretrainConfig()), list(WEIGHTINGS), self.figures / "MTL-architecture.png",
                          input_label="sensor window\n9 x 128")


def epoch_seconds(run):
    """Median seconds per pretraining epoch of a run (its metrics rows)."""
    rows = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return float(np.median([r["seconds"] for r in rows]))


def aggregate(rows):
    """Mean and std over pretraining seeds of each (method, mode, fraction); label seeds are averaged inside."""
    groups = {}
    for r in rows:
        groups.setdefault((r["method"], r["mode"], round(r["fraction"], 6)), []).append(r["macro_f1"])
    table = []
    for (method, mode, fraction), values in groups.items():
        table.append({"method": method, "mode": mode, "fraction": fraction, "macro_f1_mean": float(np.mean(values)),
                      "macro_f1_std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                      "n_pretrain_seeds": len(values)})
    return sorted(table, key=lambda r: (r["method"], r["mode"], r["fraction"]))


def paired_difference(rows, a, b, fraction):
    """a minus b (each (method, mode)) at `fraction`, paired by pretraining seed: mean, 95% interval, n."""
    def by_seed(method, mode):
        return {r["pretrain_seed"]: r["macro_f1"] for r in rows
                if (r["method"], r["mode"]) == (method, mode) and round(r["fraction"], 6) == round(fraction, 6)}

    first, second = by_seed(*a), by_seed(*b)
    if len(second) == 1 and len(first) > 1:  # a deterministic baseline (logistic on features): the same every seed
        second = {seed: next(iter(second.values())) for seed in first}
    seeds = sorted(set(first) & set(second))
    if not seeds:
        return None
    diffs = np.array([first[s] - second[s] for s in seeds])
    half = float(stats.t.ppf(0.975, len(diffs) - 1) * diffs.std(ddof=1) / np.sqrt(len(diffs))) if len(diffs) > 1 else float("nan")
    return {"mean": float(diffs.mean()), "ci95": [float(diffs.mean() - half), float(diffs.mean() + half)],
            "n": len(diffs), "holds": bool(len(diffs) > 1 and diffs.mean() - half > 0)}


def paired_claims(rows, fractions):
    """The README's claims as paired differences over pretraining seeds."""
    methods = {(r["method"], r["mode"]) for r in rows}
    claims = []

    def add(claim, a, b, fraction):
        if a in methods and b in methods:
            result = paired_difference(rows, a, b, fraction)
            if result:
                claims.append({"claim": claim, "fraction": fraction, **result})

    for fraction in fractions:
        stl = [(m, mode) for m, mode in methods if m.startswith("STL ") and mode == "linear"]
        if stl:
            best = max(stl, key=lambda k: np.mean([r["macro_f1"] for r in rows if (r["method"], r["mode"]) == k
                                                   and round(r["fraction"], 6) == round(fraction, 6)] or [0]))
            add(f"{DEFAULT} (linear) - best STL ({best[0]})", (DEFAULT, "linear"), best, fraction)
        add(f"{DEFAULT} (linear) - supervised", (DEFAULT, "linear"), ("supervised", "finetune"), fraction)
        add(f"{DEFAULT} (finetune) - supervised", (DEFAULT, "finetune"), ("supervised", "finetune"), fraction)
        add(f"{DEFAULT} (finetune) - {DEFAULT} (linear)", (DEFAULT, "finetune"), (DEFAULT, "linear"), fraction)
        add(f"{DEFAULT} (linear) - expert features", (DEFAULT, "linear"), ("expert_features", "linear"), fraction)
        for weighting in WEIGHTINGS:
            if weighting != "equal":
                add(f"MTL {weighting} - MTL equal", (f"MTL {weighting}", "linear"), ("MTL equal", "linear"), fraction)
        add("all recordings - labelled windows", (f"{DEFAULT} + all recordings", "linear"), (DEFAULT, "linear"), fraction)
        add("federated - centralized", ("federated", "linear"), (DEFAULT, "linear"), fraction)
        add(f"{HAPT12}{DEFAULT} (linear) - supervised", (f"{HAPT12}{DEFAULT}", "linear"),
            (f"{HAPT12}supervised", "finetune"), fraction)
        add(f"{HAPT12}{DEFAULT} (finetune) - supervised", (f"{HAPT12}{DEFAULT}", "finetune"),
            (f"{HAPT12}supervised", "finetune"), fraction)
        add(f"{HAPT12}{DEFAULT} (linear) - expert features", (f"{HAPT12}{DEFAULT}", "linear"),
            (f"{HAPT12}expert_features", "linear"), fraction)
    return claims


def score_table(table):
    """Markdown rows (method, mode) x label fractions: mean ± std over pretraining seeds (n)."""
    fractions = sorted({r["fraction"] for r in table})
    lines = ["| method | mode | " + " | ".join(f"{100 * f:g}%" for f in fractions) + " |",
             "|---|---|" + "---|" * len(fractions)]
    cells = {(r["method"], r["mode"], r["fraction"]): r for r in table}
    for method, mode in dict.fromkeys((r["method"], r["mode"]) for r in table):
        values = [cells.get((method, mode, f)) for f in fractions]
        lines.append(f"| {method} | {mode} | " + " | ".join(
            f"{v['macro_f1_mean']:.3f} ± {v['macro_f1_std']:.3f} ({v['n_pretrain_seeds']})" if v else "" for v in values) + " |")
    return lines


def results_markdown(table, claims, parts, config):
    lines = ["# UCI HAR results: the study", "",
             f"Pretraining seeds {', '.join(map(str, config.pretrain_seeds))}; {config.seeds} label subsets per "
             f"fraction inside each; macro-F1 on the test subjects, mean ± std over pretraining seeds (n). "
             f"Parts: " + ", ".join(f"{p} ({v['wall_seconds'] / 60:.0f} min, commit {str(v['commit'])[:8]})"
                                    for p, v in parts.items()) + ".", ""]
    lines += score_table([r for r in table if not r["method"].startswith(HAPT12)])
    hapt12 = [r for r in table if r["method"].startswith(HAPT12)]
    if hapt12:
        lines += ["", "HAPT's 12 classes (6 activities + 6 postural transitions, the same subjects and recordings; "
                      "macro-F1 over the 12 classes):", ""]
        lines += score_table([dict(r, method=r["method"][len(HAPT12):]) for r in hapt12])
    lines += ["", "Claims, paired over pretraining seeds (difference in macro-F1, 95% t-interval; holds = the "
              "interval is above 0):", "", "| claim | labels | difference | 95% interval | n | holds |",
              "|---|---|---|---|---|---|"]
    for c in claims:
        lines.append(f"| {c['claim']} | {100 * c['fraction']:g}% | {c['mean']:+.3f} | [{c['ci95'][0]:+.3f}, "
                     f"{c['ci95'][1]:+.3f}] | {c['n']} | {'yes' if c['holds'] else 'no'} |")
    lines += ["", "Targets (linear probe and LP-FT of the default recipe, mean over pretraining seeds):", "",
              "| target | reached |", "|---|---|"]
    cells = {(r["method"], r["mode"], r["fraction"]): r for r in table}
    for (mode, fraction), target in TARGETS.items():
        reached = cells.get((DEFAULT, mode, fraction))
        lines.append(f"| {mode} {100 * fraction:g}% >= {target:.2f} | "
                     + (f"{reached['macro_f1_mean']:.3f} ({'yes' if reached['macro_f1_mean'] >= target else 'no'})"
                        if reached else "not run") + " |")
    seconds = {m: v for p in WEIGHTING_PARTS if p in parts for m, v in parts[p]["seconds_per_epoch"].items()}
    if seconds:
        lines += ["", "Seconds per pretraining epoch (median over epochs, each pretraining seed):", ""]
        lines += [f"- {m}: " + ", ".join(f"{s:.2f}" for s in v) for m, v in seconds.items()]
    if "static_weights" in parts.get("weighting_loss", {}):
        grid = parts["weighting_loss"]["static_grid"]
        lines += ["", f"Static weights chosen on the val subjects: {parts['weighting_loss']['static_weights']} (grid: "
                  + "; ".join(f"{g['weights']} -> {g['val_macro_f1']:.3f}" for g in grid) + ")"]
    if "data" in parts:
        lines += ["", "Pretraining windows: " + ", ".join(f"{k}: {v}" for k, v in parts["data"]["windows"].items())]
    return lines


def quick(config):
    """The main job: the downstream study's default row at one pretraining seed and a few label draws: the
    default MTL encoder (probe, self-training, LP-FT, FixMatch, hybrids) against MiniRocket, supervised from
    scratch (plain and FixMatch) and the expert features, at few labels. To stay near 10 minutes on 2 cores:
    1% and 10% labels (the networks at 1%), and one probe for all, ridge, the study's most frequent choice on
    val at few labels, instead of the choice on val."""
    out = Path(config.output_dir) if config.output_dir else REPO_ROOT / "HAR_centralized" / "outputs" / "demo"
    figures = Path(config.figures_dir) if config.figures_dir else out / "figures"
    seed = config.pretrain_seeds[0]
    study = DownstreamStudy(StudyConfig(
        pretrain_seeds=(seed,), draws=config.seeds, full_draws=1, label_fractions=config.demo_fractions,
        network_fractions=config.demo_network_fractions, classifier_flags="probe=ridge " + config.classifier_flags,
        pretrain_flags=config.pretrain_flags, data_source=config.data_source, output_dir=str(out),
        results_dir=str(figures)), DEMO_EXPERIMENTS)
    study.run()
    table = study.report(claims=(), title=f"UCI HAR: the main job (pretraining seed {seed}, {config.seeds} label "
                                          f"draws per fraction)")
    # one pretraining seed: the band is the spread over label draws
    bands = [dict(r, label=f"{r['method']} ({r['mode']})", macro_f1_std=r["macro_f1_sd_draws"]) for r in table]
    plot_label_efficiency(bands, [(f"mtl_default ({mode})", {"color": "C3", "linestyle": style, "linewidth": 2})
                                  for mode, style in (("linear", "-"), ("selftrain", "-."), ("finetune", "--"))]
                          + [("mtl_default+minirocket (linear)", {"color": "C1"}),
                             ("minirocket (linear)", {"color": "C0", "linewidth": 2}),
                             ("supervised (finetune)", {"color": "k", "linestyle": ":"}),
                             ("expert_features (linear)", {"color": "0.5"})],
                          figures / "label_efficiency.png", title=f"UCI HAR, pretraining seed {seed}")
    print(f"figures and downstream.md in {figures}")


@exit_on_user_error
def main(argv=None):
    config = parse_config(ReproduceConfig, argv, description="Regenerate the HAR results and figures")
    start = time.time()
    if config.quick:
        quick(config)
    else:
        study = Study(config)
        for part in (PARTS if config.part == "all" else (config.part,) if config.part != "summary" else ()):
            study.run_part(part)
        study.summary()
    print(f"total {(time.time() - start) / 60:.1f} min")


if __name__ == "__main__":
    main(sys.argv[1:])
