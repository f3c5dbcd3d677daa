"""HAR's config field groups (the data of every HAR run, a classifier's and a pretraining's own) and the
default recipe, written once: HAR_centralized/config.py, HAR_federated/config.py and the study
(studies/har/manifest.py) all take it from here, and tests/test_recipe.py checks that they and the shipped
encoder's card agree.
"""
from dataclasses import dataclass

from common.config import Config, field
from data_processing.har import CLASS_NAMES, SOURCES
from data_processing.recordings import parse_dataset
from ground.errors import UserError

PRETRAIN_DATA = ("labelled", "all")
STANDARDISE = ("auto", "channel", "none")


@dataclass(frozen=True)
class Recipe:
    """A pretraining recipe as the flags that differ from the field groups' defaults."""

    name: str  # its name in the study's recipe search (studies/har/manifest.py, RECIPES)
    tasks: tuple
    rocket_dim: int
    pretrain_data: str
    pretrain_step: int
    epochs: int

    def defaults(self):
        """The centralized config's defaults that make this recipe (compose_config's `defaults`, DEFAULT_TASKS)."""
        return {"epochs": self.epochs, "pretrain_data": self.pretrain_data, "pretrain_step": self.pretrain_step,
                "rocket_dim": self.rocket_dim}

    def flags(self):
        """train_encoder.py flags that make this recipe whatever the defaults are."""
        return ("--tasks", *self.tasks, "--rocket_dim", str(self.rocket_dim), "--pretrain_data", self.pretrain_data,
                "--pretrain_step", str(self.pretrain_step), "--epochs", str(self.epochs))


# The default recipe: the recipe search's winner on the val subjects (the study's records hold its scores):
# one pretext task regressing 256 principal components of the window's MiniRocket features, on every window
# of the train subjects' whole recordings at a step of 32 samples (the raw HAPT recordings, the offline
# default; the official UCI HAR download lacks them: --pretrain_data labelled), for 60 epochs
DEFAULT_RECIPE = Recipe(name="rocket_dense_epochs60", tasks=("rocket",), rocket_dim=256, pretrain_data="all",
                        pretrain_step=32, epochs=60)


@dataclass
class HARDataConfig(Config):
    dataset: str = field("uci_har", "uci_har, or your own recordings: npz:PATH or csv:DIR (formats in the README)")
    data_source: str = field("auto", "UCI HAR source: official folder if present, else the HAPT rebuild",
                             choices=SOURCES)
    sample_rate_hz: float = field(0.0, "own recordings: their sampling rate; 0: the npz's sample_rate_hz array or "
                                       "a CSV timestamp column (one of them is required: a rate is never assumed)")
    target_rate_hz: float = field(50.0, "own recordings are resampled to this rate (the encoder's; UCI HAR: 50)")
    window: int = field(128, "own recordings: samples per window (UCI HAR: 128)")
    window_step: int = field(64, "own recordings: samples between window starts")
    test_subjects: tuple[int, ...] = field((), "own recordings: the test subjects; empty: the encoder's pretraining "
                                               "split (classifier), else 20% drawn by --split_seed")
    val_subjects: tuple[int, ...] = field((), "own recordings: the validation subjects; empty: as --test_subjects, "
                                              "10% drawn")
    split_seed: int = field(0, "own recordings: seed of the subject split (the classifier takes the encoder's)")
    axis_triplets: int = field(1, "1: channels count in x,y,z triplets when their number is a multiple of 3 "
                                  "(rotation and axis-shuffle augmentations); 0: never")
    standardise: str = field("auto", "per-channel standardisation by the train subjects' mean and std, stored with "
                                     "the encoder: auto (own recordings: channel, UCI HAR: none), channel, none",
                             choices=STANDARDISE)

    def check_values(self):
        parse_dataset(self.dataset)
        if self.sample_rate_hz < 0 or not self.target_rate_hz > 0:
            raise UserError("--sample_rate_hz must be >= 0 (0: from the file) and --target_rate_hz positive")
        if not 16 <= self.window <= 100_000 or not 1 <= self.window_step <= self.window:
            raise UserError(f"--window must be in 16..100000 samples and --window_step in 1..--window, got "
                            f"{self.window} and {self.window_step}")
        if self.axis_triplets not in (0, 1):
            raise UserError("--axis_triplets takes 0 or 1")
        if self.standardise not in STANDARDISE:
            raise UserError(f"--standardise takes {', '.join(STANDARDISE)}, got {self.standardise!r}")

    def own_data(self):
        return self.dataset != "uci_har"

    def standardises(self):
        return self.standardise == "channel" or (self.standardise == "auto" and self.own_data())

    def default_split(self):
        """Whether the subject split is left to its defaults (the classifier then takes the encoder's)."""
        return not self.test_subjects and not self.val_subjects and self.split_seed == 0


@dataclass
class HARClassifierDataConfig(Config):
    """A classifier's HAR fields, beside HARDataConfig's."""
    task: str = field("har6", "har6: UCI HAR's 6 activities; hapt12: HAPT's 6 activities + 6 postural "
                              "transitions (same recordings and subjects)", choices=tuple(CLASS_NAMES))
    transductive: int = field(0, "1: allow test subjects the encoder was pretrained on (a transductive study, "
                                 "labelled so in the results); 0: refuse them")
    cache_dir: str = field("", "UCI HAR's window cache; empty: data/cache ($MTSSL_DATA_DIR/cache when set)")

    def check_values(self):
        if self.task != "har6" and self.own_data():
            raise UserError(f"--task {self.task} is a UCI HAR task: own recordings bring their own labels")
        if self.transductive not in (0, 1):
            raise UserError("--transductive takes 0 or 1")


@dataclass
class HARPretrainDataConfig(Config):
    """A pretraining's HAR fields, beside HARDataConfig's."""
    pretrain_data: str = field("labelled", "labelled: the train subjects' UCI HAR windows; all: every window of "
                               "their whole HAPT recordings (unlabelled stretches too)", choices=PRETRAIN_DATA)
    pretrain_step: int = field(64, "with --pretrain_data all: samples between window starts (64 = UCI HAR's 50%)")
    pretrain_extra: tuple[str, ...] = field((), "more unlabelled recordings for pretraining only (npz:PATH or "
                                                "csv:DIR, repeatable; the same channels, resampled to the same rate)")
    pretrain_corpus: str = field("", "a prepared corpus folder (data/prepare_corpus.py) whose windows pretraining "
                                     "streams from disk instead of reading recordings (the train subjects' when it "
                                     "was prepared from --dataset; every window of a corpus of other recordings)")
    pretrain_fraction: float = field(1.0, "share of the train subjects' recordings pretrained on, drawn by --seed "
                                          "(the unlabelled-data scaling curve); 1: all")

    def check_values(self):
        if not 8 <= self.pretrain_step <= 128:
            raise UserError(f"--pretrain_step must be in 8..128 samples, got {self.pretrain_step}")
        if not 0 < self.pretrain_fraction <= 1:
            raise UserError(f"--pretrain_fraction must be in (0, 1], got {self.pretrain_fraction}")
        for extra in self.pretrain_extra:
            if parse_dataset(extra)[0] == "uci_har":
                raise UserError("--pretrain_extra takes npz:PATH or csv:DIR (UCI HAR's own recordings: "
                                "--pretrain_data all)")
