"""The HAR study as data: which encoders are pretrained (experiments), which downstream methods each gets,
which claims compare them and which figures show them; run in resumable units by `Study`, reported by
common/report.py. The command is HAR_centralized/reproduce.py.

Every unit (an experiment's methods at one pretraining seed) is a train_classifier run in its own folder,
over the same label draws (0..draws-1 at every fraction below 100%, --full_draws at 100%). One rule reuses
a unit or a pretraining: a folder whose recorded config is the wanted one and that finished (a
pretraining's summary.json, a unit's results.csv), comparing config.json without the fields that only say
where a run goes (RUN_ONLY_FIELDS); a killed pretraining resumes from its checkpoint. A finished unit leaves a
record beside the report (resources/study/units/: its per-draw scores, its config and its encoder's, the
encoder's epoch seconds), committed with it, so the study spans machines whose run folders are gone: the
report is written from the records, and a recorded unit runs again only when its settings change. The commit of the code
behind each folder is in the report. Baselines without pretraining pair with a pretraining seed through
their own init seed (the networks' init, MiniRocket's kernels).
"""
import csv
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from common.classification import (METHODS, NETWORK_MODES, PROBE_MODES, file_sha256, load_pretrained_encoder,
                                   run_classification)
from common.config import Config, config_to_dict, field, parse_config
from common.encoders import embed
from ground.errors import UserError
from common.evaluation import rebuild_encoder
from common.har_task import (HARDataConfig, har_client_datasets, har_labelled_splits, har_model,
                             har_pretrain_data)
from ground.io import atomic_write_json, atomic_write_text, strict_json
from ground.paths import REPO_ROOT
from common.plots import plot_architecture, plot_tsne
from common.pretrain_config import RUN_ONLY_FIELDS, with_trained_tasks
from common.report import (aggregate, claims_table, draw_figures, evaluate_claims, fraction_key, score_table,
                           time_table, write_readme_block)
from common.run_folder import RunFolder
from common.tasks import SEED_TASKS
from common.training import pretrain
from common.weighting import WEIGHTINGS
from data_processing.har import ACTIVITY_NAMES, load_har
from HAR_centralized.config import HARClassifierConfig, HARPretrainConfig
from HAR_federated.config import FederatedConfig
from HAR_federated.run import run_local

LINEAR_SELFTRAIN = ("linear", "selftrain")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """An encoder recipe and the downstream methods it gets ({method: modes}).

    pretrain: train_encoder.py flags (HAR_federated/run.py flags when federated); None: no pretraining of its
    own: baselines, or the encoder of `encoder_of`. Rows are named for the encoder (`mtl_default`,
    `mtl_default+features`, ...); baselines keep their method names; `prefix` names another task's rows
    (`hapt12/`). scored_on "val": the unit scores the val subjects, for a choice made there. Its seeds are
    the study's field seeds_from (--pretrain_seeds, or the confirmation's --confirm_seeds), the first
    seed_count of them; fractions narrow its fractions. fixed: its methods have no randomness of their own
    beyond one seed (the expert features, the raw windows, MiniRocket's kernels at the first seed): one seed,
    whose rows pair with every pretraining seed of what they are compared with."""

    id: str
    pretrain: tuple | None
    methods: dict
    part: str = "downstream"
    encoder_of: str | None = None
    federated: bool = False
    classifier: tuple = ()
    prefix: str = ""
    scored_on: str = "test"
    seed_count: int | None = None
    fractions: tuple | None = None
    fixed: bool = False
    seeds_from: str = "pretrain_seeds"

    def seeds(self, config):
        """This experiment's pretraining (or init) seeds under the StudyConfig `config`."""
        return list(getattr(config, self.seeds_from)[: 1 if self.fixed else self.seed_count])

    @property
    def encoder_id(self):
        return self.encoder_of or (self.id if self.pretrain is not None else None)

    def row_name(self, method):
        """The report's name of this experiment's `method` rows."""
        return self.prefix + (method.replace("encoder", self.encoder_id) if self.encoder_id else method)


DEFAULT = "mtl_default"  # the default recipe (HAR_centralized/config.py): the recipe search's val winner
SEED_TASKS_RECIPE = "mtl_seed_tasks"  # the seed's multi-task recipe, the default before the search
SEED_FOUR = ("--model_heads", "1", "1", "1", "1")  # the seed's four tasks, whatever the default recipe is
# the defaults every recipe was written against before the search moved them (the train subjects' UCI HAR
# windows, 30 epochs): the experiments written against them pin them, so their runs and records stay theirs
EARLIER_DEFAULTS = ("--pretrain_data", "labelled", "--pretrain_step", "64", "--epochs", "30")  # the step: recorded only
SEED_RECIPE = (*SEED_FOUR, *EARLIER_DEFAULTS)  # the seed's recipe: its four tasks on the labelled windows, 30 epochs
DEFAULT_WEIGHTING = HARPretrainConfig().weighting
LINEAR = {"encoder": ("linear",)}


@dataclasses.dataclass(frozen=True)
class Choice:
    """A setting chosen on the val subjects: one val-scored experiment per candidate value (the flags
    flags(value) on the methods it is chosen for, at the first seed_count pretraining seeds, --tuning_draws
    draws per fraction, the same draws for every candidate). `chosen` is the value the study uses; the report
    checks it is still the candidate with the best mean val macro-F1 (over the methods, fractions, seeds and
    draws), and says where to change it otherwise. A pretraining candidate without flags is the default
    encoder itself, one whose flags are an experiment's id that experiment's encoder (their runs are reused).
    per_method: each method gets its own value, chosen on its own val scores (`chosen`: {method: value}, a
    method missing: not chosen yet, the classifier's default), and the study passes it to every network unit
    of that method."""

    name: str
    candidates: tuple
    chosen: object
    flags: object  # value -> train_encoder.py flags (pretrain) or train_classifier.py flags
    methods: dict
    fractions: tuple
    pretrain: bool = False
    where: str = "its default in common/classification.py (ClassifierConfig)"
    part: str = "tuning"
    seed_count: int = 1
    per_method: bool = False
    # train_classifier.py flags the candidates were scored at: a setting chosen after this choice keeps the value
    # it had then, so choosing it does not make this choice's records stale
    scored_at: tuple = ()

    def experiments(self):
        out = []
        for v in self.candidates:
            flags = self.flags(v) if self.pretrain else ()
            # pretraining flags of its own, or another experiment's encoder (named by its id; none: the default's)
            own = tuple(flags) if flags and not isinstance(flags, str) else None
            out.append(Experiment(self.candidate_id(v), own, self.methods, self.part,
                                  encoder_of=None if own else flags or DEFAULT, scored_on="val",
                                  seed_count=self.seed_count, fractions=self.fractions,
                                  classifier=(*self.scored_at, *(() if self.pretrain else self.flags(v)))))
        return tuple(out)

    def candidate_id(self, value):
        text = "_".join(map(str, value)) if isinstance(value, tuple) else str(value)
        return f"choice_{self.name}_" + "".join(c if c.isalnum() else "p" if c == "." else "_" for c in text)


CLASSIFIER = HARClassifierConfig()
# the choices scored before subject_norm was chosen (every probe then ran without it): their records stay theirs
BEFORE_SUBJECT_NORM = ("--subject_norm", "none")
FEW_LABELS = (0.01, 0.02, 0.05, 0.1)
# the rocket task's components and the data when the search was registered (the labelled windows; the default
# moved to whole recordings with its winner)
ROCKET256 = ("--rocket_dim", "256", *EARLIER_DEFAULTS)
ALL_TASKS = ("--tasks", *SEED_TASKS, "rocket", *ROCKET256)
RECIPES = {  # name -> train_encoder.py flags, or the id of the experiment that pretrains it; cheapest first (the
    # units run in this order), so a session's share of the search scores whole candidates. The first candidates
    # changed one thing of the seed's multi-task recipe, the default when the search was registered
    "seed_tasks": SEED_TASKS_RECIPE,
    "rocket_only": ("--tasks", "rocket", *ROCKET256),  # regress MiniRocket's features alone (common/tasks/rocket.py)
    # added after rocket_only's val scores (a sequential step of the search, on val only): the distilled
    # encoder with twice the channels
    "rocket_width64": ("--tasks", "rocket", *ROCKET256, "--encoder_width", "64"),
    # added after the width-64 run's first val monitors (sequential, val only): more of the target (512
    # components of MiniRocket's features), or 3.4x the windows to distil it from
    "rocket_dim512": ("--tasks", "rocket", "--rocket_dim", "512", *EARLIER_DEFAULTS),
    "rocket_dense": ("--tasks", "rocket", "--rocket_dim", "256", "--pretrain_data", "all", "--pretrain_step", "32",
                     "--epochs", "30"),
    # added after the plateau of rocket alone (width 64 and 512 components within 0.0015; sequential, val only):
    # the 128-d embedding is narrower than the 512 components it regresses and than what MiniRocket's probe sees
    "rocket_emb512": ("--tasks", "rocket", "--rocket_dim", "512", "--embedding_dim", "512", *EARLIER_DEFAULTS),
    # added after the step-32 winner's distillation gap (benchmarks/distillation_gap.py, resources/study/): its
    # target alone probes within 0.004 of MiniRocket at 10% labels, the embedding reproduces it with R^2 0.93 on
    # the train windows, and the loss still falls at epoch 30: the student underfits, so twice the epochs.
    # That account was scored on the test subjects (the script's default then): a test output informed this
    # candidate's registration, though its choice was made on val like every other's
    "rocket_dense_epochs60": ("--tasks", "rocket", "--rocket_dim", "256", "--pretrain_data", "all", "--pretrain_step",
                              "32", "--epochs", "60"),
    # added after the winner's test confirmation (sequential; chosen on val like the others): the student
    # reproduces its fixed targets less well on new subjects (R^2 0.93 train, 0.91 test), and distillation
    # with a teacher answering on the student's augmented view (function matching, Beyer et al. 2022) is what
    # closes such gaps in images. The winner's recipe with rocket_views instead of rocket (common/tasks/rocket.py).
    # Scored 0.914 on val against the winner's 0.930 (probe -0.027 at 1%, -0.020 at 10%, paired)
    "rocket_views_dense_epochs60": ("--tasks", "rocket_views", "--rocket_dim", "256", "--pretrain_data", "all",
                                    "--pretrain_step", "32", "--epochs", "60"),
}
# registered, then cut by successive halving (sequential, on val only); the flags stay here to be run again: add
# a name back to RECIPES. Each of the first six changes one thing of the seed's multi-task recipe, whose arm
# (seed_tasks 0.9045, rocket 0.891, epochs10 0.884 mean val macro-F1) trailed the rocket-alone arm (0.924-0.931)
# by 2-4 points at both seeds, more than any single change of that recipe moved it in the 3-draw study (its
# largest: step 32, +0.020 at 1%)
DROPPED_RECIPES = {
    "no_features": ("--model_heads", "1", "1", "1", "0", *EARLIER_DEFAULTS),  # does the features task dominate?
    "batch256": (*SEED_RECIPE, "--batch_size", "256"),
    "equal_weights": "mtl_equal",
    "dilated": (*SEED_RECIPE, "--encoder", "dilated1d", "--encoder_depth", "4"),  # every scale (2x the step time)
    "width64": (*SEED_RECIPE, "--encoder_width", "64"),  # 3.3x the seed recipe's step time
    "dense_step32": "mtl_all_recordings_step32",  # 3.4x the windows
    # scored in an earlier session whose unit records were lost with its machine (val: rocket 0.891, epochs10
    # 0.884, against rocket alone's 0.924-0.931 there); not run again, being the seed arm's
    "rocket": ALL_TASKS,  # a fifth task beside the seed's four
    "epochs10": (*SEED_RECIPE, "--epochs", "10"),  # the val monitor levels off after 5 of the 30 epochs
    # the rocket-alone arm's: the features task beside rocket adds the seed arm's weakest task back; the
    # dilated encoder's val monitors (2x the step time) stayed within the plateau after 30 epochs
    "features_rocket": ("--tasks", "features", "rocket", *ROCKET256),
    "rocket_dilated": ("--tasks", "rocket", *ROCKET256, "--encoder", "dilated1d", "--encoder_depth", "4"),
    # width 64 (0.919) and the 512-d embedding (0.916) each scored below rocket alone (0.921): their product
    # (about 3x rocket_emb512's pretraining) is not run
    "rocket_width64_emb512": ("--tasks", "rocket", "--rocket_dim", "512", "--embedding_dim", "512",
                              "--encoder_width", "64", *EARLIER_DEFAULTS),
}
PROBES = {"encoder": ("selftrain",), "minirocket": ("selftrain",), "expert_features": ("selftrain",)}
NETWORKS = {"encoder": ("finetune",), "supervised": ("finetune",), "resnet": ("finetune",)}
CHOICES = (
    # static task weights (augmentation, reconstruction, contrastive, features): the losses differ in scale by
    # ~100x (masked MSE ~0.05, features ~0.02, cross-entropies ~1-2), so the grid up-weights the small ones
    Choice("static_weights", ((1, 10, 1, 10), (1, 30, 1, 30), (1, 10, 2, 30), (0.5, 30, 1, 30)), (1, 10, 2, 30),
           lambda w: (*SEED_RECIPE, "--weighting", "static", "--task_weights", *map(str, w)), LINEAR, (0.1,),
           pretrain=True,
           where="STATIC_WEIGHTS in HAR_centralized/study.py", part="weighting_loss", scored_at=BEFORE_SUBJECT_NORM),
    # the semi-supervised settings and the networks' learning rate, one grid for every method they serve (a
    # grid extends past its edge when val prefers its last value: 8 rounds, lr 1e-2, 3e-2). Self-training's
    # rounds are one value for every probe, hybrids included; 8 rounds is the edge again, +0.005 +- 0.003 over
    # 5 paired, and 12 is not tried: 8 already costs MiniRocket 430 s a draw at 10%
    Choice("selftrain_rounds", (1, 3, 5, 8), CLASSIFIER.selftrain_rounds, lambda v: ("--selftrain_rounds", str(v)),
           PROBES, (0.01, 0.1), scored_at=BEFORE_SUBJECT_NORM),
    # each network its own lr, then its own FixMatch threshold at that lr (ResNet's val units cost ~20x the
    # others': they decide ResNet's units only). On the seed recipe's encoder LP-FT's curve had flattened at the
    # upper edge (1e-2: 0.887, 3e-2: 0.888; records lost); measured again on the default encoder (2026-12-06,
    # records kept) it is flat within 0.003 and best at the lower edge, 3e-4: the grid extends to 1e-4 (0.9331
    # against 3e-4's 0.9334). Supervised: 1e-3 0.9120, 3e-3 0.9117 (3e-3 was the earlier choice)
    Choice("lr", (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2), {"encoder": 3e-4, "supervised": 1e-3},
           lambda v: ("--lr", str(v)),
           NETWORKS, (0.01, 0.1), where="CHOICES in HAR_centralized/study.py (lr: chosen)", per_method=True),
    # at the lrs above (2026-12-06, 5 val draws at 1%): LP-FT 0.9137 at 0.8, 0.9128 at 0.95; supervised 0.8547
    # at 0.8, 0.8576 at 0.95
    Choice("fixmatch_threshold", (0.8, 0.95), {"encoder": 0.8, "supervised": 0.95},
           lambda v: ("--fixmatch_threshold", str(v)),
           {"encoder": ("fixmatch",), "supervised": ("fixmatch",), "resnet": ("fixmatch",)},
           (0.01,), where="CHOICES in HAR_centralized/study.py (fixmatch_threshold: chosen)", per_method=True),
    # each subject's representation relative to its own windows (common/subject_norm.py), one value for every
    # probe so each representation gets the same care. Registered 2026-12-06 after a diagnostic on the seed-42
    # default (benchmarks/subject_norm.py, val and test both shown) lifted every representation by 2-5 points at
    # 1%; scored by the linear probe only (MiniRocket's self-training at 10% costs minutes a draw). Val: none
    # 0.894, zscore 0.933, adabn 0.933 (the encoder alone 0.9416 both): zscore, the simpler, became HAR's default
    Choice("subject_norm", ("none", "zscore", "adabn"), CLASSIFIER.subject_norm, lambda v: ("--subject_norm", v),
           {"encoder": ("linear",), "minirocket": ("linear",), "expert_features": ("linear",)}, (0.01, 0.1),
           where="HARClassifierConfig's defaults in HAR_centralized/config.py"),
    # the networks' counterpart (registered 2026-12-06 with the probes' zscore default, before its units ran): each
    # network classifies a val or test subject with its BatchNorm statistics of that subject's windows, chosen
    # per network so supervised training from scratch gets the same care as the encoder's. Val (seed 42, 5
    # draws at 1% and 10%): LP-FT 0.9334 none, 0.9538 adabn; supervised 0.9120 none, 0.9036 adabn
    Choice("network_subject_norm", ("none", "adabn"), {"encoder": "adabn", "supervised": "none"},
           lambda v: ("--network_subject_norm", v),
           {"encoder": ("finetune",), "supervised": ("finetune",)}, (0.01, 0.1), per_method=True,
           where="CHOICES in HAR_centralized/study.py (network_subject_norm: chosen)"),
    # the pretraining recipe (issue 20's search, registered before it runs): each candidate changes one thing
    # of the default, 2 pretraining seeds each, scored on val by the encoder's probes (self-training uses the
    # unlabelled windows) and the hybrid that must beat MiniRocket. The hybrid is probed linearly only: its
    # self-training at 10% costs ~430 s a draw, more than the candidate's pretraining
    Choice("recipe", tuple(RECIPES), "rocket_dense_epochs60", lambda name: RECIPES[name],
           {"encoder": LINEAR_SELFTRAIN, "encoder+minirocket": ("linear",)}, (0.01, 0.1), pretrain=True,
           where="the recipe's chosen in HAR_centralized/study.py, and HAR_centralized/config.py's default "
                 "recipe to its flags",
           part="search", seed_count=2, scored_at=BEFORE_SUBJECT_NORM),
)
STATIC_WEIGHTS = CHOICES[0].chosen
RECIPE = CHOICES[-1]
# the default encoder's downstream mode, chosen on val after the recipe: on the search's val encoders of the
# chosen recipe (its 2 seeds, the same draws), its probe and self-training (winner_probes_val) against LP-FT and
# FixMatch (winner_networks_val), each at the settings chosen since; the report checks it is still the best mean
# val macro-F1. At subject_norm none (the search's own units) self-training led: 0.938, the probe 0.936, LP-FT
# 0.937, FixMatch 0.936; with subject_norm zscore and LP-FT's AdaBN, LP-FT: probe 0.949, self-training 0.951,
# LP-FT 0.954, FixMatch 0.952
DOWNSTREAM_MODE = "finetune"
DOWNSTREAM_MODES = LINEAR_SELFTRAIN + NETWORK_MODES
EXPERIMENTS = (
    # the default recipe, the recipe search's val winner, confirmed on test: probed and self-trained at 5
    # pretraining seeds (the search scored both; self-training is the better on val), its other downstream
    # methods at the study's 3
    Experiment(DEFAULT, (), {"encoder": LINEAR_SELFTRAIN}, seeds_from="confirm_seeds"),
    # its networks: the val-chosen mode (LP-FT) at the confirmation's 5 seeds too, FixMatch at the study's 3
    Experiment(f"{DEFAULT}_downstream", None, {"encoder": ("finetune",)}, encoder_of=DEFAULT,
               seeds_from="confirm_seeds"),
    Experiment(f"{DEFAULT}_fixmatch", None, {"encoder": ("fixmatch",)}, encoder_of=DEFAULT),
    # the hybrids at the few-label fractions their claims compare (at 100% the MiniRocket hybrid's probe costs
    # minutes a draw and answers no claim)
    Experiment(f"{DEFAULT}_hybrids", None, {"encoder+features": LINEAR_SELFTRAIN, "encoder+minirocket": ("linear",)},
               encoder_of=DEFAULT, fractions=FEW_LABELS),
    # the MiniRocket hybrid's self-training, units of their own by fraction like MiniRocket's (minutes a draw at
    # 10%: 8 rounds of a probe on 10,128 features)
    Experiment(f"{DEFAULT}_hybrid_selftrain", None, {"encoder+minirocket": ("selftrain",)}, encoder_of=DEFAULT,
               fractions=(0.01, 0.02)),
    # the seed's multi-task recipe (the default before the search): what the winner replaced
    Experiment(SEED_TASKS_RECIPE, SEED_RECIPE, {"encoder": LINEAR_SELFTRAIN}),
    # co-training the hybrids' two blocks (found on val: seed 42, 1%, 8 draws, +0.010 over the hybrid's
    # self-training and +0.013 over MiniRocket's); units of their own, so the finished hybrid units stay
    # (at the fractions of the hybrids' self-training: a co-training round fits one probe per block besides the
    # hybrid's, minutes a draw at 5-10% for the MiniRocket block)
    Experiment(f"{DEFAULT}_cotrain", None, {"encoder+features": ("cotrain",)}, encoder_of=DEFAULT,
               fractions=FEW_LABELS),
    Experiment(f"{DEFAULT}_cotrain_minirocket", None, {"encoder+minirocket": ("cotrain",)}, encoder_of=DEFAULT,
               fractions=(0.01, 0.02)),
    # the winner's downstream mode is chosen on val: the search scored its probe and self-training, this its
    # networks (LP-FT and FixMatch at their chosen lr and threshold) on the same encoders and val draws
    # and its probes again at the probes' settings chosen since the search (subject_norm), so every mode is
    # compared at the settings its units use
    Experiment("winner_probes_val", None, {"encoder": LINEAR_SELFTRAIN}, "search",
               encoder_of=RECIPE.candidate_id(RECIPE.chosen), scored_on="val", seed_count=RECIPE.seed_count,
               fractions=RECIPE.fractions),
    Experiment("winner_networks_val", None, {"encoder": NETWORK_MODES}, "search",
               encoder_of=RECIPE.candidate_id(RECIPE.chosen), scored_on="val", seed_count=RECIPE.seed_count,
               fractions=RECIPE.fractions),
    # the probed baselines are deterministic given one seed (MiniRocket's kernels: its first): one seed each.
    # MiniRocket's self-training is units of its own, by fraction: at 10% it costs minutes a draw (8 rounds of
    # its probe on up to 90% of the windows' 10,000 features), and a unit is recorded only when it finishes
    Experiment("baselines", None, {"minirocket": ("linear",), "expert_features": LINEAR_SELFTRAIN,
                                   "raw": ("linear",)}, fixed=True),
    Experiment("minirocket_selftrain", None, {"minirocket": ("selftrain",)}, fixed=True, fractions=(0.01, 0.02)),
    Experiment("minirocket_selftrain_5_10", None, {"minirocket": ("selftrain",)}, fixed=True, fractions=(0.05, 0.1)),
    Experiment("baselines_networks", None, {"supervised": NETWORK_MODES, "resnet": NETWORK_MODES}),
    # what fixing MiniRocket's kernels at one seed leaves out: its probe at every seed (the sd over these rows)
    Experiment("minirocket_kernel_seeds", None, {"minirocket": ("linear",)}, prefix="kernel_seeds/"),
    # the single tasks: what multi-task pretraining must beat
    *(Experiment(f"stl_{task}", ("--model_heads", *("1" if i == j else "0" for j in range(4)), *EARLIER_DEFAULTS),
                 LINEAR, "tasks")
      for i, task in enumerate(SEED_TASKS)),
    # task weighting: the losses' weights (minutes per epoch alike), then the gradients' (a backward per task)
    # task weighting of the seed's four tasks: the losses' weights (minutes per epoch alike), then the
    # gradients' (a backward per task)
    *(Experiment(f"mtl_{w}", CHOICES[0].flags(STATIC_WEIGHTS) if w == "static" else (*SEED_RECIPE, "--weighting", w),
                 LINEAR, "weighting_loss")
      for w in ("equal", "static", "dwa", "famo")),
    *(Experiment(f"mtl_{w}", (*SEED_RECIPE, "--weighting", w), LINEAR, "weighting_gradient")
      for w in ("gradnorm", "cagrad", "upgrad")),
    # more unlabelled data for the seed's recipe: every window of the train subjects' recordings, and with half
    # the window step
    Experiment("mtl_all_recordings", (*SEED_FOUR, "--pretrain_data", "all", "--pretrain_step", "64", "--epochs", "30"),
               LINEAR, "data"),
    Experiment("mtl_all_recordings_step32", (*SEED_FOUR, "--pretrain_data", "all", "--pretrain_step", "32", "--epochs",
                                             "30"), LINEAR,
               "data"),
    # federated pretraining of the default recipe (HAR_federated/config.py: the rocket task, its MiniRocket PCA fit
    # from the clients' statistics; 30 rounds x 2 local epochs = the default's 60 epochs), against it centralized
    Experiment("federated", (), {"encoder": LINEAR_SELFTRAIN}, "federated", federated=True),
    # HAPT's 12 classes (6 activities + 6 postural transitions) from the same recordings, on the default encoder
    Experiment("hapt12_mtl_default", None, {"encoder": ("linear", "selftrain", "finetune")}, "hapt12",
               encoder_of=DEFAULT, classifier=("--task", "hapt12"), prefix="hapt12/"),
    Experiment("hapt12_baselines", None, {"minirocket": ("linear",), "expert_features": ("linear",)}, "hapt12",
               classifier=("--task", "hapt12"), prefix="hapt12/", fixed=True),
    Experiment("hapt12_minirocket_selftrain", None, {"minirocket": ("selftrain",)}, "hapt12",
               classifier=("--task", "hapt12"), prefix="hapt12/", fixed=True, fractions=(0.01, 0.02)),
    Experiment("hapt12_baselines_networks", None, {"supervised": ("finetune",)}, "hapt12",
               classifier=("--task", "hapt12"), prefix="hapt12/"),
    # the choices made on the val subjects
    *(e for choice in CHOICES for e in choice.experiments()),
)
PARTS = tuple(dict.fromkeys(e.part for e in EXPERIMENTS))
assert len({e.id for e in EXPERIMENTS}) == len(EXPERIMENTS)


def demo_experiments(selftrain_fractions):
    """The main job (make demo): the default row at one seed, without the slowest opponents (ResNet, raw
    windows), self-training at selftrain_fractions only (8 rounds of MiniRocket's self-training take minutes a
    draw at 10% labels, seconds at 1%)."""
    probed = ("encoder", "encoder+features", "encoder+minirocket")
    return (
        Experiment(DEFAULT, (), {"encoder": ("linear",) + NETWORK_MODES, **{m: ("linear",) for m in probed[1:]}}),
        Experiment("baselines", None, {"minirocket": ("linear",), "expert_features": ("linear",),
                                       "supervised": NETWORK_MODES}),
        Experiment("selftrain", None, {m: ("selftrain", "cotrain") if "+" in m else ("selftrain",) for m in probed},
                   encoder_of=DEFAULT, fractions=selftrain_fractions),
        Experiment("baselines_selftrain", None, {"minirocket": ("selftrain",), "expert_features": ("selftrain",)},
                   fractions=selftrain_fractions),
    )


ALL_FRACTIONS = FEW_LABELS + (1.0,)
# claims: the default encoder's every downstream recipe against each opponent, at every few-label fraction
OPPONENTS = (("minirocket", "linear"), ("minirocket", "selftrain"), ("supervised", "finetune"),
             ("supervised", "fixmatch"), ("resnet", "finetune"), ("resnet", "fixmatch"),
             ("expert_features", "linear"), ("expert_features", "selftrain"))
OURS = ((DEFAULT, "linear"), (DEFAULT, "selftrain"), (DEFAULT, "finetune"), (DEFAULT, "fixmatch"),
        (f"{DEFAULT}+features", "linear"), (f"{DEFAULT}+minirocket", "linear"), (f"{DEFAULT}+minirocket", "selftrain"),
        (f"{DEFAULT}+minirocket", "cotrain"))
SINGLE_TASKS = tuple((f"stl_{task}", "linear") for task in SEED_TASKS)
CLAIMS = (
    *({"a": ours, "b": opponent, "fractions": FEW_LABELS} for ours in OURS for opponent in OPPONENTS),
    # the confirmation (issue 20): the val winner against the seed's recipe it replaced, like against like
    *({"a": (DEFAULT, mode), "b": (SEED_TASKS_RECIPE, mode), "fractions": ALL_FRACTIONS} for mode in LINEAR_SELFTRAIN),
    # the strongest single task at each fraction (chosen on test: the hardest opponent, not a tuned one)
    *({"a": ours, "b_best_of": SINGLE_TASKS, "fractions": ALL_FRACTIONS} for ours in OURS[:2]),
    *({"a": (SEED_TASKS_RECIPE, "linear"), "b_best_of": SINGLE_TASKS, "fractions": ALL_FRACTIONS},),
    *({"a": (f"mtl_{w}", "linear"), "b": ("mtl_equal", "linear"), "fractions": ALL_FRACTIONS}
      for w in WEIGHTINGS if w not in ("equal", DEFAULT_WEIGHTING)),
    {"a": (SEED_TASKS_RECIPE, "linear"), "b": ("mtl_equal", "linear"), "fractions": ALL_FRACTIONS},
    {"a": ("mtl_all_recordings", "linear"), "b": (SEED_TASKS_RECIPE, "linear"), "fractions": ALL_FRACTIONS},
    *({"a": ("federated", mode), "b": (DEFAULT, mode), "fractions": ALL_FRACTIONS} for mode in LINEAR_SELFTRAIN),
    *({"a": (f"hapt12/{DEFAULT}", mode), "b": (f"hapt12/{b}", b_mode), "fractions": ALL_FRACTIONS}
      for mode in ("linear", "selftrain", "finetune")
      for b, b_mode in (("minirocket", "linear"), ("minirocket", "selftrain"), ("supervised", "finetune"),
                        ("expert_features", "linear"))),
)
# the README's figures: file -> (title, the row drawing it needs, [(row name, mode, line style)]); the
# weighting figure is its own kind: (file, its methods)
CURVES = {
    "label_efficiency.png": ("UCI HAR: the default encoder against the field's baselines", "minirocket", [
        (DEFAULT, "linear", {"color": "C3", "linewidth": 2.5}),
        (DEFAULT, "selftrain", {"color": "C3", "linestyle": "-."}),
        (DEFAULT, "finetune", {"color": "C3", "linestyle": "--"}), (f"{DEFAULT}+minirocket", "linear", {"color": "C1"}),
        (f"{DEFAULT}+minirocket", "cotrain", {"color": "C1", "linestyle": "-.", "linewidth": 2}),
        (SEED_TASKS_RECIPE, "linear", {"color": "C2", "linestyle": ":", "linewidth": 2}),
        ("minirocket", "linear", {"color": "C0", "linewidth": 2}),
        ("supervised", "finetune", {"color": "k", "linestyle": ":"}),
        ("resnet", "finetune", {"color": "0.3", "linestyle": "--"}), ("expert_features", "linear", {"color": "0.5"})]),
    "MTL-vs-STL.png": ("UCI HAR: multi-task against single-task pretraining", "stl_augmentation", [
        (SEED_TASKS_RECIPE, "linear", {"color": "C2", "linewidth": 2.5}),
        (DEFAULT, "linear", {"color": "C3", "linewidth": 2.5}),
        *((f"stl_{t}", "linear", {"linewidth": 1.2, "color": c}) for t, c in zip(SEED_TASKS, ("C0", "C1", "C2", "C9"))),
        ("supervised", "finetune", {"color": "k", "linestyle": ":"}), ("expert_features", "linear", {"color": "0.5"})]),
    "FL.png": ("Federated against centralized pretraining, frozen encoder", "federated", [
        (DEFAULT, "linear", {"color": "C3", "linewidth": 2}),
        ("federated", "linear", {"color": "C0", "linewidth": 2})]),
}
WEIGHTING_FIGURE = ("weighting.png", tuple(f"mtl_{w}" if w != DEFAULT_WEIGHTING else SEED_TASKS_RECIPE
                                           for w in WEIGHTINGS))


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
    readme: str = field("", "a README whose block between the results markers the report rewrites; empty: "
                            "README.md for the whole study, none for a part or --quick 1")
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
                            "HAR_centralized/study.py)")
        if any(not 0 < f <= 1 for f in self.label_fractions + self.network_fractions + self.demo_fractions
               + self.demo_network_fractions + self.demo_selftrain_fractions):
            raise UserError("label fractions must be in (0, 1]")
        for flags in (self.classifier_flags, self.pretrain_flags):
            if any("=" not in word for word in flags.split()):
                raise UserError(f"extra flags are NAME=VALUE words, got {flags!r}")


def as_flags(words, known=None):
    """NAME=VALUE words as flags (only the fields of `known`, a config class, when given)."""
    flags = []
    for word in words.split():
        name, _, value = word.partition("=")
        if known is None or name in {f.name for f in dataclasses.fields(known)}:
            flags += [f"--{name}", *value.split(",")]
    return flags


def _trains_networks(config):
    return any(mode in NETWORK_MODES for mode in config["modes"])


# classifier fields that only some units' results depend on: a unit whose modes and methods do not use one
# is reused whatever it says (choosing the networks' lr on val does not rerun the probes)
USED_ONLY_BY = {
    **dict.fromkeys(("selftrain_rounds", "selftrain_per_round"),
                    lambda c: bool({"selftrain", "cotrain"} & set(c["modes"]))),
    **dict.fromkeys(("fixmatch_threshold", "fixmatch_ratio", "fixmatch_weight"), lambda c: "fixmatch" in c["modes"]),
    **dict.fromkeys(("lr", "encoder_lr_ratio", "weight_decay", "batch_size", "epochs", "min_steps", "max_steps",
                     "eval_every", "patience", "train_augment", "label_smoothing", "finetune_head"), _trains_networks),
    "minirocket_kernels": lambda c: any("minirocket" in m for m in c["methods"]),
    "resnet_width": lambda c: "resnet" in c["methods"],
    "subject_norm": lambda c: bool(set(PROBE_MODES) & set(c["modes"])),
    "network_subject_norm": _trains_networks,
}
# what a record that lacks a field ran with: the code before the field existed. Without it a missing field
# reads as today's default, which stops being true the day that default changes
BEFORE_THE_FIELD = {"subject_norm": "none", "network_subject_norm": "none"}


# pretraining fields that only some recipes compute with: a recipe that does not use one is the same recipe
# whatever it says (the seed's four tasks recorded the rocket task's default of their day)
PRETRAIN_USED_ONLY_BY = {
    **dict.fromkeys(("rocket_dim", "rocket_kernels"), lambda c: "rocket" in c["tasks"]),
    "pretrain_step": lambda c: c.get("pretrain_data") == "all",
}


def settings(config):
    """A config as the reuse rule compares it: JSON values, without the fields that say where or how a run
    goes (folder, resume, device) rather than what it computes, nor those its modes and methods do not use."""
    values = json.loads(json.dumps(config_to_dict(config)))
    return _compared(values, getattr(config, "DEFAULT_TASKS", SEED_TASKS))


# a federated run's server port: the local role records the free port it was given, not a setting
NOT_COMPARED = ("port",)


def _compared(values, default_tasks=SEED_TASKS):
    values = with_trained_tasks(values, default_tasks)
    used_only_by = USED_ONLY_BY if "modes" in values else PRETRAIN_USED_ONLY_BY if "tasks" in values else {}
    return {k: v for k, v in values.items() if k not in RUN_ONLY_FIELDS + NOT_COMPARED
            and not (k in used_only_by and not used_only_by[k](values))}


def matches(recorded, config, ignore=()):
    """Whether recorded config values (a config.json's) are `config`'s as the reuse rule compares them
    (settings()), leaving out the fields `ignore` names. A field the record lacks (added to the config since)
    counts as its default (a new field's default keeps what the code did before it existed), or as
    BEFORE_THE_FIELD says where that default may change."""
    defaults = json.loads(json.dumps(config_to_dict(type(config)())))
    values = {**defaults, **{k: v for k, v in BEFORE_THE_FIELD.items() if k in defaults}, **recorded}
    kept = lambda d: {k: v for k, v in d.items() if k not in ignore}  # noqa: E731
    return kept(_compared(values, getattr(config, "DEFAULT_TASKS", SEED_TASKS))) == kept(settings(config))


def finished(folder, config, marker):
    """The one reuse rule: the folder's config.json is this config's (matches) and the run finished (marker)."""
    recorded = Path(folder) / RunFolder.CONFIG
    if not ((Path(folder) / marker).exists() and recorded.exists()):
        return False
    return matches(json.loads(recorded.read_text()), config)


def uses_encoder(method):
    """Whether a downstream method's scores depend on the pretrained weights (encoder, encoder+features, ...);
    the baselines take only the data (split, standardisation) from the encoder their splits are aligned with."""
    return "encoder" in method


def encoder_fields_unused(method, encoder_config):
    """The encoder config's fields a unit's method does not depend on: a baseline (no "encoder" in its name)
    takes only the data (split, standardisation) from the encoder its splits are aligned with, so the default
    recipe changing leaves its record true."""
    if uses_encoder(method):
        return ()
    return tuple(k for k in settings(encoder_config) if k not in HARDataConfig.__dataclass_fields__)


def scored_this_encoder(run, unit_folder):
    """Whether the unit in unit_folder scored the encoder now in the run folder: the sha256 its summary
    records (units since the field existed), else whether the encoder was written before the unit started
    (its config.json). A pretraining run again in the same folder (another recipe overwritten, a study on a
    new default) leaves the units that scored the earlier weights behind."""
    weights = Path(run) / RunFolder.ENCODER
    if not weights.is_file():
        return False
    scored = json.loads((Path(unit_folder) / "summary.json").read_text()).get("info", {}).get("encoder_sha256")
    if scored:
        return scored == file_sha256(weights)
    return weights.stat().st_mtime <= (Path(unit_folder) / RunFolder.CONFIG).stat().st_mtime


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
        # the whole study reports into resources/ and the README's block; a subset (a part, --experiments,
        # --methods, --only) reports what it ran under its output folder and never overwrites them. The unit
        # records are the study's either way (resources/study/units, or --results_dir's)
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
            config_class, train = FederatedConfig, lambda config: run_local(config, har_client_datasets(config))
        else:
            config_class, train = HARPretrainConfig, lambda config: pretrain(config, har_pretrain_data(config))
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
            splits = har_labelled_splits(config, None, str(encoder))
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
                                                       getattr(encoder_config, "DEFAULT_TASKS", SEED_TASKS)),
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
                            f"DOWNSTREAM_MODE in HAR_centralized/study.py to {best} and run again")
        return {"choice": "downstream_mode", "method": None, "chosen": DOWNSTREAM_MODE, "best_on_val": best,
                "disagrees": best != DOWNSTREAM_MODE, "pending": len(done) < len(DOWNSTREAM_MODES),
                "grid": [{"value": m, "val_macro_f1": mean[m], "n": len(common)} if m in mean
                         else {"value": m, "pending": True} for m in DOWNSTREAM_MODES],
                "methods": {"encoder": list(DOWNSTREAM_MODES)}, "fractions": list(RECIPE.fractions),
                "where": "DOWNSTREAM_MODE in HAR_centralized/study.py"}

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
        figures in the figures folder; the README's results block. Returns the aggregated table."""
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
        if self.readme is not None:
            write_readme_block(self.readme, lines[2:])
        print("\n".join(lines))
        return table

    def draw_model_figures(self):
        """The figures drawn from a model rather than from results: t-SNE of the default encoder's test
        embeddings (beside the raw windows and expert features) and the architecture."""
        run = self.encoder(EXPERIMENTS[0], self.config.pretrain_seeds[0])
        test = load_har("test", self.config.data_source)
        model_args, state_dict = load_pretrained_encoder(Path(run) / "encoder.pt")
        representations = {"raw": test.x, "features": test.features,
                           "embeddings": embed(rebuild_encoder(model_args, state_dict), test.x).numpy()}
        plot_tsne(representations, test.y, ACTIVITY_NAMES, str(self.figures / "tsne_all_activity_{}.png"))
        plot_architecture(har_model(HARPretrainConfig()), list(WEIGHTINGS), self.figures / "MTL-architecture.png",
                          input_label="sensor window\n9 x 128")
