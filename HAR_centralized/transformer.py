"""The encoder as a scikit-learn / aeon collection transformer: fit(X) pretrains it on a collection, transform(X)
embeds one, so it goes in a Pipeline, cross_val_score or aeon's benchmarking beside MiniRocket.

    from sklearn.linear_model import RidgeClassifierCV
    from sklearn.pipeline import make_pipeline
    from HAR_centralized.transformer import EncoderTransformer

    pipeline = make_pipeline(EncoderTransformer.from_pretrained("har_mtl"), RidgeClassifierCV())  # no training
    pipeline = make_pipeline(EncoderTransformer(epochs=20), RidgeClassifierCV())  # pretrains on each fit's X

X is a collection as aeon takes it: (n_cases, n_channels, n_timepoints) floats (a 2D array is one channel).
fit pretrains with train_encoder.py's recipe (the default unless `flags` say otherwise) on X's windows, y
ignored: the channels standardised by X's statistics (kept with the encoder), generic per-channel features at
`sample_rate_hz` for a task that regresses features. transform checks what aeon's transformers check (a 3D
numeric array, finite, the channels and length the encoder was built for) and returns (n_cases, embedding_dim).
"""
import tempfile
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin

from common.classification import load_pretrained_encoder
from common.config import parse_config
from common.encoders import build_encoder
from common.pretrained import StandardisedEncoder, load_pretrained
from common.training import pretrain
from data_processing.expert_features import apply_scaling, fit_scaling
from data_processing.generic_features import generic_features
from data_processing.pretext import PretrainData
from data_processing.recordings import channel_statistics, standardise
from ground.errors import UserError
from har_task.task import har_spec
from HAR_centralized.config import HARPretrainConfig


def as_collection(X, what="X"):
    """X as a float32 (n_cases, n_channels, n_timepoints) array; ValueError (scikit-learn's convention) otherwise."""
    if isinstance(X, (list, tuple)):
        lengths = {np.shape(case) for case in X}
        if len(lengths) > 1:
            raise ValueError(f"{what}: cases of unequal shapes {sorted(lengths)[:3]}: the encoder takes equal-length "
                             f"collections (resample or cut them to one length)")
    X = np.asarray(X)
    if X.ndim == 2:
        X = X[:, None, :]  # aeon's univariate collection
    if X.ndim != 3 or X.dtype.kind not in "fiu" or 0 in X.shape:
        raise ValueError(f"{what} must be a numeric collection (n_cases, n_channels, n_timepoints), got shape "
                         f"{X.shape} and dtype {X.dtype}")
    X = X.astype(np.float32, copy=False)
    if not np.isfinite(X).all():
        raise ValueError(f"{what} holds NaN or infinite values: impute or drop those cases first")
    return X


class EncoderTransformer(TransformerMixin, BaseEstimator):
    """fit(X): pretrain an encoder on the collection X (y ignored); transform(X): its embeddings.

    flags: train_encoder.py flags of the recipe (empty: the default recipe); epochs: its epochs (None: the
    recipe's); seed; sample_rate_hz: the collection's rate (for the generic features); standardise: per-channel
    standardisation by X's statistics; batch_size: windows per embedding batch; output_dir: where the
    pretraining run goes (None: a temporary folder, removed after fit); device; pretrained: a shipped encoder's
    name (from_pretrained): fit then loads it and trains nothing."""

    def __init__(self, flags=(), epochs=None, seed=42, sample_rate_hz=50.0, standardise=True, batch_size=512,
                 output_dir=None, device="cpu", pretrained=None):
        self.pretrained = pretrained
        self.flags = flags
        self.epochs = epochs
        self.seed = seed
        self.sample_rate_hz = sample_rate_hz
        self.standardise = standardise
        self.batch_size = batch_size
        self.output_dir = output_dir
        self.device = device

    @classmethod
    def from_pretrained(cls, name="har_mtl", **params):
        """The shipped encoder `name` (common/pretrained.py), fitted already: transform needs no fit, and fit (a
        pipeline's, a clone's) loads it again instead of training."""
        return cls(pretrained=name, **params)._load_pretrained()

    def _load_pretrained(self):
        try:
            self.encoder_ = load_pretrained(self.pretrained, device=self.device)
        except UserError as err:
            raise ValueError(str(err)) from None
        self.input_shape_ = tuple(self.encoder_.input_shape)
        self.n_features_out_ = self.encoder_.embedding_dim
        return self

    def _config(self, output_dir):
        args = [*self.flags, "--seed", str(self.seed), "--device", self.device, "--output_dir", str(output_dir),
                "--experiment_name", "transformer", "--overwrite", "1", "--monitor_every", "0"]
        if self.epochs is not None:
            args += ["--epochs", str(self.epochs)]
        try:
            return parse_config(HARPretrainConfig, args, description="EncoderTransformer")
        except (SystemExit, UserError) as err:
            raise ValueError(f"EncoderTransformer(flags={self.flags!r}): not train_encoder.py flags ({err}; see "
                             f"python HAR_centralized/train_encoder.py --help)") from None

    def fit(self, X, y=None):
        X = as_collection(X)
        if self.pretrained:  # a shipped encoder: nothing to train, its input shape checked
            self._load_pretrained()
            self._check_shape(X)
            return self
        if len(X) < 2:
            raise ValueError("fit needs at least 2 cases to pretrain on")
        statistics = channel_statistics(X) if self.standardise else None
        inputs = standardise(X, statistics) if statistics is not None else X
        raw = generic_features(X, self.sample_rate_hz)
        features = apply_scaling(raw, *fit_scaling(raw))
        with tempfile.TemporaryDirectory() as scratch:
            config = self._config(self.output_dir or scratch)
            record = {"dataset": "collection", "standardisation": statistics}
            data = PretrainData(inputs, features, har_spec(config, self.seed, X.shape[1]),
                                {"data_source": "collection", "windows": len(X)}, None, record,
                                Path(self.output_dir or scratch) / "cache")
            try:
                pretrain(config, data)
            except UserError as err:
                raise ValueError(str(err)) from None
            model_args, state_dict = load_pretrained_encoder(config.run_dir() / "encoder.pt", X.shape[1:])
        encoder = build_encoder(**model_args)
        encoder.load_state_dict(state_dict, strict=True)
        self.encoder_ = (StandardisedEncoder(encoder, statistics) if statistics is not None else encoder).eval()
        self.input_shape_ = tuple(X.shape[1:])
        self.n_features_out_ = encoder.embedding_dim
        return self

    def transform(self, X):
        if not hasattr(self, "encoder_"):
            raise ValueError("this EncoderTransformer is not fitted: call fit(X), or use from_pretrained(name)")
        X = self._check_shape(as_collection(X))
        out = np.empty((len(X), self.n_features_out_), dtype=np.float32)
        self.encoder_.to(self.device)
        with torch.no_grad():
            for start in range(0, len(X), self.batch_size):
                batch = torch.from_numpy(X[start : start + self.batch_size]).to(self.device)
                out[start : start + len(batch)] = self.encoder_(batch).cpu().numpy()
        return out

    def _check_shape(self, X):
        if tuple(X.shape[1:]) != self.input_shape_:
            channels, length = self.input_shape_
            raise ValueError(f"X has {X.shape[1]} channels of {X.shape[2]} time points; the encoder was built for "
                             f"{channels} channels of {length}")
        return X

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.two_d_array = False
        tags.non_deterministic = self.device != "cpu"
        return tags
