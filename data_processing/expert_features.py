"""UCI HAR's 561 expert features, computed from the (9, 128) windows, vectorised over windows.

Names and order are those of the official `features.txt` (kept in data_processing/uci_har_features.txt,
CC BY 4.0, Anguita et al. 2013); definitions follow `features_info.txt`. Where that text is ambiguous we
choose and say so here:
- Jerk: first difference times the sample rate (first sample repeated so the length stays 128).
- f-signals: magnitude of the FFT of the 128-sample window, first 64 bins (DC .. 31.6 Hz), as
  bandsEnergy's "64 bins" implies; frequencies k * 50 / 128 Hz.
- entropy: Shannon entropy (nats) of a 16-bin histogram of the window's values.
- arCoeff: Burg's method, order 4 (coefficients a1..a4 of x[t] + a1 x[t-1] + ... = e[t]).
- std uses N-1; skewness and kurtosis are the plain moments of the spectrum (kurtosis not excess).
Features are then min-max scaled to [-1, 1] with bounds from the train split (`fit_scaling`).
"""
from pathlib import Path

import numpy as np

SAMPLE_RATE_HZ = 50
N_FFT_BINS = 64
ENTROPY_BINS = 16
AR_ORDER = 4
AXES = ("X", "Y", "Z")
# bandsEnergy intervals over the 64 bins, 1-based inclusive, as in features.txt
BANDS = [(lo, lo + 7) for lo in range(1, 64, 8)] + [(lo, lo + 15) for lo in range(1, 64, 16)] + [(1, 24), (25, 48)]
OFFICIAL_NAMES_FILE = Path(__file__).with_name("uci_har_features.txt")


def official_feature_names():
    """The 561 names of features.txt in order (42 of them repeat: never use names as unique keys)."""
    lines = OFFICIAL_NAMES_FILE.read_text().splitlines()
    return [line.split(" ", 1)[1] for line in lines if line.strip()]


# --------------------------------------------------------------------------- per-window statistics
# every function maps (..., T) -> (...) or (..., k), vectorised over the leading axes
def mad(x):
    return np.median(np.abs(x - np.median(x, axis=-1, keepdims=True)), axis=-1)


def iqr(x):
    q75, q25 = np.percentile(x, [75, 25], axis=-1)
    return q75 - q25


def histogram_entropy(x, bins=ENTROPY_BINS):
    lo, hi = x.min(-1, keepdims=True), x.max(-1, keepdims=True)
    idx = np.clip(((x - lo) / np.maximum(hi - lo, 1e-12) * bins).astype(np.int64), 0, bins - 1)
    counts = (idx[..., None] == np.arange(bins)).sum(-2)  # (..., bins)
    p = counts / x.shape[-1]
    return -(p * np.log(np.where(p > 0, p, 1.0))).sum(-1)


def burg_ar(x, order=AR_ORDER):
    """Burg's autoregression coefficients a1..a_order of each row: (..., T) -> (..., order)."""
    forward, backward = x[..., 1:].astype(np.float64), x[..., :-1].astype(np.float64)
    a = np.zeros(x.shape[:-1] + (order + 1,))
    a[..., 0] = 1.0
    for m in range(order):
        num = -2.0 * (forward * backward).sum(-1)
        den = (forward**2).sum(-1) + (backward**2).sum(-1)
        k = num / np.maximum(den, 1e-12)
        a[..., : m + 2] = a[..., : m + 2] + k[..., None] * a[..., m + 1 :: -1][..., : m + 2]
        forward, backward = (forward[..., 1:] + k[..., None] * backward[..., 1:],
                             backward[..., :-1] + k[..., None] * forward[..., :-1])
    return a[..., 1:]


def pearson(a, b):
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    return (a * b).sum(-1) / np.maximum(np.sqrt((a**2).sum(-1) * (b**2).sum(-1)), 1e-12)


def skewness(x):
    centred = x - x.mean(-1, keepdims=True)
    var = (centred**2).mean(-1)
    return (centred**3).mean(-1) / np.maximum(var, 1e-24) ** 1.5


def kurtosis(x):
    centred = x - x.mean(-1, keepdims=True)
    var = (centred**2).mean(-1)
    return (centred**4).mean(-1) / np.maximum(var, 1e-24) ** 2


def angle(u, v):
    cos = (u * v).sum(-1) / np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1), 1e-12)
    return np.arccos(np.clip(cos, -1.0, 1.0))


def jerk(x):
    d = np.diff(x, axis=-1) * SAMPLE_RATE_HZ
    return np.concatenate([d[..., :1], d], axis=-1)


def spectrum(x):
    return np.abs(np.fft.rfft(x, axis=-1))[..., :N_FFT_BINS] / x.shape[-1]


def bin_frequencies(window_length):
    return np.arange(N_FFT_BINS) * SAMPLE_RATE_HZ / window_length


# --------------------------------------------------------------------------- feature groups, named
def _common_stats(name, s, axes):
    """mean .. entropy: the features every signal has. s is (N, A, T) with A = len(axes)."""
    out = []
    suffix = [f"-{a}" for a in axes] if axes else [""]
    for stat, fn in (("mean", lambda v: v.mean(-1)), ("std", lambda v: v.std(-1, ddof=1)), ("mad", mad),
                     ("max", lambda v: v.max(-1)), ("min", lambda v: v.min(-1))):
        out += [(f"{name}-{stat}(){sfx}", col) for sfx, col in zip(suffix, fn(s).T)]
    out.append((f"{name}-sma()", np.abs(s).mean(-1).sum(-1)))
    for stat, fn in (("energy", lambda v: (v**2).mean(-1)), ("iqr", iqr), ("entropy", histogram_entropy)):
        out += [(f"{name}-{stat}(){sfx}", col) for sfx, col in zip(suffix, fn(s).T)]
    return out


def time_features(name, s):
    """40 features of a 3-axis time signal, 13 of a magnitude (s is (N, 3, T) or (N, 1, T))."""
    axes = AXES if s.shape[1] == 3 else ()
    out = _common_stats(name, s, axes)
    ar = burg_ar(s)  # (N, A, 4)
    if axes:
        out += [(f"{name}-arCoeff()-{a},{k + 1}", ar[:, i, k]) for i, a in enumerate(axes) for k in range(AR_ORDER)]
        for i, j in ((0, 1), (0, 2), (1, 2)):
            out.append((f"{name}-correlation()-{axes[i]},{axes[j]}", pearson(s[:, i], s[:, j])))
    else:
        out += [(f"{name}-arCoeff(){k + 1}", ar[:, 0, k]) for k in range(AR_ORDER)]
    return out


def frequency_features(name, s, window_length):
    """79 features of a 3-axis spectrum, 13 of a magnitude's (s is (N, A, 64))."""
    axes = AXES if s.shape[1] == 3 else ()
    suffix = [f"-{a}" for a in axes] if axes else [""]
    out = _common_stats(name, s, axes)
    freqs = bin_frequencies(window_length)
    max_inds = freqs[s.argmax(-1)]
    mean_freq = (s * freqs).sum(-1) / np.maximum(s.sum(-1), 1e-12)
    out += [(f"{name}-maxInds{sfx}", col) for sfx, col in zip(suffix, max_inds.T)]
    out += [(f"{name}-meanFreq(){sfx}", col) for sfx, col in zip(suffix, mean_freq.T)]
    skew, kurt = skewness(s), kurtosis(s)
    for i, sfx in enumerate(suffix):
        out += [(f"{name}-skewness(){sfx}", skew[:, i]), (f"{name}-kurtosis(){sfx}", kurt[:, i])]
    if axes:
        power = s**2
        for i in range(len(axes)):
            out += [(f"{name}-bandsEnergy()-{lo},{hi}", power[:, i, lo - 1 : hi].sum(-1)) for lo, hi in BANDS]
    return out


def compute_expert_features(x):
    """(N, 9, 128) windows in UCI HAR channel order -> ((N, 561) float64 unscaled features, names)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or x.shape[1] != 9:
        raise ValueError(f"expected windows of shape (N, 9, T), got {x.shape}")
    window_length = x.shape[-1]
    body_acc, body_gyro, total_acc = x[:, 0:3], x[:, 3:6], x[:, 6:9]
    gravity = total_acc - body_acc
    signals_3d = {
        "tBodyAcc": body_acc, "tGravityAcc": gravity, "tBodyAccJerk": jerk(body_acc),
        "tBodyGyro": body_gyro, "tBodyGyroJerk": jerk(body_gyro),
    }
    magnitude = {name: np.linalg.norm(s, axis=1, keepdims=True) for name, s in signals_3d.items()}
    columns = []
    for name, s in signals_3d.items():
        columns += time_features(name, s)
    for name, m in magnitude.items():
        columns += time_features(f"{name}Mag", m)
    for name in ("tBodyAcc", "tBodyAccJerk", "tBodyGyro"):
        columns += frequency_features("f" + name[1:], spectrum(signals_3d[name]), window_length)
    # the official names repeat "Body" for three magnitude spectra; we keep their spelling
    for official, source in (("fBodyAccMag", "tBodyAcc"), ("fBodyBodyAccJerkMag", "tBodyAccJerk"),
                             ("fBodyBodyGyroMag", "tBodyGyro"), ("fBodyBodyGyroJerkMag", "tBodyGyroJerk")):
        columns += frequency_features(official, spectrum(magnitude[source]), window_length)
    gravity_mean = gravity.mean(-1)
    columns += [
        ("angle(tBodyAccMean,gravity)", angle(body_acc.mean(-1), gravity_mean)),
        ("angle(tBodyAccJerkMean),gravityMean)", angle(signals_3d["tBodyAccJerk"].mean(-1), gravity_mean)),
        ("angle(tBodyGyroMean,gravityMean)", angle(body_gyro.mean(-1), gravity_mean)),
        ("angle(tBodyGyroJerkMean,gravityMean)", angle(signals_3d["tBodyGyroJerk"].mean(-1), gravity_mean)),
    ]
    for i, axis in enumerate(AXES):
        columns.append((f"angle({axis},gravityMean)", angle(np.eye(3)[i][None], gravity_mean)))
    names = [name for name, _ in columns]
    return np.stack([values for _, values in columns], axis=1), names


def compute_expert_features_batched(x, batch_size=2048):
    """Same as compute_expert_features, in chunks so peak memory stays small for ~10k windows."""
    chunks = [compute_expert_features(x[i : i + batch_size])[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(chunks)


def fit_scaling(features):
    """Per-feature (low, high) bounds from the train split's features."""
    return features.min(0), features.max(0)


def apply_scaling(features, low, high):
    """Min-max scale to [-1, 1] with train bounds (test values may fall slightly outside)."""
    span = np.where(high - low > 1e-12, high - low, 1.0)
    return (2.0 * (features - low) / span - 1.0).astype(np.float32)
