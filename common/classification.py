"""The label-efficiency study behind every `train_classifier.py`: methods x modes x fractions x seeds.

Methods: `encoder` (the pretrained encoder, modes linear and finetune), `supervised` (same architecture,
random init, trained end to end on the same labelled subset), `expert_features` (logistic regression on
the expert features), `raw` (logistic regression on the flattened input). Outputs in one folder:
results.csv (a row per method, mode, fraction, seed), summary.json (mean and std per method, mode,
fraction) and results.md (the macro-F1 table).
"""
import csv
import dataclasses
import io
import time
from pathlib import Path

import numpy as np
import torch

from common.checkpoint import safe_torch_load
from common.config import field
from common.encoders import build_encoder, check_encoder_args, check_encoder_state
from common.errors import UserError
from common.io import check_writable_folder
from common.evaluation import (fine_tune, fit_logistic, frozen_embeddings, linear_head_from_probe,
                               logistic_probabilities, logistic_regression, markdown_table, rebuild_encoder,
                               recording_scores, scores, summarise)
from common.paths import REPO_ROOT
from common.pretrained import PRETRAINED_DIR, available, is_shipped, load_pretrained_state
from common.run_folder import RunFolder
from common.runtime import DEVICES, PRECISIONS, resolve_precision, select_device
from data_processing.inputs import stratified_subset

METHODS = ("encoder", "supervised", "expert_features", "raw")
MODES = ("linear", "finetune")


@dataclasses.dataclass
class ClassifierConfig:
    encoder: str = field("", "run folder or encoder.pt; empty: the newest run under --runs_dir")
    runs_dir: str = field("outputs", "where to look for the newest run when --encoder is empty")
    methods: tuple[str, ...] = field(METHODS, f"any of {', '.join(METHODS)}")
    modes: tuple[str, ...] = field(MODES, "modes of the pretrained encoder: linear (frozen) and/or finetune")
    label_fractions: tuple[float, ...] = field((0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0), "shares of the train labels")
    seeds: int = field(3, "label subsets (and classifier inits) per fraction")
    logistic_c: float = field(1.0, "inverse L2 strength of the linear classifiers (probe and baselines)")
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
    init_seed: int = field(0, "supervised from scratch starts from the init of seed init_seed * 1000 + label seed: "
                              "a study repeats it as it repeats pretraining")
    train_augment: int = field(1, "1: gradient-trained classifiers see augmented labelled inputs (the data's own "
                               "transforms); 0: the inputs as they are")
    label_smoothing: float = field(0.1, "cross-entropy label smoothing of gradient-trained classifiers")
    output_dir: str = field("", "results folder; empty: <encoder run folder>/classifier")
    device: str = field("auto", "auto picks cuda, then mps, then cpu", choices=DEVICES)
    precision: str = field("auto", "auto: bf16 autocast on cuda, fp32 elsewhere", choices=PRECISIONS)

    def validate(self):
        for method in self.methods:
            if method not in METHODS:
                raise UserError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
        for mode in self.modes:
            if mode not in MODES:
                raise UserError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
        for fraction in self.label_fractions:
            if not 0 < fraction <= 1:
                raise UserError(f"label fraction {fraction} is outside (0, 1]")
        for name in ("seeds", "batch_size", "epochs", "min_steps", "max_steps", "eval_every"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name} must be at least 1")
        if self.patience < 0 or self.train_augment not in (0, 1) or not 0 <= self.label_smoothing < 1:
            raise UserError("--patience must be >= 0, --train_augment 0 or 1, --label_smoothing in [0, 1)")
        if not self.lr > 0 or not self.encoder_lr_ratio >= 0 or not self.logistic_c > 0 or not self.weight_decay >= 0:
            raise UserError("--lr and --logistic_c must be positive, --encoder_lr_ratio and --weight_decay "
                            "non-negative")
        select_device(self.device)

    def check_outputs(self):
        if self.output_dir:
            out = Path(self.output_dir)
            check_writable_folder(out if out.is_absolute() else REPO_ROOT / out, "--output_dir")

    def training_settings(self):
        return {k: getattr(self, k) for k in ("lr", "weight_decay", "batch_size", "epochs", "min_steps",
                                              "max_steps", "eval_every", "patience", "label_smoothing")}


def label_budgets(config, splits):
    """(budget name, fraction, seed, train indices) of every labelled subset the study evaluates."""
    labels = splits.train["y"]
    budgets = [(f"{100 * fraction:g}%", fraction, seed, stratified_subset(labels, fraction, seed))
               for fraction in config.label_fractions for seed in range(config.seeds)]
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
            raise UserError(f"encoder {config.encoder!r} does not exist: pass a run folder, its encoder.pt, or a shipped "
                        f"encoder's name ({', '.join(available()) or 'none shipped'})")
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
    return x.reshape(len(x), -1)


def needs_encoder(config):
    return "encoder" in config.methods or "supervised" in config.methods


def saved_data_record(encoder_path):
    """What an encoder recorded of its pretraining data (common/har_task.py's encoder_data_record), or None
    (an encoder saved before records were kept, or none evaluated)."""
    if encoder_path is None:
        return None
    path = Path(encoder_path)
    if path.suffix == ".safetensors":
        return load_pretrained_state(path.stem, path.parent)[2].get("data")
    saved = safe_torch_load(path)
    return saved.get("data") if isinstance(saved, dict) else None


def run_classification(config, splits, encoder_path=None):
    """Run the study; returns (rows, summary, output folder). encoder_path: the resolved --encoder, else
    resolved here."""
    device = select_device(config.device)
    precision = resolve_precision(config.precision, device)
    if encoder_path is None and needs_encoder(config):
        encoder_path = resolve_encoder_path(config)
    input_shape = splits.train["x"].shape[1:]
    model_args, state_dict = load_pretrained_encoder(encoder_path, input_shape) if encoder_path else (None, None)
    out = Path(config.output_dir) if config.output_dir else default_results_dir(config, encoder_path)
    if out is None:
        raise UserError("--output_dir is needed when no encoder is evaluated")
    results = RunFolder(out if out.is_absolute() else REPO_ROOT / out)
    results.start(config)
    train, val, test = splits.train, splits.val, splits.test
    num_classes = int(train["y"].max()) + 1
    settings = {**config.training_settings(), "precision": precision,
                "augment": splits.augment if config.train_augment else None}

    probe_needed = "encoder" in config.methods and (
        "linear" in config.modes or ("finetune" in config.modes and config.finetune_head == "linear_probe"))
    embeddings = None
    if probe_needed:
        encoder = rebuild_encoder(model_args, state_dict).to(device)
        embeddings = {k: v.numpy() for k, v in frozen_embeddings(
            encoder, {"train": train["x"], "test": test["x"]}, device, precision).items()}
        if not all(np.isfinite(e).all() for e in embeddings.values()):
            raise UserError(f"{encoder_path}: the encoder's embeddings of these data hold NaN or infinite values")

    rows = []
    start = time.time()
    for budget, fraction, seed, subset in label_budgets(config, splits):
        x_sub, y_sub = train["x"][subset], train["y"][subset]
        # the linear probe on this subset: scored in linear mode, and where LP-FT fine-tuning starts
        probe_start, scaler, probe, head_init = time.time(), None, None, None
        if probe_needed:
            scaler, probe = fit_logistic(embeddings["train"][subset], y_sub, config.logistic_c, seed, embeddings["train"])
            if config.finetune_head == "linear_probe":
                head_init = linear_head_from_probe(scaler, probe, num_classes)
        probe_seconds = time.time() - probe_start
        # each run returns (N, K) test probabilities and, for fine-tuning, whether it kept its starting weights
        runs = []
        if "encoder" in config.methods and "linear" in config.modes:
            runs.append(("encoder", "linear", lambda: (
                logistic_probabilities(scaler, probe, num_classes)(embeddings["test"]), None)))
        if "encoder" in config.methods and "finetune" in config.modes:
            def lp_ft():
                probabilities, kept = fine_tune(rebuild_encoder(model_args, state_dict), num_classes, x_sub, y_sub,
                                                val["x"], val["y"], settings, seed, config.encoder_lr_ratio, device,
                                                head_init)
                return probabilities(test["x"]), kept if head_init is not None else None
            runs.append(("encoder", "finetune", lp_ft))
        if "supervised" in config.methods:
            def supervised():
                init = config.init_seed * 1000 + seed
                probabilities, _ = fine_tune(rebuild_encoder(model_args, None, init), num_classes, x_sub, y_sub,
                                             val["x"], val["y"], settings, init, 1.0, device)
                return probabilities(test["x"]), None
            runs.append(("supervised", "finetune", supervised))
        if "expert_features" in config.methods:
            runs.append(("expert_features", "linear", lambda: (logistic_regression(
                train["features"][subset], y_sub, config.logistic_c, seed, train["features"], num_classes)(
                test["features"]), None)))
        if "raw" in config.methods:
            runs.append(("raw", "linear", lambda: (logistic_regression(
                _flat(x_sub), y_sub, config.logistic_c, seed, _flat(train["x"]), num_classes)(_flat(test["x"])),
                None)))
        for method, mode, run in runs:
            run_start = time.time() - (probe_seconds if (method, mode) == ("encoder", "linear") else 0.0)
            probabilities, kept_probe = run()
            row = {"method": method, "mode": mode, "budget": budget, "fraction": fraction, "seed": seed,
                   "labelled": len(subset), **scores(test["y"], probabilities.argmax(1))}
            if "recording" in test:
                row.update(recording_scores(test["y"], probabilities, test["recording"]))
            row.update(kept_probe="" if kept_probe is None else kept_probe, seconds=round(time.time() - run_start, 2))
            rows.append(row)
            per_recording = (f" per recording {row['recording_vote_macro_f1']:.4f} (vote)"
                             if "recording" in test else "")
            print(f"{method:15s} {mode:8s} {budget} seed {seed}: macro-F1 {row['macro_f1']:.4f} "
                  f"accuracy {row['accuracy']:.4f}{per_recording}{' (kept the probe)' if kept_probe else ''} "
                  f"({row['seconds']:.1f} s)")
    summary = summarise(rows)
    write_results(results, rows, summary, {"encoder": str(encoder_path) if encoder_path else None,
                                           "seconds": round(time.time() - start, 1), "precision": precision,
                                           **splits.info})
    return rows, summary, results.path


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
