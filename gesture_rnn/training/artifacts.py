"""Evaluation artifacts of a test set, which people would rather see than read: confusion matrix,
learning curves, per-gesture precision/recall/F1, per-user accuracy and every test prediction
(CSV + PNG)."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch.utils.data import DataLoader

from gesture_rnn.data.facts import GESTURES, NUM_CLASSES
from gesture_rnn.deploy.inference import class_probabilities
from gesture_rnn.utils.figures import save_figure

GESTURE_NAMES = [str(g) for g in GESTURES]


def predict(net: torch.nn.Module, loader: DataLoader) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(predicted, true) class indices and the predicted class's (calibrated) probability for
    every batch of ``loader``, in order."""
    predicted, true, confidence = [], [], []
    for x, lengths, y in loader:
        best = class_probabilities(net, x, lengths).max(dim=1)
        predicted.append(best.indices.cpu())
        confidence.append(best.values.cpu())
        true.append(y)
    return torch.cat(predicted).numpy(), torch.cat(true).numpy(), torch.cat(confidence).numpy()


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Rows: true gesture, columns: predicted gesture."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (true, predicted), 1)
    return matrix


def per_class_scores(matrix: np.ndarray) -> list[dict[str, float]]:
    rows = []
    for c in range(len(matrix)):
        hits, predicted, actual = matrix[c, c], matrix[:, c].sum(), matrix[c].sum()
        precision = hits / predicted if predicted else 0.0
        recall = hits / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(
            {"gesture": c + 1, "precision": precision, "recall": recall, "f1": f1, "support": int(actual)}
        )
    return rows


def per_user_accuracy(users: np.ndarray, true: np.ndarray, predicted: np.ndarray) -> list[dict[str, object]]:
    return [
        {"user": user, "accuracy": float(np.mean(true[users == user] == predicted[users == user])),
         "sequences": int(np.sum(users == user))}
        for user in sorted(set(users.tolist()))
    ]  # fmt: skip


def write_csv(rows: list[dict[str, object]], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
        writer.writeheader()
        writer.writerows(rows)


def plot_confusion_matrix(matrix: np.ndarray, path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(NUM_CLASSES), GESTURE_NAMES)
    ax.set_yticks(range(NUM_CLASSES), GESTURE_NAMES)
    ax.set_xlabel("predicted gesture")
    ax.set_ylabel("true gesture")
    ax.set_title(title)
    for (row, col), count in np.ndenumerate(matrix):
        if count:
            color = "white" if count > matrix.max() / 2 else "black"
            ax.text(col, row, str(count), ha="center", va="center", fontsize=6, color=color)
    fig.colorbar(image, ax=ax, fraction=0.046)
    save_figure(fig, path)


def plot_learning_curves(history: list[dict[str, float]], path: Path) -> None:
    epochs = [h["epoch"] + 1 for h in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for stage, style in (("train", "-o"), ("val", "-s")):
        if any(f"{stage}/loss" in h for h in history):
            loss_ax.plot(epochs, [h.get(f"{stage}/loss", np.nan) for h in history], style, label=stage, ms=3)
            acc_ax.plot(epochs, [h.get(f"{stage}/acc", np.nan) for h in history], style, label=stage, ms=3)
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss", yscale="log")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, path)


def write_artifacts(
    net: torch.nn.Module,
    loader: DataLoader,
    users: np.ndarray,
    files: list[str],
    history: list[dict[str, float]],
    out_dir: Path,
    figures: bool = True,
) -> dict[str, float]:
    """Write every evaluation artifact of a test set into ``out_dir`` (the figures only with
    ``figures``); return per-user accuracies."""
    out_dir.mkdir(parents=True, exist_ok=True)
    predicted, true, confidence = predict(net, loader)
    matrix = confusion_matrix(true, predicted)
    accuracy = float(np.trace(matrix) / matrix.sum())
    np.savetxt(out_dir / "confusion_matrix.csv", matrix, fmt="%d", delimiter=",")
    if figures:
        plot_confusion_matrix(matrix, out_dir / "confusion_matrix.png", f"test set: accuracy {accuracy:.4f}")
    write_csv(per_class_scores(matrix), out_dir / "per_class.csv")
    predictions = [
        {
            "file": file,
            "user": user,
            "gesture": GESTURES[t],
            "predicted": GESTURES[p],
            "probability": round(c, 6),
        }
        for file, user, t, p, c in zip(
            files, users.tolist(), true.tolist(), predicted.tolist(), confidence.tolist(), strict=True
        )
    ]
    write_csv(predictions, out_dir / "predictions.csv")
    users_rows = per_user_accuracy(users, true, predicted)
    write_csv(users_rows, out_dir / "per_user.csv")
    if history:
        if figures:
            plot_learning_curves(history, out_dir / "learning_curves.png")
        write_csv(history, out_dir / "learning_curves.csv")
    return {str(row["user"]): float(row["accuracy"]) for row in users_rows}
