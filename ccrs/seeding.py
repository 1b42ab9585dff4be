"""One seed for Python, NumPy and torch: every trainer and meta-trainer calls this before building a model."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
