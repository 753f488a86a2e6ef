"""Write the test notebooks of this folder: `python -m tests.notebooks.make_notebooks` from the
repository root after editing."""

from pathlib import Path

from tools.nbmake import write_notebook

HERE = Path(__file__).resolve().parent

write_notebook(
    HERE / "tiny_train.ipynb",
    [
        (
            "md",
            """
# Tiny training for the batch-run tests

Trains a small MLP on synthetic tensors with dropout, shuffling and a scheduler, so a
resumed run only matches an unbroken one if the checkpoint restores every state.
""",
        ),
        (
            "params",
            """
epochs = 6
seed = 0
lr = 0.05
hidden = 16
pause = 0.0  # seconds to wait after each epoch, so that a test can kill the run mid-training
tag = "tiny"
""",
        ),
        (
            "code",
            """
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from coursekit.checkpoint import checkpoint_path
from coursekit.settings import seed_everything
from coursekit.tracking import record_metrics
from coursekit.train import fit

torch.set_num_threads(1)  # a tiny model gains nothing from threads; tests run side by side
seed_everything(seed)
x = torch.randn(512, 8)
y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).long()
train = DataLoader(TensorDataset(x[:384], y[:384]), batch_size=32, shuffle=True)
val = DataLoader(TensorDataset(x[384:], y[384:]), batch_size=128)
model = nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Dropout(0.3), nn.Linear(hidden, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
""",
        ),
        (
            "code",
            """
history = fit(
    model, train, val, epochs=epochs, optimizer=optimizer, scheduler=scheduler, device="cpu",
    checkpoint=checkpoint_path("tiny_train", "tiny"), callback=lambda row: time.sleep(pause),
)
""",
        ),
        (
            "code",
            """
record_metrics(
    val_loss=history["val_loss"][-1],
    val_acc=history["val_acc"][-1],
    epochs_run=len(history),
    train_loss=history["train_loss"],
    weight_sum=sum(p.sum().item() for p in model.parameters()),
    tag=tag,
)
""",
        ),
    ],
)

write_notebook(
    HERE / "hello.ipynb",
    [
        ("md", "# Hello\n\nA notebook without torch, for quick runner tests."),
        (
            "params",
            """
name = "world"
""",
        ),
        (
            "code",
            """
import os

from coursekit.settings import figures_dir
from coursekit.tracking import record_metrics

(figures_dir("hello") / "greeting.txt").write_text(f"hello {name}")
record_metrics(greeting=f"hello {name}", smoke=os.environ.get("COURSEKIT_SMOKE"))
""",
        ),
    ],
)
