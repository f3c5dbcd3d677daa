"""HAR_federated/config.py: flags checked at start-up, none ignored."""

import pytest
import torch

from common.config import parse_config
from ground.errors import UserError
from common.federated import (LocalTrainer, aggregate, trimmed_count)
from HAR_federated import protocol
from HAR_federated.config import FederatedConfig
from HAR_federated.protocol import ProtocolError
from tests.federated_helpers import cache_in_tmp  # noqa: F401 (autouse: pretext caches in tmp_path)
from tests.federated_helpers import tiny_config, tiny_datasets


def test_the_federated_config_has_no_flag_it_ignores(tmp_path):
    fields = set(FederatedConfig.__dataclass_fields__)
    assert not {"epochs", "warmup_epochs"} & fields  # the schedule is rounds x local epochs
    with pytest.raises(UserError, match="unrecognized arguments: --epochs"):
        parse_config(FederatedConfig, ["--epochs", "3"])
    # device and precision reach the clients' trainers
    client = LocalTrainer(tiny_config(tmp_path, precision="bf16"), tiny_datasets(1)[0], 0)
    assert client.device.type == "cpu" and client.trainer.precision == "bf16"
    # the teacher's answers on each client's own views would differ from client to client: centralized only
    with pytest.raises(UserError, match="rocket_views is centralized only"):
        parse_config(FederatedConfig, ["--tasks", "rocket_views"])
    # one shared corpus streamed to every process is not a federation's data
    with pytest.raises(UserError, match="--pretrain_corpus streams one corpus .* federated clients keep"):
        parse_config(FederatedConfig, ["--pretrain_corpus", str(tmp_path)])


def test_trimmed_mean_trims_at_least_one_client_or_is_refused(tmp_path):
    assert trimmed_count(0.2, 4) == 1 and trimmed_count(0.2, 5) == 1 and trimmed_count(0.25, 8) == 2
    with pytest.raises(ValueError, match="trims no client"):
        trimmed_count(0.2, 2)
    assert trimmed_count(0.4, 8) == 3  # ceil(3.2) = 4 would leave none: capped so that one value is left
    values = [{"w": torch.tensor([float(v)])} for v in (1, 2, 3, 100)]
    assert float(aggregate(values, [1] * 4, "trimmed_mean", 0.2)["w"]) == 2.5  # 1 and 100 trimmed
    with pytest.raises(UserError, match="trimmed_mean .* over 2 clients"):
        tiny_config(tmp_path, aggregation="trimmed_mean", min_clients=2)
    tiny_config(tmp_path, aggregation="trimmed_mean", min_clients=3)


def test_key_is_required_for_remote_roles(tmp_path, monkeypatch):
    monkeypatch.delenv(protocol.KEY_ENV, raising=False)
    with pytest.raises(ProtocolError, match="shared key"):
        protocol.load_key("")
    key_file = tmp_path / "key"
    key_file.write_text("s" * 40)
    assert protocol.load_key(str(key_file)) == b"s" * 40
