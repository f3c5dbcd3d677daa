"""The study's one reuse rule: a run folder or a unit record counts when its recorded config is the wanted one
as the rule compares configs (settings: without the fields that say where or how a run goes, nor those its
modes and methods do not use) and the run finished. A record that lacks a newer field counts at that field's
value before it existed (BEFORE_THE_FIELD), so adding a field reruns nothing.
"""
import json
from pathlib import Path

from common.classification import NETWORK_MODES, PROBE_MODES, file_sha256
from common.config import config_to_dict
from common.pretrain_config import RUN_ONLY_FIELDS, with_trained_tasks
from common.run_folder import RunFolder
from common.tasks import THESIS_TASKS
from har_task import HARDataConfig


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
# whatever it says (the thesis's four tasks recorded the rocket task's default of their day)
PRETRAIN_USED_ONLY_BY = {
    **dict.fromkeys(("rocket_dim", "rocket_kernels", "rocket_fit_windows"), lambda c: "rocket" in c["tasks"]),
    "pretrain_step": lambda c: c.get("pretrain_data") == "all" or bool(c.get("pretrain_corpus")),
}


def settings(config):
    """A config as the reuse rule compares it: JSON values, without the fields that say where or how a run
    goes (folder, resume, device) rather than what it computes, nor those its modes and methods do not use."""
    values = json.loads(json.dumps(config_to_dict(config)))
    return _compared(values, getattr(config, "DEFAULT_TASKS", THESIS_TASKS))


# a federated run's server port: the local role records the free port it was given, not a setting
NOT_COMPARED = ("port",)


def _compared(values, default_tasks=THESIS_TASKS):
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
    return kept(_compared(values, getattr(config, "DEFAULT_TASKS", THESIS_TASKS))) == kept(settings(config))


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
