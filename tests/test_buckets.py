"""Length buckets (seqicl/train/buckets.py): which rows go where, the epochs they give, that a
batch cut to its bucket has the padded batch's loss and gradients, and training with them."""
import pytest
import torch

from seqicl.config import compose
from seqicl.data import IGNORE
from seqicl.data.regbench import generate
from seqicl.models import build_model
from seqicl.train.buckets import epoch_batches, make_buckets, steps_per_epoch, supervised_lengths
from seqicl.train.loop import build_run, train
from seqicl.train.record import RunRecord
from seqicl.train.step import loss_of


def test_the_docstring_example():
    buckets = make_buckets(torch.tensor([5, 9, 3, 8, 7, 2]), 2, batch_size=1, width=10, multiple=1)
    assert [(b.length, b.rows.tolist()) for b in buckets] == [(5, [0, 2, 5]), (9, [1, 3, 4])]


def test_supervised_length_is_one_past_the_last_target():
    targets = torch.tensor([[3, 4, IGNORE, 5, IGNORE, IGNORE], [IGNORE] * 6, [1, 1, 1, 1, 1, 1]])
    assert supervised_lengths(targets).tolist() == [4, 0, 6]


def test_rounding_merging_and_no_bucket_smaller_than_a_batch():
    lengths = torch.tensor([10, 11, 12, 13, 30, 31, 60, 64])
    two = make_buckets(lengths, 4, batch_size=2, width=64)      # 10-13 all round to 16: merged
    assert [(b.length, b.rows.tolist()) for b in two] == [(16, [0, 1, 2, 3]), (32, [4, 5]), (64, [6, 7])]
    assert [b.length for b in make_buckets(lengths, 8, batch_size=4, width=64)] == [16, 64]   # 8 // 4 = 2 at most
    assert [b.length for b in make_buckets(lengths, 3, batch_size=1, width=50)] == [16, 32, 50]   # never past the width
    with pytest.raises(ValueError, match="length_buckets must be a whole number of at least 1"):
        make_buckets(lengths, 0, batch_size=1, width=64)


@pytest.fixture(scope="module")
def regbench():
    return generate(compose(["task=dfa", "task.num_train=300", "task.num_val=20", "task.num_test=20"])["task"])


def test_regbench_buckets_cover_every_row_once_and_hold_their_rows(regbench):
    targets = regbench.train.targets
    lengths = supervised_lengths(targets)
    buckets = make_buckets(lengths, 4, batch_size=8, width=targets.shape[1])
    rows = torch.cat([b.rows for b in buckets])
    assert sorted(rows.tolist()) == list(range(len(targets)))
    assert [b.length for b in buckets] == sorted({b.length for b in buckets})     # ascending, distinct
    for b in buckets:
        assert len(b.rows) >= 8 and int(lengths[b.rows].max()) <= b.length
        assert (targets[b.rows, b.length:] == IGNORE).all()       # nothing supervised is cut off
    # the point of it: far fewer padded positions than the set's width for every row
    padded = sum(b.length * len(b.rows) for b in buckets) / len(targets)
    assert padded < 0.8 * targets.shape[1]


def test_an_epoch_is_full_batches_of_one_bucket_each_reshuffled_every_epoch(regbench):
    buckets = make_buckets(supervised_lengths(regbench.train.targets), 3, batch_size=8,
                           width=regbench.train.targets.shape[1])
    gen = torch.Generator().manual_seed(0)
    first, second = epoch_batches(buckets, 8, gen), epoch_batches(buckets, 8, gen)
    for batches in (first, second):
        assert len(batches) == steps_per_epoch(buckets, 8) == sum(len(b.rows) // 8 for b in buckets)
        seen = torch.cat([rows for _, rows in batches])
        assert len(seen) == len(set(seen.tolist())) == 8 * len(batches)       # no row twice
        for b, rows in batches:
            assert len(rows) == 8 and set(rows.tolist()) <= set(buckets[b].rows.tolist())
    assert [b for b, _ in first] != [b for b, _ in second]                     # buckets interleaved anew
    again = epoch_batches(buckets, 8, torch.Generator().manual_seed(0))
    assert all(a == b and torch.equal(x, y) for (a, x), (b, y) in zip(first, again))   # from the generator alone


@pytest.mark.parametrize("name", ["transformer", "hyena", "mamba", "lstm"])
def test_a_batch_cut_to_its_bucket_has_the_padded_batchs_loss_and_gradients(regbench, name):
    torch.manual_seed(0)
    cfg = compose([f"model={name}", "model.d_model=16", "task=dfa"])["model"]
    x, y = regbench.train.inputs[:8], regbench.train.targets[:8]
    model = build_model(cfg, len(regbench.vocab), x.shape[1]).eval()
    cut = int(supervised_lengths(y).max())
    assert cut < x.shape[1]
    full = loss_of(model, x, y)
    grads = torch.autograd.grad(full, list(model.parameters()), allow_unused=True)
    short = loss_of(model, x[:, :cut], y[:, :cut])
    short_grads = torch.autograd.grad(short, list(model.parameters()), allow_unused=True)
    torch.testing.assert_close(short, full, atol=1e-5, rtol=1e-5)
    for g, h in zip(grads, short_grads):
        if g is not None:
            torch.testing.assert_close(h, g, atol=1e-5, rtol=1e-4)


def dfa_cfg(*extra):
    return compose(["task=dfa", "task.num_train=96", "task.num_val=16", "task.num_test=16", "model.d_model=16",
                    "train.batch_size=8", "train.epochs=4", "train.state_every=2", "train.progress=false",
                    "device=cpu", *extra])


def test_training_with_buckets_runs_fewer_padded_steps_and_resumes_exactly(tmp_path):
    cfg = dfa_cfg("train.length_buckets=4")
    run = build_run(cfg)
    assert run.buckets is not None and len(run.buckets) > 1
    assert run.steps_per_epoch == steps_per_epoch(run.buckets, 8) <= 96 // 8
    straight = []
    train(cfg, on_epoch=straight.append, run_dir=tmp_path / "a")
    assert all(torch.isfinite(torch.tensor(m["train_loss"])) for m in straight)
    assert straight[-1]["train_loss"] < straight[0]["train_loss"]

    def die_after_3(m):
        if m["epoch"] == 3:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(cfg, on_epoch=die_after_3, run_dir=tmp_path / "b")
    train(cfg, run_dir=tmp_path / "b")
    rows = RunRecord(tmp_path / "b").epochs()
    for key in ("train_loss", "val_dfa_accuracy", "test_tvd"):
        assert [r[key] for r in rows] == [r[key] for r in straight], key


def test_one_bucket_is_the_padded_run_unchanged(tmp_path):
    a, b = [], []
    train(dfa_cfg(), on_epoch=a.append, run_dir=tmp_path / "a")
    train(dfa_cfg("train.length_buckets=1"), on_epoch=b.append, run_dir=tmp_path / "b")
    assert [m["train_loss"] for m in a] == [m["train_loss"] for m in b]


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["transformer", "mamba", "hyena"])
def test_bucketed_graph_steps_train_as_the_eager_ones(tmp_path, name):
    """One captured graph per bucket, replayed interleaved: the same epochs as eager steps."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    runs = {}
    for graph in (True, False):
        seen = []
        cfg = dfa_cfg("train.length_buckets=4", f"model={name}", "device=cuda", f"train.cuda_graph={str(graph).lower()}")
        train(cfg, on_epoch=seen.append, run_dir=tmp_path / str(graph))
        runs[graph] = [m["train_loss"] for m in seen]
    assert runs[True] == pytest.approx(runs[False], rel=1e-4, abs=1e-5)
    assert runs[True][-1] < runs[True][0]
