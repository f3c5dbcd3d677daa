"""The HAR study's manifest: which encoders are pretrained (experiments), which downstream methods each gets,
which settings are chosen on the val subjects (choices), which claims compare them and which figures show
them. Data, not code: the runner (studies/har/runner.py) runs it in resumable units under the reuse rule
(studies/har/reuse.py); the report (studies/report.py) turns the units' records into tables.

Comments say why an entry is here and when it was registered (a search is sequential: what informed a
candidate is said beside it); the scores live in the records (resources/study/units/) and the report
(docs/results.md, resources/study/downstream.md), never here.

Adding an experiment: one Experiment below (an id, train_encoder.py flags or None, {method: modes}, its part);
its units then run with `python studies/har/reproduce.py --experiments ID`.
"""
import dataclasses

from common.classification import NETWORK_MODES
from common.tasks import THESIS_TASKS
from common.weighting import WEIGHTINGS
from HAR_centralized.config import HARClassifierConfig, HARPretrainConfig
from har_task import DEFAULT_RECIPE

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


DEFAULT = "mtl_default"  # the default recipe (har_task/config.py, DEFAULT_RECIPE): the recipe search's val winner
# the thesis's multi-task recipe, the default before the search (its id, like the search's "seed_tasks", is
# older than the name "thesis": ids name the unit records in resources/study/units/, so they stay)
THESIS_MTL = "mtl_seed_tasks"
THESIS_FOUR = ("--model_heads", "1", "1", "1", "1")  # the thesis's four tasks, whatever the default recipe is
# the defaults every recipe was written against before the search moved them (the train subjects' UCI HAR
# windows, 30 epochs): the experiments written against them pin them, so their runs and records stay theirs
EARLIER_DEFAULTS = ("--pretrain_data", "labelled", "--pretrain_step", "64", "--epochs", "30")  # step: recorded only
THESIS_RECIPE = (*THESIS_FOUR, *EARLIER_DEFAULTS)  # the thesis's four tasks on the labelled windows, 30 epochs
DEFAULT_WEIGHTING = HARPretrainConfig().weighting
LINEAR = {"encoder": ("linear",)}
SCALING_FRACTIONS = (0.01, 0.1)  # the label fractions of the unlabelled-data scaling curve


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
ALL_TASKS = ("--tasks", *THESIS_TASKS, "rocket", *ROCKET256)
RECIPES = {  # name -> train_encoder.py flags, or the id of the experiment that pretrains it; cheapest first (the
    # units run in this order), so a session's share of the search scores whole candidates. The first candidates
    # changed one thing of the thesis's multi-task recipe, the default when the search was registered
    "seed_tasks": THESIS_MTL,
    "rocket_only": ("--tasks", "rocket", *ROCKET256),  # regress MiniRocket's features alone (common/tasks/rocket.py)
    # added after rocket_only's val scores (a sequential step of the search, on val only): the distilled
    # encoder with twice the channels
    "rocket_width64": ("--tasks", "rocket", *ROCKET256, "--encoder_width", "64"),
    # added after the width-64 run's first val monitors (sequential, val only): more of the target (512
    # components of MiniRocket's features), or 3.4x the windows to distil it from
    "rocket_dim512": ("--tasks", "rocket", "--rocket_dim", "512", *EARLIER_DEFAULTS),
    "rocket_dense": ("--tasks", "rocket", "--rocket_dim", "256", "--pretrain_data", "all", "--pretrain_step", "32",
                     "--epochs", "30"),
    # added after the plateau of rocket alone (width 64 and 512 components level on val; sequential, val only):
    # the 128-d embedding is narrower than the 512 components it regresses and than what MiniRocket's probe sees
    "rocket_emb512": ("--tasks", "rocket", "--rocket_dim", "512", "--embedding_dim", "512", *EARLIER_DEFAULTS),
    # added after the step-32 winner's distillation gap (benchmarks/distillation_gap.py, resources/study/): its
    # target alone probes nearly as well as MiniRocket, the embedding reproduces it closely on the train
    # windows, and the loss still falls at epoch 30: the student underfits, so twice the epochs.
    # That account was scored on the test subjects (the script's default then): a test output informed this
    # candidate's registration, though its choice was made on val like every other's
    DEFAULT_RECIPE.name: DEFAULT_RECIPE.flags(),  # the winner: the default recipe (har_task/config.py)
    # added after the winner's test confirmation (sequential; chosen on val like the others): the student
    # reproduces its fixed targets less well on new subjects than on train ones, and distillation
    # with a teacher answering on the student's augmented view (function matching, Beyer et al. 2022) is what
    # closes such gaps in images. The winner's recipe with rocket_views instead of rocket (common/tasks/rocket.py)
    "rocket_views_dense_epochs60": ("--tasks", "rocket_views", "--rocket_dim", "256", "--pretrain_data", "all",
                                    "--pretrain_step", "32", "--epochs", "60"),
}
# registered, then cut by successive halving (sequential, on val only); the flags stay here to be run again: add
# a name back to RECIPES. Each of the first six changes one thing of the thesis's multi-task recipe, whose arm
# trailed the rocket-alone arm on val at both seeds by more than any single change of that recipe moved it in
# the 3-draw study (docs/study.md, the search)
DROPPED_RECIPES = {
    "no_features": ("--model_heads", "1", "1", "1", "0", *EARLIER_DEFAULTS),  # does the features task dominate?
    "batch256": (*THESIS_RECIPE, "--batch_size", "256"),
    "equal_weights": "mtl_equal",
    "dilated": (*THESIS_RECIPE, "--encoder", "dilated1d", "--encoder_depth", "4"),  # every scale (2x the step time)
    "width64": (*THESIS_RECIPE, "--encoder_width", "64"),  # 3.3x the thesis recipe's step time
    "dense_step32": "mtl_all_recordings_step32",  # 3.4x the windows
    # scored in an earlier session whose unit records were lost with its machine (docs/study.md keeps what they
    # said); not run again, being the thesis arm's
    "rocket": ALL_TASKS,  # a fifth task beside the thesis's four
    "epochs10": (*THESIS_RECIPE, "--epochs", "10"),  # the val monitor levels off after 5 of the 30 epochs
    # the rocket-alone arm's: the features task beside rocket adds the thesis arm's weakest task back; the
    # dilated encoder's val monitors (2x the step time) stayed within the plateau after 30 epochs
    "features_rocket": ("--tasks", "features", "rocket", *ROCKET256),
    "rocket_dilated": ("--tasks", "rocket", *ROCKET256, "--encoder", "dilated1d", "--encoder_depth", "4"),
    # width 64 and the 512-d embedding each scored below rocket alone on val: their product (about 3x
    # rocket_emb512's pretraining) is not run
    "rocket_width64_emb512": ("--tasks", "rocket", "--rocket_dim", "512", "--embedding_dim", "512",
                              "--encoder_width", "64", *EARLIER_DEFAULTS),
}
PROBES = {"encoder": ("selftrain",), "minirocket": ("selftrain",), "expert_features": ("selftrain",)}
NETWORKS = {"encoder": ("finetune",), "supervised": ("finetune",), "resnet": ("finetune",)}
CHOICES = (
    # static task weights (augmentation, reconstruction, contrastive, features): the losses differ in scale by
    # ~100x (masked MSE ~0.05, features ~0.02, cross-entropies ~1-2), so the grid up-weights the small ones
    Choice("static_weights", ((1, 10, 1, 10), (1, 30, 1, 30), (1, 10, 2, 30), (0.5, 30, 1, 30)), (1, 10, 2, 30),
           lambda w: (*THESIS_RECIPE, "--weighting", "static", "--task_weights", *map(str, w)), LINEAR, (0.1,),
           pretrain=True,
           where="STATIC_WEIGHTS in studies/har/manifest.py", part="weighting_loss", scored_at=BEFORE_SUBJECT_NORM),
    # the semi-supervised settings and the networks' learning rate, one grid for every method they serve (a
    # grid extends past its edge when val prefers its last value: 8 rounds, lr 1e-2, 3e-2). Self-training's
    # rounds are one value for every probe, hybrids included; 8 rounds is the edge again by a small margin, and 12
    # is not tried: 8 already costs MiniRocket minutes a draw at 10%
    Choice("selftrain_rounds", (1, 3, 5, 8), CLASSIFIER.selftrain_rounds, lambda v: ("--selftrain_rounds", str(v)),
           PROBES, (0.01, 0.1), scored_at=BEFORE_SUBJECT_NORM),
    # each network its own lr, then its own FixMatch threshold at that lr (ResNet's val units cost ~20x the
    # others': they decide ResNet's units only). On the default encoder LP-FT's curve is flat and best near its
    # lower edge, so the grid extends to 1e-4 (the scores: the report's "Chosen on the val subjects")
    Choice("lr", (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2), {"encoder": 3e-4, "supervised": 1e-3},
           lambda v: ("--lr", str(v)),
           NETWORKS, (0.01, 0.1), where="CHOICES in studies/har/manifest.py (lr: chosen)", per_method=True),
    # at the lrs above, 5 val draws at 1%
    Choice("fixmatch_threshold", (0.8, 0.95), {"encoder": 0.8, "supervised": 0.95},
           lambda v: ("--fixmatch_threshold", str(v)),
           {"encoder": ("fixmatch",), "supervised": ("fixmatch",), "resnet": ("fixmatch",)},
           (0.01,), where="CHOICES in studies/har/manifest.py (fixmatch_threshold: chosen)", per_method=True),
    # each subject's representation relative to its own windows (common/subject_norm.py), one value for every
    # probe so each representation gets the same care. Registered after a diagnostic on the seed-42 default
    # (benchmarks/subject_norm.py, val and test both shown) lifted every representation at 1%; scored by the
    # linear probe only (MiniRocket's self-training at 10% costs minutes a draw). zscore and adabn tied on val:
    # zscore, the simpler, became HAR's default
    Choice("subject_norm", ("none", "zscore", "adabn"), CLASSIFIER.subject_norm, lambda v: ("--subject_norm", v),
           {"encoder": ("linear",), "minirocket": ("linear",), "expert_features": ("linear",)}, (0.01, 0.1),
           where="HARClassifierConfig's defaults in HAR_centralized/config.py"),
    # the networks' counterpart (registered with the probes' zscore default, before its units ran): each network
    # classifies a val or test subject with its BatchNorm statistics of that subject's windows, chosen per
    # network so supervised training from scratch gets the same care as the encoder's (seed 42, 5 val draws)
    Choice("network_subject_norm", ("none", "adabn"), {"encoder": "adabn", "supervised": "none"},
           lambda v: ("--network_subject_norm", v),
           {"encoder": ("finetune",), "supervised": ("finetune",)}, (0.01, 0.1), per_method=True,
           where="CHOICES in studies/har/manifest.py (network_subject_norm: chosen)"),
    # the pretraining recipe (issue 20's search, registered before it runs): each candidate changes one thing
    # of the default, 2 pretraining seeds each, scored on val by the encoder's probes (self-training uses the
    # unlabelled windows) and the hybrid that must beat MiniRocket. The hybrid is probed linearly only: its
    # self-training at 10% costs minutes a draw, more than the candidate's pretraining
    Choice("recipe", tuple(RECIPES), DEFAULT_RECIPE.name, lambda name: RECIPES[name],
           {"encoder": LINEAR_SELFTRAIN, "encoder+minirocket": ("linear",)}, (0.01, 0.1), pretrain=True,
           where="DEFAULT_RECIPE in har_task/config.py (the centralized and federated defaults and this "
                 "choice follow it)",
           part="search", seed_count=2, scored_at=BEFORE_SUBJECT_NORM),
)
STATIC_WEIGHTS = CHOICES[0].chosen
RECIPE = CHOICES[-1]
# the default encoder's downstream mode, chosen on val after the recipe: on the search's val encoders of the
# chosen recipe (its 2 seeds, the same draws), its probe and self-training (winner_probes_val) against LP-FT and
# FixMatch (winner_networks_val), each at the settings chosen since; the report checks it is still the best mean
# val macro-F1 (at subject_norm none, the search's own units, self-training led; at the settings chosen since,
# LP-FT: the report's "Chosen on the val subjects: downstream_mode")
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
    # the thesis's multi-task recipe (the default before the search): what the winner replaced
    Experiment(THESIS_MTL, THESIS_RECIPE, {"encoder": LINEAR_SELFTRAIN}),
    # co-training the hybrids' two blocks (found on val: seed 42, 1%, 8 draws, above the hybrid's self-training
    # and MiniRocket's); units of their own, so the finished hybrid units stay
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
      for i, task in enumerate(THESIS_TASKS)),
    # task weighting: the losses' weights (minutes per epoch alike), then the gradients' (a backward per task)
    # task weighting of the thesis's four tasks: the losses' weights (minutes per epoch alike), then the
    # gradients' (a backward per task)
    *(Experiment(f"mtl_{w}", CHOICES[0].flags(STATIC_WEIGHTS) if w == "static" else (*THESIS_RECIPE, "--weighting", w),
                 LINEAR, "weighting_loss")
      for w in ("equal", "static", "dwa", "famo")),
    *(Experiment(f"mtl_{w}", (*THESIS_RECIPE, "--weighting", w), LINEAR, "weighting_gradient")
      for w in ("gradnorm", "cagrad", "upgrad")),
    # more unlabelled data for the thesis's recipe: every window of the train subjects' recordings, and with half
    # the window step
    Experiment("mtl_all_recordings", (*THESIS_FOUR, "--pretrain_data", "all", "--pretrain_step", "64", "--epochs",
                                      "30"), LINEAR, "data"),
    Experiment("mtl_all_recordings_step32", (*THESIS_FOUR, "--pretrain_data", "all", "--pretrain_step", "32",
                                             "--epochs", "30"), LINEAR,
               "data"),
    # does more unlabelled data help? (issue 40) The default recipe on a share of the train subjects' recordings,
    # drawn by the pretraining seed (so each seed sees other recordings), and on every recording at a step of 8
    # samples (4x the windows, overlapping 15/16) for 15 epochs: the default's optimiser steps, 4x the windows each
    # seen a quarter as often. Probed at 1 / 10% labels on the default's draws, against it and MiniRocket
    *(Experiment(f"unlabelled_{percent}pct", ("--pretrain_fraction", str(percent / 100)), LINEAR, "scaling",
                 fractions=SCALING_FRACTIONS) for percent in (25, 50)),
    Experiment("unlabelled_step8", ("--pretrain_step", "8", "--epochs", "15"), LINEAR, "scaling",
               fractions=SCALING_FRACTIONS),
    # federated pretraining of the default recipe (HAR_federated/config.py: the rocket task, its MiniRocket PCA fit
    # from the clients' statistics; 30 rounds x 2 local epochs = the default's 60 epochs), against it centralized
    Experiment("federated", (), {"encoder": LINEAR_SELFTRAIN}, "federated", federated=True),
    # a safer aggregation for untrusted fleets (issue 42): what the coordinate-wise median costs the honest run's
    # quality, probed at 10% labels on FedAvg's draws (the attacks' distances: benchmarks/federated_attacks.py)
    # (the server waits up to 600 s for the whole fleet before the rocket task's shared PCA: on a loaded machine
    # clients join slowly, and a PCA of fewer clients' windows would be a second difference from FedAvg's runs)
    Experiment("federated_median", ("--aggregation", "median", "--connect_wait_s", "600"), LINEAR, "federated",
               federated=True, fractions=(0.1,)),
    # FedAvg with each update's norm bounded by the honest updates' median norm in the first rounds (the
    # metrics rows' median_update_norm of federated_median's runs: 3-6)
    Experiment("federated_clip", ("--update_clip", "4", "--connect_wait_s", "600"), LINEAR, "federated",
               federated=True, fractions=(0.1,)),
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
SINGLE_TASKS = tuple((f"stl_{task}", "linear") for task in THESIS_TASKS)
CLAIMS = (
    *({"a": ours, "b": opponent, "fractions": FEW_LABELS} for ours in OURS for opponent in OPPONENTS),
    # the confirmation (issue 20): the val winner against the thesis's recipe it replaced, like against like
    *({"a": (DEFAULT, mode), "b": (THESIS_MTL, mode), "fractions": ALL_FRACTIONS} for mode in LINEAR_SELFTRAIN),
    # the strongest single task at each fraction (chosen on test: the hardest opponent, not a tuned one)
    *({"a": ours, "b_best_of": SINGLE_TASKS, "fractions": ALL_FRACTIONS} for ours in OURS[:2]),
    *({"a": (THESIS_MTL, "linear"), "b_best_of": SINGLE_TASKS, "fractions": ALL_FRACTIONS},),
    *({"a": (f"mtl_{w}", "linear"), "b": ("mtl_equal", "linear"), "fractions": ALL_FRACTIONS}
      for w in WEIGHTINGS if w not in ("equal", DEFAULT_WEIGHTING)),
    {"a": (THESIS_MTL, "linear"), "b": ("mtl_equal", "linear"), "fractions": ALL_FRACTIONS},
    {"a": ("mtl_all_recordings", "linear"), "b": (THESIS_MTL, "linear"), "fractions": ALL_FRACTIONS},
    *({"a": ("federated", mode), "b": (DEFAULT, mode), "fractions": ALL_FRACTIONS} for mode in LINEAR_SELFTRAIN),
    *({"a": (f"federated_{name}", "linear"), "b": ("federated", "linear"), "fractions": (0.1,)}
      for name in ("median", "clip")),
    *({"a": (f"unlabelled_{name}", "linear"), "b": b, "fractions": SCALING_FRACTIONS}
      for name in ("25pct", "50pct", "step8") for b in ((DEFAULT, "linear"), ("minirocket", "linear"))),
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
        (THESIS_MTL, "linear", {"color": "C2", "linestyle": ":", "linewidth": 2}),
        ("minirocket", "linear", {"color": "C0", "linewidth": 2}),
        ("supervised", "finetune", {"color": "k", "linestyle": ":"}),
        ("resnet", "finetune", {"color": "0.3", "linestyle": "--"}), ("expert_features", "linear", {"color": "0.5"})]),
    "MTL-vs-STL.png": ("UCI HAR: multi-task against single-task pretraining", "stl_augmentation", [
        (THESIS_MTL, "linear", {"color": "C2", "linewidth": 2.5}),
        (DEFAULT, "linear", {"color": "C3", "linewidth": 2.5}),
        *((f"stl_{t}", "linear", {"linewidth": 1.2, "color": c})
          for t, c in zip(THESIS_TASKS, ("C0", "C1", "C2", "C9"))),
        ("supervised", "finetune", {"color": "k", "linestyle": ":"}), ("expert_features", "linear", {"color": "0.5"})]),
    "FL.png": ("Federated against centralized pretraining, frozen encoder", "federated", [
        (DEFAULT, "linear", {"color": "C3", "linewidth": 2}),
        ("federated", "linear", {"color": "C0", "linewidth": 2})]),
}
# the unlabelled-data scaling curve (its table in docs/results.md, the figure unlabelled_scaling.png): (what the
# encoder pretrained on, its row, its windows relative to the default's), and the opponent drawn beside it
SCALING_CURVE = (("25% of the recordings", "unlabelled_25pct", 0.25),
                 ("50% of the recordings", "unlabelled_50pct", 0.5),
                 ("all recordings, step 32 (the default)", DEFAULT, 1.0),
                 ("all recordings, step 8 (4x the windows, 15 epochs)", "unlabelled_step8", 4.0))
SCALING_OPPONENT = ("minirocket", "linear")
WEIGHTING_FIGURE = ("weighting.png", tuple(f"mtl_{w}" if w != DEFAULT_WEIGHTING else THESIS_MTL
                                           for w in WEIGHTINGS))

# the README's headline table (studies/report.py, headline_table): the default encoder in its modes, the hybrid
# with MiniRocket, and the field's baselines, on UCI HAR and HAPT-12 at 1 / 10 / 100% labels
HEADLINE = (
    ("default encoder, linear probe", DEFAULT, "linear"),
    ("default encoder, LP-FT (the mode chosen on val)", DEFAULT, DOWNSTREAM_MODE),
    ("default encoder, self-trained probe", DEFAULT, "selftrain"),
    ("hybrid: encoder + MiniRocket, probe", f"{DEFAULT}+minirocket", "linear"),
    ("hybrid: encoder + MiniRocket, self-trained", f"{DEFAULT}+minirocket", "selftrain"),
    ("MiniRocket, probe", "minirocket", "linear"),
    ("MiniRocket, self-trained", "minirocket", "selftrain"),
    ("supervised CNN from scratch", "supervised", "finetune"),
    ("expert features, probe", "expert_features", "linear"),
)
HEADLINE_COLUMNS = tuple((f"{name} {100 * f:g}%", prefix, f)
                         for name, prefix in (("UCI HAR", ""), ("HAPT-12", "hapt12/")) for f in (0.01, 0.1, 1.0))
