"""Defaults of the image experiments. Every field is also a flag of IR_centralized/train_*.py.

The defaults are the real experiment: STL-10 (pretraining on its 100,000 unlabeled images), a standard
ResNet-18 at 96x96, 100 epochs, bf16 autocast, SimCLR views augmented batched on the GPU; one GPU, or
several with torchrun. `--preset cpu_smoke` swaps in a small ResNet on scikit-learn's bundled digits that
pretrains on 2 CPU cores in minutes (no download); flags given explicitly win over the preset.
"""
from dataclasses import dataclass

from common.classification import ClassifierConfig
from common.config import Config, compose_config, field
from ground.errors import UserError
from common.pretrain_config import ScheduleConfig, SSLConfig

DATASETS = ("stl10", "digits")
# --preset NAME: values that replace the defaults (flags given explicitly still win)
PRETRAIN_PRESETS = {
    "stl10": {},  # the defaults below
    "cpu_smoke": {"dataset": "digits", "image_size": 32, "encoder_width": 16, "encoder_depth": 3, "embedding_dim": 128,
                  "epochs": 15, "batch_size": 64, "lr": 2e-3, "warmup_epochs": 1.0, "mask_span": 8, "precompute": 1,
                  "n_variants": 4},
}
CLASSIFIER_PRESETS = {
    "stl10": {},
    "cpu_smoke": {"dataset": "digits", "image_size": 32, "folds": 0, "label_fractions": (0.02, 0.05, 0.1, 0.5, 1.0)},
}
PRESETS = tuple(PRETRAIN_PRESETS)
STL10_IMAGE_SIZE = 96


def check_image_size(dataset, image_size):
    if dataset == "stl10" and image_size != STL10_IMAGE_SIZE:
        raise UserError(f"STL-10 images are {STL10_IMAGE_SIZE}x{STL10_IMAGE_SIZE}: --image_size must be "
                        f"{STL10_IMAGE_SIZE} with --dataset stl10")


@dataclass
class ImageDataConfig(Config):
    """The image experiment's own pretraining fields."""
    preset: str = field("stl10", "stl10: the GPU experiment; cpu_smoke: the digits demo in minutes on a CPU",
                        choices=PRESETS)
    dataset: str = field("stl10", "stl10: the experiment (downloaded when missing); digits: the CPU demo",
                         choices=DATASETS)
    data_dir: str = field("", "folder holding (or receiving) stl10_binary/; empty: data/ (or $MTSSL_DATA_DIR)")
    max_images: int = field(0, "pretrain on a seeded subset of this many unlabeled images; 0: all 100,000")
    image_size: int = field(96, "digits are resized to image_size x image_size; STL-10 is 96")
    split_seed: int = field(0, "seed of the digits' train/val/test split")

    def check_values(self):
        if self.image_size < 8 or self.mask_span > self.image_size:
            raise UserError("--image_size must be at least 8 and --mask_span at most the image size")
        check_image_size(self.dataset, self.image_size)
        if self.max_images < 0 or self.max_images == 1:
            raise UserError(f"--max_images must be 0 (all) or at least 2, got {self.max_images}")


@dataclass
class ImageClassifierDataConfig(Config):
    """The image experiment's own classifier fields."""
    preset: str = field("stl10", "as for pretraining", choices=PRESETS)
    folds: int = field(10, "STL-10: also evaluate this many of the 10 official 1,000-image training folds")
    dataset: str = field("stl10", "as for pretraining", choices=DATASETS)
    data_dir: str = field("", "as for pretraining")
    val_images: int = field(500, "STL-10: train images held out for early stopping (stratified by split_seed)")
    image_size: int = field(96, "as for pretraining (digits only; STL-10 is 96)")
    split_seed: int = field(0, "seed of the digits' split and of STL-10's validation images")

    def check_values(self):
        if not 0 <= self.folds <= 10:
            raise UserError(f"--folds takes 0..10 official folds, got {self.folds}")
        if self.dataset == "stl10" and not 10 <= self.val_images <= 2500:
            raise UserError("--val_images must be between 10 (one per class) and 2500")
        check_image_size(self.dataset, self.image_size)


# train_encoder.py: the run, model, tasks and optimiser (SSLConfig), the schedule, the images
IRPretrainConfig = compose_config(
    "IRPretrainConfig", __name__, (SSLConfig, ScheduleConfig, ImageDataConfig),
    defaults={"output_dir": "IR_centralized/outputs", "encoder": "resnet18", "encoder_width": 64, "encoder_depth": 4,
              "embedding_dim": 512, "epochs": 100, "batch_size": 256, "lr": 1e-3, "warmup_epochs": 5.0,
              "temperature": 0.2, "mask_ratio": 0.25, "mask_span": 16, "precompute": 0, "n_variants": 2},
    help={"encoder_width": "channels of the first ResNet stage (64 = standard ResNet-18)",
          "encoder_depth": "ResNet stages of two blocks (4 = ResNet-18)",
          "embedding_dim": "the representation the classifier sees (ResNet-18's 512 channels)",
          "epochs": "pretraining epochs (the SimCLR reference point: 100 epochs, 74-77% linear)",
          "batch_size": "images per step (per process under torchrun)",
          "mask_ratio": "share of image patches masked for reconstruction",
          "mask_span": "side of a masked square patch, in pixels (36 patches at 96 px)",
          "precompute": "0: SimCLR views made per batch on the training device; 1: precomputed uint8 views",
          "n_variants": "precomputed augmented variants per image (100,000 x 96 px: 8.3 GB each)"},
    PRESETS=PRETRAIN_PRESETS)

# train_classifier.py: the methods, label fractions, probes and fine-tuning (ClassifierConfig), the images.
# Self-training and FixMatch are the sensor study's; here they are opt-in (--modes)
IRClassifierConfig = compose_config(
    "IRClassifierConfig", __name__, (ClassifierConfig, ImageClassifierDataConfig),
    defaults={"runs_dir": "IR_centralized/outputs", "methods": ("encoder", "supervised", "expert_features"),
              "modes": ("linear", "finetune"), "label_fractions": (0.01, 0.05, 0.1, 1.0), "batch_size": 128},
    help={"methods": "encoder, supervised, expert_features (descriptors), raw, encoder+features",
          "label_fractions": "shares of the train labels (stratified)",
          "batch_size": "labelled images per step"},
    PRESETS=CLASSIFIER_PRESETS)
