"""Whether pretraining windows hold stretches of the test subjects' recordings, by content: the test subjects
are kept out of pretraining by id, but a file of other windows (--pretrain_extra, a corpus of other recordings)
carries no ids of ours. A window whose samples repeat a test window's is seen data, whatever its file says.

Fingerprints: every run of RUN consecutive samples (all channels), its values rounded to 1e-3 and hashed to
64 bits; the test windows give one per start sample, a checked window one every RUN samples (so a window cut
at any offset of the same recording meets one). Runs that barely move (a sensor at rest: the same in anybody's
recording) are left out. Tens of thousands of test windows make a set of a few million 8-byte hashes.
"""
import numpy as np

RUN = 16
FLAT = 1e-3  # runs whose values span less than this on every channel are not fingerprinted


def _multipliers(length):
    return np.random.default_rng(0x1EA4).integers(1, 2**63 - 1, size=length, dtype=np.int64).astype(np.uint64) | 1


def fingerprints(x, stride):
    """uint64 hashes of the non-flat runs of RUN samples of windows x (N, C, W), one every `stride` samples,
    and the window each came from."""
    x = np.asarray(x, dtype=np.float32)
    n, channels, width = x.shape
    if width < RUN or n == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    weights = _multipliers(channels * RUN)
    hashes, owners = [], []
    for start in range(0, width - RUN + 1, stride):
        run = x[:, :, start : start + RUN]
        moving = (run.max(axis=2) - run.min(axis=2) > FLAT).any(axis=1)
        quantised = np.round(run[moving].reshape(int(moving.sum()), -1) * 1000).astype(np.int64).astype(np.uint64)
        with np.errstate(over="ignore"):
            hashes.append((quantised * weights).sum(axis=1, dtype=np.uint64))
        owners.append(np.flatnonzero(moving))
    return np.concatenate(hashes), np.concatenate(owners)


def known_fingerprints(test_windows):
    """The sorted unique fingerprints of the test subjects' windows (N, C, W), raw (not standardised)."""
    return np.unique(fingerprints(test_windows, stride=1)[0])


def windows_seen(known, x, chunk_size=8192):
    """How many windows of x (N, C, W; a memory map is read chunk by chunk) share a run with `known`
    (known_fingerprints)."""
    seen = 0
    for start in range(0, len(x), chunk_size):
        hashes, owners = fingerprints(x[start : start + chunk_size], stride=RUN)
        hit = np.isin(hashes, known)
        seen += len(np.unique(owners[hit]))
    return seen
