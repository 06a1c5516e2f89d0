"""One training step (forward, backward, clipping, AdamW), eager or replayed from a CUDA graph.

The models are tiny, so an eager step is mostly kernel-launch overhead. ``GraphStep`` captures
the whole step once, the batch gather, learning rate and loss sum included, and replays it: one
graph launch per step, and no host synchronisation. Both kinds train by ``epoch(inputs,
targets, order, lrs)``: the batches ``inputs[order[i]]`` at the rates ``lrs[i]``. The warm-up steps that
capture needs are undone (weights and optimiser state restored in place), so both kinds of
step train along the same trajectory. ``BucketedStep`` holds one step of either kind per length
bucket (seqicl/train/buckets.py) and interleaves their batches (``load``, then ``replay`` per step).

With ``bf16`` the forward runs under bfloat16 autocast (matmuls in bf16, weights and optimiser
state stay float32); the loss is always computed in float32.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import IGNORE
from .optim import set_lr


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

    def epoch(self, inputs: torch.Tensor, targets: torch.Tensor, order: torch.Tensor, lrs) -> torch.Tensor:
        """Steps through the batches ``inputs[order[i]]`` at learning rates ``lrs[i]``; returns
        the sum of their losses (a tensor: no host sync)."""
        self.load(inputs, targets, order, lrs)
        for _ in range(len(order)):
            self.replay()
        return self.loss_sum.clone()   # a GraphStep's sum is its own, zeroed by the next load

    def load(self, inputs: torch.Tensor, targets: torch.Tensor, order: torch.Tensor, lrs) -> None:
        """An epoch's batches, to be taken one ``replay()`` at a time (their losses summed in
        ``loss_sum``): how a BucketedStep interleaves the epochs of its buckets' steps."""
        self.batches = (inputs, targets, order, list(lrs))
        self.next = 0
        self.loss_sum = torch.zeros((), device=inputs.device)

    def replay(self) -> None:
        inputs, targets, order, lrs = self.batches
        rows = order[self.next]
        set_lr(self.opt, lrs[self.next])
        self.loss_sum += self(inputs[rows], targets[rows])
        self.next += 1


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
    """A whole training step in one CUDA graph, the batch included: the graph gathers its batch
    from the training set by a row table and a step counter on the device, reads its learning
    rate from a per-step table, adds its loss to the epoch's sum and counts itself. An epoch is
    then two table copies and one replay per step, with no other launch and no host sync.

    Needs a CUDA model and an optimiser made with ``make_optimizer(..., capturable=True)``;
    ``inputs``/``targets`` are the training set, whose addresses the graph keeps."""

    def __init__(self, model, opt, grad_clip: float, inputs: torch.Tensor, targets: torch.Tensor,
                 batch_size: int, warmup: int = 3, bf16: bool = False):
        super().__init__(model, opt, grad_clip, bf16)
        self.inputs, self.targets = inputs, targets
        steps, device = len(inputs) // batch_size, inputs.device
        self.order = torch.arange(steps * batch_size, device=device).view(steps, batch_size)
        self.lrs = torch.zeros(steps, device=device)
        self.counter = torch.zeros(1, dtype=torch.long, device=device)
        self.loss_sum = torch.zeros((), device=device)
        lr_tensors = {id(g["lr"]): g["lr"] for g in opt.param_groups}
        if not all(isinstance(lr, torch.Tensor) for lr in lr_tensors.values()):
            raise TypeError("the optimiser's learning rate is not a tensor (make it capturable)")
        self.lr_tensors = list(lr_tensors.values())
        snap = snapshot(model, opt)
        side = warmup_stream(device)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up: kernels compiled, workspaces and optimiser state made
            for _ in range(warmup):
                self.counter.zero_()  # the first batch each time: an epoch may have one step
                self._step_body()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)  # backward inside the graph then allocates .grad from its pool
        with torch.cuda.graph(self.graph):
            self._step_body()
        restore(model, opt, snap)  # undo the warm-up steps

    def _step_body(self) -> None:
        """What one replay does; also run eagerly for the warm-up."""
        rows = self.order.index_select(0, self.counter).view(-1)
        x, y = self.inputs.index_select(0, rows), self.targets.index_select(0, rows)
        lr = self.lrs.index_select(0, self.counter).view(())
        for group_lr in self.lr_tensors:
            group_lr.copy_(lr)
        # autocast is entered and left inside the capture, so its cache of bf16 weight copies is
        # emptied before replay: every replay casts the weights as they are then
        loss = super().__call__(x, y)
        self.loss_sum += loss
        self.counter += 1

    def __call__(self, x, y):
        raise TypeError("a GraphStep trains by epoch(): its batches come from the captured training set")

    def load(self, inputs: torch.Tensor, targets: torch.Tensor, order: torch.Tensor, lrs) -> None:
        if inputs is not self.inputs or targets is not self.targets:
            raise ValueError("a GraphStep trains on the training set it was captured with")
        steps = len(order)
        if steps > len(self.order) or order.shape[1:] != self.order.shape[1:]:
            raise ValueError(f"an epoch of {tuple(order.shape)} rows does not fit the captured {tuple(self.order.shape)}")
        self.order[:steps].copy_(order)
        self.lrs[:steps].copy_(torch.as_tensor(lrs, dtype=torch.float32))
        self.counter.zero_()
        self.loss_sum.zero_()

    def replay(self) -> None:
        self.graph.replay()


class BucketedStep:
    """One step per length bucket (seqicl/train/buckets.py), each made (captured, on CUDA) on the
    training set cut to its bucket's length; an epoch replays them in its batches' order."""

    def __init__(self, steps: list, inputs: list[torch.Tensor], targets: list[torch.Tensor]):
        self.steps, self.inputs, self.targets = steps, inputs, targets   # per bucket

    def epoch_batches(self, batches: list[tuple[int, torch.Tensor]], lrs, device: torch.device) -> torch.Tensor:
        """``batches``: (bucket, rows) per step, at ``lrs`` per step; returns the sum of the losses."""
        for b, step in enumerate(self.steps):
            mine = [i for i, (bucket, _) in enumerate(batches) if bucket == b]
            if mine:
                order = torch.stack([batches[i][1] for i in mine]).to(device)
                step.load(self.inputs[b], self.targets[b], order, [lrs[i] for i in mine])
        for bucket, _ in batches:
            self.steps[bucket].replay()
        total = torch.zeros((), device=device)
        for b in sorted({bucket for bucket, _ in batches}):
            total += self.steps[b].loss_sum
        return total


def make_bucketed_step(model, opt, grad_clip: float, inputs: torch.Tensor, targets: torch.Tensor,
                       lengths: list[int], use_graph: bool, bf16: bool = False, batch_size: int | None = None):
    """A BucketedStep of one step per length; returns (step, why a bucket's step is not graphed)."""
    views_in = [inputs[:, :n] for n in lengths]
    views_tg = [targets[:, :n] for n in lengths]
    made = [make_step(model, opt, grad_clip, x, y, use_graph, bf16, batch_size) for x, y in zip(views_in, views_tg)]
    why = next((why for _, why in made if why), None)
    return BucketedStep([step for step, _ in made], views_in, views_tg), why


def make_step(model, opt, grad_clip: float, inputs: torch.Tensor, targets: torch.Tensor, use_graph: bool,
              bf16: bool = False, batch_size: int | None = None):
    """A GraphStep where asked and possible, else an EagerStep; returns (step, why not graphed).
    ``inputs``/``targets``: the training set that ``step.epoch`` batches (a GraphStep captures
    it), of ``batch_size`` rows a step (default: all of them). ``bf16``: the forward under
    bfloat16 autocast."""
    if not use_graph:
        return EagerStep(model, opt, grad_clip, bf16), None
    snap = snapshot(model, opt)
    try:
        return GraphStep(model, opt, grad_clip, inputs, targets, batch_size or len(inputs), bf16=bf16), None
    except Exception as e:  # a model whose step cannot be captured trains eagerly
        restore(model, opt, snap)
        return EagerStep(model, opt, grad_clip, bf16), f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
