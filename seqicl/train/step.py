"""One training step (forward, backward, clipping, AdamW), eager or replayed from a CUDA graph.

The models are tiny, so an eager step is mostly kernel-launch overhead. ``GraphStep`` captures
the whole step once, with static input buffers, and replays it: a copy of the batch into the
buffers and one graph launch per step, and no host synchronisation. The warm-up steps that
capture needs are undone (weights and optimiser state restored in place), so both kinds of
step train along the same trajectory.

With ``bf16`` the forward runs under bfloat16 autocast (matmuls in bf16, weights and optimiser
state stay float32); the loss is always computed in float32.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import IGNORE


def loss_of(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool = False) -> torch.Tensor:
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(x)
    # outside autocast: the softmax and the mean over the batch stay in float32
    return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=IGNORE)


class EagerStep:
    def __init__(self, model, opt, grad_clip: float, bf16: bool = False):
        self.model, self.opt, self.grad_clip, self.bf16 = model, opt, grad_clip, bf16

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = loss_of(self.model, x, y, self.bf16)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.opt.step()
        return loss.detach()


def snapshot(model, opt) -> tuple[list[torch.Tensor], dict]:
    params = [p.detach().clone() for p in model.parameters()]
    state = {p: {k: v.clone() for k, v in st.items() if isinstance(v, torch.Tensor)} for p, st in opt.state.items()}
    return params, state


@torch.no_grad()
def restore(model, opt, snap: tuple[list[torch.Tensor], dict]) -> None:
    """Put weights and optimiser state back in place (a captured graph holds these tensors);
    state that did not exist in the snapshot (a fresh optimiser) starts again from zero."""
    params, state = snap
    for p, s in zip(model.parameters(), params):
        p.copy_(s)
    for p, st in opt.state.items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                v.copy_(state[p][k]) if p in state and k in state[p] else v.zero_()


_WARMUP_STREAMS: dict = {}


def warmup_stream(device: torch.device) -> torch.cuda.Stream:
    """One side stream per device for every capture's warm-up: cuBLAS keeps a workspace (tens
    of MiB) for each stream it has run on until the process ends, so a new stream per trial
    grew a reused trial process by 65 MiB a trial on the H200."""
    if device not in _WARMUP_STREAMS:
        _WARMUP_STREAMS[device] = torch.cuda.Stream(device)
    return _WARMUP_STREAMS[device]


class GraphStep(EagerStep):
    """Needs a CUDA model and an optimiser made with ``make_optimizer(..., capturable=True)``."""

    def __init__(self, model, opt, grad_clip: float, x: torch.Tensor, y: torch.Tensor, warmup: int = 3,
                 bf16: bool = False):
        super().__init__(model, opt, grad_clip, bf16)
        self.x, self.y = x.clone(), y.clone()
        snap = snapshot(model, opt)
        side = warmup_stream(x.device)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up: kernels compiled, workspaces and optimiser state made
            for _ in range(warmup):
                super().__call__(self.x, self.y)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)  # backward inside the graph then allocates .grad from its pool
        with torch.cuda.graph(self.graph):
            # autocast is entered and left inside the capture, so its cache of bf16 weight copies
            # is emptied before replay: every replay casts the weights as they are then
            self.loss = loss_of(model, self.x, self.y, bf16)
            self.loss.backward()
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
        restore(model, opt, snap)  # undo the warm-up steps

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.x.copy_(x)
        self.y.copy_(y)
        self.graph.replay()
        return self.loss.detach()


def make_step(model, opt, grad_clip: float, x: torch.Tensor, y: torch.Tensor, use_graph: bool,
              bf16: bool = False):
    """A GraphStep where asked and possible, else an EagerStep; returns (step, why not graphed).
    ``bf16``: run the forward under bfloat16 autocast."""
    if not use_graph:
        return EagerStep(model, opt, grad_clip, bf16), None
    snap = snapshot(model, opt)
    try:
        return GraphStep(model, opt, grad_clip, x, y, bf16=bf16), None
    except Exception as e:  # a model whose step cannot be captured trains eagerly
        restore(model, opt, snap)
        return EagerStep(model, opt, grad_clip, bf16), f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
