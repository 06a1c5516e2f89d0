"""Hyena operator of order 2 (Poli et al. 2023): long convolutions whose filters are generated
implicitly, interleaved with elementwise gates.

    v, x1, x2 = short_conv(in(x))                 (depthwise causal, 3 taps)
    z = x1 * (h1 * v + b1 v);   z = x2 * (h2 * z + b2 z);   y = out(z)

Each filter h_i (d_model channels x L) comes from a small MLP over positional features of
t = 0..L-1 (t/max_len and sin/cos of ``n_freqs`` frequencies, sine activations), multiplied by an
exponential decay window exp(-alpha_c t / max_len) whose rates alpha_c spread over the channels.
Positions are scaled by the model's ``max_len`` (as the original's ``l_max``), not by the input's
length, so that a prefix gets the outputs the whole sequence gives it (generation feeds growing
prefixes). The long convolutions run through the FFT (seqicl.ops.fftconv)."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..ops.fftconv import fft_conv
from ..ops.short_conv import causal_depthwise_conv
from .registry import register


class Sin(nn.Module):
    def __init__(self, width: int, freq: float = 1.0):
        super().__init__()
        self.freq = nn.Parameter(torch.full((width,), freq))

    def forward(self, x):
        return torch.sin(self.freq * x)


@register("hyena")
class Hyena(nn.Module):
    # FFT convolutions only, but the README's sweep timings are for seven models: it joins the
    # default sweep once measured in it on the H200 (issue 28)
    in_default_sweep = False  # a sweep naming no models runs the original table's seven (see registry.py)
    needs_positions = False
    needs_max_len = True  # the language model passes its max_len

    def __init__(self, d_model: int, layer_idx: int = 0, order: int = 2, filter_hidden: int = 64,
                 n_freqs: int = 8, short_taps: int = 3, decay_min: float = 0.5, decay_max: float = 8.0,
                 max_len: int = 2048):
        super().__init__()
        self.order, self.d_model, self.n_freqs, self.max_len = order, d_model, n_freqs, max_len
        self.inp = nn.Linear(d_model, (order + 1) * d_model)
        self.short = nn.Conv1d((order + 1) * d_model, (order + 1) * d_model, short_taps,
                               groups=(order + 1) * d_model, padding=short_taps - 1)
        features = 1 + 2 * n_freqs
        self.filter = nn.Sequential(nn.Linear(features, filter_hidden), Sin(filter_hidden),
                                    nn.Linear(filter_hidden, filter_hidden), Sin(filter_hidden),
                                    nn.Linear(filter_hidden, order * d_model, bias=False))
        self.register_buffer("decay", torch.linspace(decay_min, decay_max, d_model), persistent=False)
        self.bias = nn.Parameter(torch.randn(order, d_model))
        self.out = nn.Linear(d_model, d_model)

    def filters(self, length: int, device) -> torch.Tensor:
        """(order, d_model, length): the implicit filters, decayed along t."""
        if length > self.max_len:
            raise ValueError(f"sequence of {length} tokens exceeds Hyena's max_len {self.max_len}")
        t = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(-1) / self.max_len   # (L, 1)
        freqs = torch.arange(1, self.n_freqs + 1, device=device, dtype=torch.float32) * math.pi
        pos = torch.cat([t, torch.sin(freqs * t), torch.cos(freqs * t)], dim=-1)            # (L, 1 + 2F)
        h = self.filter(pos).view(length, self.order, self.d_model).permute(1, 2, 0)       # (order, D, L)
        return h * torch.exp(-self.decay.unsqueeze(-1) * t.T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        L = x.shape[1]
        u = causal_depthwise_conv(self.inp(x), self.short.weight.squeeze(1), self.short.bias)
        v, *gates = u.chunk(self.order + 1, dim=-1)
        h = self.filters(L, x.device)
        z = v
        for i, gate in enumerate(gates):
            z = gate * (fft_conv(z, h[i]) + self.bias[i] * z)
        return self.out(z)
