"""Optimiser and learning-rate schedule (Section 4: SGD, momentum 0.99, weight decay 5e-4)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import OptimConfig
from ..errors import GcnsegError


def build_optimizer(cfg: OptimConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD, Adam or AdamW over the parameters that learn; no weight decay on
    BatchNorm and biases (as in torchvision's references)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise GcnsegError(f"optim.name={cfg.name!r}: expected sgd, adam or adamw")


def lr_factor(cfg: OptimConfig, step: int, total: int) -> float:
    """Linear warm-up, then poly decay ``(1 - t)^power`` (or constant)."""
    if step < cfg.warmup_iters:
        return (step + 1) / cfg.warmup_iters
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "poly":
        return max(0.0, 1 - step / max(total, 1)) ** cfg.power
    raise GcnsegError(f"optim.schedule={cfg.schedule!r}: expected poly or constant")
