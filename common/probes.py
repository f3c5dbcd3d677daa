"""Linear probes on a fixed representation, their choice on the val subjects, and self-training.

One rule for every representation (the encoder's embedding, expert features, raw windows, MiniRocket and
their concatenations): a probe is a candidate "logistic:C" (L2 logistic regression) or "ridge"
(RidgeClassifierCV with its own leave-one-out choice of alpha), on inputs standardised by statistics of
all train windows ("all": unlabelled data is plentiful) or of the labelled subset ("labelled"). With
several candidates, the one with the best mean val macro-F1 over a few tuning draws (label subsets drawn
apart from the evaluation draws) is chosen per representation and label fraction, before any test score.
"""
import dataclasses
import warnings
import weakref

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, RidgeClassifierCV
from sklearn.metrics import f1_score
from sklearn.preprocessing import StandardScaler

from ground.errors import UserError
from data_processing.inputs import stratified_subset

LOGISTIC_MAX_ITER = 5000
RIDGE_ALPHAS = np.logspace(-3, 3, 10)  # MiniRocket's published recipe
SCALERS = ("all", "labelled")
TUNING_SEED = 10_000  # tuning draw i uses label seed TUNING_SEED + i: never one of the evaluation draws


def parse_candidate(text):
    """"logistic:C" -> ("logistic", C); "ridge" -> ("ridge", None); anything else is a UserError."""
    kind, _, value = text.partition(":")
    if kind == "ridge" and not value:
        return "ridge", None
    if kind == "logistic":
        try:
            c = float(value)
        except ValueError:
            c = -1.0
        if np.isfinite(c) and c > 0:
            return "logistic", c
    raise UserError(f"probe candidate {text!r}: write logistic:C (C finite and > 0, e.g. logistic:1) or ridge")


@dataclasses.dataclass(frozen=True)
class Probe:
    """What a probe is: its classifier and where its standardisation statistics come from."""

    classifier: str  # "logistic:C" or "ridge"
    scaler: str = "all"

    @property
    def name(self):
        return f"{self.classifier}/{self.scaler}"


class FittedProbe:
    """A fitted probe: probabilities (softmax of the ridge scores for ridge) with classes absent from its labels
    at 0."""

    def __init__(self, probe, scaler, model, num_classes):
        self.probe, self.scaler, self.model, self.num_classes = probe, scaler, model, num_classes

    def scores(self, x):
        z = self.scaler.transform(np.asarray(x, dtype=np.float64))
        if isinstance(self.model, LogisticRegression):
            return self.model.predict_proba(z)
        decision = self.model.decision_function(z)
        if decision.ndim == 1:  # two classes
            decision = np.stack([-decision, decision], 1)
        decision = decision - decision.max(1, keepdims=True)
        return np.exp(decision) / np.exp(decision).sum(1, keepdims=True)

    def __call__(self, x):
        out = np.zeros((len(x), self.num_classes))
        out[:, self.model.classes_] = self.scores(x)
        return out


_SCALER_OF_ALL = {}  # id(all_x) -> (weak reference to all_x, its StandardScaler)
SCALERS_REMEMBERED = 4  # co-training alternates a hybrid's blocks and the hybrid itself: 3 arrays at once


def scaler_of_all(all_x):
    """The StandardScaler of every train window, fit once per array: every probe, tuning draw and self-training
    round of a representation shares it (refitting it on 10,000 MiniRocket features was a sixth of a
    self-training's time). A few arrays are remembered, by weak reference: the memo never holds one alive."""
    if not isinstance(all_x, np.ndarray):
        return StandardScaler().fit(np.asarray(all_x, dtype=np.float64))
    entry = _SCALER_OF_ALL.get(id(all_x))
    if entry is None or entry[0]() is not all_x:
        for key in [k for k, (ref, _) in _SCALER_OF_ALL.items() if ref() is None]:
            del _SCALER_OF_ALL[key]  # arrays gone (their ids may be reused)
        while len(_SCALER_OF_ALL) >= SCALERS_REMEMBERED:
            del _SCALER_OF_ALL[next(iter(_SCALER_OF_ALL))]  # the oldest first
        entry = (weakref.ref(all_x), StandardScaler().fit(np.asarray(all_x, dtype=np.float64)))
        _SCALER_OF_ALL[id(all_x)] = entry
    return entry[1]


def fit_probe(probe, x, y, all_x, num_classes, seed=0):
    """The probe fitted on the labelled (x, y); all_x: every train window's representation (the "all" scaler)."""
    x = np.asarray(x, dtype=np.float64)
    scaler = StandardScaler().fit(x) if probe.scaler == "labelled" else scaler_of_all(all_x)
    kind, c = parse_candidate(probe.classifier)
    if kind == "ridge":
        model = RidgeClassifierCV(alphas=RIDGE_ALPHAS)
        model.fit(scaler.transform(x), y)
        return FittedProbe(probe, scaler, model, num_classes)
    # scikit-learn's default tolerance (1e-4): at 1e-3 lbfgs stopped early (0.932 instead of 0.940 at 100%)
    model = LogisticRegression(C=c, max_iter=LOGISTIC_MAX_ITER, tol=1e-4, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # checked below, in one line
        model.fit(scaler.transform(x), y)
    if model.n_iter_.max() >= LOGISTIC_MAX_ITER:
        print(f"warning: the logistic regression stopped at max_iter={LOGISTIC_MAX_ITER} before converging")
    return FittedProbe(probe, scaler, model, num_classes)


def macro_f1(y, probabilities):
    return float(f1_score(y, np.asarray(probabilities).argmax(1), average="macro"))


def choose_probe(candidates, train_x, train_y, val_x, val_y, fraction, tuning_draws, num_classes):
    """(the Probe with the best mean val macro-F1, {probe name: mean val macro-F1}) over `tuning_draws` label
    subsets of `fraction` (one when the fraction takes every window). One candidate: no tuning."""
    if len(candidates) == 1:
        return candidates[0], {}
    draws = 1 if fraction >= 1 else tuning_draws
    subsets = [stratified_subset(train_y, fraction, TUNING_SEED + i) for i in range(draws)]
    val_scores = {}
    for probe in candidates:
        val_scores[probe.name] = float(np.mean([
            macro_f1(val_y, fit_probe(probe, train_x[s], train_y[s], train_x, num_classes, seed)(val_x))
            for seed, s in enumerate(subsets)]))
    best = max(candidates, key=lambda p: val_scores[p.name])  # ties: the first candidate listed
    return best, val_scores


def self_train(probe, train_x, train_y, subset, num_classes, rounds=3, per_round=1.0, seed=0, views=None):
    """Self-training of a probe (Yarowsky; SelfHAR's teacher-student loop without the student's augmentation):
    each round fits on the labels plus the pseudo-labels so far, then predicts every unlabelled train window
    and takes, per class, the round(per_round * that class's label count) most confident windows predicted as
    it, never more than the windows left. Returns the last round's FittedProbe.

    views (co-training, Blum & Mitchell 1998): the train arrays of the representations train_x concatenates
    (a hybrid's embedding and its other block). The teacher of each round is then the mean of one probe per
    view: the windows taken are those the two views, fitted apart, are confident of together. The probe on
    train_x is fitted once, on the final labels and pseudo-labels.

    The same count per class keeps the pseudo-labels as balanced as the labels; confidence ranks within a
    class, so ridge's softmax-of-scores ranks as well as logistic probabilities do."""
    labelled = np.zeros(len(train_y), bool)
    labelled[subset] = True
    rows, y = np.asarray(subset), np.asarray(train_y)[subset]
    pool = np.flatnonzero(~labelled)
    counts = np.bincount(y, minlength=num_classes)

    def fit(x):  # the probe on representation x, fitted on the rows labelled so far
        return fit_probe(probe, x[rows], y, x, num_classes, seed)

    def teacher():  # (the probe per view, the mean of their probabilities on some train rows)
        fitted = [(fit(view), view) for view in (views if views is not None else [train_x])]
        return fitted, lambda some: np.mean([f(view[some]) for f, view in fitted], axis=0)

    fitted, predict = teacher()
    for _ in range(rounds):
        if len(pool) == 0:
            break
        probabilities = predict(pool)
        predicted, confidence = probabilities.argmax(1), probabilities.max(1)
        chosen, pseudo = [], []
        for label in np.flatnonzero(counts):
            members = np.flatnonzero(predicted == label)
            take = min(len(members), int(round(per_round * counts[label])))
            top = members[np.argsort(-confidence[members], kind="stable")[:take]]
            chosen.append(pool[top])
            pseudo.append(np.full(len(top), label))
        chosen, pseudo = np.concatenate(chosen), np.concatenate(pseudo)
        rows, y = np.concatenate([rows, chosen]), np.concatenate([y, pseudo])
        pool = np.setdiff1d(pool, chosen)
        if views is None or _ < rounds - 1:  # co-training's last teacher would only be thrown away
            fitted, predict = teacher()
    return fitted[0][0] if views is None else fit(train_x)
