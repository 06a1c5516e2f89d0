"""The language model around any mixer: embedding (+ learned positions where the mixer
needs them), ``n_layers`` pre-norm residual blocks of mixer and optional MLP, final norm,
and a linear head over the vocabulary (``tie_head``: the embedding's own matrix)."""
from __future__ import annotations

import torch
from torch import nn

from .registry import get_mixer


class MLP(nn.Module):
    def __init__(self, d_model: int, hidden: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model),
                                 nn.Dropout(dropout))

    def forward(self, x):
        return self.net(x)


class Block(nn.Module):
    def __init__(self, d_model: int, layer_idx: int, mixer_cls: type, mixer_kwargs: dict,
                 mlp_ratio: float, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.mixer = mixer_cls(d_model, layer_idx, **mixer_kwargs)
        self.drop = nn.Dropout(dropout)
        self.mlp = None
        if mlp_ratio > 0:
            self.norm2 = nn.LayerNorm(d_model)
            self.mlp = MLP(d_model, int(mlp_ratio * d_model), dropout)

    def forward(self, x):
        x = x + self.drop(self.mixer(self.norm1(x)))
        if self.mlp is not None:
            x = x + self.mlp(self.norm2(x))
        return x


class LanguageModel(nn.Module):
    def __init__(self, vocab_size: int, max_len: int, name: str, d_model: int = 64, n_layers: int = 2,
                 mlp_ratio: float = 4, dropout: float = 0.0, mixer: dict | None = None, tie_head: bool = False,
                 embed_dropout: float | None = None, init: str = "seqicl"):
        super().__init__()
        mixer_cls = get_mixer(name)
        # the longest input it can read, where something is laid out over max_len (learned positions,
        # Hyena's filters); None: any length
        self.length_limit = max_len if mixer_cls.needs_positions or getattr(mixer_cls, "needs_max_len", False) else None
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(max_len, d_model) if mixer_cls.needs_positions else None
        self.drop = nn.Dropout(dropout if embed_dropout is None else embed_dropout)  # on the embedding
        # a mixer whose filters are laid out over the longest sequence (Hyena) is told its length
        mixer = {**(mixer or {}), **({"max_len": max_len} if getattr(mixer_cls, "needs_max_len", False) else {})}
        self.blocks = nn.ModuleList(Block(d_model, i, mixer_cls, mixer, mlp_ratio, dropout)
                                    for i in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        if init not in ("seqicl", "original"):
            raise ValueError(f"model.init must be seqicl or original, got {init!r}")
        self.apply(self._init)
        for module in self.modules():  # a mixer whose own init must follow the pass above (Mamba's step)
            if module is not self and callable(getattr(module, "after_init", None)):
                module.after_init()
        if init == "original":  # the original's out_proj / fc2 rule: those start at N(0, 0.01)
            for block in self.blocks:
                outs = [block.mlp.net[2]] if block.mlp is not None else []
                if getattr(block.mixer, "original_small_out", False):
                    outs.append(block.mixer.out)
                for linear in outs:
                    nn.init.normal_(linear.weight, std=0.01)
        if tie_head:  # one matrix, N(0, 0.02) once: the optimiser and state_dict see it as one parameter
            self.head.weight = self.embed.weight

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) int64 -> logits (B, L, V)."""
        x = self.embed(tokens)
        if self.pos is not None:
            if tokens.shape[1] > self.pos.num_embeddings:
                raise ValueError(f"sequence of {tokens.shape[1]} tokens exceeds max_len {self.pos.num_embeddings}")
            x = x + self.pos.weight[: tokens.shape[1]]
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def build_model(model_cfg: dict, vocab_size: int, max_len: int) -> LanguageModel:
    return LanguageModel(vocab_size, max_len, **model_cfg)
