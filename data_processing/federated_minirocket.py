"""The rocket task's targets for a federation: one MiniRocket transform and one PCA for every client, fit from
statistics the clients send, never their windows.

A client fitting MiniRocket and the PCA on its own few hundred windows (data_processing/minirocket.py) would
give each client another basis, and averaging heads that regress different bases is meaningless. Here the
server fixes both, in three exchanges (the socket server and the Flower ServerApp run the same stages):

  biases   each client fits MiniRocket (the federation's seed) on its windows and sends its biases; the
           kernels, dilations and channels depend only on the seed and the window shape, so they agree; the
           server takes the median of each bias over the clients (one client cannot move it far)
  sketch   the server sends the biases and a random Gaussian matrix P (features x rank); each client sends its
           features' sum and X^T (X P) (the centred Gram matrix's product is formed on the server: the sums
           give the mean); the server orthonormalises G P
  rotate   the same with P = that basis Q; the server diagonalises Q^T G Q (Rayleigh-Ritz): the first
           --rocket_dim directions and their variances are the PCA

Then every client projects its own features: (x - mean) @ basis / scale, the scale making the components'
mean variance 1 as minirocket_pca does. This is the randomised PCA of Halko et al. (2011) with one power
iteration, summed over clients; with rank >= the features' rank it is the exact PCA of the pooled features.
What a client reveals: its MiniRocket biases (quantiles of one window's convolutions), its features' mean and
their second moments along rank directions, as much about its data as a model update does, or more.
"""
import hashlib

import numpy as np

from data_processing.minirocket import new_minirocket

STAGES = ("biases", "sketch", "rotate")
OVERSAMPLING = 16  # random directions beyond --rocket_dim: the randomised PCA's accuracy margin


class RocketStatisticsError(ValueError):
    """A client's statistics (or the server's transform) that must be refused; the message says why."""


def fitted_minirocket(x, n_kernels, seed):
    """aeon's MiniRocket fit on the windows x (N, C, T) with `seed`."""
    transform = new_minirocket(n_kernels, seed, n_jobs=1)
    return transform.fit(np.asarray(x, dtype=np.float32))


def minirocket_layout(shape, n_kernels, seed):
    """(feature count, digest of the kernels' layout) of MiniRocket on windows of `shape` (C, T): what the
    server knows without data (the layout is fit on noise: it depends on the seed and the shape only)."""
    noise = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    parameters = fitted_minirocket(noise, n_kernels, seed).parameters
    return len(parameters[4]), layout_digest(parameters)


def layout_digest(parameters):
    digest = hashlib.sha256()
    for array in parameters[:4]:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def _check(name, value, shape, bound=None):
    if not isinstance(value, np.ndarray) or value.shape != shape or not np.isfinite(value).all():
        got = value.shape if isinstance(value, np.ndarray) else type(value).__name__
        raise RocketStatisticsError(f"{name} must be a finite array of shape {shape}, got {got}")
    if bound is not None and value.size and np.abs(value).max() > bound:
        raise RocketStatisticsError(f"{name} holds values beyond +-{bound:g}")
    return value


class ClientRocket:
    """A client's side: its windows' MiniRocket features under the federation's biases, its answers to the
    stages, and its targets once the server's transform arrives."""

    def __init__(self, x, n_kernels, seed, dim):
        self.x, self.dim = np.asarray(x, dtype=np.float32), dim
        self.transform = fitted_minirocket(self.x, n_kernels, seed)
        self.own_biases = self.transform.parameters[4].copy()
        self.num_features = len(self.own_biases)
        self._features = (None, None)  # (biases, features) of the last transform

    def features(self, biases):
        """(N, F) float32: MiniRocket's features of the client's windows under `biases`."""
        if self._features[0] is None or not np.array_equal(self._features[0], biases):
            self.transform.parameters = (*self.transform.parameters[:4], np.asarray(biases, dtype=np.float32))
            self._features = (biases.copy(), np.asarray(self.transform.transform(self.x), dtype=np.float32))
        return self._features[1]

    def answer(self, stage, request):
        """{name: array} answering the server's request {name: array} at `stage`."""
        if stage == "biases":
            return {"biases": self.own_biases}
        biases = _check("biases", request.get("biases"), (self.num_features,))
        probe = request.get("probe")
        if not isinstance(probe, np.ndarray) or probe.ndim != 2 or probe.shape[0] != self.num_features \
                or not 1 <= probe.shape[1] <= self.num_features or not np.isfinite(probe).all():
            raise RocketStatisticsError(f"the server's probe must be a finite ({self.num_features}, rank) array")
        x = self.features(biases).astype(np.float64)
        return {"sum": x.sum(0), "product": x.T @ (x @ probe.astype(np.float64))}

    def targets(self, transform):
        """(N, dim) float32: the rocket task's targets under the server's transform (checked_transform)."""
        x = self.features(transform["biases"]).astype(np.float64)
        return ((x - transform["mean"]) @ transform["basis"] / transform["scale"][0]).astype(np.float32)


class RocketPCA:
    """The server's side: what it sends at each stage, the checks of each answer, and the transform."""

    def __init__(self, shape, n_kernels, seed, dim):
        self.num_features, self.layout = minirocket_layout(shape, n_kernels, seed)
        self.dim, self.seed = dim, seed
        self.rank = min(dim + OVERSAMPLING, self.num_features)
        self.biases = self.basis = None
        self.probes = {}  # stage -> the matrix sent with it

    def request(self, stage):
        """{name: float32 array} the server sends with `stage`."""
        if stage == "biases":
            return {}
        if stage not in self.probes:  # made once: every client's answer is checked and combined against it
            probe = np.random.default_rng([self.seed, 1]).standard_normal((self.num_features, self.rank)) \
                if stage == "sketch" else self.basis
            self.probes[stage] = probe.astype(np.float32)
        return {"biases": self.biases, "probe": self.probes[stage]}

    def check_answer(self, stage, answer, count):
        """The answer of a client holding `count` windows, refused (RocketStatisticsError) unless it has the
        shapes and the range real statistics have: features are proportions in [0, 1], so each sum is within
        [0, count] and |X^T X p| within count * F * max|p|."""
        expected = {"biases"} if stage == "biases" else {"sum", "product"}
        if not isinstance(answer, dict) or set(answer) != expected:
            raise RocketStatisticsError(f"the {stage} answer must hold {sorted(expected)}")
        if stage == "biases":
            _check("biases", answer["biases"], (self.num_features,), 1e9)
            return
        _check("sum", answer["sum"], (self.num_features,), count)
        if (answer["sum"] < 0).any():
            raise RocketStatisticsError("sum holds negative values (MiniRocket's features are proportions)")
        probe = self.request(stage)["probe"]
        _check("product", answer["product"], (self.num_features, self.rank),
               count * self.num_features * float(np.abs(probe).max()) * (1 + 1e-5))

    def combine(self, stage, answers):
        """Fold the checked answers [(answer, count)] of `stage` into the fit."""
        if stage == "biases":
            self.biases = np.median(np.stack([a["biases"] for a, _ in answers]), 0).astype(np.float32)
            return
        total = sum(count for _, count in answers)
        mean = sum(a["sum"] for a, _ in answers) / total
        probe = self.request(stage)["probe"].astype(np.float64)
        gram_probe = sum(a["product"] for a, _ in answers) - total * np.outer(mean, mean @ probe)  # centred G P
        if stage == "sketch":
            self.basis = np.linalg.qr(gram_probe)[0]
            return
        variances, rotation = np.linalg.eigh((probe.T @ gram_probe + gram_probe.T @ probe) / 2)
        order = np.argsort(variances)[::-1]
        available = max(1, min(self.dim, total - 1, self.rank))
        variances = np.clip(variances[order][:available], 0, None) / total
        basis = probe @ rotation[:, order[:available]]
        basis *= np.sign(basis[np.abs(basis).argmax(0), range(available)])  # sklearn's sign rule: deterministic
        self.transform = {"biases": self.biases, "mean": mean.astype(np.float32),
                          "basis": np.pad(basis, ((0, 0), (0, self.dim - available))).astype(np.float32),
                          "scale": np.array([np.sqrt(max(variances.mean(), 1e-12))], dtype=np.float32)}
        self.total, self.available = total, available

    def checked_transform(self, transform):
        """A transform received by a client (or read from a checkpoint) with its shapes checked."""
        return checked_transform(transform, self.num_features, self.dim)


def checked_transform(transform, num_features, dim):
    """{biases, mean, basis, scale} float arrays of the right shapes, finite, the scale positive."""
    if not isinstance(transform, dict) or set(transform) != {"biases", "mean", "basis", "scale"}:
        raise RocketStatisticsError("the rocket transform must hold biases, mean, basis and scale")
    out = {name: np.asarray(transform[name], dtype=np.float64) for name in transform}
    for name, shape in (("biases", (num_features,)), ("mean", (num_features,)), ("basis", (num_features, dim)),
                        ("scale", (1,))):
        _check(name, out[name], shape)
    if not out["scale"][0] > 0:
        raise RocketStatisticsError("the rocket transform's scale must be positive")
    out["biases"] = out["biases"].astype(np.float32)
    return out


def transform_digest(transform):
    digest = hashlib.sha256()
    for name in sorted(transform):
        digest.update(np.ascontiguousarray(transform[name], dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]
