"""Synthetic training data of the paper's shapes, shared by benchmarks/train.py and
benchmarks/validation_stability.py (a helper module, not a benchmark: tests/test_benchmarks.py runs
every ``benchmarks/*.py`` whose name does not start with an underscore)."""

from __future__ import annotations

import torch

from crbnn.learn.training_data import TrainingData


def synthetic(n: int, rank: int = 13, seed: int = 0) -> TrainingData:
    """Random coefficients (first one dominant), targets and CRBs of the paper's shapes."""
    g = torch.Generator().manual_seed(seed)
    c = torch.complex(torch.randn(n, rank, generator=g), torch.randn(n, rank, generator=g)) * 0.1
    c[:, 0] += 3.0
    targets = torch.rand(n, 3, generator=g) * torch.tensor([0.3, 1.5, 0.12]) + torch.tensor([0.0, 0.6, 0.03])
    crb = torch.rand(n, 3, generator=g) * 10 + 1
    return TrainingData(c, targets, crb, ["m0s", "T1", "T2f"], ["1", "s", "s"], "s" * 64, "b" * 64)
