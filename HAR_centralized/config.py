"""Defaults that reproduce the HAR experiments. Every field is also a flag: --model_heads 1 0 1 1 ...

The default recipe is the recipe search's winner on the val subjects (HAR_centralized/study.py, RECIPES;
README, Results): one pretext task, regressing 512 principal components of the window's MiniRocket
features (common/tasks/rocket.py). The seed's switches keep their meaning: `model_heads` switches the four
tasks (augmentation, reconstruction, contrastive, features), so `--model_heads 1 1 1 1` is the seed's
multi-task recipe; `--tasks` names any registered tasks; `use_weighted_loss` 0 weighs them equally,
`output_dir` is where runs go. Edit a default here, or override it on the command line.
"""
from dataclasses import dataclass
from typing import ClassVar

from common.classification import ClassifierConfig
from common.config import field
from common.har_task import HARClassifierDataConfig, HARPretrainDataConfig
from common.pretrain_config import PretrainConfig


@dataclass
class HARPretrainConfig(HARPretrainDataConfig, PretrainConfig):
    # the val winner: MiniRocket distilled into the encoder (0.928 mean val macro-F1 over 2 seeds against the
    # seed's four tasks' 0.905; ~1 minute of pretraining on 2 cores against ~8)
    DEFAULT_TASKS: ClassVar[tuple] = ("rocket",)
    rocket_dim: int = field(512, "rocket task: principal components of MiniRocket's features it regresses")
    output_dir: str = field("HAR_centralized/outputs", "run folders go here")
    # the model and schedule are common/pretrain_config.py's defaults


@dataclass
class HARClassifierConfig(HARClassifierDataConfig, ClassifierConfig):
    runs_dir: str = field("HAR_centralized/outputs", "where to look for the newest run when --encoder is empty")
