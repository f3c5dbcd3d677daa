"""HAR as a task, shared by centralized and federated runs (what Flower's examples call `task.py`): one
object, built from a config, that holds the data once and answers the pretraining inputs, the clients'
partition, the labelled splits, the input shape and the model.

    task = HARTask(config)
    pretrain(config, task.pretrain_data())          # HAR_centralized/train_encoder.py
    splits = task.labelled_splits(encoder_record)   # HAR_centralized/train_classifier.py
    task.client_datasets(), task.model()            # HAR_federated/run.py

The data is UCI HAR (`--dataset uci_har`, its 6 activities or, for classifiers, `--task hapt12`), or a
researcher's own recordings (`--dataset npz:PATH` / `csv:DIR`, data_processing/recordings.py): windows at
--target_rate_hz, split by subject, with generic per-channel features where UCI HAR's 561 do not apply.
Own recordings are read once per task object; UCI HAR's windows come from their disk cache.
"""
import dataclasses
import functools

import numpy as np
import torch

from common.model import build_model
from common.runtime import seed_everything
from data_processing.augmentations import HAR_TRANSFORMS, HAR_VIEW_TRANSFORMS, jitter, random_view, scaling
from data_processing.expert_features import apply_scaling, compute_expert_features_batched, fit_scaling
from data_processing.generic_features import generic_features
from data_processing.har import CHANNEL_NAMES, load_har, load_har_recordings
from data_processing.corpus import ComputedFeatures, Corpus
from data_processing.inputs import LabelledSplits, ProbeSet
from data_processing.leakage import known_fingerprints, windows_seen
from data_processing.pretext import PretextSpec, PretrainData
from data_processing.recordings import (WindowSettings, channel_statistics, dataset_digest, load_recordings,
                                        parse_dataset, split_subjects, standardise)
from ground.errors import UserError
from ground.paths import cache_folder

HAR_INPUT_SHAPE = (len(CHANNEL_NAMES), 128)  # (C, T): 9 channels, 2.56 s at 50 Hz
HAR_FEATURE_DIM = 561  # UCI HAR's expert features
# transformations that need x, y, z triplets of channels: left out for other channel layouts
TRIPLET_TRANSFORMS = ("rotation", "channel_shuffle")
FROM_CONFIG = "config"


def view_transforms(config, channels):
    """(labelled transforms, contrastive view transforms) that apply to `channels` channels."""
    triplets = bool(config.axis_triplets) and channels % 3 == 0
    return (tuple(n for n in HAR_TRANSFORMS if triplets or n not in TRIPLET_TRANSFORMS),
            tuple(n for n in HAR_VIEW_TRANSFORMS if triplets or n not in TRIPLET_TRANSFORMS))


def har_spec(config, seed, channels=len(CHANNEL_NAMES)):
    transforms, views = view_transforms(config, channels)
    return PretextSpec(transforms=transforms, view_transforms=views, mask_ratio=config.mask_ratio,
                       mask_span=config.mask_span, n_variants=config.n_variants, seed=seed)


def window_settings(config):
    return WindowSettings(config.sample_rate_hz, config.target_rate_hz, config.window, config.window_step)


def _standardised(x, statistics):
    return standardise(x, statistics) if statistics is not None else x


def kept_recordings(recording, fraction, seed):
    """(N,) bool: the windows of round(fraction x the recordings) recordings drawn by seed (at least one)."""
    if fraction >= 1:
        return np.ones(len(recording), dtype=bool)
    recordings = np.unique(recording)
    count = max(1, round(fraction * len(recordings)))
    return np.isin(recording, np.random.default_rng([seed, 0xF4AC]).choice(recordings, count, replace=False))


# --------------------------------------------------------------------------- own recordings
@dataclasses.dataclass
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


def read_own_data(config, standardisation=FROM_CONFIG):
    """The windows of --dataset (npz/csv) under the config's window settings. standardisation: FROM_CONFIG (the
    train subjects' statistics when the config standardises), None (raw), or the statistics an encoder was
    pretrained with."""
    settings = window_settings(config)
    windows = load_recordings(config.dataset, settings)
    train, val, test = split_subjects(windows.subject, tuple(config.test_subjects), tuple(config.val_subjects),
                                      config.split_seed)
    in_train = np.isin(windows.subject, train)
    raw = generic_features(windows.x, settings.target_rate_hz)
    low, high = fit_scaling(raw[in_train])
    if isinstance(standardisation, dict):
        statistics = {"mean": list(standardisation["mean"]), "std": list(standardisation["std"])}
    elif standardisation == FROM_CONFIG:
        statistics = channel_statistics(windows.x[in_train]) if config.standardises() else None
    else:
        statistics = None
    subjects = {"train": train, "val": val, "test": test}
    info = {**windows.info, "channels": list(windows.channels), "subjects": subjects}
    return OwnData(_standardised(windows.x, statistics), windows.y, windows.subject, windows.recording,
                   apply_scaling(raw, low, high), (low, high), subjects, statistics, info)


# --------------------------------------------------------------------------- the task
class HARTask:
    """HAR's data for one config, read once and asked many questions.

    standardisation: how the inputs are standardised: FROM_CONFIG (the config's --standardise, the train
    subjects' statistics), or the statistics (or None) an encoder was pretrained with (a classifier's task)."""

    def __init__(self, config, standardisation=FROM_CONFIG):
        self.config = config
        self.standardisation = standardisation
        self.cache_dir = cache_folder(getattr(config, "cache_dir", ""))

    # ------------------------------------------------------------------ the data, once
    @functools.cached_property
    def own(self):
        """OwnData of --dataset when it is the researcher's recordings, else None (UCI HAR)."""
        return read_own_data(self.config, self.standardisation) if self.config.own_data() else None

    def uci(self, split, task="har6"):
        """UCI HAR's `split` windows (from their disk cache)."""
        return load_har(split, self.config.data_source, task=task, cache_dir=self.cache_dir)

    @functools.cached_property
    def uci_statistics(self):
        """The channel statistics UCI HAR's inputs are standardised by: the train windows' when the config
        standardises UCI HAR (or an encoder's, given), else None."""
        if self.standardisation != FROM_CONFIG:
            return self.standardisation
        return channel_statistics(self.uci("train").x) if self.config.standardises() else None

    @property
    def input_shape(self):
        """(C, T) of the model's inputs."""
        return tuple(self.own.x.shape[1:]) if self.own is not None else HAR_INPUT_SHAPE

    @property
    def feature_dim(self):
        return self.own.features.shape[1] if self.own is not None else HAR_FEATURE_DIM

    def train_subjects(self):
        if self.own is not None:
            return np.asarray(self.own.subjects["train"])
        return np.unique(self.uci("train").subject)

    def encoder_record(self):
        """What an encoder records of its pretraining data: dataset, digest, split (seed and subjects), window
        settings, the standardisation its inputs need. The classifier reads it back (labelled_splits)."""
        config = self.config
        if self.own is None:
            return {"dataset": "uci_har", "subjects": {"train": [int(s) for s in self.train_subjects()]},
                    "standardisation": self.uci_statistics}
        return {"dataset": config.dataset, "digest": self.own.info["digest"], "split_seed": config.split_seed,
                "subjects": self.own.subjects, "rate_hz": config.target_rate_hz, "window": config.window,
                "window_step": config.window_step, "channels": self.own.info["channels"],
                "standardisation": self.own.standardisation}

    # ------------------------------------------------------------------ pretraining, clients, model
    def pretrain_data(self, subjects=None, seed=None):
        """Unlabelled pretraining inputs of the train subjects (val and test subjects stay unseen), or only of
        `subjects`: their UCI HAR windows, or (--pretrain_data all) every window of their whole recordings.
        Own recordings: every window of the train subjects, labelled or not. --pretrain_extra recordings join a
        centralized run's inputs (never a split). A centralized run's data carries the training monitor's
        probe set (labelled train windows and the val subjects' windows) and the record its encoder keeps."""
        config = self.config
        seed = config.seed if seed is None else seed
        centralized = subjects is None  # the monitor's windows and extra recordings go to a centralized run only
        corpus = getattr(config, "pretrain_corpus", "")
        probe, channels, feature_scaling = None, CHANNEL_NAMES, None
        if self.own is not None:
            data = self.own
            subjects = data.subjects["train"] if subjects is None else subjects
            mask = np.isin(data.subject, subjects)
            info = {"data_source": config.dataset, "split": "train subjects", "windows": int(mask.sum()),
                    "subjects": [int(s) for s in subjects]}
            labelled = {name: np.isin(data.subject, data.subjects[name]) & (data.y >= 0) for name in ("train", "val")}
            if centralized and all(len(np.unique(data.y[m])) > 1 for m in labelled.values()):
                probe = ProbeSet(data.x[labelled["train"]], data.y[labelled["train"]], data.x[labelled["val"]],
                                 data.y[labelled["val"]])
            channels, feature_scaling, statistics = data.info["channels"], data.feature_scaling, data.standardisation
            if corpus:
                x, features, corpus_info = self.corpus_windows(subjects, seed, statistics)
                info = {**info, **corpus_info, "windows": len(x)}
            else:
                mask &= kept_recordings(data.recording, getattr(config, "pretrain_fraction", 1.0), seed)
                x, features = np.ascontiguousarray(data.x[mask]), data.features[mask]
        else:
            train = self.uci("train")
            subjects = np.unique(train.subject) if subjects is None else np.asarray(subjects)
            statistics = self.uci_statistics
            if corpus:
                x, features, corpus_info = self.corpus_windows(subjects, seed, statistics)
                split = corpus_info.pop("split")
            elif getattr(config, "pretrain_data", "labelled") == "all":
                if train.source != "hapt":
                    raise UserError(f"--pretrain_data all needs the raw HAPT recordings, which data source "
                                    f"{train.source} lacks: use --data_source hapt, or --pretrain_data labelled for "
                                    f"its windows")
                arrays = load_har_recordings(subjects, config.pretrain_step, self.cache_dir)
                x, features, split = arrays["x"], arrays["features"], f"all recordings, step {config.pretrain_step}"
                fraction = getattr(config, "pretrain_fraction", 1.0)
                if fraction < 1:
                    kept = kept_recordings(arrays["recording"], fraction, seed)
                    x, features = x[kept], features[kept]
                    split += f", {fraction:g} of the recordings ({len(np.unique(arrays['recording'][kept]))})"
            else:
                if getattr(config, "pretrain_fraction", 1.0) < 1:
                    raise UserError("--pretrain_fraction draws whole recordings: it needs --pretrain_data all (or "
                                    "own recordings)")
                mask = np.isin(train.subject, subjects)
                x, features, split = np.ascontiguousarray(train.x[mask]), train.features[mask], "train"
            info = {"data_source": train.source, "split": split, "windows": len(x),
                    "subjects": [int(s) for s in subjects], **(corpus_info if corpus else {})}
            if centralized:  # federated clients carry no monitor data
                val = self.uci("val")
                probe = ProbeSet(_standardised(train.x, statistics), train.y, _standardised(val.x, statistics), val.y)
            if not corpus:  # a corpus's windows are standardised as they are read
                x = _standardised(x, statistics)
        record = self.encoder_record()
        if info.get("test_windows_seen"):
            record["transductive"] = {"test_windows_seen": info["test_windows_seen"], "in": info["corpus"]}
        if centralized and getattr(config, "pretrain_extra", ()):
            if corpus:
                raise UserError("--pretrain_extra and --pretrain_corpus: prepare the extra recordings into the corpus "
                                "(data/prepare_corpus.py --datasets ...)")
            extra_x, extra_features, extras = self.extra_windows(channels, statistics, feature_scaling)
            x, features = np.concatenate([x, extra_x]), np.concatenate([features, extra_features])
            info = {**info, "windows": len(x), "extra": extras}
            record["pretrain_extra"] = extras
            seen = {extra["dataset"]: extra["test_windows_seen"] for extra in extras if extra["test_windows_seen"]}
            if seen:
                record["transductive"] = {"test_windows_seen": sum(seen.values()), "in": sorted(seen)}
        return PretrainData(x, features, har_spec(config, seed, x.shape[1]), info, probe, record, self.cache_dir)

    def extra_windows(self, channels, statistics, feature_scaling=None):
        """(x, features, info) of the --pretrain_extra recordings: windowed like the main data, standardised by
        the main data's statistics, features as the main data's (generic, scaled with its train bounds; UCI
        HAR's 561, scaled on these windows). Channels that differ from the main data's are refused."""
        config = self.config
        xs, features, records = [], [], []
        for extra in config.pretrain_extra:
            windows = load_recordings(extra, window_settings(config))
            if windows.x.shape[1] != len(channels) or (
                    parse_dataset(extra)[0] == "csv" and config.own_data()
                    and parse_dataset(config.dataset)[0] == "csv" and list(windows.channels) != list(channels)):
                raise UserError(f"--pretrain_extra {extra} has channels {list(windows.channels)} "
                                f"({windows.x.shape[1]}), the pretraining data {list(channels)} ({len(channels)}): "
                                f"the same channels are needed")
            if feature_scaling is not None:
                features.append(apply_scaling(generic_features(windows.x, config.target_rate_hz), *feature_scaling))
            else:
                raw = compute_expert_features_batched(windows.x)
                features.append(apply_scaling(raw, *fit_scaling(raw)))
            xs.append(_standardised(windows.x, statistics))
            records.append({"dataset": extra, "digest": windows.info["digest"], "windows": len(windows.x),
                            "test_windows_seen": self.test_windows_seen(windows.x, extra)})
        return np.concatenate(xs), np.concatenate(features), records

    def test_windows_seen(self, raw_windows, where):
        """How many of these raw (unstandardised) windows repeat stretches of the test subjects' windows
        (data_processing/leakage.py); said in a line when any do: the encoder is then marked transductive."""
        if self.own is not None:
            data = self.own
            test = data.x[np.isin(data.subject, data.subjects["test"])]
            if data.standardisation is not None:
                test = (test * np.asarray(data.standardisation["std"], np.float32)[:, None]
                        + np.asarray(data.standardisation["mean"], np.float32)[:, None])
        else:
            test = self.uci("test").x
        seen = windows_seen(known_fingerprints(test), raw_windows)
        if seen:
            print(f"note: {seen} window(s) of {where} repeat the test subjects' recordings: the encoder is marked "
                  f"transductive, and a classifier takes it only with --transductive 1")
        return int(seen)

    def corpus_windows(self, subjects, seed, statistics):
        """(windows, features, info) of --pretrain_corpus, read from disk as batches ask: the windows of `subjects`
        when the corpus was prepared from --dataset (its subject ids are the dataset's), every window of a
        corpus of other recordings (then checked against the test subjects' by content); --pretrain_fraction
        of its recordings; standardised by `statistics` as they are read. Features are computed on first use
        (only a task that regresses them reads them)."""
        config = self.config
        corpus = Corpus(config.pretrain_corpus)
        settings = corpus.settings
        where = f"--pretrain_corpus {config.pretrain_corpus}"
        if (len(corpus.channels), settings["window"]) != tuple(self.input_shape):
            raise UserError(f"{where} holds windows of {len(corpus.channels)} channels x {settings['window']} "
                            f"samples, the pretraining data {self.input_shape[0]} x {self.input_shape[1]}")
        if self.own is None:
            same = settings["kind"] == "uci_har"
            step_flag, step = "--pretrain_step", config.pretrain_step
            if same and config.pretrain_data != "all":
                raise UserError(f"{where} holds UCI HAR's whole recordings: it takes --pretrain_data all")
        else:
            same = any(source.startswith(f"{config.dataset}#") for source in corpus.index["sources"])
            step_flag, step = "--window_step", config.window_step
            if abs(settings["rate_hz"] - config.target_rate_hz) > 1e-6:
                raise UserError(f"{where} is at {settings['rate_hz']:g} Hz, --target_rate_hz {config.target_rate_hz:g}")
        if same and settings["step"] != step:
            raise UserError(f"{where} was cut at a step of {settings['step']} samples, {step_flag} is {step}: pass "
                            f"{step_flag} {settings['step']}, or prepare a corpus at {step}")
        keep = np.isin(corpus.subject, subjects) if same else np.ones(len(corpus), dtype=bool)
        fraction = getattr(config, "pretrain_fraction", 1.0)
        keep &= kept_recordings(corpus.recording, fraction, seed)
        if not keep.any():
            raise UserError(f"{where} has no window of the pretraining subjects {[int(s) for s in subjects]}")
        raw = corpus.windows(keep)
        if self.own is None:
            compute, name = compute_expert_features_batched, "expert561"
        else:
            compute, name = functools.partial(generic_features, sample_rate_hz=config.target_rate_hz), "generic"
        features = ComputedFeatures(raw, self.feature_dim, compute, self.cache_dir, name)
        info = {"corpus": str(config.pretrain_corpus), "corpus_digest": corpus.digest,
                "split": f"corpus, step {settings['step']}" + (f", {fraction:g} of the recordings" if fraction < 1
                                                               else "")}
        if not same:
            info["test_windows_seen"] = self.test_windows_seen(raw, where)
        return corpus.windows(keep, statistics), features, info

    def client_datasets(self):
        """{client id: PretrainData}: the train subjects, grouped round-robin into config.num_clients clients."""
        config = self.config
        subjects = self.train_subjects()
        if config.num_clients > len(subjects):
            raise UserError(f"--num_clients {config.num_clients} exceeds the {len(subjects)} train subjects")
        return {client_id: self.pretrain_data(subjects[client_id :: config.num_clients], config.seed + client_id)
                for client_id in range(config.num_clients)}

    def model(self):
        """The multi-task model of the config for these inputs, initialised from config.seed."""
        shape = self.input_shape
        seed_everything(self.config.seed)
        return build_model(self.config, shape, har_spec(self.config, self.config.seed, shape[0]), self.feature_dim)

    # ------------------------------------------------------------------ labelled splits
    def for_encoder(self, record, encoder=""):
        """(the task on the encoder's pretraining split and input standardisation, notes for the results).

        Own recordings, the encoder's data (same digest) and no split flags: the encoder's subjects are taken.
        Test subjects the encoder was pretrained on are refused unless --transductive 1."""
        config, notes = self.config, {}
        if record is None:
            return self, notes
        if record.get("transductive"):
            leak = record["transductive"]
            if not config.transductive:
                raise UserError(f"the encoder {encoder} was pretrained on {leak['test_windows_seen']} window(s) that "
                                f"repeat the test subjects' recordings (in {leak['in']}): pass --transductive 1 for a "
                                f"transductive study")
            notes["transductive"] = leak
        statistics = record.get("standardisation")
        if not config.own_data() or record.get("dataset") == "uci_har":
            if config.own_data() != (record.get("dataset") != "uci_har"):
                notes["encoder_data"] = record.get("dataset")
            return HARTask(config, statistics), notes
        same_data = record.get("digest") == dataset_digest(config.dataset)
        if same_data and config.default_split():
            subjects = record["subjects"]
            config = dataclasses.replace(config, test_subjects=tuple(subjects["test"]),
                                         val_subjects=tuple(subjects["val"]))
            print(f"the encoder's pretraining split: test subjects {subjects['test']}, val subjects {subjects['val']}")
        elif not same_data:
            print(f"note: the encoder was pretrained on {record.get('dataset')}, other data than {config.dataset} "
                  f"(their files differ); its subjects are checked by id")
            notes["encoder_data"] = record.get("dataset")
        aligned = HARTask(config, statistics)
        seen = sorted(set(record.get("subjects", {}).get("train", ())) & set(aligned.own.subjects["test"]))
        if seen and not config.transductive:
            raise UserError(f"the encoder {encoder} was pretrained on test subjects {seen} of {config.dataset}: keep "
                            f"its split (drop --test_subjects, --val_subjects, --split_seed) or pass --transductive 1 "
                            f"for a transductive study")
        if seen:
            notes["transductive"] = seen
        return aligned, notes

    def labelled_splits(self, encoder_record=None, encoder=""):
        """Train (the train subjects minus val), val and test windows with labels and expert features: UCI HAR's
        (--task har6 or hapt12), or the labelled windows of own recordings, split by subject (the encoder's split
        when `encoder_record` says so, see for_encoder), in the encoder's input standardisation."""
        task, notes = self.for_encoder(encoder_record, encoder)
        config, label_task = task.config, getattr(self.config, "task", "har6")
        if task.own is not None:
            data, arrays = task.own, {}
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
            statistics = task.uci_statistics
            splits = {name: task.uci(name, label_task) for name in ("train", "val", "test")}
            arrays = {name: {"x": _standardised(d.x, statistics), "y": d.y, "features": d.features,
                             "subject": d.subject} for name, d in splits.items()}
            info = {"data_source": splits["train"].source, "task": label_task, "standardised": statistics is not None,
                    **notes}
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
