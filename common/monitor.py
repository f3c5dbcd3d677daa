"""The training monitor: is the representation getting better while pretraining runs?

Every --monitor_every epochs the encoder embeds a fixed labelled subset of the train subjects' windows and
the validation subjects' windows; a kNN classifier (cosine similarity, k neighbours, votes weighted by
exp(similarity / 0.07) as in DINO and solo-learn) and a logistic probe fit on the former are scored on the
latter (macro-F1). The test subjects are never looked at. The monitor draws no random numbers from torch
and leaves the encoder's weights and batch-norm statistics alone, so a run's weights are the same with it
on or off. --tensorboard 1 writes every metrics row as scalars too.
"""
import importlib.util
import time

import numpy as np
import torch
import torch.nn.functional as F

from common.encoders import embed
from ground.errors import UserError
from common.evaluation import fit_logistic, logistic_predictor, scores
from data_processing.inputs import stratified_subset

KNN_TEMPERATURE = 0.07


def knn_predict(train_embeddings, train_y, embeddings, k=20, batch=1024):
    """Labels of `embeddings` by a similarity-weighted vote of their k nearest (cosine) train embeddings."""
    train = F.normalize(torch.as_tensor(train_embeddings, dtype=torch.float32), dim=1)
    labels = torch.as_tensor(train_y, dtype=torch.long)
    num_classes, k = int(labels.max()) + 1, min(k, len(labels))
    predictions = []
    for start in range(0, len(embeddings), batch):
        query = F.normalize(torch.as_tensor(embeddings[start : start + batch], dtype=torch.float32), dim=1)
        similarity, index = (query @ train.T).topk(k, dim=1)  # (B, k)
        votes = torch.zeros(len(query), num_classes).scatter_add_(1, labels[index],
                                                                  (similarity / KNN_TEMPERATURE).exp())
        predictions.append(votes.argmax(1))
    return torch.cat(predictions).numpy()


class ProbeMonitor:
    """Scores an encoder by kNN and logistic probes: fit on `probe.train_*`, macro-F1 on `probe.val_*`."""

    def __init__(self, probe, k=20, max_train=2000, seed=0):
        # a fixed stratified subset bounds the cost: embedding and fitting stay a small share of an epoch
        fraction = min(1.0, max_train / len(probe.train_y))
        keep = stratified_subset(probe.train_y, fraction, seed) if fraction < 1 else np.arange(len(probe.train_y))
        self.train_x, self.train_y = probe.train_x[keep], probe.train_y[keep]
        self.val_x, self.val_y = probe.val_x, probe.val_y
        self.k, self.seed = k, seed

    def __call__(self, encoder, device="cpu", precision="fp32"):
        """{"monitor/knn_f1", "monitor/logistic_f1", "monitor/seconds"} of the encoder as it is now."""
        start, was_training = time.time(), encoder.training
        with torch.no_grad():
            train = embed(encoder, self.train_x, device=device, precision=precision).numpy()
            val = embed(encoder, self.val_x, device=device, precision=precision).numpy()
        encoder.train(was_training)
        if not (np.isfinite(train).all() and np.isfinite(val).all()):
            return {"monitor/knn_f1": float("nan"), "monitor/logistic_f1": float("nan"),
                    "monitor/seconds": round(time.time() - start, 3)}
        knn = scores(self.val_y, knn_predict(train, self.train_y, val, self.k))["macro_f1"]
        logistic = scores(self.val_y, logistic_predictor(*fit_logistic(train, self.train_y, 1.0, self.seed))(val))
        return {"monitor/knn_f1": round(knn, 4), "monitor/logistic_f1": round(logistic["macro_f1"], 4),
                "monitor/seconds": round(time.time() - start, 3)}


def check_tensorboard():
    """A one-line error when --tensorboard 1 is asked for without the package."""
    if importlib.util.find_spec("tensorboard") is None:
        raise UserError("--tensorboard 1 needs TensorBoard: pip install tensorboard (or pip install -e '.[monitor]'), "
                        "or leave --tensorboard 0: metrics.jsonl holds the same numbers")


class TensorBoardLog:
    """The numeric values of each metrics row as TensorBoard scalars (step: the row's epoch or round)."""

    def __init__(self, folder):
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when asked for

        self.writer = SummaryWriter(str(folder))

    def log(self, row, step_key="epoch"):
        for name, value in row.items():
            if name != step_key and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(name, value, row[step_key])
        self.writer.flush()

    def close(self):
        self.writer.close()
