"""The Flower backend: FedAvg rounds over Flower's SuperLink/SuperNodes on 127.0.0.1, plaintext and TLS with
node authentication; the ServerApp's update checks; the run config written as TOML."""
import json
import subprocess
import tomllib
from types import SimpleNamespace

import torch

from common.classification import load_pretrained_encoder
from HAR_federated.config import FederatedConfig
from HAR_federated.flower_app import checked_replies
from HAR_federated.flower_launch import run_flower, toml_string

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


def test_the_server_app_drops_updates_that_fail_the_checks():
    template = {"w": torch.zeros(2, 3), "n": torch.tensor(0)}

    def reply(arrays, count, node):
        record = SimpleNamespace(to_torch_state_dict=lambda: arrays)
        return SimpleNamespace(has_error=lambda: False, content={"arrays": record, "metrics": {"num-examples": count}},
                               metadata=SimpleNamespace(src_node_id=node))

    honest = reply({"w": torch.ones(2, 3), "n": torch.tensor(3)}, 10, 1)
    replies = [honest, reply({"w": torch.full((2, 3), float("nan")), "n": torch.tensor(3)}, 10, 2),
               reply({"w": torch.ones(3, 2), "n": torch.tensor(3)}, 10, 3),
               reply({"w": torch.ones(2, 3), "n": torch.tensor(3)}, 1e300, 4),
               reply({"w": torch.ones(2, 3)}, 10, 5)]
    rejected = []
    assert checked_replies(replies, template, rejected) == [honest]
    assert len(rejected) == 4 and "non-finite" in rejected[0] and "num-examples" in rejected[2]


def test_the_run_config_is_written_as_toml_whatever_the_strings_hold():
    text = json.dumps({"experiment_name": "it's \"quoted\" \\ and\nnew line \x7f é"})
    assert tomllib.loads(f"config-json = {toml_string(text)}\n")["config-json"] == text
