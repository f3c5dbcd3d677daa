"""Expert-feature regression: predict the clean input's expert features (UCI HAR's 561, or the image
descriptors) from its embedding (MSE). The targets come with the dataset: nothing to make or store."""
import torch.nn.functional as F

from common.heads import build_mlp
from common.tasks.base import PretextTask, register_task


@register_task
class FeatureRegressionTask(PretextTask):
    name = "features"
    inputs = ("x",)
    loss_label = "MSE"
    reads_features = True

    def __init__(self, context):
        super().__init__(context)
        self.head = build_mlp(context.embedding_dim, [context.config.features_hidden], context.feature_dim)

    def forward(self, embeddings, batch):
        return F.mse_loss(self.head(embeddings["x"]), batch["features"])
