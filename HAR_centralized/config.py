"""Defaults that reproduce the HAR experiments. Every field is also a flag: --model_heads 1 0 1 1 ...

Each entrypoint's config is composed here of field groups declared once each (common/config.py,
compose_config), with the defaults this experiment changes; `--help` lists every flag under its group.

The default recipe is har_task/config.py's DEFAULT_RECIPE, written once for this config, the federated one
and the study (the recipe search's winner on the val subjects; its scores are in the study's records,
docs/results.md): the rocket task alone on the train subjects' whole recordings at a step of 32 samples, for
60 epochs. The thesis's switches keep their meaning: `model_heads` switches its four tasks (augmentation,
reconstruction, contrastive, features), so `--model_heads 1 1 1 1` is the thesis's multi-task recipe; `--tasks`
names any registered tasks; `use_weighted_loss` 0 weighs them equally, `output_dir` is where runs go. Edit a
default here (the recipe: in DEFAULT_RECIPE, so every experiment follows), or override it on the command line.

Probes describe each subject's windows relative to that subject's own (`subject_norm` zscore, chosen on the val
subjects among none / zscore / adabn, studies/har/manifest.py); it needs each window's subject, which UCI HAR,
HAPT and own recordings carry (`--subject_norm none` for the protocol without it).
"""
from common.classification import ClassifierConfig
from common.config import compose_config
from common.pretrain_config import ScheduleConfig, SSLConfig
from har_task.config import DEFAULT_RECIPE, HARClassifierDataConfig, HARDataConfig, HARPretrainDataConfig

# train_encoder.py: the run, model, tasks and optimiser (SSLConfig), the schedule, the HAR data
HARPretrainConfig = compose_config(
    "HARPretrainConfig", __name__, (SSLConfig, ScheduleConfig, HARDataConfig, HARPretrainDataConfig),
    defaults={"output_dir": "HAR_centralized/outputs", **DEFAULT_RECIPE.defaults()},
    DEFAULT_TASKS=DEFAULT_RECIPE.tasks)

# train_classifier.py: the methods, label fractions, probes and fine-tuning (ClassifierConfig), the HAR data
HARClassifierConfig = compose_config(
    "HARClassifierConfig", __name__, (ClassifierConfig, HARDataConfig, HARClassifierDataConfig),
    defaults={"runs_dir": "HAR_centralized/outputs", "subject_norm": "zscore"})
