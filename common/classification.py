"""The label-efficiency study behind every `train_classifier.py`: methods x modes x fractions x label draws.

Methods are representations probed by a linear classifier (`encoder`: the pretrained encoder's embedding;
`expert_features`; `raw`: the flattened window; `minirocket`: MiniRocket's 10,000 random-kernel features;
`encoder+features`, `encoder+minirocket`: the embedding concatenated with them) or networks trained from
labels (`supervised`: the encoder's architecture from a random init; `resnet`: the time-series ResNet of
Wang et al. 2017). Modes: `linear` (the probe), `selftrain` (the probe self-trained on the unlabelled train
windows), `cotrain` (hybrids: the same, each round's pseudo-labels from one probe per block, co-training),
`finetune` (the encoder fine-tuned from its probe, LP-FT; networks trained from scratch), and `fixmatch`
(the same with FixMatch consistency on the unlabelled train windows). Each method runs the modes it has
(METHOD_MODES). Every label draw is shared by every method (paired); every choice (the probe, the
weights kept) is made on the val subjects. Outputs in one folder: results.csv (a row per method, mode,
fraction, draw), summary.json (mean and std over draws; the probes chosen on val and their val scores) and
results.md (the macro-F1 table).
"""
import csv
import dataclasses
import hashlib
import io
import json
import time
from pathlib import Path

import numpy as np
import torch

from common.checkpoint import safe_torch_load
from common.config import Config, config_to_dict, field
from common.encoders import build_encoder, check_encoder_args, check_encoder_state
from ground.errors import UserError
from ground.io import check_writable_folder
from common.evaluation import (fine_tune, frozen_embeddings, linear_head_from_probe, markdown_table, rebuild_encoder,
                               recording_scores, scores, summarise)
from ground.paths import REPO_ROOT
from common.pretrained import PRETRAINED_DIR, available, is_shipped, load_pretrained_state
from common.probes import SCALERS, Probe, choose_probe, fit_probe, parse_candidate, self_train
from common.run_folder import RunFolder
from common.subject_norm import (MIN_SUBJECT_WINDOWS, NETWORK_SUBJECT_NORMS, SUBJECT_NORMS, adabn_embeddings,
                                 zscore_per_subject)
from common.runtime import DEVICES, PRECISIONS, resolve_precision, select_device
from data_processing.inputs import stratified_subset
from data_processing.minirocket import minirocket_features

PROBED = ("encoder", "expert_features", "raw", "minirocket", "encoder+features", "encoder+minirocket")
FROM_SCRATCH = ("supervised", "resnet")
METHODS = ("encoder", "supervised", "resnet", "expert_features", "raw", "minirocket", "encoder+features",
           "encoder+minirocket")
HYBRIDS = ("encoder+features", "encoder+minirocket")
MODES = ("linear", "selftrain", "cotrain", "finetune", "fixmatch")
PROBE_MODES = ("linear", "selftrain", "cotrain")  # a probe on a fixed representation, no gradient step
NETWORK_MODES = ("finetune", "fixmatch")  # a network trained by gradient steps
METHOD_MODES = {"encoder": ("linear", "selftrain", "finetune", "fixmatch"),
                **{m: ("finetune", "fixmatch") for m in FROM_SCRATCH},
                **{m: ("linear", "selftrain", "cotrain") if m in HYBRIDS else ("linear", "selftrain")
                   for m in PROBED[1:]}}
SENSOR_ONLY = ("resnet", "minirocket", "encoder+minirocket")  # they take (C, T) windows, not images


@dataclasses.dataclass
class ClassifierConfig(Config):
    encoder: str = field("", "run folder or encoder.pt; empty: the newest run under --runs_dir")
    runs_dir: str = field("outputs", "where to look for the newest run when --encoder is empty")
    methods: tuple[str, ...] = field(METHODS, f"any of {', '.join(METHODS)}")
    modes: tuple[str, ...] = field(("linear", "selftrain", "finetune"),
                                   f"any of {', '.join(MODES)}; each method runs those it has")
    label_fractions: tuple[float, ...] = field((0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0), "shares of the train labels")
    seeds: int = field(3, "label draws per fraction below 100% (the same draws for every method), each with its "
                          "own classifier init")
    full_seeds: int = field(3, "draws at 100% labels (the subset is every window: only the inits differ), at most "
                               "--seeds")
    probe: str = field("auto", "the linear classifier of every probed method: auto (chosen on the val subjects among "
                               "--probe_candidates x --probe_scalers, per method and fraction), or one candidate "
                               "(logistic:C or ridge, scaled by all train windows)")
    probe_candidates: tuple[str, ...] = field(("logistic:0.1", "logistic:1", "logistic:10", "ridge"),
                                              "with --probe auto: logistic:C (L2 logistic regression) and/or ridge "
                                              "(RidgeClassifierCV, alphas 1e-3..1e3)")
    probe_scalers: tuple[str, ...] = field(SCALERS, "with --probe auto: where the standardisation comes from: all "
                                                    "(every train window) and/or labelled (the subset)")
    tuning_draws: int = field(5, "with --probe auto: label draws (apart from the evaluated ones) the choice on val "
                                 "averages over")
    selftrain_rounds: int = field(8, "self-training rounds: each refits the probe on labels + pseudo-labels (8: chosen "
                                     "on the val subjects among 1, 3, 5, 8)")
    selftrain_per_round: float = field(1.0, "pseudo-labels added per round, per class, as a multiple of that "
                                            "class's label count (the most confident windows predicted as it)")
    fixmatch_threshold: float = field(0.95, "FixMatch: confidence on the weak view above which its prediction "
                                            "trains the strong view")
    fixmatch_ratio: int = field(2, "FixMatch: unlabelled windows per labelled window in a step")
    fixmatch_weight: float = field(1.0, "FixMatch: weight of the unlabelled loss")
    subject_norm: str = field("none", "probed methods: each subject's representation relative to that subject's "
                              "own windows (common/subject_norm.py): none, zscore (every feature standardised per "
                              "subject) or adabn (the encoder's BatchNorm statistics per subject, the other "
                              "representations z-scored); uses every window of a subject, unlabelled, test subjects "
                              "too; left out, with a notice, where a subject has under 10 windows",
                              choices=SUBJECT_NORMS)
    network_subject_norm: str = field("none", "gradient-trained networks (finetune, fixmatch, from scratch too): "
                                      "adabn classifies each val and test subject with the network's BatchNorm "
                                      "statistics re-estimated on that subject's windows (their weights untouched)",
                                      choices=NETWORK_SUBJECT_NORMS)
    minirocket_kernels: int = field(10_000, "MiniRocket features (multiples of 84)")
    resnet_width: int = field(64, "resnet: channels of its first block (64 / 128 / 128 in Wang et al. 2017)")
    finetune_head: str = field("linear_probe", "where the fine-tuned head starts: linear_probe (the fitted "
                               "probe, LP-FT) or random", choices=("linear_probe", "random"))
    lr: float = field(1e-3, "fine-tuning learning rate of the head (AdamW)")
    encoder_lr_ratio: float = field(0.1, "fine-tuning: encoder lr = lr * this")
    weight_decay: float = field(1e-4, "AdamW weight decay")
    batch_size: int = field(64, "labelled windows per step")
    # one recipe for fine-tuning and supervised-from-scratch: augmented labelled inputs, label smoothing, a
    # warm-up + cosine schedule run to its end, the weights kept that scored best on the val subjects
    epochs: int = field(40, "passes over the labelled subset (clipped to [min_steps, max_steps] steps)")
    min_steps: int = field(200, "at least this many steps, however few the labels")
    max_steps: int = field(8000, "at most this many steps")
    eval_every: int = field(50, "steps between validation checks")
    patience: int = field(0, "validation checks without improvement before stopping; 0: run the whole schedule")
    init_seed: int = field(0, "networks from scratch start from the init of seed init_seed * 1000 + label seed, and "
                              "MiniRocket's kernels from seed init_seed: a study repeats it as it repeats pretraining")
    train_augment: int = field(1, "1: gradient-trained classifiers see augmented labelled inputs (the data's own "
                               "transforms); 0: the inputs as they are")
    label_smoothing: float = field(0.1, "cross-entropy label smoothing of gradient-trained classifiers")
    output_dir: str = field("", "results folder; empty: <encoder run folder>/classifier")
    device: str = field("auto", "auto picks cuda, then mps, then cpu", choices=DEVICES)
    precision: str = field("auto", "auto: bf16 autocast on cuda, fp32 elsewhere", choices=PRECISIONS)

    def check_values(self):
        for method in self.methods:
            if method not in METHODS:
                raise UserError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
        for mode in self.modes:
            if mode not in MODES:
                raise UserError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
        for fraction in self.label_fractions:
            if not 0 < fraction <= 1:
                raise UserError(f"label fraction {fraction} is outside (0, 1]")
        for name in ("seeds", "full_seeds", "tuning_draws", "batch_size", "epochs", "min_steps", "max_steps",
                     "eval_every", "fixmatch_ratio", "minirocket_kernels", "resnet_width"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name} must be at least 1")
        if self.patience < 0 or self.train_augment not in (0, 1) or not 0 <= self.label_smoothing < 1:
            raise UserError("--patience must be >= 0, --train_augment 0 or 1, --label_smoothing in [0, 1)")
        if not self.lr > 0 or not self.encoder_lr_ratio >= 0 or not self.weight_decay >= 0:
            raise UserError("--lr must be positive, --encoder_lr_ratio and --weight_decay non-negative")
        if self.selftrain_rounds < 0 or not self.selftrain_per_round > 0:
            raise UserError("--selftrain_rounds must be >= 0 and --selftrain_per_round positive")
        if not 0 < self.fixmatch_threshold <= 1 or not self.fixmatch_weight >= 0:
            raise UserError("--fixmatch_threshold must be in (0, 1] and --fixmatch_weight non-negative")
        if self.probe != "auto":
            parse_candidate(self.probe)
        for candidate in self.probe_candidates:
            parse_candidate(candidate)
        if not self.probe_candidates or any(s not in SCALERS for s in self.probe_scalers) or not self.probe_scalers:
            raise UserError(f"--probe_candidates needs at least one candidate, --probe_scalers some of "
                            f"{', '.join(SCALERS)}")

    def check_machine(self):
        """The start-up step, after every value is valid: the device is there and --output_dir writable."""
        select_device(self.device)
        if self.output_dir:
            out = Path(self.output_dir)
            check_writable_folder(out if out.is_absolute() else REPO_ROOT / out, "--output_dir")

    def training_settings(self):
        return {k: getattr(self, k) for k in ("lr", "weight_decay", "batch_size", "epochs", "min_steps",
                                              "max_steps", "eval_every", "patience", "label_smoothing")}

    def probes(self):
        """The probe candidates: one fixed probe, or the grid chosen from on val."""
        if self.probe != "auto":
            return [Probe(self.probe, "all")]
        return [Probe(c, s) for c in self.probe_candidates for s in self.probe_scalers]

    def runs(self):
        """(method, mode) pairs this config evaluates, in the order of --methods."""
        return [(m, mode) for m in self.methods for mode in METHOD_MODES[m] if mode in self.modes]


def label_budgets(config, splits):
    """(budget name, fraction, seed, train indices) of every labelled subset the study evaluates."""
    labels = splits.train["y"]
    budgets = [(f"{100 * fraction:g}%", fraction, seed, stratified_subset(labels, fraction, seed))
               for fraction in config.label_fractions
               for seed in range(min(config.seeds, config.full_seeds) if fraction >= 1 else config.seeds)]
    for name, subsets in splits.label_sets.items():
        budgets += [(name, len(subset) / len(labels), i, np.sort(subset)) for i, subset in enumerate(subsets)]
    return budgets


def resolve_encoder_path(config):
    """--encoder as given, or the newest run folder holding an encoder.pt."""
    if config.encoder:
        path = Path(config.encoder)
        if not path.exists() and is_shipped(config.encoder):  # a shipped encoder's name: resources/pretrained/
            return PRETRAINED_DIR / f"{config.encoder}.safetensors"
        path = path / "encoder.pt" if path.is_dir() else path
        if not path.is_file():
            raise UserError(f"encoder {config.encoder!r} does not exist: pass a run folder, its encoder.pt, or a "
                            f"shipped encoder's name ({', '.join(available()) or 'none shipped'})")
        return path
    runs = Path(config.runs_dir)
    runs = runs if runs.is_absolute() else REPO_ROOT / runs
    candidates = sorted(runs.glob("*/encoder.pt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise UserError(f"no --encoder given and no run with an encoder.pt under {runs}: pretrain one first")
    print(f"using the newest encoder: {candidates[-1]}")
    return candidates[-1]


def load_pretrained_encoder(path, input_shape=None):
    """(model_args, state_dict) of a saved encoder (a run's encoder.pt or a shipped .safetensors); with
    input_shape, refuse one pretrained on other inputs."""
    path = Path(path)
    if path.suffix == ".safetensors":
        model_args, state_dict, description = load_pretrained_state(path.stem, path.parent)
        saved = {"model_args": model_args, "state_dict": state_dict, "input_shape": description["input_shape"]}
    else:
        saved = safe_torch_load(path)
    if not isinstance(saved, dict) or "model_args" not in saved or "state_dict" not in saved:
        raise UserError(f"{path} is not an encoder saved by this project (no model_args/state_dict)")
    trained_on = saved.get("input_shape")
    if input_shape is not None and trained_on is not None and list(trained_on) != list(input_shape):
        raise UserError(f"{path} was pretrained on inputs of shape {tuple(trained_on)} (channels, samples), these "
                        f"data have {tuple(input_shape)}: use the encoder's channels and window (--window, "
                        f"--image_size) or pretrain one on these data")
    model_args, state_dict = saved["model_args"], saved["state_dict"]
    try:
        if not isinstance(model_args, dict) or not isinstance(model_args.get("name"), str):
            raise ValueError("model_args has no encoder name")
        check_encoder_args(**model_args)  # sane bounds before anything is built
        with torch.device("meta"):  # the architecture's shapes, without allocating its weights
            skeleton = build_encoder(**model_args)
        check_encoder_state(skeleton, state_dict)
    except (TypeError, ValueError) as err:
        raise UserError(f"{path}: {err}") from None
    for key, tensor in state_dict.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise UserError(f"{path}: weight {key} holds NaN or infinite values: the encoder is broken")
        if key.endswith("running_var") and (tensor < 0).any():
            raise UserError(f"{path}: batch-norm variance {key} is negative: the encoder is broken")
    return model_args, state_dict


def default_results_dir(config, encoder_path):
    """<run folder>/classifier; a shipped encoder's results go to <runs_dir>/<name>/classifier."""
    if encoder_path is None:
        return None
    if encoder_path.suffix == ".safetensors":
        runs = Path(config.runs_dir)
        return (runs if runs.is_absolute() else REPO_ROOT / runs) / encoder_path.stem / "classifier"
    return encoder_path.parent / "classifier"


def _flat(x):
    return np.asarray(x).reshape(len(x), -1)


def needs_encoder(config):
    """Whether a pretrained encoder is read: its embedding is probed, or its architecture trained from scratch."""
    return any(m == "supervised" or m.startswith("encoder") for m in config.methods)


def saved_data_record(encoder_path):
    """What an encoder recorded of its pretraining data (har_task/task.py's HARTask.encoder_record), or None
    (an encoder saved before records were kept, or none evaluated)."""
    if encoder_path is None:
        return None
    path = Path(encoder_path)
    if path.suffix == ".safetensors":
        return load_pretrained_state(path.stem, path.parent)[2].get("data")
    saved = safe_torch_load(path)
    return saved.get("data") if isinstance(saved, dict) else None


MINIROCKET_MEMO = {}


class Representations:
    """The probed methods' inputs, {train, val, test} arrays each, computed once when first asked for."""

    def __init__(self, config, splits, model_args, state_dict, device, precision):
        self.config, self.splits, self.model_args, self.state_dict = config, splits, model_args, state_dict
        self.device, self.precision, self.cache, self.seconds = device, precision, {}, {}

    def __getitem__(self, method):
        if method not in self.cache:
            start = time.time()
            self.cache[method] = self._compute(method)
            self.seconds[method] = round(time.time() - start, 2)
        return self.cache[method]

    @staticmethod
    def blocks(method):
        """The representations a hybrid concatenates, in order: encoder+features -> (encoder, expert_features)."""
        return tuple("expert_features" if part == "features" else part for part in method.split("+"))

    def _compute(self, method):
        splits = {name: getattr(self.splits, name) for name in ("train", "val", "test")}
        if "+" in method:  # a hybrid: the embedding beside the other representation (the probe standardises each)
            return {k: np.concatenate([self[block][k] for block in self.blocks(method)], 1) for k in splits}
        norm = self.config.subject_norm
        if method == "encoder" and norm == "adabn":
            encoder = rebuild_encoder(self.model_args, self.state_dict).to(self.device)
            return self._finite({k: adabn_embeddings(encoder, d["x"], d["subject"], self.device, self.precision)
                                 for k, d in splits.items()})
        values = self._plain(method, splits)
        if norm == "none":
            return values
        return {k: zscore_per_subject(v, splits[k]["subject"]) for k, v in values.items()}

    @staticmethod
    def _finite(embeddings):
        if not all(np.isfinite(e).all() for e in embeddings.values()):
            raise UserError("the encoder's embeddings of these data hold NaN or infinite values")
        return embeddings

    def _plain(self, method, splits):
        if method == "encoder":
            encoder = rebuild_encoder(self.model_args, self.state_dict).to(self.device)
            return self._finite({k: v.numpy() for k, v in frozen_embeddings(
                encoder, {k: d["x"] for k, d in splits.items()}, self.device, self.precision).items()})
        if method == "expert_features":
            return {k: d["features"] for k, d in splits.items()}
        if method == "raw":
            return {k: _flat(d["x"]) for k, d in splits.items()}
        key = (tuple(hashlib.sha1(np.ascontiguousarray(d["x"]).tobytes()).hexdigest() for d in splits.values()),
               self.config.minirocket_kernels, self.config.init_seed)
        if key not in MINIROCKET_MEMO:  # units of one study share the transform (one process, the same data)
            MINIROCKET_MEMO.clear()
            MINIROCKET_MEMO[key] = minirocket_features(splits["train"]["x"], {k: d["x"] for k, d in splits.items()},
                                                       self.config.minirocket_kernels, self.config.init_seed)[0]
        return MINIROCKET_MEMO[key]


def config_for_data(config, splits):
    """The config the run uses, after checking the methods fit the data. A per-subject normalisation the data
    cannot support (a subject with fewer than MIN_SUBJECT_WINDOWS windows in a split: own windows without a
    subject column are one subject each) is left out with a notice, so HAR's default works on any recordings;
    asking for it on data without subjects (images) is an error."""
    for flag, modes in (("subject_norm", PROBE_MODES), ("network_subject_norm", NETWORK_MODES)):
        value = getattr(config, flag)
        if value == "none" or not set(config.modes) & set(modes):  # no mode of these runs uses it
            continue
        if "subject" not in splits.train:
            raise UserError(f"--{flag} {value} needs each window's subject, which these data do not have (sensor "
                            f"data do)")
        few = [(name, subject, count) for name in ("train", "val", "test")
               for subject, count in zip(*np.unique(getattr(splits, name)["subject"], return_counts=True))
               if count < MIN_SUBJECT_WINDOWS]
        if few:
            name, subject, count = few[0]
            print(f"--{flag} {value}: {name} subject {subject} has {count} window(s), too few to normalise by (at "
                  f"least {MIN_SUBJECT_WINDOWS}; own recordings without a subject column are one subject each): "
                  f"this run goes on without it (--{flag} none)")
            config = dataclasses.replace(config, **{flag: "none"})
    if splits.train["x"].ndim != 3:
        sensor_only = [m for m in config.methods if m in SENSOR_ONLY]
        if sensor_only:
            raise UserError(f"{', '.join(sensor_only)} take sensor windows (channels x samples), not images")
    if "fixmatch" in config.modes and splits.weak_augment is None:
        raise UserError("--modes fixmatch needs a weak augmentation of these data (sensor windows have one)")
    return config


def run_classification(config, splits, encoder_path=None):
    """Run the study; returns (rows, summary, output folder). encoder_path: the resolved --encoder, else
    resolved here."""
    config = config_for_data(config, splits)
    device = select_device(config.device)
    precision = resolve_precision(config.precision, device)
    if encoder_path is None and needs_encoder(config):
        encoder_path = resolve_encoder_path(config)
    input_shape = splits.train["x"].shape[1:]
    # which weights were scored: a later pretraining into the same folder leaves this unit behind (the study)
    encoder_sha256 = file_sha256(encoder_path) if encoder_path else None
    model_args, state_dict = load_pretrained_encoder(encoder_path, input_shape) if encoder_path else (None, None)
    out = Path(config.output_dir) if config.output_dir else default_results_dir(config, encoder_path)
    if out is None:
        raise UserError("--output_dir is needed when no encoder is evaluated")
    results = RunFolder(out if out.is_absolute() else REPO_ROOT / out)
    done = scored_draws(results, config)
    results.start(config)
    train, val, test = splits.train, splits.val, splits.test
    num_classes = int(train["y"].max()) + 1
    settings = {**config.training_settings(), "precision": precision,
                "augment": splits.augment if config.train_augment else None}
    semi_settings = {**settings, "augment": splits.augment, "unlabelled": train["x"],
                     "weak_augment": splits.weak_augment,
                     "fixmatch": {"threshold": config.fixmatch_threshold, "ratio": config.fixmatch_ratio,
                                  "weight": config.fixmatch_weight}}
    representations = Representations(config, splits, model_args, state_dict, device, precision)
    # LP-FT's head must fit the embeddings the network computes: never normalised per subject
    plain = representations if config.subject_norm == "none" else Representations(
        dataclasses.replace(config, subject_norm="none"), splits, model_args, state_dict, device, precision)
    # AdaBN for the networks: val and test classified subject by subject
    network_subjects = {k: d["subject"] if config.network_subject_norm == "adabn" else None
                        for k, d in (("val", val), ("test", test))}
    architectures = {"supervised": model_args,
                     "resnet": {"name": "resnet1d", "in_channels": int(input_shape[0]), "width": config.resnet_width}}
    chosen, choices, repeated = {}, [], {}

    def probe_for(method, fraction, reps=representations):
        """The probe of a probed method at a fraction, chosen on val once (recorded in summary.json)."""
        key = (method, round(fraction, 6), reps is plain)
        if key not in chosen:
            data = reps[method]
            probe, val_scores = choose_probe(config.probes(), data["train"], train["y"], data["val"], val["y"],
                                             fraction, config.tuning_draws, num_classes)
            # LP-FT's head starts from a logistic probe: the best logistic candidate on val
            logistic = [p for p in config.probes() if p.classifier.startswith("logistic")] or [
                Probe("logistic:1", probe.scaler)]
            head = max(logistic, key=lambda p: val_scores.get(p.name, 0.0))
            chosen[key] = (probe, head)
            choices.append({"method": method, "fraction": fraction, "chosen": probe.name, "head": head.name,
                            "subject_norm": reps.config.subject_norm, "val_macro_f1": val_scores})
        return chosen[key]

    def run(method, mode, fraction, seed, subset):
        """(N, K) test probabilities, whether fine-tuning kept its starting weights (LP-FT only), the probe."""
        x_sub, y_sub = train["x"][subset], train["y"][subset]
        if method in PROBED and mode in PROBE_MODES:
            probe, _ = probe_for(method, fraction)
            data = representations[method]
            views = [representations[block]["train"] for block in representations.blocks(method)] \
                if mode == "cotrain" else None
            fitted = (fit_probe(probe, data["train"][subset], y_sub, data["train"], num_classes, seed)
                      if mode == "linear" else
                      self_train(probe, data["train"], train["y"], subset, num_classes, config.selftrain_rounds,
                                 config.selftrain_per_round, seed, views))
            return fitted(data["test"]), None, probe.name
        recipe = semi_settings if mode == "fixmatch" else settings
        if method == "encoder":
            head_init = None
            if config.finetune_head == "linear_probe":
                _, head = probe_for(method, fraction, plain)
                data = plain[method]
                fitted = fit_probe(head, data["train"][subset], y_sub, data["train"], num_classes, seed)
                head_init = linear_head_from_probe(fitted.scaler, fitted.model, num_classes)
            probabilities, kept = fine_tune(rebuild_encoder(model_args, state_dict), num_classes, x_sub, y_sub,
                                            val["x"], val["y"], recipe, seed, config.encoder_lr_ratio, device,
                                            head_init, network_subjects["val"])
            return probabilities(test["x"], network_subjects["test"]), kept if head_init is not None else None, ""
        init = config.init_seed * 1000 + seed
        probabilities, _ = fine_tune(rebuild_encoder(architectures[method], None, init), num_classes, x_sub, y_sub,
                                     val["x"], val["y"], recipe, init, 1.0, device, val_subject=network_subjects["val"])
        return probabilities(test["x"], network_subjects["test"]), None, ""

    rows = []
    start = time.time()
    for budget, fraction, seed, subset in label_budgets(config, splits):
        for method, mode in config.runs():
            if (method, mode, round(fraction, 6), seed) in done:  # scored before a kill: the same draw, kept
                rows.append(done[(method, mode, round(fraction, 6), seed)])
                continue
            run_start = time.time()
            # a probe on a subset it has seen already (every draw at 100%) is deterministic: scored once
            key = (method, mode, hashlib.sha1(np.ascontiguousarray(subset).tobytes()).hexdigest())
            if method in PROBED and mode in PROBE_MODES and key in repeated:
                probabilities, kept_probe, probe, seconds = repeated[key]
            else:
                probabilities, kept_probe, probe = run(method, mode, fraction, seed, subset)
                seconds = round(time.time() - run_start, 2)
                repeated[key] = (probabilities, kept_probe, probe, seconds)
            row = {"method": method, "mode": mode, "budget": budget, "fraction": fraction, "seed": seed,
                   "labelled": len(subset), **scores(test["y"], probabilities.argmax(1))}
            if "recording" in test:
                row.update(recording_scores(test["y"], probabilities, test["recording"]))
            row.update(probe=probe, kept_probe="" if kept_probe is None else kept_probe, seconds=seconds)
            rows.append(row)
            with open(results / PARTIAL, "a") as f:  # each scored draw survives a kill (scored_draws)
                f.write(json.dumps(row) + "\n")
            per_recording = (f" per recording {row['recording_vote_macro_f1']:.4f} (vote)"
                             if "recording" in test else "")
            print(f"{method:18s} {mode:9s} {budget} seed {seed}: macro-F1 {row['macro_f1']:.4f} "
                  f"accuracy {row['accuracy']:.4f}{per_recording}{' (kept the probe)' if kept_probe else ''} "
                  f"({row['seconds']:.1f} s)")
    summary = summarise(rows)
    write_results(results, rows, summary, {"encoder": str(encoder_path) if encoder_path else None,
                                           "encoder_sha256": encoder_sha256,
                                           "seconds": round(time.time() - start, 1), "precision": precision,
                                           "representation_seconds": representations.seconds,
                                           "probe_choices": choices, **splits.info})
    (results / PARTIAL).unlink(missing_ok=True)
    return rows, summary, results.path


PARTIAL = "rows.partial.jsonl"


def file_sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def scored_draws(results, config):
    """{(method, mode, fraction, seed): row} that a killed run of this very config scored in this folder
    (its rows.partial.jsonl; a torn last line is dropped), so a rerun goes on where it stopped; {} for a
    fresh folder or another config, whose partial rows are dropped."""
    partial, recorded = results / PARTIAL, results / results.CONFIG
    if not partial.exists():
        return {}
    same = recorded.exists() and {k: v for k, v in json.loads(recorded.read_text()).items()
                                  if k != results.RUNTIME} == json.loads(json.dumps(config_to_dict(config)))
    if not same:
        partial.unlink()
        return {}
    done = {}
    for line in partial.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            break
        done[(row["method"], row["mode"], round(row["fraction"], 6), row["seed"])] = row
    if done:
        print(f"{results.path}: {len(done)} draws were scored before the run stopped: going on from there")
    return done


def write_results(results, rows, summary, info):
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    results.write_text("results.csv", table.getvalue())
    results.write_summary({"info": info, "summary": summary})
    results.write_text("results.md", results_markdown(summary, info))


def results_markdown(summary, info):
    """The macro-F1 table (per window; per recording too for own recordings) with notes on what it means."""
    text = ""
    if info.get("transductive"):
        text += (f"**Transductive study**: the encoder was pretrained (without labels) on test subjects "
                 f"{info['transductive']} (--transductive 1).\n\n")
    text += ("Macro-F1 on the test split, mean ± std over label subsets (seeds or folds), per window\n\n"
             + markdown_table(summary))
    if any(s.get("kept_probe") for s in summary):
        text += ("\n† fine-tuning kept the linear probe in k of n label subsets (its val macro-F1 never beat the "
                 "probe's): those subsets score exactly as the linear row.\n")
    if any("recording_vote_macro_f1_mean" in s for s in summary):
        for metric, name in (("recording_vote_macro_f1", "majority vote"),
                             ("recording_mean_prob_macro_f1", "mean probability")):
            text += (f"\nPer recording ({name} over a recording's windows of one class):\n\n"
                     + markdown_table(summary, metric))
    return text
