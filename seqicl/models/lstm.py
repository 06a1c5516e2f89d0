"""LSTM mixer: ``torch.nn.LSTM`` (cuDNN on GPU), hidden size = d_model."""
from __future__ import annotations

import torch
from torch import nn

from .registry import register


@register("lstm")
class LSTMMixer(nn.Module):
    needs_positions = False

    def __init__(self, d_model: int, layer_idx: int = 0, num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.lstm = nn.LSTM(d_model, d_model, num_layers=num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(x)
        return y
