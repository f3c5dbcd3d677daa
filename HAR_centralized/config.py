"""Defaults that reproduce the HAR experiments. Every field is also a flag: --model_heads 1 0 1 1 ...

The default recipe is the recipe search's winner on the val subjects (HAR_centralized/study.py, RECIPES;
README, Results): one pretext task, regressing 256 principal components of the window's MiniRocket
features (common/tasks/rocket.py), on every window of the train subjects' whole recordings at a step of 32
samples (21,372 windows of the raw HAPT recordings, the offline default; the official UCI HAR download
lacks them: pretrain on its windows with --pretrain_data labelled), for 60 epochs. The seed's switches keep their
meaning: `model_heads` switches the four tasks (augmentation, reconstruction, contrastive, features), so
`--model_heads 1 1 1 1` is the seed's multi-task recipe; `--tasks` names any registered tasks;
`use_weighted_loss` 0 weighs them equally, `output_dir` is where runs go. Edit a default here, or override
it on the command line.
"""
from dataclasses import dataclass
from typing import ClassVar

from common.classification import ClassifierConfig
from common.config import field
from common.har_task import PRETRAIN_DATA, HARClassifierDataConfig, HARPretrainDataConfig
from common.pretrain_config import PretrainConfig


@dataclass
class HARPretrainConfig(HARPretrainDataConfig, PretrainConfig):
    # the val winner: MiniRocket distilled into the encoder from whole recordings for 60 epochs (0.930 mean val
    # macro-F1 over 2 seeds, 30 epochs 0.926, the seed's four tasks 0.901; ~4-6 minutes of pretraining on 2 cores)
    epochs: int = field(60, "pretraining epochs")
    DEFAULT_TASKS: ClassVar[tuple] = ("rocket",)
    pretrain_data: str = field("all", "labelled: the train subjects' UCI HAR windows; all: every window of their "
                               "whole HAPT recordings (unlabelled stretches too)", choices=PRETRAIN_DATA)
    pretrain_step: int = field(32, "with --pretrain_data all: samples between window starts (64 = UCI HAR's 50%)")
    output_dir: str = field("HAR_centralized/outputs", "run folders go here")
    # the model and schedule are common/pretrain_config.py's defaults


@dataclass
class HARClassifierConfig(HARClassifierDataConfig, ClassifierConfig):
    runs_dir: str = field("HAR_centralized/outputs", "where to look for the newest run when --encoder is empty")
