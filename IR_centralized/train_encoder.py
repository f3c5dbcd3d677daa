"""Multi-task self-supervised pretraining of an image encoder: STL-10 on a GPU, or the digits demo on a CPU.

Usage:
    python IR_centralized/train_encoder.py --seed 42 --experiment_name stl10_mtl      # STL-10, one GPU
    torchrun --nproc_per_node 4 IR_centralized/train_encoder.py --experiment_name stl10_mtl   # several GPUs
    python IR_centralized/train_encoder.py --preset cpu_smoke --experiment_name digits_mtl  # CPU, minutes
    python IR_centralized/train_encoder.py --preset cpu_smoke --model_heads 1 0 1 0 --epochs 5
Same loop, heads, weighting and run folder as HAR (common/training.py); only the encoder (ResNet-18),
the transformations (rotations, SimCLR views, patch masks) and the descriptors differ. STL-10 is
downloaded into data/ on first use.
"""
import os
import sys

from common.config import parse_config
from ground.errors import exit_on_user_error
from ground.paths import cache_folder
from common.training import pretrain
from data_processing.images import load_digits_splits, load_stl10_unlabeled
from data_processing.pretext import PretextSpec, PretrainData
from data_processing.stl10 import ensure_stl10
from IR_centralized.config import IRPretrainConfig


def image_pretrain_data(config):
    """Unlabelled pretraining inputs: STL-10's unlabeled split, or the digits' train split (val and test
    stay unseen); uint8 or float images with standardised descriptors."""
    spec = PretextSpec.for_images(mask_ratio=config.mask_ratio, mask_span=config.mask_span,
                                  n_variants=config.n_variants, seed=config.seed)
    if config.dataset == "stl10":
        x, features = load_stl10_unlabeled(ensure_stl10(config.data_dir), config.max_images, config.seed)
        split = "unlabeled"
    else:
        train = load_digits_splits(config.image_size, config.split_seed)["train"]
        x, features, split = train["x"], train["features"], "train"
        if 0 < config.max_images < len(x):
            x, features = x[: config.max_images], features[: config.max_images]
    return PretrainData(x, features, spec, {"data_source": config.dataset, "split": split, "inputs": len(x)},
                        cache_dir=cache_folder(config.cache_dir))


@exit_on_user_error
def main(argv=None):
    config = parse_config(IRPretrainConfig, argv, description="Multi-task SSL pretraining on images")
    summary = pretrain(config, image_pretrain_data(config))
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"done in {summary['train_seconds']:.0f} s; encoder: {config.run_dir() / 'encoder.pt'}")


if __name__ == "__main__":
    main(sys.argv[1:])
