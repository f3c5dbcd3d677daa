"""The downstream study as data: which encoders are pretrained, which downstream methods each gets, which
claims compare them; run in resumable units, reported by common/report.py.

Usage:
    python HAR_centralized/study.py                       # run every unit not yet finished, then the report
    python HAR_centralized/study.py --only probes         # the probe units (minutes); then the networks
    python HAR_centralized/study.py --report 1 --partial 1   # the report of what has finished so far

Every unit (an experiment's methods at one pretraining seed) is a train_classifier run in its own folder,
over the same label draws (0..draws-1 at every fraction below 100%, --full_draws at 100%). One rule reuses
a unit or a pretraining: a folder whose recorded config is the wanted one and that finished (a
pretraining's summary.json, a unit's results.csv), comparing config.json without the fields that only say
where a run goes (RUN_ONLY_FIELDS); a killed pretraining resumes from its checkpoint. The
commit of the code behind each folder is in the report. Baselines without pretraining pair with a
pretraining seed through their own init seed (the networks' init, MiniRocket's kernels).
"""
import csv
import dataclasses
import json
import sys
import time
from pathlib import Path

from common.classification import METHOD_MODES, run_classification
from common.config import config_to_dict, field, parse_config
from common.errors import UserError, exit_on_user_error
from common.har_task import har_labelled_splits, har_pretrain_data
from common.io import atomic_write_json, atomic_write_text
from common.paths import REPO_ROOT
from common.report import aggregate, claims_table, evaluate_claims, score_table
from common.run_folder import RunFolder
from common.training import pretrain
from HAR_centralized.config import HARClassifierConfig, HARPretrainConfig
from HAR_centralized.ship_encoder import RUN_ONLY_FIELDS

PROBE_MODES = ("linear", "selftrain")
NETWORK_MODES = ("finetune", "fixmatch")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """An encoder recipe (pretrain: train_encoder.py flags; None: no pretraining, baselines) and the downstream
    methods it gets ({method: modes}). Rows are named `id` for the encoder's embedding, `id+features` and
    `id+minirocket` for its hybrids; baselines keep their method names."""

    id: str
    pretrain: tuple | None
    methods: dict


EXPERIMENTS = (
    Experiment("mtl_default", (), {"encoder": PROBE_MODES + NETWORK_MODES, "encoder+features": PROBE_MODES,
                                   "encoder+minirocket": PROBE_MODES}),
    Experiment("baselines", None, {"minirocket": PROBE_MODES, "expert_features": PROBE_MODES, "raw": ("linear",),
                                   "supervised": NETWORK_MODES, "resnet": NETWORK_MODES}),
)
# the main job (make demo): the same recipe at one seed, without the slowest opponents (ResNet, raw windows)
DEMO_EXPERIMENTS = (
    EXPERIMENTS[0],
    Experiment("baselines", None, {"minirocket": PROBE_MODES, "expert_features": PROBE_MODES,
                                   "supervised": NETWORK_MODES}),
)
FEW_LABELS = (0.01, 0.02, 0.05, 0.1)
# claims: the default encoder's every downstream recipe against each opponent, at every few-label fraction
OPPONENTS = (("minirocket", "linear"), ("minirocket", "selftrain"), ("supervised", "finetune"),
             ("supervised", "fixmatch"), ("resnet", "finetune"), ("resnet", "fixmatch"),
             ("expert_features", "linear"), ("expert_features", "selftrain"))
OURS = (("mtl_default", "linear"), ("mtl_default", "selftrain"), ("mtl_default", "finetune"),
        ("mtl_default", "fixmatch"), ("mtl_default+features", "linear"), ("mtl_default+minirocket", "linear"),
        ("mtl_default+minirocket", "selftrain"))
CLAIMS = tuple({"a": ours, "b": opponent, "fractions": FEW_LABELS} for ours in OURS for opponent in OPPONENTS)


@dataclasses.dataclass
class StudyConfig:
    pretrain_seeds: tuple[int, ...] = field((42, 43, 44), "pretraining seeds (baselines: their init seeds)")
    draws: int = field(20, "label draws per fraction below 100%, the same for every method")
    full_draws: int = field(3, "draws at 100% labels (only the inits differ)")
    label_fractions: tuple[float, ...] = field((0.01, 0.02, 0.05, 0.1, 1.0), "shares of the train labels")
    network_fractions: tuple[float, ...] = field((), "the gradient-trained units' fractions; empty: --label_fractions")
    only: str = field("all", "probes: the probed methods' units (minutes); networks: the gradient-trained ones",
                      choices=("all", "probes", "networks"))
    report: int = field(0, "1: only write the report of the finished units")
    partial: int = field(0, "1: a report with claims whose methods have not finished marked pending")
    classifier_flags: str = field("", "extra train_classifier.py flags for every unit, as NAME=VALUE words "
                                      "(e.g. \"min_steps=20 minirocket_kernels=840\" for a smoke run)")
    pretrain_flags: str = field("", "extra train_encoder.py flags for every pretraining, as NAME=VALUE words")
    data_source: str = field("auto", "UCI HAR source")
    output_dir: str = field("", "runs; empty: HAR_centralized/outputs/study")
    results_dir: str = field("", "the report (study.json, study.md); empty: resources/study")

    def validate(self):
        if self.draws < 1 or self.full_draws < 1 or not self.pretrain_seeds:
            raise UserError("--draws and --full_draws must be at least 1, --pretrain_seeds name a seed")
        for flags in (self.classifier_flags, self.pretrain_flags):
            if any("=" not in word for word in flags.split()):
                raise UserError(f"extra flags are NAME=VALUE words, got {flags!r}")


def as_flags(words):
    flags = []
    for word in words.split():
        name, _, value = word.partition("=")
        flags += [f"--{name}", *value.split(",")]
    return flags


def settings(config):
    """A config as the reuse rule compares it: JSON values, without the fields that say where or how a run
    goes (folder, resume, device) rather than what it computes."""
    return {k: v for k, v in json.loads(json.dumps(config_to_dict(config))).items() if k not in RUN_ONLY_FIELDS}


def finished(folder, config, marker):
    """The one reuse rule: the folder's config.json is this config's (settings()) and the run finished (marker)."""
    recorded = Path(folder) / RunFolder.CONFIG
    return ((Path(folder) / marker).exists() and recorded.exists()
            and {k: v for k, v in json.loads(recorded.read_text()).items() if k not in RUN_ONLY_FIELDS}
            == settings(config))


def plan(config, only, experiments=EXPERIMENTS):
    """[(experiment, seed, method, modes)]: probe units first (minutes), then networks, cheapest first."""
    units = []
    for group in ("probes", "networks"):
        if only not in ("all", group):
            continue
        for experiment in experiments:
            for method, modes in experiment.methods.items():
                wanted = [m for m in modes if (m in PROBE_MODES) == (group == "probes")]
                for mode_group in ([wanted] if group == "probes" else [[m] for m in wanted]):
                    if mode_group:
                        units += [(experiment, seed, method, tuple(mode_group)) for seed in config.pretrain_seeds]
    cost = {"encoder": 0, "supervised": 1, "resnet": 3}
    return sorted(units, key=lambda u: (u[3][0] in NETWORK_MODES, "fixmatch" in u[3], cost.get(u[2], 0)))


class Study:
    def __init__(self, config, experiments=EXPERIMENTS):
        self.config, self.experiments = config, experiments
        self.out = Path(config.output_dir) if config.output_dir else REPO_ROOT / "HAR_centralized" / "outputs" / "study"
        self.results = Path(config.results_dir) if config.results_dir else REPO_ROOT / "resources" / "study"
        self._splits = {}

    def encoder(self, experiment, seed):
        """The run folder of the experiment's encoder at `seed` (baselines: the default's, for its record)."""
        flags = list(experiment.pretrain if experiment.pretrain is not None else EXPERIMENTS[0].pretrain)
        name = experiment.id if experiment.pretrain is not None else EXPERIMENTS[0].id
        pretrain_config = parse_config(HARPretrainConfig, flags + as_flags(self.config.pretrain_flags) + [
            "--experiment_name", name, "--output_dir", str(self.out / "runs"), "--seed", str(seed),
            "--data_source", self.config.data_source, "--resume", "1"])
        run = RunFolder(pretrain_config.run_dir())
        if not finished(run.path, pretrain_config, run.SUMMARY):
            print(f"[{name} seed {seed}] pretraining -> {run.path}")
            if run.holds_a_run() and not run.has_checkpoint():  # finished with another config: start again
                pretrain_config = dataclasses.replace(pretrain_config, resume=0, overwrite=1)
            pretrain(pretrain_config, har_pretrain_data(pretrain_config))
        return run.path

    def unit(self, experiment, seed, method, modes):
        """Run one unit unless finished; its folder."""
        encoder = self.encoder(experiment, seed)
        folder = self.out / "downstream" / experiment.id / f"seed{seed}" / f"{method}_{'_'.join(modes)}"
        fractions = (self.config.network_fractions or self.config.label_fractions) if modes[0] in NETWORK_MODES \
            else self.config.label_fractions
        config = parse_config(HARClassifierConfig, [
            "--encoder", str(encoder), "--output_dir", str(folder), "--methods", method, "--modes", *modes,
            "--seeds", str(self.config.draws), "--full_seeds", str(self.config.full_draws),
            "--label_fractions", *map(str, fractions), "--init_seed", str(seed),
            "--data_source", self.config.data_source, *as_flags(self.config.classifier_flags)])
        if finished(folder, config, "results.csv"):
            return folder
        print(f"[{experiment.id} seed {seed}] {method} {' '.join(modes)} -> {folder}")
        (folder / "results.csv").unlink(missing_ok=True)
        splits = self._splits.setdefault(str(encoder), har_labelled_splits(config, None, str(encoder)))
        run_classification(config, splits, Path(encoder) / "encoder.pt")
        return folder

    def run(self):
        start = time.time()
        for unit in plan(self.config, self.config.only, self.experiments):
            self.unit(*unit)
        print(f"study units done in {(time.time() - start) / 60:.1f} min")

    def rows(self):
        """Every finished unit's per-draw rows, named for the report, and the units' records."""
        rows, units = [], []
        for experiment, seed, method, modes in plan(self.config, "all", self.experiments):
            folder = self.out / "downstream" / experiment.id / f"seed{seed}" / f"{method}_{'_'.join(modes)}"
            if not (folder / "results.csv").exists():
                continue
            name = method if experiment.pretrain is None else method.replace("encoder", experiment.id)
            summary = json.loads((folder / "summary.json").read_text())
            units.append({"experiment": experiment.id, "seed": seed, "method": name, "modes": list(modes),
                          "seconds": summary["info"]["seconds"], "commit": summary.get("git_commit"),
                          "representation_seconds": summary["info"].get("representation_seconds", {}),
                          "probe_choices": summary["info"].get("probe_choices", [])})
            with open(folder / "results.csv") as f:
                for r in csv.DictReader(f):
                    rows.append({"method": name, "mode": r["mode"], "fraction": float(r["fraction"]),
                                 "pretrain_seed": seed, "draw": int(r["seed"]), "macro_f1": float(r["macro_f1"]),
                                 "seconds": float(r["seconds"])})
        return rows, units

    def report(self, claims=CLAIMS, title="UCI HAR downstream study: the default MTL encoder against the field's "
                                           "baselines"):
        """study.json and study.md (downstream.*) in the results folder; returns the aggregated table."""
        rows, units = self.rows()
        if not rows:
            raise UserError(f"no unit of the study has finished yet under {self.out}: run it first")
        table = aggregate(rows)
        claims = evaluate_claims(rows, claims, partial=bool(self.config.partial))
        record = {"config": config_to_dict(self.config), "rows": table, "claims": claims, "units": units,
                  "wall_seconds": round(sum(u["seconds"] for u in units), 1)}
        self.results.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.results / "downstream.json", record)
        lines = [f"# {title}", "",
                 f"Macro-F1 on the test subjects: mean ± sd over pretraining seeds [sd over label draws within a "
                 f"seed] (seeds x draws). Units: {len(units)}, {record['wall_seconds'] / 3600:.1f} h of "
                 f"classification on this machine.", ""]
        lines += score_table(table)
        if claims:
            lines += ["", "Claims, paired by seed and draw (per-seed mean difference, 95% t-interval over seeds):", ""]
            lines += claims_table(claims)
        atomic_write_text(self.results / "downstream.md", "\n".join(lines) + "\n")
        print("\n".join(lines))
        return table


@exit_on_user_error
def main(argv=None):
    config = parse_config(StudyConfig, argv, description="The downstream study: encoders vs the field's baselines")
    study = Study(config)
    if not config.report:
        study.run()
    study.report()


if __name__ == "__main__":
    main(sys.argv[1:])
