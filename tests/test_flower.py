"""The Flower backend: a 2-client FedAvg round over Flower's SuperLink/SuperNodes on 127.0.0.1."""
import json

from common.classification import load_pretrained_encoder
from HAR_federated.config import FederatedConfig
from HAR_federated.flower_app import run_flower


def test_two_clients_one_round_through_flower(tmp_path, har_cache):
    config = FederatedConfig(backend="flower", num_clients=2, rounds=1, local_epochs=1, encoder_width=4,
                             embedding_dim=8, n_variants=1, batch_size=256, output_dir=str(tmp_path),
                             experiment_name="flwr")
    config.validate()
    run_dir = run_flower(config, timeout_s=600)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["backend"] == "flower" and "1" in summary["train_metrics"]
    assert summary["train_metrics"]["1"]["loss-contrastive"] > 0
    model_args, _ = load_pretrained_encoder(run_dir / "encoder.pt")  # loadable by train_classifier.py
    assert model_args["embedding_dim"] == 8
