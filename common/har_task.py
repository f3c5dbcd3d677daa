"""HAR as a task, shared by centralized and federated runs (what Flower's examples call `task.py`):
the HAR data fields of a config, the pretraining inputs, the clients' partition, the labelled splits and
the model's shapes. HAR_centralized/ and HAR_federated/ both build on it; neither imports the other.

The data is UCI HAR (`--dataset uci_har`, its 6 activities or, for classifiers, `--task hapt12`), or a
researcher's own recordings (`--dataset npz:PATH` / `csv:DIR`, data_processing/recordings.py): windows at
--target_rate_hz, split by subject, with generic per-channel features where UCI HAR's 561 do not apply.
"""
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.config import field
from common.errors import UserError
from common.model import build_model
from common.runtime import seed_everything
from data_processing.augmentations import HAR_TRANSFORMS, HAR_VIEW_TRANSFORMS, random_view
from data_processing.expert_features import apply_scaling, fit_scaling
from data_processing.generic_features import generic_features
from data_processing.har import CHANNEL_NAMES, CLASS_NAMES, SOURCES, load_har, load_har_recordings
from data_processing.inputs import LabelledSplits, ProbeSet
from data_processing.pretext import PretextSpec, PretrainData
from data_processing.recordings import WindowSettings, load_recordings, parse_dataset, split_subjects

HAR_INPUT_SHAPE = (len(CHANNEL_NAMES), 128)  # (C, T): 9 channels, 2.56 s at 50 Hz
HAR_FEATURE_DIM = 561  # UCI HAR's expert features
PRETRAIN_DATA = ("labelled", "all")
# transformations that need x, y, z triplets of channels: left out for other channel layouts
TRIPLET_TRANSFORMS = ("rotation", "channel_shuffle")


@dataclass
class HARDataConfig:
    dataset: str = field("uci_har", "uci_har, or your own recordings: npz:PATH or csv:DIR (formats in the README)")
    data_source: str = field("auto", "UCI HAR source: official folder if present, else the HAPT rebuild",
                             choices=SOURCES)
    sample_rate_hz: float = field(0.0, "own recordings: their sampling rate; 0: from a CSV timestamp column "
                                       "(npz: already at --target_rate_hz)")
    target_rate_hz: float = field(50.0, "own recordings are resampled to this rate (the encoder's; UCI HAR: 50)")
    window: int = field(128, "own recordings: samples per window (UCI HAR: 128)")
    window_step: int = field(64, "own recordings: samples between window starts")
    test_subjects: tuple[int, ...] = field((), "own recordings: the test subjects; empty: 20% drawn by --split_seed")
    val_subjects: tuple[int, ...] = field((), "own recordings: the validation subjects; empty: 10% drawn by "
                                              "--split_seed")
    split_seed: int = field(0, "own recordings: seed of the subject split (keep it for pretraining and classifier)")
    axis_triplets: int = field(1, "1: channels count in x,y,z triplets when their number is a multiple of 3 "
                                  "(rotation and axis-shuffle augmentations); 0: never")

    def validate(self):
        parse_dataset(self.dataset)
        if self.sample_rate_hz < 0 or not self.target_rate_hz > 0:
            raise UserError("--sample_rate_hz must be >= 0 (0: from timestamps) and --target_rate_hz positive")
        if not 16 <= self.window <= 100_000 or not 1 <= self.window_step <= self.window:
            raise UserError(f"--window must be in 16..100000 samples and --window_step in 1..--window, got "
                            f"{self.window} and {self.window_step}")
        if self.axis_triplets not in (0, 1):
            raise UserError("--axis_triplets takes 0 or 1")
        getattr(super(), "validate", lambda: None)()

    def own_data(self):
        return self.dataset != "uci_har"


@dataclass
class HARClassifierDataConfig(HARDataConfig):
    task: str = field("har6", "har6: UCI HAR's 6 activities; hapt12: HAPT's 6 activities + 6 postural "
                              "transitions (same recordings and subjects)", choices=tuple(CLASS_NAMES))

    def validate(self):
        if self.task != "har6" and self.own_data():
            raise UserError(f"--task {self.task} is a UCI HAR task: own recordings bring their own labels")
        super().validate()


@dataclass
class HARPretrainDataConfig(HARDataConfig):
    pretrain_data: str = field("labelled", "labelled: the train subjects' UCI HAR windows; all: every window of "
                               "their whole HAPT recordings (unlabelled stretches too)", choices=PRETRAIN_DATA)
    pretrain_step: int = field(64, "with --pretrain_data all: samples between window starts (64 = UCI HAR's 50%)")

    def validate(self):
        super().validate()
        if not 8 <= self.pretrain_step <= 128:
            raise UserError(f"--pretrain_step must be in 8..128 samples, got {self.pretrain_step}")


def view_transforms(config, channels):
    """(labelled transforms, contrastive view transforms) that apply to `channels` channels."""
    triplets = bool(config.axis_triplets) and channels % 3 == 0
    return (tuple(n for n in HAR_TRANSFORMS if triplets or n not in TRIPLET_TRANSFORMS),
            tuple(n for n in HAR_VIEW_TRANSFORMS if triplets or n not in TRIPLET_TRANSFORMS))


def har_spec(config, seed, channels=len(CHANNEL_NAMES)):
    transforms, views = view_transforms(config, channels)
    return PretextSpec(transforms=transforms, view_transforms=views, mask_ratio=config.mask_ratio,
                       mask_span=config.mask_span, n_variants=config.n_variants, seed=seed)


# --------------------------------------------------------------------------- own recordings
@dataclass
class OwnData:
    """Windows of a researcher's recordings with their features, and the subject split."""

    x: np.ndarray  # (N, C, W) float32
    y: np.ndarray  # (N,) int64, -1 unlabelled
    subject: np.ndarray  # (N,) int64
    features: np.ndarray  # (N, C * FEATURES_PER_CHANNEL) float32, scaled on the train subjects' windows
    subjects: dict  # split name -> subject ids
    info: dict


def own_data(config):
    """The windows of --dataset (npz/csv) under the config's window settings (read once per process)."""
    kind, path = parse_dataset(config.dataset)
    settings = WindowSettings(config.sample_rate_hz, config.target_rate_hz, config.window, config.window_step)
    stamp = max([p.stat().st_mtime_ns for p in ([path] if kind == "npz" else sorted(Path(path).glob("*.csv")))] or [0])
    return _own_data(config.dataset, settings, tuple(config.test_subjects), tuple(config.val_subjects),
                     config.split_seed, stamp)


@functools.lru_cache(maxsize=4)
def _own_data(dataset, settings, test_subjects, val_subjects, split_seed, stamp):
    windows = load_recordings(dataset, settings)
    train, val, test = split_subjects(windows.subject, test_subjects, val_subjects, split_seed)
    raw = generic_features(windows.x, settings.target_rate_hz)
    low, high = fit_scaling(raw[np.isin(windows.subject, train)])
    info = {**windows.info, "channels": list(windows.channels), "subjects": {"train": train, "val": val, "test": test}}
    return OwnData(windows.x, windows.y, windows.subject, apply_scaling(raw, low, high),
                   {"train": train, "val": val, "test": test}, info)


def input_shape(config):
    """(C, T) of the model's inputs."""
    if config.own_data():
        return tuple(own_data(config).x.shape[1:])
    return HAR_INPUT_SHAPE


# --------------------------------------------------------------------------- pretraining, clients, model
def train_subjects(config):
    if config.own_data():
        return np.asarray(own_data(config).subjects["train"])
    return np.unique(load_har("train", config.data_source).subject)


def har_pretrain_data(config, subjects=None, seed=None):
    """Unlabelled pretraining inputs of the train subjects (val and test subjects stay unseen), or only of
    `subjects`: their UCI HAR windows, or (--pretrain_data all) every window of their whole recordings.
    Own recordings: every window of the train subjects, labelled or not. A centralized run's data carries
    the training monitor's probe set: labelled train windows and the val subjects' windows."""
    seed = config.seed if seed is None else seed
    centralized = subjects is None  # the monitor's labelled windows go to a centralized run only
    if config.own_data():
        data = own_data(config)
        subjects = data.subjects["train"] if subjects is None else subjects
        mask = np.isin(data.subject, subjects)
        info = {"data_source": config.dataset, "split": "train subjects", "windows": int(mask.sum()),
                "subjects": [int(s) for s in subjects]}
        labelled = {name: np.isin(data.subject, data.subjects[name]) & (data.y >= 0) for name in ("train", "val")}
        probe = None
        if centralized and all(len(np.unique(data.y[m])) > 1 for m in labelled.values()):
            probe = ProbeSet(data.x[labelled["train"]], data.y[labelled["train"]], data.x[labelled["val"]],
                             data.y[labelled["val"]])
        return PretrainData(np.ascontiguousarray(data.x[mask]), data.features[mask],
                            har_spec(config, seed, data.x.shape[1]), info, probe)
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
    probe = None
    if centralized:  # federated clients carry no monitor data
        val = load_har("val", config.data_source)
        probe = ProbeSet(train.x, train.y, val.x, val.y)
    return PretrainData(x, features, har_spec(config, seed), info, probe)


def har_client_datasets(config):
    """{client id: PretrainData}: the train subjects, grouped round-robin into config.num_clients clients."""
    subjects = train_subjects(config)
    if config.num_clients > len(subjects):
        raise UserError(f"--num_clients {config.num_clients} exceeds the {len(subjects)} train subjects")
    return {client_id: har_pretrain_data(config, subjects[client_id :: config.num_clients], config.seed + client_id)
            for client_id in range(config.num_clients)}


def har_model(config):
    """The multi-task model of `config` for HAR windows, initialised from config.seed."""
    shape = input_shape(config)
    feature_dim = own_data(config).features.shape[1] if config.own_data() else HAR_FEATURE_DIM
    seed_everything(config.seed)
    return build_model(config, shape, har_spec(config, config.seed, shape[0]), feature_dim)


# --------------------------------------------------------------------------- labelled splits
def har_labelled_splits(config):
    """Train (the train subjects minus val), val and test windows with labels and expert features: UCI HAR's
    (--task har6 or hapt12), or the labelled windows of own recordings, split by subject."""
    task = getattr(config, "task", "har6")
    if config.own_data():
        data = own_data(config)
        arrays = {}
        for name, subjects in data.subjects.items():
            mask = np.isin(data.subject, subjects) & (data.y >= 0)
            if not mask.any():
                raise UserError(f"{config.dataset}: the {name} subjects {subjects} have no labelled window: the "
                                f"classifier needs labels in train, val and test")
            arrays[name] = {"x": data.x[mask], "y": data.y[mask], "features": data.features[mask]}
        info = {"data_source": config.dataset, "classes": data.info["classes"], "subjects": data.subjects}
        channels = data.x.shape[1]
    else:
        splits = {name: load_har(name, config.data_source, task=task) for name in ("train", "val", "test")}
        arrays = {name: {"x": d.x, "y": d.y, "features": d.features} for name, d in splits.items()}
        info = {"data_source": splits["train"].source, "task": task}
        channels = len(CHANNEL_NAMES)
    return LabelledSplits(**arrays, info=info, augment=functools.partial(
        har_train_augment, names=view_transforms(config, channels)[1]))


def har_train_augment(x, generator, names=HAR_VIEW_TRANSFORMS):
    """Labelled training windows, augmented as the contrastive views are (scaling, rotation, permutation,
    time warp, jitter, each with probability 1/2)."""
    return random_view(x, torch.Generator(x.device).manual_seed(int(torch.randint(2**62, (1,), generator=generator))),
                       names)
