import json

import pytest

from common.config import config_from_dict, config_to_dict, parse_config
from ground.errors import UserError
from HAR_centralized.config import HARPretrainConfig


def test_every_field_is_a_flag_with_types():
    config = parse_config(HARPretrainConfig, ["--model_heads", "1", "0", "1", "1", "--use_weighted_loss", "1",
                                              "--weighting", "dwa", "--epochs", "3", "--lr", "0.01"])
    assert config.model_heads == (1, 0, 1, 1) and config.weighting == "dwa" and config.epochs == 3
    assert config.lr == 0.01 and config.run_name() == "mtl_seed42_heads1011"


def test_help_shows_the_whole_config_grouped_by_where_each_part_is_declared():
    import dataclasses

    from common.config import build_parser
    text = build_parser(HARPretrainConfig).format_help()
    titles = ["HARPretrainConfig (HAR_centralized/config.py)", "HARDataConfig (common/har_task.py)",
              "SSLConfig (common/pretrain_config.py)", "PretrainConfig (common/pretrain_config.py)"]
    assert all(t in text for t in titles)
    assert all(f"--{f.name}" in text for f in dataclasses.fields(HARPretrainConfig))
    # each under the class that declares it (output_dir: re-declared with HAR's default)
    section = text.split("HARPretrainConfig (HAR_centralized/config.py)")[1].split("HARPretrainDataConfig")[0]
    assert "--output_dir" in section and "--lr" not in section
    assert "--lr" in text.split("SSLConfig (common/pretrain_config.py)")[1]


@pytest.mark.parametrize("argv, message", [
    (["--bogus", "1"], "unrecognized arguments"),
    (["--epochs", "ten"], "expected an integer"),
    (["--model_heads", "1", "0", "1"], "four 0/1 values"),
    (["--model_heads", "1", "2", "1", "1"], "four 0/1 values"),
    (["--model_heads", "0", "0", "0", "0"], "every task off"),
    (["--weighting", "magic"], "invalid choice"),
    (["--epochs", "0"], "at least 1"),
    (["--mask_ratio", "1.5"], "mask_ratio"),
])
def test_bad_flags_are_one_clear_error(argv, message):
    with pytest.raises(UserError, match=message):
        parse_config(HARPretrainConfig, argv)


def test_saved_config_round_trips():
    config = parse_config(HARPretrainConfig, ["--model_heads", "0", "1", "1", "0"])
    values = json.loads(json.dumps(config_to_dict(config)))
    assert config_from_dict(HARPretrainConfig, values) == config
    with pytest.raises(UserError, match="does not know"):
        config_from_dict(HARPretrainConfig, {**values, "old_field": 1})


def test_each_config_class_checks_its_own_fields_along_the_hierarchy():
    import dataclasses as dc

    from common.config import Config

    seen = []

    @dc.dataclass
    class Data(Config):
        rate: int = 50

        def check_values(self):
            seen.append("data")
            if self.rate < 1:
                raise UserError("--rate must be positive")

    @dc.dataclass
    class Schedule(Config):
        epochs: int = 3

        def check_values(self):
            seen.append("schedule")

    @dc.dataclass
    class Entry(Data, Schedule):
        def check_machine(self):
            seen.append("machine")

    parse_config(Entry, [])
    assert seen == ["schedule", "data", "machine"]  # base classes first, each once, then the machine
    with pytest.raises(UserError, match="--rate must be positive"):
        parse_config(Entry, ["--rate", "0"])
