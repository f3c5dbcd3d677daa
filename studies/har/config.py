"""The study's own flags (studies/har/reproduce.py): which part runs, how many seeds and draws, where the
runs, records, figures and the README's table go."""
import dataclasses

from common.classification import METHODS
from common.config import Config, field
from ground.errors import UserError
from studies.har.manifest import ALL_FRACTIONS, EXPERIMENTS, PARTS


@dataclasses.dataclass
class StudyConfig(Config):
    quick: int = field(0, "1: the main job: the default row at one seed and a few draws (make demo)")
    part: str = field("all", "which experiments: all, or one part of the study", choices=("all", *PARTS))
    only: str = field("all", "probes: the probed methods' units (minutes); networks: the gradient-trained ones",
                      choices=("all", "probes", "networks"))
    methods: tuple[str, ...] = field((), "only the units of these downstream methods (e.g. resnet, for a machine with "
                                         "a GPU); empty: every method")
    experiments: tuple[str, ...] = field((), "only the units of these experiments (ids, e.g. mtl_default_cotrain); "
                                             "empty: every experiment of --part")
    report: int = field(0, "1: only write the report of the finished units")
    partial: int = field(0, "1: a report with claims whose methods have not finished marked pending")
    pretrain_seeds: tuple[int, ...] = field((42, 43, 44), "pretraining seeds (baselines: their init seeds)")
    confirm_seeds: tuple[int, ...] = field((42, 43, 44, 45, 46), "pretraining seeds of the default recipe's probe "
                                                                "and self-training (the search winner's confirmation)")
    draws: int = field(20, "label draws per fraction below 100%, the same for every method")
    full_draws: int = field(3, "draws at 100% labels (only the inits differ)")
    tuning_draws: int = field(5, "label draws per fraction of the val-scored experiments (the choices)")
    label_fractions: tuple[float, ...] = field(ALL_FRACTIONS, "shares of the train labels")
    network_fractions: tuple[float, ...] = field((), "the gradient-trained units' fractions; empty: --label_fractions")
    classifier_flags: str = field("", "extra train_classifier.py flags for every unit, as NAME=VALUE words "
                                      "(e.g. \"min_steps=20 minirocket_kernels=840\" for a smoke run)")
    pretrain_flags: str = field("", "extra train_encoder.py flags for every pretraining, as NAME=VALUE words "
                                    "(e.g. \"epochs=5 encoder_width=16\" for a smoke run)")
    data_source: str = field("auto", "UCI HAR source")
    output_dir: str = field("", "runs; empty: HAR_centralized/outputs/study (--quick 1: outputs/demo)")
    results_dir: str = field("", "the report (downstream.json, downstream.md); empty: resources/study "
                                 "(--quick 1: <output_dir>/figures)")
    figures_dir: str = field("", "figures, results.md, study_summary.json; empty: resources/ "
                                 "(--quick 1: <output_dir>/figures)")
    readme: str = field("", "a README whose headline table (between its markers) the report rewrites; empty: "
                            "README.md for the whole study, none for a part or --quick 1")
    results_page: str = field("", "a page whose results block (between its markers) the report rewrites; empty: "
                                  "docs/results.md for the whole study, none for a part or --quick 1")
    demo_draws: int = field(3, "--quick 1: label draws per fraction")
    demo_fractions: tuple[float, ...] = field((0.01, 0.1), "--quick 1: the probed methods' label fractions")
    demo_network_fractions: tuple[float, ...] = field((0.01,), "--quick 1: the gradient-trained methods' fractions")
    demo_selftrain_fractions: tuple[float, ...] = field((0.01,), "--quick 1: the self-training units' fractions")

    def check_values(self):
        if min(self.draws, self.full_draws, self.demo_draws) < 1 or not self.pretrain_seeds:
            raise UserError("--draws, --full_draws and --demo_draws must be at least 1, --pretrain_seeds name a seed")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise UserError(f"--methods: unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
        unknown = [e for e in self.experiments if e not in {x.id for x in EXPERIMENTS}]
        if unknown:
            raise UserError(f"--experiments: unknown experiment(s) {', '.join(unknown)} (the ids of EXPERIMENTS in "
                            "studies/har/manifest.py)")
        if any(not 0 < f <= 1 for f in self.label_fractions + self.network_fractions + self.demo_fractions
               + self.demo_network_fractions + self.demo_selftrain_fractions):
            raise UserError("label fractions must be in (0, 1]")
        for flags in (self.classifier_flags, self.pretrain_flags):
            if any("=" not in word for word in flags.split()):
                raise UserError(f"extra flags are NAME=VALUE words, got {flags!r}")

