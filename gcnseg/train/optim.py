"""Optimiser and learning-rate schedule (Section 4: SGD, momentum 0.99, weight decay 5e-4)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import OptimConfig
from ..errors import GcnsegError


def build_optimizer(cfg: OptimConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD, Adam or AdamW over the parameters that learn; no weight decay on
    BatchNorm and biases (as in torchvision's references); the backbone's parameters at
    ``lr * encoder_lr_mult``."""
    # with one learning rate: two groups, as runs written before hold them (their resume)
    split = cfg.encoder_lr_mult != 1.0
    encoder = {id(p) for p in getattr(model, "backbone", nn.Module()).parameters()} if split else set()
    groups = []
    for in_encoder in (False, True) if split else (False,):
        for decays in (True, False):
            params = [p for p in model.parameters()
                      if p.requires_grad and (id(p) in encoder) == in_encoder and (p.ndim > 1) == decays]  # fmt: skip
            lr = cfg.lr * (cfg.encoder_lr_mult if in_encoder else 1.0)
            groups.append({"params": params, "weight_decay": cfg.weight_decay if decays else 0.0, "lr": lr})
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
