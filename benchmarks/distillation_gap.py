"""Where distilling MiniRocket into the encoder loses: the target, or the student.

Usage:
    python benchmarks/distillation_gap.py --encoder HAR_centralized/outputs/study/runs/mtl_default_seed42_tasksrocket
    python benchmarks/distillation_gap.py --encoder RUN --draws 20 --out resources/study/distillation_gap.md
The rocket task (common/tasks/rocket.py) regresses the first --rocket_dim principal components of MiniRocket's
features, the transform and the PCA fit on the pretraining windows. This rebuilds that target exactly (the
run's recorded pretraining windows, kernels, seed) and probes, with one fixed probe (ridge, standardised on
every train window, the same label draws for every representation): MiniRocket's full features, the target
itself (and smaller PCAs of it, for the embedding's width), and the encoder's embedding. It also fits a ridge
regression from the embedding to the target on the train windows and gives its R^2 on the test windows: how
much of the target the student reproduces on subjects it has not seen. Scored on the test subjects: an
account of a finished choice, never a choice (the recipe is chosen on val by the study).
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge
from sklearn.metrics import f1_score, r2_score
from sklearn.preprocessing import StandardScaler

from common.classification import load_pretrained_encoder, saved_data_record
from common.evaluation import frozen_embeddings, rebuild_encoder
from har_task import HARTask
from common.probes import Probe, fit_probe
from data_processing.har import CLASS_NAMES, load_har
from data_processing.inputs import stratified_subset
from data_processing.minirocket import minirocket_features
from ground.errors import UserError, exit_on_user_error
from ground.io import atomic_write_text
from HAR_centralized.config import HARClassifierConfig, HARPretrainConfig

PROBE = Probe("ridge", "all")


def pretraining_config(run):
    """The run's recorded pretraining config (config.json), as the HAR pretraining config it was."""
    path = Path(run) / "config.json"
    if not path.is_file() or not (Path(run) / "encoder.pt").is_file():
        raise UserError(f"--encoder {run} is not a finished pretraining run folder (config.json, encoder.pt)")
    fields = HARPretrainConfig.__dataclass_fields__
    config = HARPretrainConfig(**{k: tuple(v) if isinstance(v, list) else v
                                  for k, v in json.loads(path.read_text()).items() if k in fields})
    if "rocket" not in config.active_tasks():
        raise UserError(f"--encoder {run} did not train the rocket task: there is no distilled target to compare")
    return config


def representations(run, dims):
    """({name: {train, val, test} arrays}, labels {split: y}, R^2 of the embedding's regression of the target)."""
    config = pretraining_config(run)
    encoder_path = Path(run) / "encoder.pt"
    splits = HARTask(HARClassifierConfig()).labelled_splits(saved_data_record(encoder_path), str(encoder_path))
    arrays = {name: getattr(splits, name) for name in ("train", "val", "test")}
    pretrain_x = HARTask(config).pretrain_data().x
    start = time.time()
    features, _ = minirocket_features(pretrain_x, {"pretrain": pretrain_x, **{k: d["x"] for k, d in arrays.items()}},
                                      config.rocket_kernels, config.seed)
    print(f"MiniRocket on {len(pretrain_x)} pretraining + {sum(len(d['x']) for d in arrays.values())} labelled "
          f"windows: {time.time() - start:.0f} s")
    out = {"minirocket": {k: features[k] for k in arrays}}
    # the rocket task's target: the PCA fit on the pretraining windows' features (data_processing/minirocket.py)
    pca = PCA(max(dims + (config.rocket_dim,)), svd_solver="randomized", random_state=config.seed)
    pca.fit(features.pop("pretrain"))
    projected = {k: pca.transform(features[k]).astype(np.float32) for k in arrays}
    for dim in sorted(set(dims + (config.rocket_dim,)), reverse=True):
        name = f"target (pca {dim})" if dim == config.rocket_dim else f"pca {dim}"
        out[name] = {k: v[:, :dim] for k, v in projected.items()}
    model_args, state_dict = load_pretrained_encoder(encoder_path)
    embedded = frozen_embeddings(rebuild_encoder(model_args, state_dict), {k: d["x"] for k, d in arrays.items()})
    out["encoder"] = {k: v.numpy() for k, v in embedded.items()}
    # the per-class table's question: does the student lack the windows' mean levels (gravity on each axis)?
    means = {k: d["x"].mean(-1) for k, d in arrays.items()}
    out["channel means"] = means
    out["encoder + channel means"] = {k: np.concatenate([out["encoder"][k], means[k]], 1) for k in arrays}
    scaler = StandardScaler().fit(out["encoder"]["train"])
    target = {k: v[:, :config.rocket_dim] for k, v in projected.items()}
    regression = Ridge(alpha=1.0).fit(scaler.transform(out["encoder"]["train"]), target["train"])
    r2 = {k: float(r2_score(target[k], regression.predict(scaler.transform(out["encoder"][k])),
                            multioutput="variance_weighted")) for k in ("train", "test")}
    labels = {k: d["y"] for k, d in arrays.items()}
    # the splits' own windows, in their order (the source they were loaded from)
    labels.update({f"{k}_subject": load_har(k, splits.info["data_source"]).subject for k in arrays})
    return out, labels, r2, config


def score(representation, labels, fraction, draws, scored_on="test", folds=6):
    """(macro-F1 on the `scored_on` subjects per label draw, F1 per class and draw (draws, classes), macro-F1 per
    subject and draw {subject: (draws,)}, confusion counts per subject summed over the draws {subject: (true,
    predicted)}); one draw at 100%. "train_folds": the train subjects in `folds` groups, each group's windows
    predicted by a probe whose labels are drawn (the same draw seed) from the other groups' windows."""
    train, y = representation["train"], labels["train"]
    num_classes = int(labels["train"].max()) + 1
    if scored_on == "train_folds":
        truth, subject = y, labels["train_subject"]
        groups = np.unique(subject)
        held_out = [np.isin(subject, groups[i::folds]) for i in range(folds)]
        plan = [(np.flatnonzero(~held), train[held], held) for held in held_out]
    else:
        truth, subject = labels[scored_on], labels[f"{scored_on}_subject"]
        plan = [(np.arange(len(y)), representation[scored_on], slice(None))]
    out, per_class, per_subject = [], [], {int(s): [] for s in np.unique(subject)}
    confusion = {s: np.zeros((num_classes, num_classes), dtype=np.int64) for s in per_subject}
    for draw in range(1 if fraction >= 1 else draws):
        predicted = np.empty(len(truth), dtype=np.int64)
        for pool, scored_x, scored in plan:
            subset = pool[stratified_subset(y[pool], fraction, draw)]
            predicted[scored] = fit_probe(PROBE, train[subset], y[subset], train[pool], num_classes)(scored_x).argmax(1)
        out.append(f1_score(truth, predicted, average="macro"))
        per_class.append(f1_score(truth, predicted, average=None, labels=range(num_classes)))
        for s, scores in per_subject.items():
            mask = subject == s
            scores.append(f1_score(truth[mask], predicted[mask], average="macro"))
            np.add.at(confusion[s], (truth[mask], predicted[mask]), 1)
    return np.array(out), np.array(per_class), {s: np.array(v) for s, v in per_subject.items()}, confusion


@exit_on_user_error
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", required=True, help="a finished pretraining run of a recipe with the rocket task")
    parser.add_argument("--draws", type=int, default=20, help="label draws per fraction below 100%%")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    parser.add_argument("--dims", type=int, nargs="+", default=[128, 64], help="smaller PCAs of the features")
    parser.add_argument("--scored_on", default="test", choices=("test", "val", "train_folds"),
                        help="the subjects the probes are scored on (the R^2 is always the test windows'); "
                             "train_folds: the train subjects, each fold by labels of the others (pretraining saw "
                             "their windows unlabelled: the student fits them as well as it fits its target there)")
    parser.add_argument("--folds", type=int, default=6, help="train_folds: groups of train subjects")
    parser.add_argument("--per_class_fraction", type=float, default=0.1,
                        help="the fraction (one of --fractions) whose F1 per class is tabled")
    parser.add_argument("--out", default="", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    if args.draws < 2 or not all(0 < f <= 1 for f in args.fractions) or min(args.dims) < 1 or args.folds < 2:
        raise UserError("--draws must be at least 2, --fractions in (0, 1], --dims positive, --folds at least 2")
    if args.per_class_fraction not in args.fractions:
        raise UserError(f"--per_class_fraction {args.per_class_fraction} must be one of --fractions")
    reps, labels, r2, config = representations(args.encoder, tuple(args.dims))
    scored = {name: {f: score(rep, labels, f, args.draws, args.scored_on, args.folds) for f in args.fractions}
              for name, rep in reps.items()}
    scores = {name: {f: s[0] for f, s in by.items()} for name, by in scored.items()}
    lines = [f"Encoder {args.encoder} (tasks {', '.join(config.active_tasks())}, {config.rocket_dim} components of "
             f"{config.rocket_kernels} MiniRocket features, seed {config.seed}); probe {PROBE.name} for every "
             f"representation; macro-F1 on the {args.scored_on} subjects, mean [sd over {args.draws} label draws]; the "
             "difference to MiniRocket's features paired by draw (95% t-interval over draws).", "",
             "| representation | dims | " + " | ".join(f"{100 * f:g}%" for f in args.fractions) + " |",
             "|---|---|" + "---|" * len(args.fractions)]
    base = scores["minirocket"]
    for name, by_fraction in scores.items():
        cells = []
        for f, s in by_fraction.items():
            cell = f"{s.mean():.3f}" + (f" [{s.std(ddof=1):.3f}]" if len(s) > 1 else "")
            if name != "minirocket":
                d = s - base[f]
                half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0.0
                cell += f", {d.mean():+.3f}" + (f" [{d.mean() - half:+.3f}, {d.mean() + half:+.3f}]" if len(d) > 1
                                                 else "")
            cells.append(cell)
        lines.append(f"| {name} | {reps[name]['train'].shape[1]} | " + " | ".join(cells) + " |")
    lines += ["", f"Ridge regression (alpha 1) from the standardised embedding to the target: R^2 {r2['train']:.3f} on "
                  f"the train windows, {r2['test']:.3f} on the test windows (variance-weighted over the components)."]
    # where the gap is: each class's F1 at the per-class fraction, for the teacher, the target and the student
    f = args.per_class_fraction
    names = [n for n in ("minirocket", f"target (pca {config.rocket_dim})", "encoder", "encoder + channel means")
             if n in scored]
    lines += ["", f"F1 per class at {100 * f:g}% labels (mean over the draws); the student's difference to MiniRocket:",
              "", "| class | " + " | ".join(names) + " | encoder - minirocket |", "|---|" + "---|" * (len(names) + 1)]
    per_class = {n: scored[n][f][1].mean(0) for n in names}
    for c, label in enumerate(CLASS_NAMES["har6"][:len(per_class["encoder"])]):
        lines.append(f"| {label} | " + " | ".join(f"{per_class[n][c]:.3f}" for n in names)
                     + f" | {per_class['encoder'][c] - per_class['minirocket'][c]:+.3f} |")
    # and in whom: each subject's macro-F1 at the same fraction, the student against its teacher
    per_subject = {n: scored[n][f][2] for n in ("minirocket", "encoder")}
    lines += ["", f"Macro-F1 per {args.scored_on} subject at {100 * f:g}% labels (mean over the draws):", "",
              "| subject | minirocket | encoder | encoder - minirocket |", "|---|---|---|---|"]
    for s in sorted(per_subject["encoder"]):
        teacher, student = per_subject["minirocket"][s].mean(), per_subject["encoder"][s].mean()
        lines.append(f"| {s} | {teacher:.3f} | {student:.3f} | {student - teacher:+.3f} |")
    # the subject the student loses most on: which activities it takes for which, against its teacher
    gap = {s: per_subject["encoder"][s].mean() - per_subject["minirocket"][s].mean() for s in per_subject["encoder"]}
    worst, classes = min(gap, key=gap.get), CLASS_NAMES["har6"]
    lines += ["", f"Subject {worst}'s windows at {100 * f:g}% labels, summed over the draws: each activity the "
              "student or its teacher errs on, and what they predicted instead:", ""]

    def wrong(name, true):
        counts = scored[name][f][3][worst][true]
        return ", ".join(f"{classes[p]} {counts[p]}" for p in range(len(classes)) if p != true and counts[p]) or "-"

    for true in range(len(classes)):
        if scored["minirocket"][f][3][worst][true].sum() and (wrong("minirocket", true) != "-"
                                                               or wrong("encoder", true) != "-"):
            lines.append(f"- {classes[true]} ({scored['encoder'][f][3][worst][true].sum()} predictions): minirocket "
                         f"{wrong('minirocket', true)}; encoder {wrong('encoder', true)}")
    print("\n".join(lines))
    if args.out:
        atomic_write_text(Path(args.out), "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
