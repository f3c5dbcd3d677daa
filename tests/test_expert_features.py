import numpy as np
import pytest

from data_processing import expert_features as ef

T = 128


def _windows(body_acc=None, gyro=None, gravity=(0.0, 0.0, 1.0), n=1):
    body_acc = np.zeros((n, 3, T)) if body_acc is None else body_acc
    gyro = np.zeros((n, 3, T)) if gyro is None else gyro
    total = body_acc + np.asarray(gravity)[None, :, None]
    return np.concatenate([body_acc, gyro, total], axis=1)


def _feature(values, names, name):
    return values[:, names.index(name)]


def test_names_and_order_match_official_features_txt():
    _, names = ef.compute_expert_features(np.random.default_rng(0).normal(size=(2, 9, T)))
    assert names == ef.official_feature_names()
    # 42 bandsEnergy names stand three times each in the official list
    assert len(names) == 561 and len(set(names)) == 561 - 2 * 42


def test_sine_dominant_frequency_and_energy():
    t = np.arange(T) / ef.SAMPLE_RATE_HZ
    k = 10  # an exact FFT bin: 10 * 50 / 128 Hz
    body = np.zeros((1, 3, T))
    body[0, 0] = np.sin(2 * np.pi * k * ef.SAMPLE_RATE_HZ / T * t)
    values, names = ef.compute_expert_features(_windows(body))
    assert _feature(values, names, "fBodyAcc-maxInds-X")[0] == pytest.approx(k * 50 / 128)
    assert _feature(values, names, "tBodyAcc-energy()-X")[0] == pytest.approx(0.5, rel=1e-6)
    assert _feature(values, names, "tBodyAcc-mean()-X")[0] == pytest.approx(0.0, abs=1e-9)
    # all spectral energy sits in the band holding bin 10 (bins 9..16, 1-based)
    band = [n for n in names if n.startswith("fBodyAcc-bandsEnergy()")][:8]
    energies = np.array([_feature(values, names, n)[0] for n in band])
    assert energies.argmax() == 1 and energies[1] / energies.sum() > 0.999


def test_constant_signal_has_zero_spread_and_gravity_angles():
    values, names = ef.compute_expert_features(_windows(gravity=(1.0, 0.0, 0.0)))
    for name in ("tGravityAcc-std()-X", "tGravityAcc-mad()-X", "tGravityAcc-iqr()-X", "tBodyAcc-std()-Y"):
        assert _feature(values, names, name)[0] == pytest.approx(0.0, abs=1e-12)
    assert _feature(values, names, "tGravityAcc-mean()-X")[0] == pytest.approx(1.0)
    assert _feature(values, names, "angle(X,gravityMean)")[0] == pytest.approx(0.0, abs=1e-6)
    assert _feature(values, names, "angle(Y,gravityMean)")[0] == pytest.approx(np.pi / 2)
    assert _feature(values, names, "tGravityAccMag-mean()")[0] == pytest.approx(1.0)


def test_burg_recovers_known_autoregression():
    rng = np.random.default_rng(1)
    n, a1, a2 = 20000, -1.2, 0.5  # x[t] - 1.2 x[t-1] + 0.5 x[t-2] = e[t]
    x = np.zeros(n)
    e = rng.normal(size=n)
    for t in range(2, n):
        x[t] = -a1 * x[t - 1] - a2 * x[t - 2] + e[t]
    coeffs = ef.burg_ar(x[None], order=4)[0]
    np.testing.assert_allclose(coeffs, [a1, a2, 0, 0], atol=0.03)


def test_correlation_entropy_and_jerk():
    rng = np.random.default_rng(2)
    body = rng.normal(size=(1, 3, T))
    body[0, 1] = 2 * body[0, 0] + 1  # Y a linear function of X
    body[0, 2] = -body[0, 0]
    values, names = ef.compute_expert_features(_windows(body))
    assert _feature(values, names, "tBodyAcc-correlation()-X,Y")[0] == pytest.approx(1.0)
    assert _feature(values, names, "tBodyAcc-correlation()-X,Z")[0] == pytest.approx(-1.0)
    # a uniform ramp fills the 16 histogram bins evenly: entropy log(16)
    assert ef.histogram_entropy(np.linspace(0, 1, 128)[None])[0] == pytest.approx(np.log(16))
    ramp = np.arange(T, dtype=float)[None, None]
    np.testing.assert_allclose(ef.jerk(ramp), ef.SAMPLE_RATE_HZ)


def test_scaling_maps_train_bounds_to_minus_one_one():
    train = np.array([[0.0, 5.0], [2.0, 5.0], [1.0, 5.0]])
    low, high = ef.fit_scaling(train)
    scaled = ef.apply_scaling(train, low, high)
    np.testing.assert_allclose(scaled[:, 0], [-1, 1, 0])
    assert np.isfinite(scaled).all()  # a constant feature does not divide by zero


def test_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"\(N, 9, T\)"):
        ef.compute_expert_features(np.zeros((2, 6, T)))
