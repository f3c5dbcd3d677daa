"""Multi-task self-supervised pretraining of an image encoder (the digits CPU demo; STL-10 to come).

Usage:
    python IR_centralized/train_encoder.py --seed 42 --experiment_name digits_mtl
    python IR_centralized/train_encoder.py --model_heads 1 0 1 0 --encoder_width 8 --epochs 5
Same loop, heads, weighting and run folder as HAR (common/training.py); only the encoder (ResNet-18),
the transformations (rotations, SimCLR views, patch masks) and the descriptors differ.
"""
import os
import sys

import numpy as np

from common.config import parse_config
from common.errors import exit_on_user_error
from common.training import PretrainData, pretrain
from data_processing.images import load_digits_splits
from data_processing.pretext import PretextSpec
from IR_centralized.config import IRPretrainConfig


def image_pretrain_data(config):
    """Unlabelled pretraining inputs: the train split's images (val and test stay unseen)."""
    train = load_digits_splits(config.image_size, config.split_seed)["train"]
    spec = PretextSpec.for_images(mask_ratio=config.mask_ratio, mask_span=config.mask_span,
                                  n_variants=config.n_variants, seed=config.seed)
    info = {"data_source": config.dataset, "split": "train", "windows": len(train["y"])}
    return PretrainData(np.ascontiguousarray(train["x"]), train["features"], spec, info)


@exit_on_user_error
def main(argv=None):
    config = parse_config(IRPretrainConfig, argv, description="Multi-task SSL pretraining on images")
    summary = pretrain(config, image_pretrain_data(config))
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"done in {summary['train_seconds']:.0f} s; encoder: {config.run_dir() / 'encoder.pt'}")


if __name__ == "__main__":
    main(sys.argv[1:])
