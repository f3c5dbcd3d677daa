"""UCI HAR as a task, shared by centralized and federated runs (what Flower's examples call `task.py`):
the HAR data fields of a config, the pretraining inputs, the clients' partition, the labelled splits and
the model's shapes. HAR_centralized/ and HAR_federated/ both build on it; neither imports the other.
"""
from dataclasses import dataclass

import numpy as np
import torch

from common.config import field
from common.errors import UserError
from common.model import build_model
from common.runtime import seed_everything
from data_processing.augmentations import random_view
from data_processing.har import CHANNEL_NAMES, SOURCES, load_har, load_har_recordings
from data_processing.inputs import LabelledSplits
from data_processing.pretext import PretextSpec, PretrainData

HAR_INPUT_SHAPE = (len(CHANNEL_NAMES), 128)  # (C, T): 9 channels, 2.56 s at 50 Hz
HAR_FEATURE_DIM = 561  # UCI HAR's expert features
PRETRAIN_DATA = ("labelled", "all")


@dataclass
class HARDataConfig:
    data_source: str = field("auto", "UCI HAR source: official folder if present, else the HAPT rebuild",
                             choices=SOURCES)


@dataclass
class HARPretrainDataConfig(HARDataConfig):
    pretrain_data: str = field("labelled", "labelled: the train subjects' UCI HAR windows; all: every window of "
                               "their whole HAPT recordings (unlabelled stretches too)", choices=PRETRAIN_DATA)
    pretrain_step: int = field(64, "with --pretrain_data all: samples between window starts (64 = UCI HAR's 50%)")

    def validate(self):
        super().validate()
        if not 8 <= self.pretrain_step <= 128:
            raise UserError(f"--pretrain_step must be in 8..128 samples, got {self.pretrain_step}")


def har_spec(config, seed):
    return PretextSpec(mask_ratio=config.mask_ratio, mask_span=config.mask_span, n_variants=config.n_variants,
                       seed=seed)


def har_pretrain_data(config, subjects=None, seed=None):
    """Unlabelled pretraining inputs of the train subjects (val and test subjects stay unseen), or only of
    `subjects`: their UCI HAR windows, or (--pretrain_data all) every window of their whole recordings."""
    train = load_har("train", config.data_source)
    subjects = np.unique(train.subject) if subjects is None else np.asarray(subjects)
    if getattr(config, "pretrain_data", "labelled") == "all":
        if train.source != "hapt":
            raise UserError("--pretrain_data all needs the raw recordings: use --data_source hapt")
        arrays = load_har_recordings(subjects, config.pretrain_step)
        x, features, split = arrays["x"], arrays["features"], f"all recordings, step {config.pretrain_step}"
    else:
        mask = np.isin(train.subject, subjects)
        x, features, split = np.ascontiguousarray(train.x[mask]), train.features[mask], "train"
    info = {"data_source": train.source, "split": split, "windows": len(x), "subjects": [int(s) for s in subjects]}
    return PretrainData(x, features, har_spec(config, config.seed if seed is None else seed), info)


def har_client_datasets(config):
    """{client id: PretrainData}: the train subjects, grouped round-robin into config.num_clients clients."""
    subjects = np.unique(load_har("train", config.data_source).subject)
    if config.num_clients > len(subjects):
        raise UserError(f"--num_clients {config.num_clients} exceeds the {len(subjects)} train subjects")
    return {client_id: har_pretrain_data(config, subjects[client_id :: config.num_clients], config.seed + client_id)
            for client_id in range(config.num_clients)}


def har_model(config):
    """The multi-task model of `config` for HAR windows, initialised from config.seed."""
    seed_everything(config.seed)
    return build_model(config, HAR_INPUT_SHAPE, har_spec(config, config.seed), HAR_FEATURE_DIM)


def har_labelled_splits(source):
    """Train (the train subjects minus val), val and test windows with labels and expert features."""
    splits = {name: load_har(name, source) for name in ("train", "val", "test")}
    arrays = {name: {"x": d.x, "y": d.y, "features": d.features} for name, d in splits.items()}
    return LabelledSplits(**arrays, info={"data_source": splits["train"].source}, augment=har_train_augment)


def har_train_augment(x, generator):
    """Labelled training windows, augmented as the contrastive views are (scaling, rotation, permutation,
    time warp, jitter, each with probability 1/2)."""
    return random_view(x, torch.Generator(x.device).manual_seed(int(torch.randint(2**62, (1,), generator=generator))))
