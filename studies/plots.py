"""The README's figures, drawn from results files and from the model's own task registry."""
import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402
from sklearn.metrics import silhouette_score  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from torch import nn  # noqa: E402


def plot_label_efficiency(summary, curves, path, metric="macro_f1", title=None):
    """Metric against label fraction (log x), mean line and +-std band per curve.

    summary: rows with method, mode, fraction, <metric>_mean, <metric>_std (from common.evaluation.summarise,
    possibly from several result folders, each row tagged with a `label`); curves: [(label, style kwargs)].
    """
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, style in curves:
        rows = sorted((r for r in summary if r["label"] == label), key=lambda r: r["fraction"])
        if not rows:
            continue
        x = np.array([100 * r["fraction"] for r in rows])
        mean = np.array([r[f"{metric}_mean"] for r in rows])
        std = np.array([r[f"{metric}_std"] for r in rows])
        line, = ax.plot(x, mean, marker="o", markersize=3, label=label, **style)
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel("labelled share of the train windows (%)")
    ax.set_ylabel("macro-F1 on the test subjects" if metric == "macro_f1" else metric)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def representation_quality(x, y, seed=0):
    """kNN (k=5, 5-fold) accuracy and silhouette score of standardised representations."""
    z = StandardScaler().fit_transform(x.reshape(len(x), -1))
    knn = cross_val_score(KNeighborsClassifier(5), z, y, cv=5).mean()
    return {"knn_accuracy": float(knn), "silhouette": float(silhouette_score(z, y, random_state=seed))}


def plot_tsne(representations, y, class_names, path_pattern, seed=0):
    """One t-SNE picture per representation ({name: (N, D)}), coloured by class, and one shared legend.

    Returns {name: quality figures}; files: path_pattern.format(name) and path_pattern.format("legend").
    """
    colours = plt.get_cmap("tab10")(np.arange(len(class_names)))
    quality = {}
    for name, x in representations.items():
        z = StandardScaler().fit_transform(x.reshape(len(x), -1))
        points = TSNE(2, init="pca", random_state=seed, perplexity=30).fit_transform(z)
        quality[name] = representation_quality(x, y, seed)
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.scatter(points[:, 0], points[:, 1], c=colours[y], s=3, linewidths=0)
        ax.set_title(f"{name}: kNN {quality[name]['knn_accuracy']:.3f}, silhouette {quality[name]['silhouette']:.3f}",
                     fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.tight_layout()
        fig.savefig(path_pattern.format(name), dpi=110)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(6.5, 0.6))
    for colour, name in zip(colours, class_names):
        ax.scatter([], [], color=colour, label=name)
    ax.legend(loc="center", ncol=len(class_names), frameon=False, fontsize=7, markerscale=1.5)
    ax.axis("off")
    fig.savefig(path_pattern.format("legend"), dpi=110, bbox_inches="tight")
    plt.close(fig)
    return quality


def plot_architecture(model, weighting_names, path, input_label="input window"):
    """Figure 1: input -> encoder -> one box per registered task (head, loss) -> weighting -> total loss.

    Drawn from a built MultiTaskModel, so the boxes are exactly the tasks and heads the code has.
    """
    tasks = list(model.tasks.items())
    fig, ax = plt.subplots(figsize=(11, 1.2 + 1.1 * len(tasks)))
    ax.set_xlim(0, 11)
    ax.set_ylim(0, len(tasks) * 1.1 + 0.4)
    ax.axis("off")

    def box(x, y, w, h, text, colour):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05", facecolor=colour, edgecolor="0.3"))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8)

    mid = len(tasks) * 1.1 / 2 + 0.2
    encoder = model.encoder
    box(0.1, mid - 0.45, 1.6, 0.9, input_label, "#e8e8e8")
    box(2.1, mid - 0.6, 2.0, 1.2, f"{type(encoder).__name__}\n{encoder.model_args.get('name')}\n"
        f"-> {encoder.embedding_dim}-d embedding", "#cfe2f3")
    ax.annotate("", xy=(2.1, mid), xytext=(1.75, mid), arrowprops=dict(arrowstyle="->"))
    for i, (name, task) in enumerate(tasks):
        y = (len(tasks) - 1 - i) * 1.1 + 0.3
        head = " -> ".join(str(m.out_features) for m in task.modules() if isinstance(m, nn.Linear))
        loss = task.loss_label
        box(4.7, y, 3.0, 0.8, f"{name}\ninputs: {', '.join(task.inputs)}\nhead MLP -> {head}", "#d9ead3")
        box(8.0, y + 0.15, 1.2, 0.5, loss, "#fff2cc")
        ax.annotate("", xy=(4.7, y + 0.4), xytext=(4.15, mid), arrowprops=dict(arrowstyle="->", color="0.4"))
        ax.annotate("", xy=(9.55, mid), xytext=(9.25, y + 0.4), arrowprops=dict(arrowstyle="->", color="0.4"))
    box(9.6, mid - 0.55, 1.3, 1.1, "task weighting\n" + "\n".join(weighting_names), "#f4cccc")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_weighting_study(table, seconds_per_epoch, path, mode="linear"):
    """The weighting study: macro-F1 (mean +- std over pretraining seeds) per method at each label fraction,
    and each method's seconds per epoch. table: aggregated rows (method, mode, fraction, macro_f1_mean/std)."""
    methods = [m for m in seconds_per_epoch]
    fractions = sorted({r["fraction"] for r in table if r["method"] in methods and r["mode"] == mode})
    cell = {(r["method"], r["fraction"]): r for r in table if r["mode"] == mode}
    fig, (ax, ax_time) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 1]})
    width = 0.8 / max(1, len(methods))
    for i, method in enumerate(methods):
        x = np.arange(len(fractions)) + (i - (len(methods) - 1) / 2) * width
        rows = [cell.get((method, f)) for f in fractions]
        ax.bar(x, [r["macro_f1_mean"] if r else 0 for r in rows], width,
               yerr=[r["macro_f1_std"] if r else 0 for r in rows],
               label=method.replace("MTL ", ""), capsize=2)
    ax.set_xticks(np.arange(len(fractions)), [f"{100 * f:g}% labels" for f in fractions])
    low = min((r["macro_f1_mean"] - r["macro_f1_std"] for r in cell.values() if r["method"] in methods), default=0.5)
    ax.set_ylim(max(0.0, low - 0.03), 1.0)
    ax.set_ylabel("macro-F1, linear probe (test subjects)")
    ax.legend(fontsize=7, ncol=4, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    ax_time.barh([m.replace("MTL ", "") for m in methods], [float(np.median(v)) for v in seconds_per_epoch.values()])
    ax_time.set_xlabel("seconds per epoch (2 CPU cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scaling(points, opponent_scores, opponent, path):
    """The unlabelled-data scaling curve: macro-F1 against the pretraining windows (relative to the default's, log
    x), one line per label fraction ({fraction: [(windows, score)]}), the opponent's score dashed beside each."""
    fig, ax = plt.subplots(figsize=(7, 5))
    for i, (fraction, line) in enumerate(sorted(points.items())):
        # up to 1x: shares of the recordings (new data); above: the same recordings cut denser (overlapping windows)
        x, y = zip(*sorted(p for p in line if p[0] <= 1))
        ax.plot(x, y, marker="o", color=f"C{i}", label=f"encoder, {100 * fraction:g}% labels (share of the recordings)")
        denser = sorted(p for p in line if p[0] > 1)
        if denser:
            ax.plot(*zip(*denser), marker="s", linestyle="none", markerfacecolor="none", color=f"C{i}",
                    label=f"encoder, {100 * fraction:g}% labels (all recordings, denser windows)")
        ax.axhline(opponent_scores[fraction], color=f"C{i}", linestyle="--", linewidth=1,
                   label=f"{opponent}, {100 * fraction:g}% labels")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("unlabelled pretraining windows (x the default's 21k)")
    ax.set_ylabel("macro-F1 on the test subjects (linear probe)")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title("Does more unlabelled data help? The default recipe on UCI HAR")
    fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=7)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
