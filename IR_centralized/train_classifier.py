"""Label-efficient evaluation of a pretrained image encoder against baselines.

Usage:
    python IR_centralized/train_classifier.py --encoder IR_centralized/outputs/stl10_mtl_seed42_heads1111
    python IR_centralized/train_classifier.py --preset cpu_smoke \
        --encoder IR_centralized/outputs/digits_mtl_seed42_heads1111
    python IR_centralized/train_classifier.py --modes linear --label_fractions 0.05 1.0 --folds 10
Label budgets: stratified shares of the train labels (--label_fractions x --seeds) and, on STL-10, the
official 1,000-image training folds (--folds). Methods as for HAR: encoder (linear, finetune), supervised
from scratch, expert_features (colour and gradient-orientation descriptors), raw (flattened pixels).
"""
import sys

from common.classification import run_classification
from data_processing.inputs import LabelledSplits
from common.config import parse_config
from ground.errors import exit_on_user_error
from data_processing.images import load_digits_splits, load_stl10_splits
from data_processing.stl10 import ensure_stl10
from IR_centralized.config import IRClassifierConfig


@exit_on_user_error
def main(argv=None):
    config = parse_config(IRClassifierConfig, argv, description="Label-efficient evaluation on images")
    label_sets = {}
    if config.dataset == "stl10":
        splits, folds = load_stl10_splits(ensure_stl10(config.data_dir), config.val_images, config.split_seed)
        if config.folds:
            label_sets["official fold"] = folds[: config.folds]
    else:
        splits = load_digits_splits(config.image_size, config.split_seed)
    info = {"data_source": config.dataset, **{f"{k}_images": len(v["y"]) for k, v in splits.items()}}
    _, _, out = run_classification(config, LabelledSplits(**splits, info=info, label_sets=label_sets))
    print((out / "results.md").read_text())
    print(f"results: {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
