"""Defaults that reproduce the HAR experiments. Every field is also a flag: --model_heads 1 0 1 1 ...

Each entrypoint's config is composed here of field groups declared once each (common/config.py,
compose_config), with the defaults this experiment changes; `--help` lists every flag under its group.

The default recipe is the recipe search's winner on the val subjects (HAR_centralized/study.py, RECIPES;
README, Results): one pretext task, regressing 256 principal components of the window's MiniRocket
features (common/tasks/rocket.py), on every window of the train subjects' whole recordings at a step of 32
samples (21,372 windows of the raw HAPT recordings, the offline default; the official UCI HAR download
lacks them: pretrain on its windows with --pretrain_data labelled), for 60 epochs (0.930 mean val macro-F1
over 2 seeds; 30 epochs 0.926, the seed's four tasks 0.901; ~4-6 minutes of pretraining on 2 cores). The
seed's switches keep their meaning: `model_heads` switches the four tasks (augmentation, reconstruction,
contrastive, features), so `--model_heads 1 1 1 1` is the seed's multi-task recipe; `--tasks` names any
registered tasks; `use_weighted_loss` 0 weighs them equally, `output_dir` is where runs go. Edit a default
here, or override it on the command line.

Probes describe each subject's windows relative to that subject's own (`subject_norm` zscore, chosen on the val
subjects among none / zscore / adabn: 0.894 / 0.933 / 0.933 mean val macro-F1 of the encoder, MiniRocket and
the expert features); it needs each window's subject, which UCI HAR, HAPT and own recordings carry
(`--subject_norm none` for the protocol without it).
"""
from common.classification import ClassifierConfig
from common.config import compose_config
from common.har_task import HARClassifierDataConfig, HARDataConfig, HARPretrainDataConfig
from common.pretrain_config import ScheduleConfig, SSLConfig

# train_encoder.py: the run, model, tasks and optimiser (SSLConfig), the schedule, the HAR data
HARPretrainConfig = compose_config(
    "HARPretrainConfig", __name__, (SSLConfig, ScheduleConfig, HARDataConfig, HARPretrainDataConfig),
    defaults={"output_dir": "HAR_centralized/outputs", "epochs": 60, "pretrain_data": "all", "pretrain_step": 32},
    DEFAULT_TASKS=("rocket",))

# train_classifier.py: the methods, label fractions, probes and fine-tuning (ClassifierConfig), the HAR data
HARClassifierConfig = compose_config(
    "HARClassifierConfig", __name__, (ClassifierConfig, HARDataConfig, HARClassifierDataConfig),
    defaults={"runs_dir": "HAR_centralized/outputs", "subject_norm": "zscore"})
