"""The generator's own law (analysis.generation_law): its next-token probabilities from the
generator's definition, and what greedy and sampled decoding of it give on real test automata."""
import json

import pytest
import torch

from analysis.generation_law import GeneratorLaw, law_generation, main
from seqicl.config import compose
from seqicl.data.automaton import DFA

# state 0: a -> 1, b -> 0; state 1: c -> 0 (letters a=0, b=1, c=2; `|` = 3)
DFA2 = DFA((((0, 1), (1, 0)), ((2, 0),)))


def test_the_law_follows_the_length_hazard_and_the_edges():
    law = GeneratorLaw(DFA2, vocab_size=5, sep=3, min_len=2, max_len=5)
    # below min_len: never ends; two edges share the mass
    assert law.next_token_probs([]).tolist() == [0.5, 0.5, 0, 0, 0]
    assert law.next_token_probs([0]).tolist() == [0, 0, 1.0, 0, 0]          # in state 1, one edge, k=1 < 2
    # k = 2 of lengths uniform on 2..5: P(L = 2 | L >= 2) = 1/4; state 0 after "ac"
    assert law.next_token_probs([0, 2]).tolist() == pytest.approx([0.375, 0.375, 0, 0.25, 0])
    assert law.next_token_probs([0, 2, 1]).tolist() == pytest.approx([1 / 3, 1 / 3, 0, 1 / 3, 0])   # k=3: 1/3
    assert law.next_token_probs([1, 1, 1, 1, 1])[3] == 1.0                  # at max_len: always ends
    assert law.next_token_probs([2])[3] == 1.0                              # off the automaton: ends


def test_the_law_reads_the_letters_after_the_last_separator():
    law = GeneratorLaw(DFA2, vocab_size=5, sep=3, min_len=1, max_len=4)
    logits = law(torch.tensor([[0, 2, 3, 0], [1, 3, 1, 1]]))
    assert logits.shape == (2, 4, 5)
    assert logits[0, -1].exp().tolist() == pytest.approx([0, 0, 0.75, 0.25, 0])   # "a": state 1, k=1: 1/4
    assert logits[1, -1].exp().tolist() == pytest.approx([1 / 3, 1 / 3, 0, 1 / 3, 0])   # "bb": k=2: 1/3


@pytest.fixture(scope="module")
def law_export(tmp_path_factory):
    """An export folder as committed (config and vocabulary, no weights) of a small RegBench task."""
    from seqicl.data import load_task
    cfg = compose(["task=dfa", "task.num_train=32", "task.num_val=8", "task.num_test=40", "device=cpu"])
    folder = tmp_path_factory.mktemp("exp")
    (folder / "config.json").write_text(json.dumps(cfg))
    vocab = load_task(cfg["task"]).vocab
    (folder / "vocab.json").write_text(json.dumps(vocab))
    return folder, cfg


def test_greedy_decoding_of_the_law_ends_late_and_sampling_matches_the_context(law_export):
    folder, cfg = law_export
    greedy, sampled = [s for s, _ in law_generation(folder, 40, 8, [None, 1.0], seed=0, max_letters=60)]
    top = cfg["task"]["max_string_len"]
    # every string follows the automaton and ends; greedy writes `|` only once the hazard beats the
    # top letter (after top - 3 to top letters, out-degrees 1-3), sampling writes the context's lengths
    assert greedy["acceptance"] == 1.0 and greedy["ended"] == 1.0
    assert top - 3 <= greedy["mean_length"] <= top
    assert sampled["acceptance"] == 1.0 and sampled["ended"] == 1.0
    assert abs(sampled["mean_length"] - sampled["context_length"]) < 4.0
    assert greedy["decoding"] == "greedy, the generator's law" and sampled["decoding"] == "T=1, the generator's law"


def test_the_command_writes_its_rows_beside_the_exports_and_fails_in_one_line(law_export, tmp_path, capsys):
    folder, _ = law_export
    assert main([str(folder), "--num-dfas", "3", "--samples", "2", "--decoding", "greedy"]) == 0
    row = json.loads((folder / "generation-law-greedy.json").read_text())
    assert row["num_dfas"] == 3 and row["acceptance"] == 1.0
    capsys.readouterr()
    assert main([str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "config.json is missing" in err[0]
    # garbage in a config or a vocabulary: one line, status 2, nothing written
    for i, (config, vocab, says) in enumerate([({"task": {"name": "dfa"}}, [], "not a whole task configuration"),
                                ([1, 2], [], "not a whole task configuration"),
                                (json.loads((folder / "config.json").read_text()), ["a", "|"], "not the task's vocabulary")]):
        bad = tmp_path / f"bad{i}"
        bad.mkdir()
        (bad / "config.json").write_text(json.dumps(config))
        (bad / "vocab.json").write_text(json.dumps(vocab))
        assert main([str(bad), "--num-dfas", "1"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err
        assert sorted(p.name for p in bad.iterdir()) == ["config.json", "vocab.json"]
