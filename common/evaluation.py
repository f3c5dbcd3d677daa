"""Label-efficient evaluation: stratified label subsets, linear / fine-tuned classifiers, baselines, scores.

Gradient-trained classifiers are early-stopped on the validation subjects only; every classifier is scored
once on the test subjects: accuracy and macro-F1.
"""
import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, f1_score
from torch import nn

from common.encoders import build_encoder, embed, load_encoder_state
from common.probes import Probe, fit_probe
from common.runtime import autocast
from common.subject_norm import by_subject
from data_processing.inputs import as_float_input


def scores(y_true, y_pred):
    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro"))}


RECORDING_METRICS = ("recording_vote_macro_f1", "recording_mean_prob_macro_f1")


def recording_scores(y_true, probabilities, recording):
    """Macro-F1 per recording: a recording's windows of one class (a recording with one label: the recording)
    get one prediction, by majority vote of the windows' predictions and by their mean probability."""
    y_true, probabilities, recording = np.asarray(y_true), np.asarray(probabilities), np.asarray(recording)
    groups = np.unique(np.stack([recording, y_true], 1), axis=0)
    predicted = probabilities.argmax(1)
    truth, vote, mean_prob = [], [], []
    for rec, label in groups:
        members = (recording == rec) & (y_true == label)
        truth.append(label)
        vote.append(np.bincount(predicted[members], minlength=probabilities.shape[1]).argmax())
        mean_prob.append(probabilities[members].mean(0).argmax())
    return {"recording_vote_macro_f1": float(f1_score(truth, vote, average="macro")),
            "recording_mean_prob_macro_f1": float(f1_score(truth, mean_prob, average="macro")),
            "recordings": len(groups)}


# --------------------------------------------------------------------------- linear classifiers
def fit_logistic(train_x, train_y, c=1.0, seed=0, unlabelled_x=None):
    """(scaler, model): L2 logistic regression on standardised inputs, trained to convergence (common/probes.py).

    The standardisation statistics come from `unlabelled_x` when given (all train inputs: unlabelled data
    is what SSL assumes is plentiful), else from the labelled subset.
    """
    probe = Probe(f"logistic:{c}", "labelled" if unlabelled_x is None else "all")
    fitted = fit_probe(probe, train_x, train_y, unlabelled_x, int(np.max(train_y)) + 1, seed)
    return fitted.scaler, fitted.model


def logistic_predictor(scaler, model):
    """A fitted (scaler, model) as a predict function of raw inputs."""
    return lambda x: model.predict(scaler.transform(np.asarray(x, dtype=np.float64)))


def linear_head_from_probe(scaler, model, num_classes):
    """The fitted probe as (weight (K, D), bias (K,)) acting on raw embeddings, with the probe's argmax.

    Fine-tuning starts its head here (LP-FT, Kumar et al. 2022): a random head's first gradients would
    distort the pretrained features before the head is any good.
    """
    coef, intercept = model.coef_ / scaler.scale_, model.intercept_.copy()
    if coef.shape[0] == 1:  # two classes: sigmoid(w.x + b) is softmax over (0, w.x + b)
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.array([0.0, intercept[0]])
    intercept -= coef @ scaler.mean_
    weight, bias = np.zeros((num_classes, coef.shape[1])), np.full(num_classes, -1e4)  # absent classes: never
    weight[model.classes_], bias[model.classes_] = coef, intercept
    return weight.astype(np.float32), bias.astype(np.float32)


# --------------------------------------------------------------------------- torch classifiers
class EncoderClassifier(nn.Module):
    def __init__(self, encoder, num_classes):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.embedding_dim, num_classes)

    def forward(self, x):
        return self.head(self.encoder(x))


@torch.no_grad()
def predict_probabilities(model, x, batch_size=1024, device="cpu", precision="fp32", subject=None):
    """(N, K) softmax probabilities of a classifier module, float64 numpy. subject: (N,) each window's subject,
    whose windows are then classified with the module's BatchNorm statistics of that subject's windows (AdaBN)."""
    if subject is not None:
        return by_subject(model, x, subject, device,
                          lambda adapted, xs: predict_probabilities(adapted, xs, batch_size, device, precision))
    model.eval()
    device = torch.device(device)
    with autocast(precision, device):
        return torch.cat([model(as_float_input(x[i : i + batch_size], device)).float().softmax(1).cpu()
                          for i in range(0, len(x), batch_size)]).double().numpy()


def predict(model, x, batch_size=1024, device="cpu", precision="fp32", subject=None):
    return predict_probabilities(model, x, batch_size, device, precision, subject).argmax(1)


def fixmatch_loss(model, xb, yb, settings, generator, device):
    """FixMatch (Sohn et al. 2020): the labelled loss plus, on `ratio` times as many unlabelled inputs, the
    cross-entropy of the strong view (settings' augment) against the weak view's prediction (weak_augment,
    no gradient) where that prediction's confidence reaches `threshold`; labelled and strong inputs share
    one forward pass, so batch norm sees both."""
    fixmatch, unlabelled = settings["fixmatch"], settings["unlabelled"]
    index = torch.randint(len(unlabelled), (fixmatch["ratio"] * len(xb),), generator=generator)
    xu = as_float_input(unlabelled[np.sort(index.numpy())], device)
    with torch.no_grad():
        confidence, pseudo = model(settings["weak_augment"](xu, generator)).float().softmax(1).max(1)
    logits = model(torch.cat([xb, settings["augment"](xu, generator)])).float()
    labelled = F.cross_entropy(logits[: len(xb)], yb, label_smoothing=settings.get("label_smoothing", 0.0))
    unlabelled_loss = F.cross_entropy(logits[len(xb):], pseudo, reduction="none")
    return labelled + fixmatch["weight"] * (unlabelled_loss * (confidence >= fixmatch["threshold"])).mean()


def train_with_early_stopping(model, parameter_groups, train_x, train_y, val_x, val_y, settings, seed, device="cpu",
                              val_subject=None):
    """AdamW on mini-batches with a warm-up + cosine schedule; every `eval_every` steps the val macro-F1
    decides which weights are kept.

    settings: lr, weight_decay, batch_size, epochs (passes over the labelled subset, clipped to
    [min_steps, max_steps] steps), eval_every (steps), patience (evaluations without improvement), and
    optionally precision (fp32 or bf16 autocast of the forward pass), augment (a function (x, generator)
    -> x applied to each training batch, or None), label_smoothing, and FixMatch's fixmatch (threshold, ratio,
    weight), unlabelled (the inputs it draws from) and weak_augment (fixmatch_loss).
    val_subject: each val window's subject, to score val by subject-adapted BatchNorm (predict_probabilities).
    Returns the model holding its best-on-val weights, that val macro-F1, and whether those are the starting
    weights (training never beat them on val).
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(parameter_groups, weight_decay=settings["weight_decay"])
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    train_y = torch.as_tensor(train_y)
    n = len(train_y)
    batch_size = min(settings["batch_size"], n)
    steps = int(np.clip(settings["epochs"] * math.ceil(n / batch_size), settings["min_steps"], settings["max_steps"]))
    warmup = max(1, steps // 20)
    precision, augment, fixmatch = settings.get("precision", "fp32"), settings.get("augment"), settings.get("fixmatch")

    def val_f1():
        return f1_score(val_y, predict(model, val_x, device=device, precision=precision, subject=val_subject),
                        average="macro")

    # the starting point competes too: LP-FT keeps its fitted probe when fine-tuning does not help on val
    best_f1 = val_f1()
    best_state, since_best, kept_start = copy.deepcopy(model.state_dict()), 0, True
    order, position = torch.randperm(n, generator=generator), 0
    for step in range(1, steps + 1):
        model.train()
        if position + batch_size > n:
            order, position = torch.randperm(n, generator=generator), 0
        index = order[position : position + batch_size]
        position += batch_size
        xb, yb = as_float_input(train_x[index.numpy()], device), train_y[index].to(device)
        if augment is not None:
            xb = augment(xb, generator)
        if len(index) == 1:  # batch norm needs two samples: repeat the single one
            xb, yb = xb.repeat(2, *[1] * (xb.dim() - 1)), yb.repeat(2)
        factor = step / warmup if step <= warmup else 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))
        for group, base in zip(optimizer.param_groups, base_lrs):
            group["lr"] = base * factor
        with autocast(precision, torch.device(device)):
            if fixmatch is None:
                loss = F.cross_entropy(model(xb).float(), yb, label_smoothing=settings.get("label_smoothing", 0.0))
            else:
                loss = fixmatch_loss(model, xb, yb, settings, generator, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % settings["eval_every"] == 0 or step == steps:
            f1 = val_f1()
            if f1 > best_f1:
                best_f1, best_state, since_best, kept_start = f1, copy.deepcopy(model.state_dict()), 0, False
            else:
                since_best += 1
                if settings["patience"] and since_best >= settings["patience"]:
                    break
    model.load_state_dict(best_state)
    return model, best_f1, kept_start


def rebuild_encoder(model_args, state_dict=None, seed=0):
    """The encoder of model_args, with state_dict's weights (strictly), or initialised from seed."""
    torch.manual_seed(seed)
    encoder = build_encoder(**model_args)
    return encoder if state_dict is None else load_encoder_state(encoder, state_dict)


def fine_tune(encoder, num_classes, train_x, train_y, val_x, val_y, settings, seed, encoder_lr_ratio, device="cpu",
              head_init=None, val_subject=None):
    """Encoder and linear head trained end to end; the encoder's learning rate is lr * encoder_lr_ratio.
    head_init: (weight, bias) to start the head from (linear_head_from_probe), else a random head. val_subject:
    val is scored with BatchNorm adapted to each subject (AdaBN), as the returned function does given subjects.
    Returns (a function of inputs[, their subjects] -> (N, K) probabilities, whether the starting weights were
    kept)."""
    torch.manual_seed(seed)
    model = EncoderClassifier(encoder, num_classes)
    if head_init is not None:
        with torch.no_grad():
            model.head.weight.copy_(torch.as_tensor(head_init[0]))
            model.head.bias.copy_(torch.as_tensor(head_init[1]))
    model = model.to(device)
    groups = [{"params": model.head.parameters(), "lr": settings["lr"]},
              {"params": model.encoder.parameters(), "lr": settings["lr"] * encoder_lr_ratio}]
    model, _, kept_start = train_with_early_stopping(model, groups, train_x, train_y, val_x, val_y, settings, seed,
                                                     device, val_subject)
    return (lambda x, subject=None: predict_probabilities(model, x, device=device, subject=subject,
                                                          precision=settings.get("precision", "fp32")), kept_start)


def frozen_embeddings(encoder, arrays, device="cpu", precision="fp32"):
    """{split: embeddings} from a frozen encoder, checking that evaluation did not change its weights."""
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    out = {split: embed(encoder, x, device=device, precision=precision) for split, x in arrays.items()}
    after = encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "frozen encoder changed during evaluation"
    return out


def _budget(row):
    """The label budget's name: "10%" for a stratified fraction, or a predefined set ("official fold")."""
    return row.get("budget") or f"{100 * row['fraction']:g}%"


def summarise(rows):
    """Mean and standard deviation of every score per (method, mode, label budget)."""
    groups = {}
    for row in rows:
        groups.setdefault((row["method"], row["mode"], _budget(row)), []).append(row)
    summary = []
    for (method, mode, budget), members in groups.items():
        entry = {"method": method, "mode": mode, "budget": budget,
                 "fraction": float(np.mean([m["fraction"] for m in members])), "seeds": len(members)}
        kept = [m["kept_probe"] for m in members if m.get("kept_probe") in (True, False)]
        if kept:  # LP-FT rows: how many subsets kept the fitted probe (fine-tuning never beat it on val)
            entry["kept_probe"] = int(sum(kept))
        for metric in ("accuracy", "macro_f1") + tuple(m for m in RECORDING_METRICS if m in members[0]):
            values = np.array([m[metric] for m in members])
            entry[f"{metric}_mean"] = float(values.mean())
            entry[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        summary.append(entry)
    return sorted(summary, key=lambda e: (e["method"], e["mode"], e["fraction"], e["budget"]))


def markdown_table(summary, metric="macro_f1"):
    """Rows (method, mode), columns label budgets by size, cells mean ± std of the metric; "†k/n": fine-tuning
    kept the linear probe in k of the n label subsets."""
    budgets = list(dict.fromkeys(_budget(s) for s in sorted(summary, key=lambda s: s["fraction"])))
    methods = list(dict.fromkeys((s["method"], s["mode"]) for s in summary))
    cell = {(s["method"], s["mode"], _budget(s)): s for s in summary}
    lines = ["| method | mode | " + " | ".join(budgets) + " |", "|---|---|" + "---|" * len(budgets)]
    for method, mode in methods:
        values = []
        for budget in budgets:
            s = cell.get((method, mode, budget))
            kept = f" †{s['kept_probe']}/{s['seeds']}" if s and s.get("kept_probe") else ""
            values.append(f"{s[f'{metric}_mean']:.3f} ± {s[f'{metric}_std']:.3f}{kept}" if s else "")
        lines.append(f"| {method} | {mode} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"
