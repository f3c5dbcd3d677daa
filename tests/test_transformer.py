"""The encoder as a scikit-learn / aeon transformer (HAR_centralized/transformer.py): in a Pipeline under
cross_val_score, from a shipped encoder without training, and the input checks aeon's transformers make."""
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import RidgeClassifierCV
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from HAR_centralized.transformer import EncoderTransformer

TINY = ("--encoder_width", "4", "--embedding_dim", "8", "--rocket_kernels", "84", "--rocket_dim", "4",
        "--batch_size", "16")


def three_rhythms(n=90, channels=3, length=64, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n // 3)
    t = np.arange(length) / 50
    x = np.sin(2 * np.pi * (1 + 2 * y)[:, None, None] * t) * rng.uniform(0.5, 2, (n, channels, 1))
    return (x + 0.3 * rng.normal(size=(n, channels, length))).astype(np.float32), y


def test_the_encoder_pretrains_per_fold_inside_a_pipeline_under_cross_val_score():
    X, y = three_rhythms()
    pipeline = make_pipeline(EncoderTransformer(flags=TINY, epochs=2), RidgeClassifierCV())
    scores = cross_val_score(pipeline, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.6  # chance: 0.33
    fitted = EncoderTransformer(flags=TINY, epochs=2).fit(X)
    embedded = fitted.transform(X)
    assert embedded.shape == (90, 8) and embedded.dtype == np.float32 and np.isfinite(embedded).all()
    # the seed fixes the encoder: a clone fit again embeds identically
    np.testing.assert_array_equal(clone(fitted).fit(X).transform(X), embedded)
    assert fitted.get_params()["epochs"] == 2 and clone(fitted).set_params(seed=7).seed == 7


def test_a_shipped_encoder_transforms_without_training_and_checks_its_inputs():
    encoder = EncoderTransformer.from_pretrained("har_mtl")
    windows = np.random.default_rng(0).normal(size=(5, 9, 128)).astype(np.float32)
    assert encoder.transform(windows).shape == (5, 128)
    assert encoder.transform(list(windows)).shape == (5, 128)  # a list of equal-length cases, as aeon takes
    # in a pipeline (fit, clone) the shipped encoder is loaded, never trained
    labels = np.arange(5) % 2
    pipeline = make_pipeline(EncoderTransformer.from_pretrained("har_mtl"), RidgeClassifierCV()).fit(windows, labels)
    np.testing.assert_array_equal(clone(pipeline).fit(windows, labels)[0].transform(windows),
                                  encoder.transform(windows))
    with pytest.raises(ValueError, match="no shipped encoder 'nope'"):
        EncoderTransformer.from_pretrained("nope")
    with pytest.raises(ValueError, match="3 channels of 64 time points; the encoder was built for 9 channels of 128"):
        encoder.transform(three_rhythms()[0])
    bad = windows.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        encoder.transform(bad)
    with pytest.raises(ValueError, match="unequal shapes"):
        encoder.transform([windows[0], windows[1][:, :100]])
    with pytest.raises(ValueError, match=r"numeric collection \(n_cases, n_channels, n_timepoints\)"):
        encoder.transform(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="not fitted"):
        EncoderTransformer().transform(windows)
    with pytest.raises(ValueError, match="not train_encoder.py flags"):
        EncoderTransformer(flags=("--no_such_flag",)).fit(windows)
