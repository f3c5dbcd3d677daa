"""data_processing/federated_minirocket.py: the rocket task's shared MiniRocket PCA across a fleet."""
import dataclasses
import json
import time

import numpy as np
import pytest
import torch

from common.federated import (LocalTrainer)
from data_processing.pretext import PretrainData
from HAR_federated.client import FederatedClient
from HAR_federated.run import run_local
from HAR_federated.server import FederatedServer
from tests.federated_helpers import cache_in_tmp  # noqa: F401 (autouse: pretext caches in tmp_path)
from tests.federated_helpers import KEY, quiet, sine_windows, Stop, tiny_config, tiny_datasets


def test_the_federated_rocket_pca_is_the_pca_of_the_pooled_features():
    from data_processing.federated_minirocket import (STAGES, ClientRocket, RocketPCA, RocketStatisticsError,
                                                      checked_transform, layout_digest)
    clients = [ClientRocket(sine_windows(30 + 5 * i, i), 84, 7, 68) for i in range(3)]
    server = RocketPCA((3, 128), 84, 7, 68)  # rank 68 + 16 = all 84 features: the PCA is exact
    assert server.layout == layout_digest(clients[0].transform.parameters)  # kernels fixed by the seed alone
    for stage in STAGES:
        request, answers = server.request(stage), []
        for client in clients:
            answer = client.answer(stage, request)
            server.check_answer(stage, answer, len(client.x))
            answers.append((answer, len(client.x)))
        server.combine(stage, answers)
    # one client's wild biases do not move the median
    assert np.array_equal(server.biases, np.median([c.own_biases for c in clients], 0))
    transform = checked_transform(server.transform, 84, 68)
    targets = np.concatenate([c.targets(transform) for c in clients])
    pooled = np.concatenate([c.features(server.biases) for c in clients]).astype(np.float64)
    centred = pooled - pooled.mean(0)
    reference = centred @ np.linalg.svd(centred, full_matrices=False)[2][:5].T
    reference /= np.sqrt((centred @ np.linalg.svd(centred, full_matrices=False)[2][:68].T).var(0).mean())
    for j in range(5):  # the leading components, up to their sign
        assert abs(np.corrcoef(targets[:, j], reference[:, j])[0, 1]) > 0.9999
        assert np.allclose(np.abs(targets[:, j]), np.abs(reference[:, j]), atol=1e-3)
    assert targets.var(0).mean() == pytest.approx(1.0, rel=1e-4)
    # statistics real data cannot have are refused, and so is a damaged transform
    good = clients[0].answer("rotate", server.request("rotate"))
    for bad, reason in (({**good, "sum": good["sum"] + 1e6}, "beyond"), ({**good, "sum": -good["sum"] - 1}, "negative"),
                        ({"sum": good["sum"]}, "must hold"), ({**good, "product": good["product"][:, :3]}, "shape"),
                        ({**good, "product": np.full_like(good["product"], np.nan)}, "finite")):
        with pytest.raises(RocketStatisticsError, match=reason):
            server.check_answer("rotate", bad, len(clients[0].x))
    with pytest.raises(RocketStatisticsError, match="scale"):
        checked_transform({**server.transform, "scale": np.zeros(1)}, 84, 68)


def test_a_federated_rocket_run_shares_one_transform_and_resumes_with_it(tmp_path, monkeypatch):
    config = tiny_config(tmp_path, rounds=2, tasks=("rocket",), rocket_kernels=84, rocket_dim=8)

    def kill_after_first_round(round_index):
        raise Stop

    with pytest.raises(Stop):
        run_local(config, tiny_datasets(), KEY, on_round_end=kill_after_first_round, log=quiet)
    saved = torch.load(config.run_dir() / "checkpoint.pt", weights_only=True)
    assert saved["rocket_transform"]["basis"].shape == (84, 8)
    digest = json.loads(saved["rocket_setup_json"])["digest"]
    monkeypatch.setattr(FederatedServer, "fit_rocket", lambda self: pytest.fail("a resumed run refits the PCA"))
    used = []
    original = LocalTrainer.use_targets
    monkeypatch.setattr(LocalTrainer, "use_targets",
                        lambda self, targets: used.append(targets) or original(self, targets))
    # min_clients 3: the resumed round waits for the whole fleet (with 2, a loaded CI may start without one)
    server, history = run_local(dataclasses.replace(config, resume=1, min_clients=3), tiny_datasets(), KEY, log=quiet)
    assert [r["round"] for r in history] == [1, 2] and history[1]["answered"] == 3
    assert server.rocket_setup["digest"] == digest and server.rocket_setup["clients"]["rotate"] == 3
    assert len(used) == 3 and all(t["rocket"].shape == (32, 8) for t in used)  # each client: its windows' targets
    summary = json.loads((config.run_dir() / "summary.json").read_text())
    assert summary["rocket_setup"]["components"] == 8


def test_the_rocket_pca_waits_for_the_fleet_so_a_late_client_is_in_it(tmp_path, monkeypatch):
    original = FederatedClient.run

    def late(self):
        if self.client_id == 2:
            time.sleep(2.0)  # the other two are connected: min_clients would let the PCA start without it
        return original(self)

    monkeypatch.setattr(FederatedClient, "run", late)
    config = tiny_config(tmp_path, rounds=1, tasks=("rocket",), rocket_kernels=84, rocket_dim=8)
    server, history = run_local(config, tiny_datasets(), KEY, log=quiet)
    assert server.rocket_setup["clients"] == {"biases": 3, "sketch": 3, "rotate": 3} and history[0]["answered"] == 3


def test_an_insider_poisoning_the_rocket_statistics_is_dropped_and_the_run_completes(tmp_path, monkeypatch):
    from data_processing.federated_minirocket import ClientRocket
    honest = ClientRocket.answer

    def answer(self, stage, request):
        out = honest(self, stage, request)
        return {**out, "sum": out["sum"] * 1e6} if len(self.x) == 33 and "sum" in out else out

    monkeypatch.setattr(ClientRocket, "answer", answer)
    datasets = tiny_datasets()
    datasets[2] = PretrainData(np.concatenate([datasets[2].x, datasets[2].x[:1]]),
                               np.concatenate([datasets[2].features, datasets[2].features[:1]]), datasets[2].spec, {})
    config = tiny_config(tmp_path, tasks=("rocket",), rocket_kernels=84, rocket_dim=8)
    server, history = run_local(config, datasets, KEY, log=quiet)
    assert server.rocket_setup["clients"] == {"biases": 3, "sketch": 2, "rotate": 2}
    assert any("client 2" in r and "sum holds values beyond" in r for r in server.rejected)
    assert len(history) == 2 and all(r["answered"] >= 2 for r in history)  # the honest two trained every round
