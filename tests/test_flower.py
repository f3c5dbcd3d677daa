"""The Flower backend: FedAvg rounds over Flower's SuperLink/SuperNodes on 127.0.0.1, plaintext and TLS with
node authentication; the ServerApp's update checks; the run config written as TOML."""
import json
import subprocess
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch


from common.classification import load_pretrained_encoder
from common.config import parse_config
from ground.errors import UserError
from HAR_federated.config import FederatedConfig
from HAR_federated.defence import defend_round
from HAR_federated.flower_app import DefendedFedAvg, checked_replies
from HAR_federated.flower_launch import run_flower, toml_string

REPO = Path(__file__).resolve().parents[1]

TINY = dict(backend="flower", num_clients=2, rounds=1, local_epochs=1, encoder_width=4, embedding_dim=8, n_variants=1,
            batch_size=256, experiment_name="flwr", pretrain_data="labelled",
            tasks=("augmentation", "reconstruction", "contrastive", "features"))


def test_two_clients_one_round_through_flower(tmp_path, har_cache):
    # with the rocket task: its shared MiniRocket PCA is fit from both nodes' statistics before round 1
    config = FederatedConfig(**{**TINY, "tasks": ("contrastive", "rocket")}, output_dir=str(tmp_path),
                             rocket_kernels=84, rocket_dim=8)
    config.validate()
    run_dir = run_flower(config, timeout_s=600)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["backend"] == "flower" and "1" in summary["train_metrics"]
    assert summary["train_metrics"]["1"]["loss-contrastive"] > 0 and summary["rejected"] == []
    assert summary["train_metrics"]["1"]["loss-rocket"] > 0
    assert summary["rocket_setup"]["clients"] == {"biases": 2, "sketch": 2, "rotate": 2}
    model_args, _ = load_pretrained_encoder(run_dir / "encoder.pt")  # loadable by train_classifier.py
    assert model_args["embedding_dim"] == 8


def test_flower_over_tls_with_registered_nodes(tmp_path, har_cache):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    config = FederatedConfig(**TINY, output_dir=str(tmp_path / "runs"), tls_cert=str(cert), tls_key=str(key),
                             tls_ca=str(cert), flower_node_auth=1)
    config.validate()
    run_dir = run_flower(config, timeout_s=600)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["train_metrics"]["1"]["loss-contrastive"] > 0


class Content(dict):
    """A reply's RecordDict as the ServerApp reads it: by key, and its metric records for Flower's averaging."""

    @property
    def metric_records(self):
        return {"metrics": self["metrics"]}


def reply(arrays, count, node, **losses):
    """A SuperNode's training reply as the ServerApp sees it."""
    record = SimpleNamespace(to_torch_state_dict=lambda: arrays)
    metrics = {"num-examples": count, **{f"loss-{k}": v for k, v in losses.items()}}
    return SimpleNamespace(has_error=lambda: False, content=Content(arrays=record, metrics=metrics),
                           metadata=SimpleNamespace(src_node_id=node))


def test_the_server_app_drops_updates_that_fail_the_checks():
    template = {"w": torch.zeros(2, 3), "n": torch.tensor(0)}
    honest = reply({"w": torch.ones(2, 3), "n": torch.tensor(3)}, 10, 1)
    replies = [honest, reply({"w": torch.full((2, 3), float("nan")), "n": torch.tensor(3)}, 10, 2),
               reply({"w": torch.ones(3, 2), "n": torch.tensor(3)}, 10, 3),
               reply({"w": torch.ones(2, 3), "n": torch.tensor(3)}, 1e300, 4),
               reply({"w": torch.ones(2, 3)}, 10, 5),
               reply({"w": torch.ones(2, 3), "n": torch.tensor(3)}, 10**12, 6),
               reply({"w": torch.ones(2, 3), "n": torch.tensor(3)}, 10, 7, contrastive=float("inf"))]
    rejected = []
    assert checked_replies(replies, template, rejected, max_examples=10**6, max_loss=1e6) == [honest]
    assert len(rejected) == 6 and "non-finite" in rejected[0] and "num-examples" in rejected[2]
    assert "num-examples 1000000000000" in rejected[4] and "losses" in rejected[5]


def defended(config_overrides=None, template=None):
    config = FederatedConfig(**{**TINY, **(config_overrides or {})})
    config.validate()
    template = template or {"w": torch.zeros(50), "bn.running_var": torch.ones(4),
                            "bn.num_batches_tracked": torch.tensor(0)}
    return DefendedFedAvg(template, config, min_train_nodes=config.min_clients), template


def honest_update(template, seed):
    generator = torch.Generator().manual_seed(seed)
    return {"w": template["w"] + 0.01 * torch.randn(50, generator=generator),
            "bn.running_var": torch.full((4,), 1.2), "bn.num_batches_tracked": torch.tensor(5)}


def test_a_poisoned_node_is_refused_and_the_round_is_the_honest_nodes_own():
    """The node of the attack campaign: every float at 9999 (under --max_abs_weight) with num-examples 10^12,
    then the same within the count cap: the global model is the honest nodes' average, bit for bit."""
    strategy, template = defended({"num_clients": 3})
    honest = [honest_update(template, seed) for seed in (1, 2)]
    expected, _ = strategy.aggregate_train(1, [reply(honest[0], 100, 1, contrastive=1.0),
                                               reply(honest[1], 100, 2, contrastive=2.0)])
    poisoned = {k: torch.full_like(v, 9999.0) if v.is_floating_point() else v for k, v in template.items()}
    for count in (10**12, 100):
        strategy, _ = defended({"num_clients": 3})
        got, metrics = strategy.aggregate_train(1, [reply(honest[0], 100, 1, contrastive=1.0),
                                                    reply(honest[1], 100, 2, contrastive=2.0),
                                                    reply(poisoned, count, 3, contrastive=1.0)])
        assert any("node 3" in reason for reason in strategy.rejected), count
        for key, value in expected.to_torch_state_dict().items():
            assert torch.equal(got.to_torch_state_dict()[key], value), (count, key)
        assert metrics["loss-contrastive"] == 1.5  # the honest nodes' losses, weighted by their counts


def test_the_flower_server_app_runs_the_socket_servers_defence():
    template = {"w": torch.zeros(50), "bn.running_var": torch.ones(4), "bn.num_batches_tracked": torch.tensor(0)}
    honest = [honest_update(template, seed) for seed in range(5)]
    answers = {node: (state, 10) for node, state in enumerate(honest)}
    for overrides in ({"aggregation": "median"}, {"aggregation": "trimmed_mean", "min_clients": 3},
                      {"update_clip": 0.05}, {"update_norm_factor": 3.0}):
        config = FederatedConfig(**{**TINY, "num_clients": 6, **overrides})
        config.validate()
        strategy = DefendedFedAvg(template, config, min_train_nodes=config.min_clients)
        got, _ = strategy.aggregate_train(1, [reply(state, 10, node) for node, state in enumerate(honest)])
        want = defend_round(template, answers, config, template).state
        for key in template:
            assert torch.equal(got.to_torch_state_dict()[key], want[key]), (overrides, key)
    # an echo of the global model is no training step; with only one real update left the round keeps the global
    strategy, _ = defended({"num_clients": 2})
    got, metrics = strategy.aggregate_train(1, [reply(honest[0], 10, 1), reply(dict(template), 10, 2)])
    assert got is None and metrics is None and strategy.failed_rounds == [1]
    assert any("node 2" in r and "not a training step" in r for r in strategy.rejected)


def test_flags_the_flower_backend_cannot_honour_are_refused():
    for flag, value in (("max_round_retries", "5"), ("round_grace_s", "1"), ("client_keys", "keys.json"),
                        ("max_frame_mb", "8"), ("role", "server")):
        with pytest.raises(UserError, match="--backend flower cannot honour"):
            parse_config(FederatedConfig, ["--backend", "flower", f"--{flag}", value])
    # what the shared defence honours goes through
    parse_config(FederatedConfig, ["--backend", "flower", "--aggregation", "median", "--update_clip", "1.0",
                                   "--max_examples", "1200", "--update_norm_factor", "5"])


POISONED_APP = """
import torch
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from HAR_federated import flower_app

client_app = ClientApp()
MODE = {mode!r}


@client_app.train()
def train(msg, context):
    reply = flower_app.client_train(msg, context)
    if int(context.node_config["partition-id"]) != 2:
        return reply
    if MODE == "absent":
        raise RuntimeError("this node is down")
    state = reply.content["arrays"].to_torch_state_dict()
    poisoned = {{k: torch.full_like(v, 9999.0) if v.is_floating_point() else v for k, v in state.items()}}
    metrics = MetricRecord({{**dict(reply.content["metrics"]), "num-examples": 10**12 if MODE == "poison" else 100}})
    return Message(content=RecordDict({{"arrays": ArrayRecord(poisoned), "metrics": metrics}}), reply_to=msg)
"""


def flower_app_folder(folder, mode):
    """A copy of HAR_federated/flower/ whose ClientApp on node 2 is down (mode "absent") or sends every float
    at 9999 declaring 10^12 examples ("poison") or 100 ("poison_small_count")."""
    folder.mkdir()
    text = (REPO / "HAR_federated" / "flower" / "pyproject.toml").read_text()
    (folder / "pyproject.toml").write_text(text.replace('clientapp = "HAR_federated.flower_app:client_app"',
                                                        'clientapp = "poisoned_app:client_app"'))
    (folder / "poisoned_app.py").write_text(POISONED_APP.format(mode=mode))
    return folder


def test_a_poisoned_flower_node_is_refused_and_the_encoder_is_the_honest_run_s(tmp_path, har_cache):
    """The campaign's node: every float at 9999 with num-examples 10^12 (within the count cap: the strategy's
    test above). Its updates are refused every round, honest updates never, and the encoder is the run's
    without it (node 2 down), bit for bit."""
    runs = {}
    for mode in ("absent", "poison"):
        config = FederatedConfig(**{**TINY, "num_clients": 3, "min_clients": 2, "rounds": 2},
                                 output_dir=str(tmp_path / mode))
        config.validate()
        runs[mode] = run_flower(config, timeout_s=600, app_dir=flower_app_folder(tmp_path / f"app_{mode}", mode))
    _, expected = load_pretrained_encoder(runs["absent"] / "encoder.pt")
    for mode in ("poison",):
        summary = json.loads((runs[mode] / "summary.json").read_text())
        refused = [r for r in summary["rejected"] if "node" in r]
        assert len(refused) == 2 and summary["failed_rounds"] == [], (mode, summary["rejected"])
        _, got = load_pretrained_encoder(runs[mode] / "encoder.pt")
        for key in expected:
            assert torch.equal(got[key], expected[key]), (mode, key)


def test_the_run_config_is_written_as_toml_whatever_the_strings_hold():
    text = json.dumps({"experiment_name": "it's \"quoted\" \\ and\nnew line \x7f é"})
    assert tomllib.loads(f"config-json = {toml_string(text)}\n")["config-json"] == text
