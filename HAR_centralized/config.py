"""Defaults that reproduce the HAR experiments. Every field is also a flag: --model_heads 1 0 1 1 ...

`model_heads` switches the four tasks (augmentation, reconstruction, contrastive, features),
`use_weighted_loss` 0 weighs them equally, `output_dir` is where runs go. Edit a default here, or override
it on the command line.
"""
from dataclasses import dataclass

from common.classification import ClassifierConfig
from common.config import field
from common.har_task import HARClassifierDataConfig, HARPretrainDataConfig
from common.pretrain_config import PretrainConfig


@dataclass
class HARPretrainConfig(HARPretrainDataConfig, PretrainConfig):
    output_dir: str = field("HAR_centralized/outputs", "run folders go here")
    # the model and schedule are common/pretrain_config.py's defaults, sized so the default pretraining
    # finishes in under 10 minutes on 2 CPU cores


@dataclass
class HARClassifierConfig(HARClassifierDataConfig, ClassifierConfig):
    runs_dir: str = field("HAR_centralized/outputs", "where to look for the newest run when --encoder is empty")
