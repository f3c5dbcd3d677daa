"""The default recipe is written once (har_task/config.py, DEFAULT_RECIPE): the centralized and federated
configs, the study's chosen recipe and the shipped encoder's card all agree with it."""
import json

from common.config import config_to_dict, parse_config
from common.pretrain_config import with_trained_tasks
from common.pretrained import PRETRAINED_DIR
from HAR_centralized.config import HARPretrainConfig
from HAR_federated.config import FederatedConfig
from har_task import DEFAULT_RECIPE
from studies.har.manifest import DEFAULT, EXPERIMENTS, RECIPE, RECIPES


def trained(values, config_class):
    """The recipe's fields of a config's dict (JSON values), with the tasks it trains by name."""
    values = with_trained_tasks(json.loads(json.dumps(values)), config_class.DEFAULT_TASKS)
    return {k: values[k] for k in ("tasks", "rocket_dim", "pretrain_data", "pretrain_step")}


def test_the_centralized_defaults_are_the_recipe():
    defaults = HARPretrainConfig()
    by_flags = parse_config(HARPretrainConfig, list(DEFAULT_RECIPE.flags()))  # its flags change nothing trained
    as_trained = lambda c: with_trained_tasks(json.loads(json.dumps(config_to_dict(c))), c.DEFAULT_TASKS)  # noqa: E731
    assert as_trained(by_flags) == as_trained(defaults)
    assert trained(config_to_dict(defaults), HARPretrainConfig) == {
        "tasks": list(DEFAULT_RECIPE.tasks), "rocket_dim": DEFAULT_RECIPE.rocket_dim,
        "pretrain_data": DEFAULT_RECIPE.pretrain_data, "pretrain_step": DEFAULT_RECIPE.pretrain_step}
    assert defaults.epochs == DEFAULT_RECIPE.epochs


def test_the_federated_defaults_are_the_recipe_in_rounds():
    federated = FederatedConfig()
    assert trained(config_to_dict(federated), FederatedConfig) == trained(config_to_dict(HARPretrainConfig()),
                                                                            HARPretrainConfig)
    assert federated.rounds * federated.local_epochs * federated.client_fraction == DEFAULT_RECIPE.epochs


def test_the_study_chose_the_recipe_and_pretrains_the_default_with_it():
    assert RECIPE.chosen == DEFAULT_RECIPE.name and RECIPES[RECIPE.chosen] == DEFAULT_RECIPE.flags()
    default = next(e for e in EXPERIMENTS if e.id == DEFAULT)
    assert default.pretrain == ()  # the default experiment pretrains with the config's defaults: the recipe


def test_the_shipped_card_is_the_recipe():
    card = json.loads((PRETRAINED_DIR / "har_mtl.json").read_text())
    assert trained(card["recipe"], HARPretrainConfig) == trained(config_to_dict(HARPretrainConfig()),
                                                                 HARPretrainConfig)
    assert card["recipe"]["epochs"] == DEFAULT_RECIPE.epochs
