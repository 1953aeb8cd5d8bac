"""Lessons 03 and 05, training: what ``fit`` returned (``training_history``, which ``handwritten.train``
redraws live after each epoch) and lesson 05's race of recipes (``race_figure``)."""

from __future__ import annotations

from matplotlib.figure import Figure


def training_history(histories, *, title: str = "") -> Figure:
    """What ``fit`` returned, one list of per-epoch dicts (``train_loss``, ``valid_loss``,
    ``valid_accuracy``) per run: ``{label: history}``, or one history alone. Left: training
    (dashed) and validation (solid) loss; right: validation accuracy."""
    if not isinstance(histories, dict):
        histories = {"": histories}
    fig = Figure(figsize=(9, 3.4))
    loss_ax, acc_ax = fig.subplots(1, 2)
    for k, (label, history) in enumerate(histories.items()):
        color = f"C{k}"
        epochs = list(range(1, len(history) + 1))
        name = f"{label}: " if label else ""
        loss_ax.plot(epochs, [float(h["train_loss"]) for h in history], ls="--", marker=".", color=color,
                     label=f"{name}training")
        loss_ax.plot(epochs, [float(h["valid_loss"]) for h in history], marker="o", color=color,
                     label=f"{name}validation")
        acc_ax.plot(epochs, [float(h["valid_accuracy"]) for h in history], marker="o", color=color,
                    label=str(label) or None)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.set_title("loss (training: mean over the epoch's batches)", fontsize=10)
    loss_ax.legend(fontsize=8)
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("validation accuracy")
    acc_ax.set_title("validation accuracy, after each epoch", fontsize=10)
    if any(histories):
        acc_ax.legend(fontsize=8)
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def race_figure(runs: dict, *, target: float | None = None, title: str = "") -> Figure:
    """Test accuracy against training time, one line per recipe: ``{label: [(seconds, accuracy), ...]}``,
    with an optional dashed line at the ``target`` accuracy."""
    fig = Figure(figsize=(6.5, 3.5))
    ax = fig.add_subplot()
    for label, points in runs.items():
        ax.plot([float(t) for t, _ in points], [float(a) for _, a in points], marker=".", label=str(label))
    if target is not None:
        ax.axhline(float(target), color="grey", ls="--", lw=1, label=f"target {float(target):.3f}")
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
