"""Regenerate the HAR results: pretrain the encoders, evaluate them at every label fraction, draw the figures.

Usage:
    python HAR_centralized/reproduce.py            # the full study -> resources/ (about 30 min on 2 CPU cores)
    python HAR_centralized/reproduce.py --quick 1  # the main job: MTL vs baselines at 1/10/100% labels (~8 min)
Steps: pretrain (MTL with and without dynamic weighting, each task alone; a finished run is reused, a killed
one resumed) -> train_classifier on each encoder and the baselines -> MTL-vs-STL.png, the t-SNE pictures
with kNN accuracy and silhouette, MTL-architecture.png from the task registry, results.md.
"""
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from common.classification import load_pretrained_encoder, run_classification
from common.config import config_to_dict, field, parse_config
from common.encoders import embed
from common.errors import UserError, exit_on_user_error
from common.evaluation import markdown_table, rebuild_encoder
from common.paths import REPO_ROOT
from common.plots import plot_architecture, plot_label_efficiency, plot_tsne
from common.har_task import har_client_datasets, har_labelled_splits, har_model, har_pretrain_data
from common.tasks import SEED_TASKS
from common.training import pretrain
from common.weighting import WEIGHTINGS
from data_processing.har import ACTIVITY_NAMES, load_har
from HAR_centralized.config import HARClassifierConfig, HARPretrainConfig
from HAR_federated.config import FederatedConfig
from HAR_federated.run import run_local

MTL = "MTL, uncertainty weighting"
# label -> pretraining flags; the first is the MTL encoder the t-SNE and fine-tuning use
FULL_ENCODERS = {
    MTL: ["--model_heads", "1", "1", "1", "1"],
    "MTL, equal weights": ["--model_heads", "1", "1", "1", "1", "--use_weighted_loss", "0"],
    **{f"STL {name}": ["--model_heads", *("1" if i == j else "0" for j in range(4))] for i, name in enumerate(SEED_TASKS)},
}


@dataclasses.dataclass
class ReproduceConfig:
    quick: int = field(0, "1: the main job (MTL vs supervised and expert features, 3 fractions)")
    federated: int = field(1, "full study: also federated pretraining against centralized (FL.png)")
    seeds: int = field(3, "label subsets (and classifier inits) per fraction")
    pretrain_seed: int = field(42, "seed of every pretraining run")
    data_source: str = field("auto", "UCI HAR source")
    output_dir: str = field("", "runs and results; empty: HAR_centralized/outputs/reproduce (or /demo)")
    figures_dir: str = field("", "figures and results.md; empty: resources/ (full) or <output_dir>/figures")

    def validate(self):
        if self.seeds < 1:
            raise UserError("--seeds must be at least 1")


def pretrain_encoder(label, flags, out_dir, config):
    name = "repro_" + "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")
    pretrain_config = parse_config(HARPretrainConfig, flags + [
        "--experiment_name", name, "--output_dir", str(out_dir), "--seed", str(config.pretrain_seed),
        "--data_source", config.data_source, "--resume", "1"])
    run_dir = pretrain_config.run_dir()
    summary_file = run_dir / "summary.json"
    saved_config = run_dir / "config.json"
    if summary_file.exists() and saved_config.exists() and \
            json.loads(saved_config.read_text()) == json.loads(json.dumps(config_to_dict(pretrain_config))):
        print(f"[{label}] reusing the finished run {run_dir}")
    else:
        print(f"[{label}] pretraining -> {run_dir}")
        pretrain(pretrain_config, har_pretrain_data(pretrain_config))
    return run_dir, json.loads(summary_file.read_text())


def classify(run_dir, out, fractions, config, **overrides):
    """train_classifier on one encoder; a finished evaluation of the same encoder and config is reused."""
    classifier_config = parse_config(HARClassifierConfig, [
        "--encoder", str(run_dir), "--output_dir", str(out), "--seeds", str(config.seeds),
        "--data_source", config.data_source, "--label_fractions", *map(str, fractions)])
    classifier_config = dataclasses.replace(classifier_config, **overrides)
    saved_config, saved_summary = Path(out) / "config.json", Path(out) / "summary.json"
    encoder_file = Path(run_dir) / "encoder.pt"
    if saved_summary.exists() and saved_config.exists() and saved_summary.stat().st_mtime > encoder_file.stat().st_mtime \
            and json.loads(saved_config.read_text()) == json.loads(json.dumps(config_to_dict(classifier_config))):
        print(f"reusing the evaluation in {out}")
        return json.loads(saved_summary.read_text())["summary"]
    _, summary, _ = run_classification(classifier_config, har_labelled_splits(config.data_source))
    return summary


def federated_encoder(out_dir, config):
    """The default federated pretraining (HAR_federated/config.py), reused when finished."""
    fed_config = parse_config(FederatedConfig, ["--output_dir", str(out_dir), "--seed", str(config.pretrain_seed),
                                                "--data_source", config.data_source, "--experiment_name", "repro_fedavg"])
    run_dir = fed_config.run_dir()
    saved_config = run_dir / "config.json"
    if (run_dir / "summary.json").exists() and saved_config.exists() and \
            json.loads(saved_config.read_text()) == json.loads(json.dumps(config_to_dict(fed_config))):
        print(f"[federated] reusing the finished run {run_dir}")
    else:
        print(f"[federated] pretraining -> {run_dir}")
        run_local(fed_config, har_client_datasets(fed_config))
    return run_dir, json.loads((run_dir / "summary.json").read_text()), fed_config


@exit_on_user_error
def main(argv=None):
    config = parse_config(ReproduceConfig, argv, description="Regenerate the HAR results and figures")
    start = time.time()
    quick = bool(config.quick)
    out_dir = Path(config.output_dir) if config.output_dir else REPO_ROOT / "HAR_centralized" / "outputs" / (
        "demo" if quick else "reproduce")
    figures = Path(config.figures_dir) if config.figures_dir else (out_dir / "figures" if quick else REPO_ROOT / "resources")
    figures.mkdir(parents=True, exist_ok=True)
    fractions = (0.01, 0.1, 1.0) if quick else HARClassifierConfig().label_fractions
    encoders = {MTL: FULL_ENCODERS[MTL]} if quick else FULL_ENCODERS

    # ------------------------------------------------------------------ pretraining
    runs, pretrain_summaries = {}, {}
    for label, flags in encoders.items():
        runs[label], pretrain_summaries[label] = pretrain_encoder(label, flags, out_dir, config)

    # ------------------------------------------------------------------ evaluation
    rows = []
    for label, run_dir in runs.items():
        modes = ("linear", "finetune") if label == MTL else ("linear",)
        summary = classify(run_dir, out_dir / "classifier" / run_dir.name, fractions, config,
                           methods=("encoder",), modes=modes)
        rows += [{**r, "label": f"{label} ({r['mode']})"} for r in summary]
    baselines = classify(runs[MTL], out_dir / "classifier" / "baselines", fractions, config,
                         methods=("supervised", "expert_features") if quick else ("supervised", "expert_features", "raw"))
    names = {"supervised": "supervised from scratch", "expert_features": "561 expert features (logistic)",
             "raw": "raw window (logistic)"}
    rows += [{**r, "label": names[r["method"]]} for r in baselines]

    fed_rows = []
    if not quick and config.federated:
        fed_run, fed_summary, fed_config = federated_encoder(out_dir, config)
        label = f"federated ({fed_config.num_clients} clients, {fed_config.rounds} rounds x {fed_config.local_epochs} local epochs)"
        summary = classify(fed_run, out_dir / "classifier" / fed_run.name, fractions, config,
                           methods=("encoder",), modes=("linear",))
        fed_rows = [{**r, "label": f"{label} (linear)"} for r in summary]
        rows += fed_rows
        plot_label_efficiency(rows, [(f"{MTL} (linear)", {"color": "C3", "linewidth": 2}),
                                     (f"{label} (linear)", {"color": "C0", "linewidth": 2})],
                              figures / "FL.png", title="Federated vs centralized pretraining, frozen encoder")

    # ------------------------------------------------------------------ figures
    curves = [(f"{MTL} (linear)", {"color": "C3", "linewidth": 2.5}), (f"{MTL} (finetune)", {"color": "C3", "linestyle": "--"})]
    others = [label for label in encoders if label != MTL]
    curves += [(f"{label} (linear)", {"linewidth": 1.2, "color": colour})
               for label, colour in zip(others, ("C0", "C1", "C2", "C9", "C4"))]
    curves += [(names["supervised"], {"color": "k", "linestyle": ":"}), (names["expert_features"], {"color": "0.5"})]
    plot_label_efficiency(rows, curves, figures / "MTL-vs-STL.png",
                          title=f"UCI HAR ({pretrain_summaries[MTL]['data_source']}), {config.seeds} seeds")
    test = load_har("test", config.data_source)
    model_args, state_dict = load_pretrained_encoder(runs[MTL] / "encoder.pt")
    representations = {"raw": test.x, "features": test.features,
                       "embeddings": embed(rebuild_encoder(model_args, state_dict), test.x).numpy()}
    quality = plot_tsne(representations, test.y, ACTIVITY_NAMES, str(figures / "tsne_all_activity_{}.png"))
    default = HARPretrainConfig()
    plot_architecture(har_model(default), list(WEIGHTINGS), figures / "MTL-architecture.png",
                      input_label="sensor window\n9 x 128")

    # ------------------------------------------------------------------ table
    table_rows = [dict(r, method=r["label"].split(" (")[0], mode=r["mode"]) for r in rows]
    lines = [f"# UCI HAR results ({'quick main job' if quick else 'full study'})", "",
             f"Data source: {pretrain_summaries[MTL]['data_source']}; pretraining seed {config.pretrain_seed}; "
             f"{config.seeds} label-subset seeds per fraction; this invocation's wall time {(time.time() - start) / 60:.1f} min "
             f"(finished pretraining runs and evaluations are reused).", "",
             "Macro-F1 on the test subjects (mean ± std over seeds):", "", markdown_table(table_rows),
             "Accuracy:", "", markdown_table(table_rows, "accuracy"),
             "Test-window representations (kNN: 5 neighbours, 5-fold; silhouette over the 6 activities):", "",
             "| representation | dimensions | kNN accuracy | silhouette |", "|---|---|---|---|"]
    for name, x in representations.items():
        lines.append(f"| {name} | {int(np.prod(x.shape[1:]))} | {quality[name]['knn_accuracy']:.3f} | "
                     f"{quality[name]['silhouette']:.3f} |")
    lines += ["", "Pretraining (final epoch losses, wall time):", ""]
    for label, s in pretrain_summaries.items():
        losses = ", ".join(f"{k} {v:.4f}" for k, v in s["final_losses"].items())
        lines.append(f"- {label}: {losses}; {s['train_seconds']:.0f} s")
    if fed_rows:
        losses = ", ".join(f"{k} {v:.4f}" for k, v in fed_summary["final_losses"].items())
        lines.append(f"- federated: {losses} (mean local losses, last round); {fed_summary['train_seconds']:.0f} s "
                     f"of rounds, {fed_summary['bytes_sent'] / 2**20:.0f} MiB sent and "
                     f"{fed_summary['bytes_received'] / 2**20:.0f} MiB received in all")
    (figures / "results.md").write_text("\n".join(lines) + "\n")
    (out_dir / "reproduce_summary.json").write_text(json.dumps({"rows": rows, "quality": quality,
                                                                 "seconds": time.time() - start}, indent=2))
    print("\n".join(lines))
    print(f"\nfigures and results.md in {figures}; total {(time.time() - start) / 60:.1f} min")


if __name__ == "__main__":
    main(sys.argv[1:])
