"""Defaults of the image experiments. Every field is also a flag of IR_centralized/train_*.py.

The real experiment is STL-10 with a ResNet-18 on a GPU; its training path is not here yet. The defaults
below pretrain a small ResNet on scikit-learn's bundled digits, on a CPU, in minutes.
"""
from dataclasses import dataclass

from common.classification import ClassifierConfig
from common.config import field
from common.errors import UserError
from common.training import PretrainConfig

DATASETS = ("digits",)


@dataclass
class IRPretrainConfig(PretrainConfig):
    output_dir: str = field("IR_centralized/outputs", "run folders go here")
    dataset: str = field("digits", "digits: scikit-learn's bundled handwritten digits (CPU demo)", choices=DATASETS)
    image_size: int = field(32, "images are resized to image_size x image_size")
    encoder: str = field("resnet18", "encoder architecture (common/encoders.py)")
    encoder_width: int = field(16, "channels of the first ResNet stage (64 = standard ResNet-18)")
    encoder_depth: int = field(3, "ResNet stages of two blocks (4 = ResNet-18)")
    epochs: int = field(15, "pretraining epochs")
    batch_size: int = field(64, "images per step")
    lr: float = field(2e-3, "peak AdamW learning rate")
    temperature: float = field(0.2, "NT-Xent temperature")
    mask_ratio: float = field(0.25, "share of image patches masked for reconstruction")
    mask_span: int = field(8, "side of a masked square patch, in pixels")
    n_variants: int = field(4, "precomputed augmented variants per image")
    split_seed: int = field(0, "seed of the train/val/test split of the digits")

    def validate(self):
        super().validate()
        if self.image_size < 8 or self.mask_span > self.image_size:
            raise UserError("--image_size must be at least 8 and --mask_span at most the image size")


@dataclass
class IRClassifierConfig(ClassifierConfig):
    runs_dir: str = field("IR_centralized/outputs", "where to look for the newest run when --encoder is empty")
    methods: tuple[str, ...] = field(("encoder", "supervised", "expert_features"),
                                     "encoder, supervised, expert_features (descriptors), raw")
    label_fractions: tuple[float, ...] = field((0.02, 0.05, 0.1, 0.5, 1.0), "shares of the train labels")
    dataset: str = field("digits", "as for pretraining", choices=DATASETS)
    image_size: int = field(32, "as for pretraining")
    split_seed: int = field(0, "seed of the train/val/test split of the digits")
