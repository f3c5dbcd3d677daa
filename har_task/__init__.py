"""HAR's task: its config field groups and default recipe (har_task/config.py) and the object that holds its
data once (har_task/task.py, HARTask). HAR_centralized/ and HAR_federated/ build on it; common/ knows no
dataset."""
from har_task.config import (DEFAULT_RECIPE, HARClassifierDataConfig, HARDataConfig,  # noqa: F401 (the API)
                             HARPretrainDataConfig, Recipe)
from har_task.task import HARTask  # noqa: F401 (the package's API)
