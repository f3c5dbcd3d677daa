"""HAR as a task, shared by centralized and federated runs (what Flower's examples call `task.py`):
the HAR data fields of a config, the pretraining inputs, the clients' partition, the labelled splits and
the model's shapes. HAR_centralized/ and HAR_federated/ both build on it. HAR_federated/ never imports
HAR_centralized/; of HAR_centralized/ only the study (study.py) imports HAR_federated/, to pretrain its
federated experiment (tests/test_layers.py keeps both so).

The data is UCI HAR (`--dataset uci_har`, its 6 activities or, for classifiers, `--task hapt12`), or a
researcher's own recordings (`--dataset npz:PATH` / `csv:DIR`, data_processing/recordings.py): windows at
--target_rate_hz, split by subject, with generic per-channel features where UCI HAR's 561 do not apply.
"""
import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.config import Config, field
from ground.errors import UserError
from common.model import build_model
from ground.paths import cache_folder
from common.runtime import seed_everything
from data_processing.augmentations import HAR_TRANSFORMS, HAR_VIEW_TRANSFORMS, jitter, random_view, scaling
from data_processing.expert_features import apply_scaling, compute_expert_features_batched, fit_scaling
from data_processing.generic_features import generic_features
from data_processing.har import CHANNEL_NAMES, CLASS_NAMES, SOURCES, load_har, load_har_recordings
from data_processing.inputs import LabelledSplits, ProbeSet
from data_processing.pretext import PretextSpec, PretrainData
from data_processing.recordings import (WindowSettings, channel_statistics, dataset_digest, load_recordings,
                                        parse_dataset, split_subjects, standardise)

HAR_INPUT_SHAPE = (len(CHANNEL_NAMES), 128)  # (C, T): 9 channels, 2.56 s at 50 Hz
HAR_FEATURE_DIM = 561  # UCI HAR's expert features
PRETRAIN_DATA = ("labelled", "all")
STANDARDISE = ("auto", "channel", "none")
# transformations that need x, y, z triplets of channels: left out for other channel layouts
TRIPLET_TRANSFORMS = ("rotation", "channel_shuffle")


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

    def check_values(self):
        if not 8 <= self.pretrain_step <= 128:
            raise UserError(f"--pretrain_step must be in 8..128 samples, got {self.pretrain_step}")
        for extra in self.pretrain_extra:
            if parse_dataset(extra)[0] == "uci_har":
                raise UserError("--pretrain_extra takes npz:PATH or csv:DIR (UCI HAR's own recordings: "
                                "--pretrain_data all)")


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

    x: np.ndarray  # (N, C, W) float32, standardised per channel when the config (or the encoder) says so
    y: np.ndarray  # (N,) int64, -1 unlabelled
    subject: np.ndarray  # (N,) int64
    recording: np.ndarray  # (N,) int64: which recording each window was cut from
    features: np.ndarray  # (N, C * FEATURES_PER_CHANNEL) float32, scaled on the train subjects' windows
    feature_scaling: tuple  # (low, high) of the raw features on the train subjects' windows
    subjects: dict  # split name -> subject ids
    standardisation: dict  # {"mean": [C], "std": [C]} applied to x, or None
    info: dict


def window_settings(config):
    return WindowSettings(config.sample_rate_hz, config.target_rate_hz, config.window, config.window_step)


def _stamp(dataset):
    """When the files behind `dataset` last changed: a changed file is read again."""
    kind, path = parse_dataset(dataset)
    return max([p.stat().st_mtime_ns for p in ([path] if kind == "npz" else sorted(Path(path).glob("*.csv")))] or [0])


FROM_CONFIG = "config"


def own_data(config, standardisation=FROM_CONFIG):
    """The windows of --dataset (npz/csv) under the config's window settings (read once per process).
    standardisation: FROM_CONFIG (the train subjects' statistics when the config standardises), None (raw), or
    the statistics an encoder was pretrained with."""
    standardises = config.standardises() if standardisation == FROM_CONFIG else standardisation is not None
    fixed = (None if not isinstance(standardisation, dict)
             else (tuple(standardisation["mean"]), tuple(standardisation["std"])))
    return _own_data(config.dataset, window_settings(config), tuple(config.test_subjects), tuple(config.val_subjects),
                     config.split_seed, standardises, fixed, _stamp(config.dataset))


@functools.lru_cache(maxsize=4)
def _own_data(dataset, settings, test_subjects, val_subjects, split_seed, standardises, fixed, stamp):
    windows = load_recordings(dataset, settings)
    train, val, test = split_subjects(windows.subject, test_subjects, val_subjects, split_seed)
    in_train = np.isin(windows.subject, train)
    raw = generic_features(windows.x, settings.target_rate_hz)
    low, high = fit_scaling(raw[in_train])
    statistics = ({"mean": list(fixed[0]), "std": list(fixed[1])} if fixed is not None
                  else channel_statistics(windows.x[in_train]) if standardises else None)
    x = standardise(windows.x, statistics) if statistics is not None else windows.x
    subjects = {"train": train, "val": val, "test": test}
    info = {**windows.info, "channels": list(windows.channels), "subjects": subjects}
    return OwnData(x, windows.y, windows.subject, windows.recording, apply_scaling(raw, low, high), (low, high),
                   subjects, statistics, info)


def extra_windows(config, channels, statistics, feature_scaling=None):
    """(x, features, info) of the --pretrain_extra recordings: windowed like the main data, standardised by
    the main data's statistics, features as the main data's (generic, scaled with its train bounds; UCI
    HAR's 561, scaled on these windows). Channels that differ from the main data's are refused."""
    xs, features, records = [], [], []
    for extra in config.pretrain_extra:
        windows = load_recordings(extra, window_settings(config))
        if windows.x.shape[1] != len(channels) or (
                parse_dataset(extra)[0] == "csv" and config.own_data() and parse_dataset(config.dataset)[0] == "csv"
                and list(windows.channels) != list(channels)):
            raise UserError(f"--pretrain_extra {extra} has channels {list(windows.channels)} ({windows.x.shape[1]}), "
                            f"the pretraining data {list(channels)} ({len(channels)}): the same channels are needed")
        x = standardise(windows.x, statistics) if statistics is not None else windows.x
        if feature_scaling is not None:
            raw = generic_features(windows.x, config.target_rate_hz)
            features.append(apply_scaling(raw, *feature_scaling))
        else:
            raw = compute_expert_features_batched(windows.x)
            features.append(apply_scaling(raw, *fit_scaling(raw)))
        xs.append(x)
        records.append({"dataset": extra, "digest": windows.info["digest"], "windows": len(x)})
    return np.concatenate(xs), np.concatenate(features), records


def encoder_data_record(config, data=None, uci_statistics=FROM_CONFIG):
    """What an encoder records of its pretraining data: dataset, digest, split (seed and subjects), window
    settings, the standardisation its inputs need, extra recordings. The classifier reads it back."""
    if config.own_data():
        data = data or own_data(config)
        record = {"dataset": config.dataset, "digest": data.info["digest"], "split_seed": config.split_seed,
                  "subjects": data.subjects, "rate_hz": config.target_rate_hz, "window": config.window,
                  "window_step": config.window_step, "channels": data.info["channels"],
                  "standardisation": data.standardisation}
    else:
        statistics = uci_standardisation(config) if uci_statistics == FROM_CONFIG else uci_statistics
        record = {"dataset": "uci_har", "subjects": {"train": [int(s) for s in train_subjects(config)]},
                  "standardisation": statistics}
    return record


def uci_standardisation(config):
    """The UCI HAR train windows' channel statistics when the config standardises UCI HAR, else None."""
    if not config.standardises():
        return None
    return channel_statistics(load_har("train", config.data_source, cache_dir=cache_dir(config)).x)


def cache_dir(config):
    """--cache_dir as a folder, or None: data/cache ($MTSSL_DATA_DIR/cache)."""
    return cache_folder(getattr(config, "cache_dir", ""))


def input_shape(config):
    """(C, T) of the model's inputs."""
    if config.own_data():
        return tuple(own_data(config).x.shape[1:])
    return HAR_INPUT_SHAPE


# --------------------------------------------------------------------------- pretraining, clients, model
def train_subjects(config):
    if config.own_data():
        return np.asarray(own_data(config).subjects["train"])
    return np.unique(load_har("train", config.data_source, cache_dir=cache_dir(config)).subject)


def har_pretrain_data(config, subjects=None, seed=None):
    """Unlabelled pretraining inputs of the train subjects (val and test subjects stay unseen), or only of
    `subjects`: their UCI HAR windows, or (--pretrain_data all) every window of their whole recordings.
    Own recordings: every window of the train subjects, labelled or not. --pretrain_extra recordings join a
    centralized run's inputs (never a split). A centralized run's data carries the training monitor's probe
    set (labelled train windows and the val subjects' windows) and the record its encoder keeps."""
    seed = config.seed if seed is None else seed
    centralized = subjects is None  # the monitor's labelled windows and extra recordings go to a centralized run only
    probe, channels, feature_scaling = None, CHANNEL_NAMES, None
    if config.own_data():
        data = own_data(config)
        subjects = data.subjects["train"] if subjects is None else subjects
        mask = np.isin(data.subject, subjects)
        info = {"data_source": config.dataset, "split": "train subjects", "windows": int(mask.sum()),
                "subjects": [int(s) for s in subjects]}
        labelled = {name: np.isin(data.subject, data.subjects[name]) & (data.y >= 0) for name in ("train", "val")}
        if centralized and all(len(np.unique(data.y[m])) > 1 for m in labelled.values()):
            probe = ProbeSet(data.x[labelled["train"]], data.y[labelled["train"]], data.x[labelled["val"]],
                             data.y[labelled["val"]])
        x, features, statistics = np.ascontiguousarray(data.x[mask]), data.features[mask], data.standardisation
        channels, feature_scaling = data.info["channels"], data.feature_scaling
        record = encoder_data_record(config, data)
    else:
        train = load_har("train", config.data_source, cache_dir=cache_dir(config))
        subjects = np.unique(train.subject) if subjects is None else np.asarray(subjects)
        statistics = uci_standardisation(config)
        if getattr(config, "pretrain_data", "labelled") == "all":
            if train.source != "hapt":
                raise UserError(f"--pretrain_data all needs the raw HAPT recordings, which data source {train.source} "
                                "lacks: use --data_source hapt, or --pretrain_data labelled for its windows")
            arrays = load_har_recordings(subjects, config.pretrain_step, cache_dir(config))
            x, features, split = arrays["x"], arrays["features"], f"all recordings, step {config.pretrain_step}"
        else:
            mask = np.isin(train.subject, subjects)
            x, features, split = np.ascontiguousarray(train.x[mask]), train.features[mask], "train"
        info = {"data_source": train.source, "split": split, "windows": len(x), "subjects": [int(s) for s in subjects]}
        if centralized:  # federated clients carry no monitor data
            val = load_har("val", config.data_source, cache_dir=cache_dir(config))
            probe = ProbeSet(_standardised(train.x, statistics), train.y, _standardised(val.x, statistics), val.y)
        x = _standardised(x, statistics)
        record = encoder_data_record(config, uci_statistics=statistics)
    if centralized and getattr(config, "pretrain_extra", ()):
        extra_x, extra_features, extras = extra_windows(config, channels, statistics, feature_scaling)
        x, features = np.concatenate([x, extra_x]), np.concatenate([features, extra_features])
        info = {**info, "windows": len(x), "extra": extras}
        record["pretrain_extra"] = extras
    return PretrainData(x, features, har_spec(config, seed, x.shape[1]), info, probe, record,
                        cache_dir(config))


def _standardised(x, statistics):
    return standardise(x, statistics) if statistics is not None else x


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
def align_with_encoder(config, record, encoder=""):
    """The classifier's config on the encoder's pretraining split, and the standardisation its inputs need.

    Own recordings, the encoder's data (same digest) and no split flags: the encoder's subjects are taken.
    Test subjects the encoder was pretrained on are refused unless --transductive 1. Returns (config,
    standardisation: FROM_CONFIG without a record, else the encoder's statistics or None, notes for the results)."""
    notes = {}
    if record is None:
        return config, FROM_CONFIG, notes
    statistics = record.get("standardisation")
    if not config.own_data() or record.get("dataset") == "uci_har":
        if config.own_data() != (record.get("dataset") != "uci_har"):
            notes["encoder_data"] = record.get("dataset")
        return config, statistics, notes
    same_data = record.get("digest") == dataset_digest(config.dataset)
    if same_data and config.default_split():
        subjects = record["subjects"]
        config = dataclasses.replace(config, test_subjects=tuple(subjects["test"]), val_subjects=tuple(subjects["val"]))
        print(f"the encoder's pretraining split: test subjects {subjects['test']}, val subjects {subjects['val']}")
    elif not same_data:
        print(f"note: the encoder was pretrained on {record.get('dataset')}, other data than {config.dataset} "
              f"(their files differ); its subjects are checked by id")
        notes["encoder_data"] = record.get("dataset")
    pretrained = set(record.get("subjects", {}).get("train", ()))
    seen = sorted(pretrained & set(own_data(config, statistics).subjects["test"]))
    if seen and not config.transductive:
        raise UserError(f"the encoder {encoder} was pretrained on test subjects {seen} of {config.dataset}: keep its "
                        f"split (drop --test_subjects, --val_subjects, --split_seed) or pass --transductive 1 for a "
                        f"transductive study")
    if seen:
        notes["transductive"] = seen
    return config, statistics, notes


def har_labelled_splits(config, encoder_record=None, encoder=""):
    """Train (the train subjects minus val), val and test windows with labels and expert features: UCI HAR's
    (--task har6 or hapt12), or the labelled windows of own recordings, split by subject (the encoder's split
    when `encoder_record` says so, see align_with_encoder), in the encoder's input standardisation."""
    task = getattr(config, "task", "har6")
    config, statistics, notes = align_with_encoder(config, encoder_record, encoder)
    if config.own_data():
        data = own_data(config, statistics)
        arrays = {}
        for name, subjects in data.subjects.items():
            mask = np.isin(data.subject, subjects) & (data.y >= 0)
            if not mask.any():
                raise UserError(f"{config.dataset}: the {name} subjects {subjects} have no labelled window: the "
                                f"classifier needs labels in train, val and test")
            arrays[name] = {"x": data.x[mask], "y": data.y[mask], "features": data.features[mask],
                            "recording": data.recording[mask], "subject": data.subject[mask]}
        info = {"data_source": config.dataset, "classes": data.info["classes"], "subjects": data.subjects,
                "standardised": data.standardisation is not None, **notes}
        channels = data.x.shape[1]
    else:
        if statistics == FROM_CONFIG:
            statistics = uci_standardisation(config)
        splits = {name: load_har(name, config.data_source, task=task, cache_dir=cache_dir(config))
                  for name in ("train", "val", "test")}
        arrays = {name: {"x": _standardised(d.x, statistics), "y": d.y, "features": d.features,
                         "subject": d.subject} for name, d in splits.items()}
        info = {"data_source": splits["train"].source, "task": task, "standardised": statistics is not None, **notes}
        channels = len(CHANNEL_NAMES)
    return LabelledSplits(**arrays, info=info, augment=functools.partial(
        har_train_augment, names=view_transforms(config, channels)[1]), weak_augment=har_weak_augment)


def har_train_augment(x, generator, names=HAR_VIEW_TRANSFORMS):
    """Labelled training windows, augmented as the contrastive views are (scaling, rotation, permutation,
    time warp, jitter, each with probability 1/2)."""
    return random_view(x, torch.Generator(x.device).manual_seed(int(torch.randint(2**62, (1,), generator=generator))),
                       names)


def har_weak_augment(x, generator):
    """FixMatch's weak view of sensor windows: a random gain per channel and a little noise."""
    return jitter(scaling(x, generator), generator)
