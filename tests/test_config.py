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
    titles = ["SSLConfig (common/pretrain_config.py)", "ScheduleConfig (common/pretrain_config.py)",
              "HARDataConfig (har_task/config.py)", "HARPretrainDataConfig (har_task/config.py)"]
    assert all(t in text for t in titles)
    assert all(f"--{f.name}" in text for f in dataclasses.fields(HARPretrainConfig))
    # each under the group that declares it, with the experiment's default
    section = text.split("ScheduleConfig (common/pretrain_config.py)")[1].split("HARDataConfig")[0]
    assert "--epochs" in section and "--lr" not in section and "(default: 60)" in section
    assert "--lr" in text.split("SSLConfig (common/pretrain_config.py)")[1]
    # the defaults the experiment's config.py changes are named
    epilog = " ".join(text.split("HARPretrainConfig (HAR_centralized/config.py) changes the defaults of")[1].split())
    assert epilog.startswith("--output_dir, --epochs, --pretrain_data, --pretrain_step.")


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


def test_a_composed_config_checks_each_group_once_in_order():
    import dataclasses as dc

    from common.config import Config, compose_config

    seen = []

    @dc.dataclass
    class Data(Config):
        rate: int = 50

        def check_values(self):
            seen.append("data")
            if self.rate < 1:
                raise UserError("--rate must be positive")

        def check_machine(self):
            seen.append("machine")

    @dc.dataclass
    class Schedule(Config):
        epochs: int = 3

        def check_values(self):
            seen.append("schedule")

    Entry = compose_config("Entry", __name__, (Schedule, Data), defaults={"epochs": 7})
    assert parse_config(Entry, []).epochs == 7 and Schedule().epochs == 3
    assert seen == ["schedule", "data", "machine"]  # groups in order, each once, then the machine
    with pytest.raises(UserError, match="--rate must be positive"):
        parse_config(Entry, ["--rate", "0"])


def test_a_field_is_declared_once_and_a_changed_default_must_exist():
    import dataclasses as dc

    from common.config import Config, compose_config

    @dc.dataclass
    class A(Config):
        epochs: int = 3

    @dc.dataclass
    class B(Config):
        epochs: int = 5

    with pytest.raises(TypeError, match="epochs is declared by A and B"):
        compose_config("Twice", __name__, (A, B))
    with pytest.raises(TypeError, match="declares epoch$"):
        compose_config("Typo", __name__, (A,), defaults={"epoch": 4})
