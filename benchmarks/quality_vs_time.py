"""Quality within budget: linear-probe macro-F1 at 10% and 100% labels against pretraining seconds, on this
machine, for a few encoder widths and epoch counts of the default recipe (HAR_centralized/config.py).

Usage:
    python benchmarks/quality_vs_time.py                       # the grid below, seed 42, ~30 min on 2 cores
    python benchmarks/quality_vs_time.py --settings 32:30 64:60 --seed 43
Prints a table (width, epochs, pretraining seconds, macro-F1 mean +- std over 3 label subsets) and draws
resources/quality_vs_time.png with TS-TCC's figures on this data as reference points (linear .917 after
406-584 s of pretraining; supervised .940). Finished runs under HAR_centralized/outputs/quality_vs_time are
reused while they match the current recipe (a run of an earlier default is replaced). It scores the test
subjects at one pretraining seed: a picture of what time buys, never a choice (the default recipe is chosen on
the val subjects by the study's recipe search).
"""
import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from common.classification import run_classification  # noqa: E402
from common.config import parse_config  # noqa: E402
from har_task import HARDataConfig, HARTask  # noqa: E402
from common.pretrain_config import recipe_differences  # noqa: E402
from ground.paths import REPO_ROOT  # noqa: E402
from common.training import pretrain  # noqa: E402
from HAR_centralized.config import HARClassifierConfig, HARPretrainConfig  # noqa: E402

TSTCC_LINEAR = (0.917, (406, 584))  # macro-F1, pretraining seconds (range) on this data and machine
TSTCC_SUPERVISED = 0.940


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=["32:30", "64:30", "32:60", "64:60"],
                        help="WIDTH:EPOCHS pairs")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--plot", default=str(REPO_ROOT / "resources" / "quality_vs_time.png"))
    args = parser.parse_args()
    out = REPO_ROOT / "HAR_centralized" / "outputs" / "quality_vs_time"
    splits = HARTask(HARDataConfig()).labelled_splits()
    rows = []
    for setting in args.settings:
        width, epochs = map(int, setting.split(":"))
        config = parse_config(HARPretrainConfig, ["--encoder_width", str(width), "--epochs", str(epochs), "--seed",
                                                  str(args.seed), "--output_dir", str(out), "--resume", "1",
                                                  "--experiment_name", f"w{width}_e{epochs}"])
        summary_file, config_file = config.run_dir() / "summary.json", config.run_dir() / "config.json"
        recorded = json.loads(config_file.read_text()) if config_file.exists() else None
        if recorded is not None and recipe_differences(recorded, config):
            config.resume, config.overwrite = 0, 1  # an earlier default's run under this name: replaced, never reused
        finished = recorded is not None and not config.overwrite and summary_file.exists()  # else run or resume
        summary = (json.loads(summary_file.read_text()) if finished
                   else pretrain(config, HARTask(config).pretrain_data()))
        probe = parse_config(HARClassifierConfig,
                             ["--encoder", str(config.run_dir()), "--methods", "encoder", "--modes",
                                                   "linear", "--label_fractions", "0.1", "1.0", "--seeds", "3",
                                                   "--output_dir", str(config.run_dir() / "probe")])
        _, scores, _ = run_classification(probe, splits)
        by = {round(s["fraction"], 3): s for s in scores}
        rows.append({"width": width, "epochs": epochs, "seconds": summary["train_seconds"],
                     **{f"f1_{int(f * 100)}": (by[f]["macro_f1_mean"], by[f]["macro_f1_std"]) for f in (0.1, 1.0)}})
    print("\n| width | epochs | pretraining s | macro-F1 10% | macro-F1 100% |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['width']} | {r['epochs']} | {r['seconds']:.0f} | {r['f1_10'][0]:.3f} ± {r['f1_10'][1]:.3f} | "
              f"{r['f1_100'][0]:.3f} ± {r['f1_100'][1]:.3f} |")
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for key, marker in (("f1_10", "o"), ("f1_100", "s")):
        ax.errorbar([r["seconds"] for r in rows], [r[key][0] for r in rows], [r[key][1] for r in rows], fmt=marker,
                    label=f"MTL linear probe, {key[3:]}% labels")
        for r in rows:
            ax.annotate(f"w{r['width']} e{r['epochs']}", (r["seconds"], r[key][0]), fontsize=7)
    ax.errorbar([sum(TSTCC_LINEAR[1]) / 2], [TSTCC_LINEAR[0]], xerr=[[(TSTCC_LINEAR[1][1] - TSTCC_LINEAR[1][0]) / 2]],
                fmt="k^", label="TS-TCC linear, 100% (reference)")
    ax.axhline(TSTCC_SUPERVISED, color="k", linestyle=":", label="TS-TCC supervised, 100% (reference)")
    ax.set_xlabel("pretraining seconds on this machine (2 CPU cores, as loaded while it ran)")
    ax.set_ylabel("macro-F1 on the test subjects")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    print(f"figure: {args.plot}")


if __name__ == "__main__":
    main()
