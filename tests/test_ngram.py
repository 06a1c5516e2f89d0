from collections import Counter

import pytest

from seqicl.data import IGNORE, Split, generate
from seqicl.data.automaton import DFA
from seqicl.data.regbench import to_split
from seqicl.data.vocab import Vocab
from seqicl.data.ngram import ngram_baselines, ngram_distributions, ngram_scores

from conftest import small_task

# letters a=0, b=1, c=2, `|`=3, pad `.`=4
VOCAB = Vocab(["a", "b", "c", "|", "."])
# 0 -a-> 1, 1 -b-> 0, 1 -c-> 1
DFA_ABC = DFA((((0, 1),), ((1, 0), (2, 1))))


def split_of(*texts: str) -> Split:
    examples = [(DFA_ABC, VOCAB.encode(t)) for t in texts]
    return to_split(examples, VOCAB, max(len(toks) for _, toks in examples))


def dists(split: Split, n: int) -> dict[tuple[int, int], list[float]]:
    index, probs = ngram_distributions(split, n)
    return {tuple(i): p for i, p in zip(index.tolist(), probs.tolist())}


# "a b | a c c | a b":
#   t          0  1  2  3  4  5  6  7  8
#   inputs     a  b  |  a  c  c  |  a  b
#   targets    b  -  a  c  c  -  a  b  -        scored: t = 0, 2, 3, 4, 6, 7
#   dfa_state  1  0  0  1  1  1  0  1  0        state 0 allows {a}, state 1 allows {b, c}
#   DFA q      at state 0: (1, 0, 0, 0, 0); at state 1: (0, .5, .5, 0, 0)   over (a, b, c, |, .)
#
# 2-gram (successors of earlier occurrences of inputs[t]; else unigram of inputs[0..t]):
#   t=0 cur a: no pairs -> unigram {a}: (1,0,0,0)     pred a, state 1: wrong; tvd (1+.5+.5)/2 = 1
#   t=2 cur |: no earlier | -> unigram a b |: (1/3,1/3,0,1/3)  pred a (tie -> smallest id), state 0: right;
#              tvd (2/3 + 1/3 + 1/3)/2 = 2/3
#   t=3 cur a: a was followed by b (t=0): (0,1,0,0)  pred b: right; tvd (.5+.5)/2 = .5
#   t=4 cur c: no earlier c -> unigram a b | a c: (.4,.2,.2,.2)  pred a: wrong; tvd (.4+.3+.3+.2)/2 = .6
#   t=6 cur |: | was followed by a (t=2): (1,0,0,0)   pred a: right; tvd 0
#   t=7 cur a: a followed by b (t=0) and c (t=3): (0,.5,.5,0)  pred b (tie): right; tvd 0
#   dfa_accuracy 4/6, tvd (1 + 2/3 + 1/2 + 3/5 + 0 + 0)/6 = 83/180
#
# 3-gram (successors of earlier (inputs[t-1], inputs[t]); else the 2-gram):
#   t=0: no previous token -> 2-gram: wrong, tvd 1
#   t=2 (b,|), t=3 (|,a), t=4 (a,c), t=6 (c,|): never seen before -> the 2-gram's answer and tvd
#   t=7 (|,a): seen at t=2..3, followed by c: (0,0,1,0)  pred c: right; tvd (.5+.5)/2 = .5
#   dfa_accuracy 4/6, tvd (1 + 2/3 + 1/2 + 3/5 + 0 + 1/2)/6 = 98/180 = 49/90
HAND = "a b | a c c | a b"
HAND_2GRAM = {(0, 0): [1, 0, 0, 0, 0], (0, 2): [1 / 3, 1 / 3, 0, 1 / 3, 0], (0, 3): [0, 1, 0, 0, 0],
              (0, 4): [.4, .2, .2, .2, 0], (0, 6): [1, 0, 0, 0, 0], (0, 7): [0, .5, .5, 0, 0]}
HAND_3GRAM = {**HAND_2GRAM, (0, 7): [0, 0, 1, 0, 0]}


def test_hand_example_split_layout():
    s = split_of(HAND)
    assert s.inputs.tolist() == [[0, 1, 3, 0, 2, 2, 3, 0, 1]]
    assert s.targets.tolist() == [[1, IGNORE, 0, 2, 2, IGNORE, 0, 1, IGNORE]]
    assert s.dfa_state.tolist() == [[1, 0, 0, 1, 1, 1, 0, 1, 0]]


@pytest.mark.parametrize("n, want", [(2, HAND_2GRAM), (3, HAND_3GRAM)])
def test_hand_example_distributions(n, want):
    got = dists(split_of(HAND), n)
    assert list(got) == list(want)
    for pos, p in want.items():
        assert got[pos] == pytest.approx(p, abs=1e-12), pos


def test_hand_example_scores():
    s = split_of(HAND)
    assert ngram_scores(s, 2) == {"dfa_accuracy": pytest.approx(4 / 6), "tvd": pytest.approx(83 / 180)}
    assert ngram_scores(s, 3) == {"dfa_accuracy": pytest.approx(4 / 6), "tvd": pytest.approx(49 / 90)}
    assert ngram_baselines(s) == {"2-gram": ngram_scores(s, 2), "3-gram": ngram_scores(s, 3)}


def test_3gram_context_beats_2gram_majority():
    # t: 0 a, 1 c, 2 c, 3 b, 4 |, 5 a, 6 c, 7 |, 8 a, 9 c, 10 |, 11 a, 12 c, 13 |, 14 a, 15 c, 16 c, 17 b
    # at t=16 (state 1, allows b, c; target b):
    #   2-gram: c was followed by c (t=1), b (t=2), | (t=6, 9, 12), c (t=15): b 1/6, c 2/6, | 3/6
    #           -> pred `|`, never a transition: wrong; tvd (1/3 + 1/6 + 1/2)/2 = 1/2
    #   3-gram: (c, c) was seen once (t=1..2), followed by b: b 1 -> right; tvd (.5 + .5)/2 = .5
    text = "a c c b | a c | a c | a c | a c c b"
    s = split_of(text)
    assert dists(s, 2)[(0, 16)] == pytest.approx([0, 1 / 6, 2 / 6, 3 / 6, 0])
    assert dists(s, 3)[(0, 16)] == pytest.approx([0, 1, 0, 0, 0])
    # the same text cut just after t=16's target: position 16 is then the only difference
    # that matters, so compare against the text without the last letter (no target at t=16)
    cut = split_of(text[:-2])
    full2, full3 = ngram_scores(s, 2), ngram_scores(s, 3)
    cut2, cut3 = ngram_scores(cut, 2), ngram_scores(cut, 3)
    k = int((s.targets != IGNORE).sum())                   # scored positions in the full text
    assert k == int((cut.targets != IGNORE).sum()) + 1
    assert full2["dfa_accuracy"] * k == pytest.approx(cut2["dfa_accuracy"] * (k - 1) + 0)
    assert full3["dfa_accuracy"] * k == pytest.approx(cut3["dfa_accuracy"] * (k - 1) + 1)
    assert full2["tvd"] * k == pytest.approx(cut2["tvd"] * (k - 1) + 0.5)
    assert full3["tvd"] * k == pytest.approx(cut3["tvd"] * (k - 1) + 0.5)


def test_backoff_order():
    s = split_of(HAND)
    two, three = dists(s, 2), dists(s, 3)
    # t=3: 3-gram context (|, a) unseen -> exactly the 2-gram (a was followed by b)
    assert three[(0, 3)] == two[(0, 3)] == [0, 1, 0, 0, 0]
    # t=4: current c unseen -> 2-gram is the unigram of a b | a c, and the 3-gram follows it
    assert three[(0, 4)] == two[(0, 4)] == pytest.approx([.4, .2, .2, .2, 0])
    # t=0: no context at all -> unigram of the single token read so far
    assert three[(0, 0)] == two[(0, 0)] == [1, 0, 0, 0, 0]


def test_examples_do_not_share_counts_and_padding_is_ignored():
    # the second example alone vs. batched after a longer one (which it gets padded to):
    # counts never leak between examples, whatever the chunking
    alone = split_of("a c | a b")
    both = split_of(HAND + " | a c c c | a c", "a c | a b")
    for n in (2, 3):
        a = dists(alone, n)
        for chunk in (1, 2, 128):
            index, probs = ngram_distributions(both, n, chunk=chunk)
            got = {tuple(i): p for i, p in zip(index.tolist(), probs.tolist()) if i[0] == 1}
            assert got == {(1, t): p for (_, t), p in a.items()}


# ---- generated RegBench data vs. a brute-force reference (refit at every position) ----

def brute_force(split: Split, n: int, examples) -> tuple[dict, float, float]:
    v = split.dfa_trans.shape[-1]
    sep, pad = v - 2, v - 1
    out, hits, tvd, count = {}, 0, 0.0, 0
    for e in examples:
        x = [int(a) for a in split.inputs[e]]
        for t in range(len(x)):
            if int(split.targets[e, t]) in (IGNORE, sep):   # letter targets only
                continue
            ctx = [a for a in x[: t + 1] if a != pad]
            counts = Counter()
            if n == 3 and t >= 1:
                counts = Counter(ctx[j + 1] for j in range(1, t) if (ctx[j - 1], ctx[j]) == (ctx[t - 1], ctx[t]))
            if not counts:
                counts = Counter(ctx[j + 1] for j in range(t) if ctx[j] == ctx[t])
            if not counts:
                counts = Counter(ctx)
            if not counts:
                counts = Counter(range(v - 1))
            total = sum(counts.values())
            p = [counts[a] / total for a in range(v)]
            pred = min(range(v), key=lambda a: (-counts[a], a))
            row = split.dfa_trans[e, int(split.dfa_state[e, t])].tolist()
            valid = [a for a in range(v) if row[a] >= 0]
            q = [1 / len(valid) if a in valid else 0.0 for a in range(v)]
            hits += pred != sep and row[pred] >= 0
            tvd += 0.5 * sum(abs(pa - qa) for pa, qa in zip(p, q))
            count += 1
            out[(e, t)] = p
    return out, hits / count, tvd / count


@pytest.fixture(scope="module")
def dfa_data():
    return generate(small_task("dfa", num_train=20, num_val=10, num_test=20))


def subset(split: Split, k: int) -> Split:
    return Split(split.inputs[:k], split.targets[:k], split.dfa_trans[:k], split.dfa_state[:k])


@pytest.mark.parametrize("n", [2, 3])
def test_matches_brute_force_on_generated_data(dfa_data, n):
    s = subset(dfa_data.test, 5)
    want, acc, tvd = brute_force(s, n, range(len(s)))
    for chunk in (2, 128):
        index, probs = ngram_distributions(s, n, chunk=chunk)
        got = {tuple(i): p for i, p in zip(index.tolist(), probs.tolist())}
        assert got.keys() == want.keys()
        for pos in want:
            assert got[pos] == pytest.approx(want[pos], abs=1e-12), pos
    assert ngram_scores(s, n, chunk=2) == {"dfa_accuracy": pytest.approx(acc), "tvd": pytest.approx(tvd)}


def test_baselines_on_generated_data(dfa_data):
    res = ngram_baselines(dfa_data.test)
    chance = dfa_data.info["chance"]
    assert set(res) == {"2-gram", "3-gram"}
    for name, m in res.items():
        assert set(m) == {"dfa_accuracy", "tvd"}
        assert m["dfa_accuracy"] > chance + 0.3, (name, m, chance)
        assert 0 <= m["tvd"] <= 1
    # the scored positions are the model metrics' ones: every letter target (not -100, not `|`)
    index, _ = ngram_distributions(dfa_data.test, 2)
    targets = dfa_data.test.targets
    assert len(index) == int(((targets != IGNORE) & (targets != 18)).sum())


def test_rejects_bad_order_and_non_dfa_split():
    s = split_of(HAND)
    with pytest.raises(ValueError):
        ngram_scores(s, 4)
    with pytest.raises(ValueError):
        ngram_scores(Split(s.inputs, s.targets), 2)
