"""A generic expert-feature set for any sensor windows: per-channel statistics of time and frequency.

UCI HAR's 561 features need its 9 channels at 50 Hz. For other recordings the expert-feature regression
task and the `expert_features` baseline use these instead, FEATURES_PER_CHANNEL per channel, channel by
channel in this order:

| feature | definition |
|---|---|
| mean, std, min, max, median | of the samples |
| iqr | 75th minus 25th percentile |
| skewness, kurtosis | standardised third and fourth moments (excess kurtosis); 0 for a flat channel |
| energy | mean of the squared samples |
| mean_abs_diff | mean absolute difference of consecutive samples (jerk) |
| mean_crossing_rate | share of consecutive pairs on opposite sides of the mean |
| autocorrelation_lag1 | correlation of the centred signal with itself one sample later |
| dominant_frequency_hz | frequency of the largest non-DC FFT magnitude |
| spectral_entropy | entropy of the normalised non-DC power spectrum, in [0, 1] |

They are min-max scaled to [-1, 1] on the training windows, as UCI HAR's are (expert_features.fit_scaling).
"""
import numpy as np

FEATURE_NAMES = ("mean", "std", "min", "max", "median", "iqr", "skewness", "kurtosis", "energy", "mean_abs_diff",
                 "mean_crossing_rate", "autocorrelation_lag1", "dominant_frequency_hz", "spectral_entropy")
FEATURES_PER_CHANNEL = len(FEATURE_NAMES)


def generic_features(x, sample_rate_hz, batch=4096):
    """x (N, C, T) -> (N, C * FEATURES_PER_CHANNEL) float32, channel-major (channel 0's features first)."""
    x = np.asarray(x, dtype=np.float64)
    return np.concatenate([_features(x[i : i + batch], sample_rate_hz) for i in range(0, len(x), batch)]
                          or [np.zeros((0, x.shape[1] * FEATURES_PER_CHANNEL), np.float32)])


def _features(x, sample_rate_hz):
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    std = centred.std(-1)
    safe_std = np.where(std > 1e-12, std, 1.0)
    q25, median, q75 = np.percentile(x, [25, 50, 75], axis=-1)
    z = centred / safe_std[..., None]
    flat = std <= 1e-12
    skewness = np.where(flat, 0.0, (z**3).mean(-1))
    kurtosis = np.where(flat, 0.0, (z**4).mean(-1) - 3)
    above = centred > 0
    crossing = (above[..., 1:] != above[..., :-1]).mean(-1)
    lag1 = np.where(flat, 0.0, (centred[..., 1:] * centred[..., :-1]).mean(-1) / safe_std**2)
    power = np.abs(np.fft.rfft(centred, axis=-1))[..., 1:] ** 2  # (N, C, F) without DC
    frequencies = np.fft.rfftfreq(x.shape[-1], 1 / sample_rate_hz)[1:]
    dominant = frequencies[power.argmax(-1)]
    p = power / np.maximum(power.sum(-1, keepdims=True), 1e-300)
    entropy = -(p * np.log(np.where(p > 0, p, 1.0))).sum(-1) / np.log(max(power.shape[-1], 2))
    entropy = np.where(flat, 0.0, entropy)
    columns = [mean[..., 0], std, x.min(-1), x.max(-1), median, q75 - q25, skewness, kurtosis, (x**2).mean(-1),
               np.abs(np.diff(x, axis=-1)).mean(-1), crossing, lag1, dominant, entropy]
    return np.stack(columns, axis=-1).reshape(len(x), -1).astype(np.float32)  # (N, C, F) -> (N, C * F)
