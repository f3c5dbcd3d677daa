"""Multi-task self-supervised pretraining of the HAR encoder.

Usage:
    python HAR_centralized/train_encoder.py --seed 42 --experiment_name my_run
    python HAR_centralized/train_encoder.py --model_heads 1 0 1 1 --weighting dwa --epochs 50
    torchrun --nproc_per_node 2 HAR_centralized/train_encoder.py --experiment_name ddp_run
Defaults: HAR_centralized/config.py. Output: <output_dir>/<name>_seed<seed>_heads<switches>/ with encoder.pt,
checkpoint.pt, config.json, metrics.jsonl, summary.json. --resume 1 continues a killed run.
"""
import os
import sys

from common.config import parse_config
from ground.errors import exit_on_user_error
from common.training import pretrain
from HAR_centralized.config import HARPretrainConfig
from har_task import HARTask


@exit_on_user_error
def main(argv=None):
    config = parse_config(HARPretrainConfig, argv, description="Multi-task SSL pretraining on UCI HAR")
    summary = pretrain(config, HARTask(config).pretrain_data())
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 speaks
        print(f"done in {summary['train_seconds']:.0f} s; encoder: {config.run_dir() / 'encoder.pt'}")


if __name__ == "__main__":
    main(sys.argv[1:])
