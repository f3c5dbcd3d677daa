"""Label-efficient evaluation of a pretrained image encoder against baselines (the digits CPU demo).

Usage:
    python IR_centralized/train_classifier.py --encoder IR_centralized/outputs/digits_mtl_seed42_heads1111
    python IR_centralized/train_classifier.py --modes linear --label_fractions 0.05 1.0 --seeds 3
Methods as for HAR: encoder (linear, finetune), supervised from scratch, expert_features (the hand-crafted
colour and gradient-orientation descriptors), raw (flattened pixels).
"""
import sys

from common.classification import LabelledSplits, run_classification
from common.config import parse_config
from common.errors import exit_on_user_error
from data_processing.images import load_digits_splits
from IR_centralized.config import IRClassifierConfig


@exit_on_user_error
def main(argv=None):
    config = parse_config(IRClassifierConfig, argv, description="Label-efficient evaluation on images")
    splits = load_digits_splits(config.image_size, config.split_seed)
    _, _, out = run_classification(config, LabelledSplits(**splits, info={"data_source": config.dataset}))
    print((out / "results.md").read_text())
    print(f"results: {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
