"""Pictures of distilled data: for images a grid with one row per step, each image
captioned; for embedded text the nearest GloVe word of every synthetic token."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor

from .datasets.text import PAD, nearest_words
from .files import atomic_write, write_text

MAX_COLUMNS = 20
SUPPORT_COLUMNS = 10  # images per row of a support set's grid


def to_displayable(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Undo per-channel normalisation and clip to [0, 1]: ``x · σ + μ``. [..., C, H, W] -> [..., H, W, C]."""
    shape = (-1, 1, 1)
    image = x * torch.tensor(std).view(shape) + torch.tensor(mean).view(shape)
    return image.clamp(0, 1).movedim(-3, -1)


def caption(label: Tensor, class_names: Sequence[str]) -> str:
    """The class name of a hard label; for a label vector, its top-3 classes and values."""
    if not label.is_floating_point():
        return class_names[int(label)]
    values, classes = label.topk(min(3, len(label)))
    return "\n".join(f"{class_names[c]}: {v:.2f}" for v, c in zip(values.tolist(), classes.tolist()))


def save_grid(
    path: str | Path,
    x: Tensor,
    labels: Tensor,
    lrs: Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    class_names: Sequence[str],
) -> None:
    """Draw ``x`` ([S, m, C, H, W]) as S rows (the first ``MAX_COLUMNS`` samples of each
    step), every image captioned with its label (hard labels: the class; label vectors: the
    top-3 classes and their values), every row with its first-epoch ``η``."""
    steps, per_step = x.shape[:2]
    columns = min(per_step, MAX_COLUMNS)
    images = to_displayable(x[:, :columns].detach().cpu().float(), mean, std)
    caption_lines = 3 if labels.is_floating_point() else 1
    fig = Figure(figsize=(1.1 * columns + 0.9, (1.1 + 0.15 * caption_lines) * steps))
    axes = fig.subplots(steps, columns, squeeze=False)
    for s in range(steps):
        for j in range(columns):
            ax = axes[s][j]
            image = images[s, j]
            ax.imshow((image.squeeze(-1) if image.shape[-1] == 1 else image).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_title(caption(labels[s, j], class_names), fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[s][0].set_ylabel(f"step {s}\nη={lrs[s]:.3g}", fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80))


def save_support_grid(path: str | Path, x: Tensor, labels: Tensor, learned: bool, class_names: Sequence[str],
                      max_rows: int = 10) -> None:
    """Draw a kernel method's support set ``x`` ([n, C, H, W], in the kernel's preprocessed
    space, so each image is min-max scaled to [0, 1] for display), ``SUPPORT_COLUMNS`` per row
    and at most ``max_rows`` rows, every image captioned with its label: the class it was
    drawn from or, for learned labels ([n, C] vectors), the top-3 classes and their values."""
    count = min(len(x), SUPPORT_COLUMNS * max_rows)
    flat = x[:count].detach().cpu().float().flatten(1)
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    images = ((flat - low) / (high - low).clamp_min(1e-12)).view(count, *x.shape[1:]).movedim(1, -1)
    columns, rows = min(count, SUPPORT_COLUMNS), -(-count // SUPPORT_COLUMNS)
    fig = Figure(figsize=(1.1 * columns + 0.4, (1.1 + (0.45 if learned else 0.15)) * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= count:
            ax.axis("off")
            continue
        image = images[i]
        ax.imshow((image.squeeze(-1) if image.shape[-1] == 1 else image).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(caption(labels[i] if learned else labels[i].argmax(), class_names), fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80))

def save_words(
    path: str | Path,
    x: Tensor,
    labels: Tensor,
    lrs: Tensor,
    embeddings: Tensor,
    vocab: Sequence[str],
    class_names: Sequence[str],
) -> None:
    """Write every synthetic sentence of ``x`` ([S, m, 1, L, D]) decoded to its nearest
    words by cosine similarity, one line per sentence under a header per step, with its
    label; trailing ``<pad>`` tokens are dropped."""
    sentences = nearest_words(x.detach().cpu(), embeddings, vocab)
    lines = []
    for s, step in enumerate(sentences):
        lines.append(f"## step {s} (η = {lrs[s]:.4g})")
        for j, (sentence,) in enumerate(step):
            while sentence and sentence[-1] == PAD:
                sentence.pop()
            label = caption(labels[s, j], class_names).replace("\n", ", ")
            lines.append(f"[{label}] {' '.join(sentence)}")
        lines.append("")
    write_text(path, "\n".join(lines))


def save_accuracy_matrix(path: str | Path, R: Tensor, title: str) -> None:
    """The continual-learning accuracy matrix ``R[i, j]`` (test accuracy on task j after
    training task i) as a heat map, each cell printed when the matrix is small enough."""
    tasks = len(R)
    fig = Figure(figsize=(1.0 + 0.4 * tasks, 0.8 + 0.4 * tasks))
    ax = fig.subplots()
    image = ax.imshow(R.numpy(), cmap="viridis", vmin=0, vmax=1)
    if tasks <= 20:
        for i in range(tasks):
            for j in range(tasks):
                ax.text(j, i, f"{100 * R[i, j]:.0f}", ha="center", va="center", fontsize=6, color="white" if R[i, j] < 0.6 else "black")
    ticks = list(range(tasks))
    ax.set_xticks(ticks, [str(t + 1) for t in ticks], fontsize=7)
    ax.set_yticks(ticks, [str(t + 1) for t in ticks], fontsize=7)
    ax.set_xlabel("tested on task")
    ax.set_ylabel("after training task")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90))
