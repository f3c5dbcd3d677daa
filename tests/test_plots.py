"""The figure script on a tiny results file, and the architecture figure from the task registry."""
import numpy as np
from PIL import Image

from common.evaluation import summarise
from studies.plots import plot_architecture, plot_label_efficiency, plot_tsne, representation_quality
from common.model import build_model
from data_processing.pretext import PretextSpec
from HAR_centralized.config import HARPretrainConfig


def test_label_efficiency_plot_from_a_tiny_results_file(tmp_path):
    rows = [{"method": m, "mode": "linear", "fraction": f, "seed": s, "accuracy": 0.5 + f / 3 + s / 100,
             "macro_f1": 0.5 + f / 3 + s / 100} for m in ("a", "b") for f in (0.01, 0.1, 1.0) for s in range(2)]
    summary = [dict(r, label=f"method {r['method']}") for r in summarise(rows)]
    path = tmp_path / "curve.png"
    plot_label_efficiency(summary, [("method a", {}), ("method b", {"linestyle": "--"}), ("absent", {})], path)
    assert Image.open(path).size[0] > 300


def test_tsne_pictures_and_quality(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    clustered = rng.normal(size=(120, 5)) + 4 * np.eye(5)[y]
    quality = plot_tsne({"clustered": clustered, "noise": rng.normal(size=(120, 5))}, y, ["a", "b", "c"],
                        str(tmp_path / "tsne_{}.png"))
    assert {p.name for p in tmp_path.iterdir()} == {"tsne_clustered.png", "tsne_noise.png", "tsne_legend.png"}
    assert quality["clustered"]["knn_accuracy"] > 0.95 > quality["noise"]["knn_accuracy"]
    assert quality["clustered"]["silhouette"] > quality["noise"]["silhouette"]
    assert representation_quality(clustered, y)["knn_accuracy"] == quality["clustered"]["knn_accuracy"]


def test_architecture_figure_follows_the_registry(tmp_path):
    config = HARPretrainConfig(model_heads=(1, 0, 1, 0), encoder_width=4)
    model = build_model(config, (9, 128), PretextSpec(), 561)
    path = tmp_path / "arch.png"
    plot_architecture(model, ["equal", "uncertainty"], path)
    assert list(model.tasks) == ["augmentation", "contrastive"] and Image.open(path).size[1] > 100
