import importlib
import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from analysis.generate import dfa_from_table, fit_prompt, generate_on, sample_strings, summarize
from seqicl.config import compose
from seqicl.data import load_task
from seqicl.data.automaton import DFA
from seqicl.data.regbench import to_split
from seqicl.data.vocab import Vocab
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


# ---- generation statistics on models whose strings are known ----------------------------------

VOCAB5 = ["a", "b", "c", "|", "."]
HAND_DFA = DFA((((A, 1),), ((B, 0), (C, 1))))   # 0 -a-> 1, 1 -b-> 0, 1 -c-> 1


def hand_test_split():
    """Two held-out examples of the hand DFA: context strings "ab", "acc" and "ac", "aba"."""
    texts = ["a b | a c c", "a c | a b a"]
    examples = [(HAND_DFA, Vocab(VOCAB5).encode(t)) for t in texts]
    return to_split(examples, Vocab(VOCAB5), 7)


class Writer(torch.nn.Module):
    """Writes, in every string it starts, the letters of ``word(first context string)`` and then
    ``|`` (never, with ``end=False``): its argmax carries all the probability mass, so greedy
    and sampled decoding give the same strings."""
    pos = None

    def __init__(self, word, end=True):
        super().__init__()
        self.word, self.end = word, end

    def forward(self, tokens):
        logits = torch.full((tokens.shape[0], tokens.shape[1], 5), -1e4)
        row = tokens[0].tolist()
        first = row[: row.index(SEP)]
        k = len(row) - 1 - max(i for i, t in enumerate(row) if t == SEP)   # letters since the last `|`
        word = self.word(first)
        nxt = word[k] if k < len(word) else (SEP if self.end else word[-1])
        logits[:, -1, nxt] = 0.0
        return logits


@pytest.mark.parametrize("temperature", [None, 1.0])
def test_generation_statistics_of_a_model_that_copies_the_context(temperature):
    summary, records = generate_on(Writer(lambda first: first), hand_test_split(), VOCAB5, num_dfas=2,
                                   samples=3, temperature=temperature, seed=0, max_letters=10)
    assert [r["string"] for r in records] == ["ab"] * (1 if temperature is None else 3) + ["ac"] * (1 if temperature is None else 3)
    assert summary["acceptance"] == 1.0 and summary["ended"] == 1.0 and summary["unterminated"] == 0.0
    assert summary["mean_length"] == 2.0 and summary["context_length"] == pytest.approx((2 + 3 + 2 + 3) / 4)
    assert summary["novel"] == 0.0 and summary["novel_accepted"] == 0.0 and summary["empty"] == 0.0
    # greedy writes one string per DFA; sampling writes 3, all the same here: 1 distinct in 3
    assert summary["samples"] == (1 if temperature is None else 3)
    assert summary["distinct"] == (None if temperature is None else pytest.approx(1 / 3))
    assert summary["decoding"] == ("greedy" if temperature is None else "T=1")


@pytest.mark.parametrize("word, end, want", [
    # an accepted string not in the context: 0 -a-> 1 -b-> 0 -a-> 1 -c-> 1
    ([A, B, A, C], True, {"acceptance": 1.0, "ended": 1.0, "mean_length": 4.0, "novel": 1.0, "novel_accepted": 1.0}),
    # no b out of the start state: rejected, and not copied
    ([B, C], True, {"acceptance": 0.0, "ended": 1.0, "mean_length": 2.0, "novel": 1.0, "novel_accepted": 0.0}),
    # a c c c ... never ends: cut at the 5-letter cap, accepted (every state accepts), not ended
    ([A, C], False, {"acceptance": 1.0, "ended": 0.0, "mean_length": 5.0, "novel": 1.0, "novel_accepted": 1.0}),
])
def test_generation_statistics_of_a_model_that_writes_a_fixed_string(word, end, want):
    summary, records = generate_on(Writer(lambda first: word, end), hand_test_split(), VOCAB5, num_dfas=2,
                                   samples=2, temperature=1.0, seed=0, max_letters=5)
    assert len(records) == 4 and summary["distinct"] == 0.5     # two identical samples per DFA
    assert {k: summary[k] for k in want} == want


def test_a_model_with_learned_positions_keeps_the_last_context_strings_that_fit():
    strings = [[A, B], [A, C, C], [A]]
    assert fit_prompt(strings, None) == strings
    assert fit_prompt(strings, 6) == [[A, C, C], [A]]           # 4 + 2 tokens with their `|`
    assert fit_prompt(strings, 5) == [[A]]
    assert fit_prompt(strings, 0) == [[A]]                       # always one string
    # max_len 8 with 5 letters: room for 2 prompt tokens, so each prompt keeps only its last string
    # ("acc", "aba"; at least one is kept) and the generation still has its 5 letters and `|`
    summary, records = generate_on(Writer(lambda first: first), hand_test_split(), VOCAB5, num_dfas=2,
                                   samples=1, temperature=None, seed=0, max_letters=5, max_len=8)
    assert [r["string"] for r in records] == ["acc", "aba"]     # copies its prompt's first (only) string
    assert summary["context_length"] == 3.0 and summary["ended"] == 1.0 and summary["novel"] == 0.0


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


def test_generate_writes_greedy_and_sampled_in_one_call(dfa_checkpoint, tmp_path, capsys):
    from analysis.generate import main
    out = write_export(tmp_path / "exp", read_checkpoint(dfa_checkpoint[0]), {})
    assert main([str(out), "--num-dfas", "3", "--samples", "2", "--device", "cpu", "--max-letters", "8"]) == 0
    greedy = json.loads((out / "generation-greedy.json").read_text())
    sampled = json.loads((out / "generation-T1.json").read_text())
    assert (greedy["decoding"], greedy["samples"], sampled["decoding"], sampled["samples"]) == ("greedy", 1, "T=1", 2)
    assert len((out / "generations-greedy.jsonl").read_text().splitlines()) == 3
    lines = [json.loads(x) for x in (out / "generations-T1.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and all(0 <= r["length"] <= 8 for r in lines)
    assert sampled["ended"] == sum(r["ended"] for r in lines) / 6
    assert "greedy" in capsys.readouterr().out
    # a second call at another temperature adds its own files beside them
    assert main([str(out), "--num-dfas", "1", "--temperature", "0.5", "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.glob("generation-*.json")) == [
        "generation-T0.5.json", "generation-T1.json", "generation-greedy.json"]


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


# ---- command-line errors, skipped pairs and relative provenance -------------------------------

def run_main(main, argv, capsys):
    """(status, stderr lines) of an in-process CLI run; a parser error exits through SystemExit."""
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    return rc, capsys.readouterr().err.strip().splitlines()


def stub_trial(root, rel, ckpt_bytes=None, task="dfa", model="lstm"):
    """A Trial-like object whose folder ``root/rel`` holds ``best.pt`` (absent when ckpt_bytes is None)."""
    path = (root / rel).resolve()
    path.mkdir(parents=True)
    if ckpt_bytes is not None:
        (path / "best.pt").write_bytes(ckpt_bytes)
    return SimpleNamespace(task=task, model=model, num_train=64, trial_id=path.name, path=path, status="finished")


@pytest.fixture
def stub_results(monkeypatch):
    """Makes analysis.export see the given stub trials, each pair's first one as its best."""
    import analysis.export as export

    def use(trials):
        monkeypatch.setattr(export, "load_trials", lambda root: list(trials))
        monkeypatch.setattr(export, "best_trial", lambda ts: ts[0] if ts else None)
    return use


@pytest.mark.parametrize("cli, argv", [
    ("export", ["--bogus"]), ("export", []), ("export", ["x", "--num-train", "many"]),
    ("generate", []), ("generate", ["x", "--bogus"]), ("generate", ["x", "--num-dfas", "two"]),
    ("generate", ["x", "--greedy", "--temperature", "1"]),
    ("generate", ["x", "--samples", "0"]), ("generate", ["x", "--temperature", "nan"]),
    ("generate", ["x", "--temperature", "-1"]), ("generate", ["x", "--device", "bogus"]),
    ("generate", ["x", "--decoding", "greedy,hot"]), ("generate", ["x", "--decoding", "0"]),
    ("generate", ["x", "--decoding", "greedy", "--greedy"]),
])
def test_bad_command_line_gives_one_line_and_status_2(cli, argv, capsys):
    main = importlib.import_module(f"analysis.{cli}").main
    rc, err = run_main(main, argv, capsys)
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: "), err


def test_bad_flag_in_a_real_process_gives_one_line(tmp_path):
    for module in ("analysis.export", "analysis.generate"):
        proc = subprocess.run([sys.executable, "-m", module, str(tmp_path), "--bogus"], cwd=ROOT,
                              capture_output=True, text=True)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith("error: unrecognized arguments: --bogus"), proc.stderr


def test_export_all_of_an_empty_folder_fails_with_one_line_and_creates_nothing(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "analysis.export", str(tmp_path), "--all"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"error: {tmp_path}: no seqicl trials to export\n"
    assert list(tmp_path.iterdir()) == []


def test_export_all_with_no_usable_trial_is_an_error(tmp_path, stub_results, monkeypatch, capsys):
    import analysis.export as export
    stub_results([stub_trial(tmp_path, "dfa/lstm/trials/0001", b"x")])
    monkeypatch.setattr(export, "best_trial", lambda ts: None)   # every trial errored or diverged
    rc, err = run_main(export.main, [str(tmp_path), "--all"], capsys)
    assert rc == 2 and err == [f"error: {tmp_path}: no seqicl trials to export"]


@pytest.mark.parametrize("content", [None, b"not a checkpoint"])
def test_export_of_a_missing_or_corrupt_checkpoint_names_the_trial(content, tmp_path, stub_results, capsys):
    import analysis.export as export
    stub_results([stub_trial(tmp_path, "dfa/lstm/trials/0007", content)])
    rc, err = run_main(export.main, [str(tmp_path), "--task", "dfa", "--model", "lstm",
                                     "--out", str(tmp_path / "exp")], capsys)
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: trial 0007: "), err
    rc, err = run_main(export.main, [str(tmp_path), "--all"], capsys)
    assert rc == 2 and len(err) == 2 and err[0].startswith("skipped dfa/lstm: trial 0007: "), err
    assert err[1] == f"error: {tmp_path}: nothing exported (every pair was skipped)"
    assert not (tmp_path / "exp").exists() and not (tmp_path / "exports").exists()


def test_export_all_skips_a_corrupt_pair_and_exports_the_rest(dfa_checkpoint, tmp_path, stub_results, capsys):
    import analysis.export as export
    good = stub_trial(tmp_path, "dfa/lstm/trials/0003", dfa_checkpoint[0].read_bytes())
    bad = stub_trial(tmp_path, "dfa/transformer/trials/0001", b"\x00" * 10, model="transformer")
    stub_results([good, bad])
    (tmp_path / "exports" / "keep").mkdir(parents=True)   # already on disk: must survive
    rc = export.main([str(tmp_path), "--all"])
    out, err = capsys.readouterr()
    assert rc == 0 and out.strip() == str(tmp_path / "exports" / "dfa-lstm")
    assert len(err.splitlines()) == 1 and err.startswith("skipped dfa/transformer: trial 0001: ")
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == ["dfa-lstm", "keep"]  # no temp folder left
    # a second run finds the export in place: skipped, not overwritten, and nothing exported is an error
    before = (tmp_path / "exports" / "dfa-lstm" / "provenance.json").read_text()
    assert export.main([str(tmp_path), "--all"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "exports" / "dfa-lstm" / "provenance.json").read_text() == before


def test_provenance_holds_only_relative_paths_and_survives_a_move(dfa_checkpoint, tmp_path, stub_results, capsys):
    import analysis.export as export
    root = tmp_path / "results"
    stub_results([stub_trial(root, "induction/lstm/trials/0003", dfa_checkpoint[0].read_bytes())])
    assert export.main([str(root), "--all"]) == 0
    prov = json.loads((root / "exports" / "dfa-lstm" / "provenance.json").read_text())
    assert prov["results"] == "results" and prov["trial"] == "0003"
    assert prov["trial_dir"] == "induction/lstm/trials/0003"
    assert prov["checkpoint"] == "induction/lstm/trials/0003/best.pt"
    assert {"format", "max_len", "epoch", "exported", "seqicl_version"} <= set(prov)
    text = json.dumps(prov)
    assert str(tmp_path) not in text and not any(isinstance(v, str) and v.startswith("/") for v in prov.values())
    moved = tmp_path / "moved"
    root.rename(moved)
    model, meta = load_export(moved / "exports" / "dfa-lstm")
    assert (moved / meta["provenance"]["checkpoint"]).is_file()
    with pytest.raises(ValueError, match="relative"):
        write_export(tmp_path / "abs", read_checkpoint(dfa_checkpoint[0]), {"trial_dir": str(tmp_path)})


def test_generation_from_a_non_dfa_export_fails_with_one_line(dfa_checkpoint, tmp_path):
    out = write_export(tmp_path / "exp", read_checkpoint(dfa_checkpoint[0]), {})
    cfg = json.loads((out / "config.json").read_text())
    cfg["task"]["name"] = "induction"
    (out / "config.json").write_text(json.dumps(cfg))
    proc = subprocess.run([sys.executable, "-m", "analysis.generate", str(out), "--num-dfas", "1"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"error: {out}: generation needs a RegBench (dfa) model, this one is induction")
    assert not list(out.glob("generation*"))
