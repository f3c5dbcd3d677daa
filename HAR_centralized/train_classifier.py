"""Label-efficient evaluation of a pretrained HAR encoder against baselines.

Usage:
    python HAR_centralized/train_classifier.py --encoder HAR_centralized/outputs/my_run_seed42_heads1111
    python HAR_centralized/train_classifier.py --modes linear --label_fractions 0.01 0.1 1.0 --seeds 3
    python HAR_centralized/train_classifier.py --methods expert_features raw --output_dir outputs/baselines
Trains on a stratified share of the train subjects' labels, selects on the val subjects, scores on the test
subjects (own recordings: the encoder's pretraining split unless split flags are given; test subjects the
encoder pretrained on are refused unless --transductive 1). Defaults: HAR_centralized/config.py.
Output: <run>/classifier/{results.csv,summary.json,results.md}.
"""
import sys

from common.classification import needs_encoder, resolve_encoder_path, run_classification, saved_data_record
from common.config import parse_config
from ground.errors import exit_on_user_error
from HAR_centralized.config import HARClassifierConfig
from har_task import HARTask


@exit_on_user_error
def main(argv=None):
    config = parse_config(HARClassifierConfig, argv, description="Label-efficient evaluation on UCI HAR")
    # the encoder first: its record of the pretraining data fixes the subject split and the input standardisation
    encoder = resolve_encoder_path(config) if needs_encoder(config) else None
    splits = HARTask(config).labelled_splits(saved_data_record(encoder), encoder)
    _, _, out = run_classification(config, splits, encoder)
    print((out / "results.md").read_text())
    print(f"results: {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
