import json
import subprocess
import sys

import pytest
import torch

from analysis.generate import dfa_from_table, sample_strings, summarize
from seqicl.config import compose
from seqicl.data import load_task
from seqicl.data.automaton import DFA
from seqicl.export import ExportError, load_export, write_export
from seqicl.train import train
from seqicl.train.checkpoint import read_checkpoint

from conftest import ROOT

A, B, C, SEP, PAD = 0, 1, 2, 3, 4


class Scripted(torch.nn.Module):
    """Emits ``script[k]`` as its argmax at step k after the prompt: a model whose answer is known."""
    pos = None

    def __init__(self, prompt_len, script):
        super().__init__()
        self.prompt_len, self.script = prompt_len, script

    def forward(self, tokens):
        logits = torch.zeros(tokens.shape[0], tokens.shape[1], 5)
        k = tokens.shape[1] - self.prompt_len
        logits[:, -1, self.script[min(k, len(self.script) - 1)]] = 10.0
        return logits


@pytest.mark.parametrize("script, word, accepted", [
    ([A, C, C, SEP], [A, C, C], True),    # 0 -a-> 1 -c-> 1 -c-> 1
    ([A, B, A, SEP], [A, B, A], True),    # 0 -a-> 1 -b-> 0 -a-> 1
    ([B, SEP], [B], False),               # no b out of the start state
    ([A, A, SEP], [A, A], False),
])
def test_generation_acceptance_on_a_hand_built_dfa(script, word, accepted):
    dfa = DFA((((A, 1),), ((B, 0), (C, 1))))
    prompt = [A, B, SEP, A, C, SEP]
    out = sample_strings(Scripted(len(prompt), script), prompt, samples=3, letters=3, sep=SEP, max_letters=10,
                         temperature=None, generator=torch.Generator(), max_len=None, device="cpu")
    assert out == [(word, True)] * 3
    assert dfa.accepts(out[0][0]) is accepted


def test_generation_stops_at_the_letter_limit_and_reads_tables():
    prompt = [A, SEP]
    out = sample_strings(Scripted(2, [A, B]), prompt, 1, 3, SEP, max_letters=5, temperature=None,
                         generator=torch.Generator(), max_len=None, device="cpu")
    assert out == [([A, B, B, B, B], False)]
    table = torch.tensor([[1, -1, -1, -1, -1], [-1, 0, 1, -1, -1], [-1] * 5])
    assert dfa_from_table(table) == DFA((((A, 1),), ((B, 0), (C, 1))))
    records = [{"dfa": 0, "string": "ab", "length": 2, "accepted": True, "in_context": True, "ended": True},
               {"dfa": 0, "string": "ab", "length": 2, "accepted": True, "in_context": False, "ended": True},
               {"dfa": 1, "string": "", "length": 0, "accepted": True, "in_context": False, "ended": False},
               {"dfa": 1, "string": "b", "length": 1, "accepted": False, "in_context": False, "ended": True}]
    s = summarize(records, 2, 2, "greedy")
    assert s["acceptance"] == 0.75 and s["mean_length"] == 1.25 and s["distinct"] == 0.75
    assert s["novel"] == 0.75 and s["empty"] == 0.25 and s["unterminated"] == 0.25


@pytest.fixture(scope="module")
def dfa_checkpoint(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    cfg = compose(["task=dfa", "task.num_train=64", "task.num_val=16", "task.num_test=16", "model.d_model=16",
                   "train.epochs=1", "train.progress=false", "device=cpu"])
    train(cfg, run_dir=run)
    return run / "best.pt", cfg


def test_export_then_load_reproduces_logits_bit_for_bit(dfa_checkpoint, tmp_path):
    ckpt_path, cfg = dfa_checkpoint
    ckpt = read_checkpoint(ckpt_path)
    out = write_export(tmp_path / "exp", ckpt, {"trial": "t1"})
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["weights.pt", "config.json", "vocab.json", "metrics.json", "provenance.json"])
    assert torch.load(out / "weights.pt", weights_only=True).keys() == ckpt["model"].keys()
    model, meta = load_export(out)
    from seqicl.train import load_checkpoint
    original, _ = load_checkpoint(ckpt_path)
    x = load_task(cfg["task"]).test.inputs[:4]
    assert torch.equal(model(x), original(x))
    assert meta["config"] == cfg and meta["provenance"]["trial"] == "t1"
    with pytest.raises(ExportError, match="already exists"):
        write_export(out, ckpt, {})


def test_missing_or_corrupt_export_fails_with_one_line_and_status_2(dfa_checkpoint, tmp_path):
    ckpt = read_checkpoint(dfa_checkpoint[0])
    cases = {}
    for name in ("missing_weights", "corrupt_weights", "corrupt_json", "foreign"):
        cases[name] = write_export(tmp_path / name, ckpt, {})
    (cases["missing_weights"] / "weights.pt").unlink()
    (cases["corrupt_weights"] / "weights.pt").write_bytes(b"\x00" * 10)
    (cases["corrupt_json"] / "config.json").write_text("{not json")
    (cases["foreign"] / "provenance.json").write_text(json.dumps({"format": "other"}))
    cases["absent"] = tmp_path / "absent"
    for name, folder in cases.items():
        with pytest.raises(ExportError):
            load_export(folder)
        proc = subprocess.run([sys.executable, "-m", "analysis.generate", str(folder), "--num-dfas", "1"],
                              cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 2, (name, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error: "), (name, proc.stderr)
