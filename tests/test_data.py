import random

import pytest
import torch

from seqicl.data import IGNORE, generate, load_task
from seqicl.data import cache as cache_mod
from seqicl.data.automaton import DFA, minimize, sample_raw

from conftest import small_task

TRIGGER = 18  # the separator id with vocab 20


def full_sequences(split):
    """Rebuild each full sequence: the inputs plus the last target (the answer)."""
    return torch.cat([split.inputs, split.targets[:, -1:]], dim=1)


def rows(t):
    return {tuple(r) for r in t.tolist()}


# ---- induction head -----------------------------------------------------------------------

def test_induction_format_and_masks():
    data = generate(small_task("induction"))
    assert data.train.inputs.shape == (200, 31) and data.test.inputs.shape == (50, 31)
    for split in (data.train, data.val, data.test):
        seqs = full_sequences(split)
        for s in seqs.tolist():
            first = s.index(TRIGGER)
            assert s.count(TRIGGER) == 2 and first < 28          # once inside, once at the end
            assert s[-2] == TRIGGER and s[-1] == s[first + 1]     # answer: the token after the trigger
            assert all(0 <= t < 18 for i, t in enumerate(s) if i not in (first, 30))
    # train: every next token; val/test: the answer only
    assert torch.equal(data.train.targets[:, :-1], data.train.inputs[:, 1:])
    for split in (data.val, data.test):
        assert (split.targets[:, :-1] == IGNORE).all() and (split.targets[:, -1] >= 0).all()
    assert data.info["chance"] == pytest.approx(1 / 18)


def test_associative_recall_format_and_masks():
    data = generate(small_task("associative_recall"))
    assert data.train.inputs.shape[1] == 42
    for s in full_sequences(data.test).tolist():
        pairs = list(zip(s[0:40:2], s[1:40:2]))
        kv = {}
        for k, v in pairs:
            assert 0 <= k < 9 and 9 <= v < 18                  # keys lower half, values upper half
            assert kv.setdefault(k, v) == v                     # one value per key within an example
        assert s[40] == TRIGGER and s[41] in kv and s[42] == kv[s[41]]
    assert (data.test.targets[:, :-1] == IGNORE).all()
    assert data.info["chance"] == pytest.approx(1 / 9)


def test_associative_recall_query_is_uniform_over_distinct_context_keys():
    """The original's law: the query key is uniform over the DISTINCT keys of the context. Then
    the queried key occurs, on average, 20 / (distinct keys) times in that example's context;
    drawing it in proportion to its occurrences (an easier task) makes it sum(c^2) / 20."""
    data = generate(small_task("associative_recall", num_train=6000, num_val=10, num_test=10))
    seqs = full_sequences(data.train).tolist()
    counts, expected, weighted = [], [], []
    for s in seqs:
        keys = s[0:40:2]
        counts.append(keys.count(s[41]))
        distinct = set(keys)
        expected.append(len(keys) / len(distinct))
        weighted.append(sum(keys.count(k) ** 2 for k in distinct) / len(keys))
    mean = sum(counts) / len(counts)
    assert abs(mean - sum(expected) / len(expected)) < 0.1
    assert sum(weighted) / len(weighted) - sum(expected) / len(expected) > 0.4  # the laws are told apart


@pytest.mark.parametrize("task", ["induction", "associative_recall", "dfa"])
def test_deterministic_from_seed_and_splits_disjoint(task):
    a, b = generate(small_task(task)), generate(small_task(task))
    c = generate(small_task(task, seed=1))
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(a, split).inputs, getattr(b, split).inputs)
    assert not torch.equal(a.train.inputs, c.train.inputs)
    if task != "dfa":
        tr, va, te = (rows(full_sequences(getattr(a, s))) for s in ("train", "val", "test"))
        assert len(tr) == 200 and len(va) == 50 and len(te) == 50   # no duplicates inside a split
        assert not (tr & te) and not (tr & va) and not (va & te)


# ---- automata ------------------------------------------------------------------------------

def distinguishable(dfa: DFA, p: int, q: int) -> bool:
    """Independent check: some string is accepted from exactly one of p, q (product search)."""
    seen, stack = {(p, q)}, [(p, q)]
    letters = {a for edges in dfa.transitions for a, _ in edges}
    while stack:
        x, y = stack.pop()
        for a in letters:
            nx, ny = dfa.next_state(x, a), dfa.next_state(y, a)
            if (nx is None) != (ny is None):
                return True
            if nx is not None and (nx, ny) not in seen:
                seen.add((nx, ny))
                stack.append((nx, ny))
    return False


def test_minimize_merges_equivalent_states_by_hand():
    # 0 -a-> 1, 0 -b-> 2, 1 -c-> 0, 2 -c-> 0, 3 unreachable: states 1 and 2 are equivalent
    dfa = minimize([{0: 1, 1: 2}, {2: 0}, {2: 0}, {0: 0}])
    assert dfa.transitions == (((0, 1), (1, 1)), ((2, 0),))
    assert dfa.accepts([0, 2, 1, 2]) and not dfa.accepts([0, 0])


def test_random_dfas_are_minimal_trimmed_and_canonical():
    rng = random.Random(0)
    for _ in range(200):
        raw = sample_raw(rng, 18, rng.randint(4, 12), rng.randint(4, 18), 1, 3)
        assert all(t != s for s, d in enumerate(raw) for t in d.values())      # sampled without self-loops
        assert all(1 <= len(d) <= 3 for d in raw)
        dfa = minimize(raw)
        n = dfa.num_states
        assert all(distinguishable(dfa, p, q) for p in range(n) for q in range(p + 1, n))
        reach, stack = {0}, [0]                                                # every state reachable
        while stack:
            for _, t in dfa.transitions[stack.pop()]:
                if t not in reach:
                    reach.add(t)
                    stack.append(t)
        assert reach == set(range(n))
        assert all(len(edges) >= 1 for edges in dfa.transitions)              # walks never get stuck
        # relabelling the raw states (keeping 0 the start) gives the same canonical automaton
        perm = [0] + rng.sample(range(1, len(raw)), len(raw) - 1)
        relabelled = [None] * len(raw)
        for s, d in enumerate(raw):
            relabelled[perm[s]] = {a: perm[t] for a, t in d.items()}
        assert minimize(relabelled).key() == dfa.key()


def test_raw_automata_have_distinct_targets_per_state():
    rng = random.Random(1)
    for _ in range(2000):
        raw = sample_raw(rng, 18, rng.randint(4, 12), rng.randint(4, 18), 1, 3)
        for s, edges in enumerate(raw):
            assert len(set(edges.values())) == len(edges), (s, edges)  # drawn without replacement
            assert s not in edges.values()


def test_regbench_automata_sizes_match_the_original_generator():
    """2,000 training DFAs of the default task: the original generator gives about 6.9 states
    after minimisation and 7.45 letters used (design notes, "The tasks")."""
    data = generate(small_task("dfa", num_train=2000, num_val=1, num_test=1))
    dfas = [dfa_from_table(t) for t in data.train.dfa_trans]
    states = sum(d.num_states for d in dfas) / len(dfas)
    letters = sum(len({a for edges in d.transitions for a, _ in edges}) for d in dfas) / len(dfas)
    assert abs(states - 6.9) < 0.1, states
    assert abs(letters - 7.45) < 0.15, letters


# ---- RegBench ------------------------------------------------------------------------------

def split_strings(seq: list[int], sep: int, pad: int) -> list[list[int]]:
    seq = [t for t in seq if t != pad]
    out, cur = [], []
    for t in seq:
        if t == sep:
            out.append(cur)
            cur = []
        else:
            cur.append(t)
    return out + [cur]


def dfa_from_table(table: torch.Tensor) -> DFA:
    rows_ = table.tolist()
    reach, stack = {0}, [0]
    while stack:
        for t in rows_[stack.pop()]:
            if t >= 0 and t not in reach:
                reach.add(t)
                stack.append(t)
    return DFA(tuple(tuple((a, t) for a, t in enumerate(rows_[s]) if t >= 0) for s in range(max(reach) + 1)))


@pytest.mark.parametrize("separator_target", [True, False])
def test_regbench_strings_accepted_masks_and_states(separator_target):
    cfg = small_task("dfa", num_train=60, num_val=20, num_test=20, separator_target=separator_target)
    data = generate(cfg)
    sep, pad = 18, 19
    for split in (data.train, data.test):
        for i in range(len(split)):
            seq = torch.cat([split.inputs[i], split.inputs.new_tensor([pad])]).tolist()
            dfa = dfa_from_table(split.dfa_trans[i])
            strings = split_strings(seq, sep, pad)
            assert 10 <= len(strings) <= 19
            assert all(1 <= len(s) <= 49 and dfa.accepts(s) for s in strings)
            # targets: the next token except where it is padding (or `|`, when it is no target)
            nxt = split.inputs[i, 1:]
            dropped = (nxt == pad) | ((nxt == sep) & (not separator_target))
            want = torch.where(dropped, IGNORE, nxt)
            assert bool((split.targets[i] == sep).any()) is separator_target
            assert torch.equal(split.targets[i, :-1], want)
            # dfa_state: state after each input within the current string
            state = 0
            for t, tok in enumerate(seq[:-1]):
                if tok == pad:
                    break
                state = 0 if tok == sep else dfa.next_state(state, tok)
                assert split.dfa_state[i, t] == state
    assert 0 < data.info["chance"] < 1


def test_regbench_worked_example_of_the_docstring():
    """seqicl/data/regbench.py: "a b | a c c" of the DFA 0 -a-> 1, 1 -b-> 0, 1 -c-> 1."""
    from seqicl.data.regbench import to_split
    from seqicl.data.vocab import Vocab, letter_targets
    vocab = Vocab.letters(20)
    a, b, c, sep = 0, 1, 2, 18
    dfa = DFA((((a, 1),), ((b, 0), (c, 1))))
    toks = [a, b, sep, a, c, c]
    on, off = (to_split([(dfa, toks)], vocab, 6, flag) for flag in (True, False))
    assert on.inputs.tolist() == off.inputs.tolist() == [[a, b, sep, a, c, c]]
    assert on.targets.tolist() == [[b, sep, a, c, c, IGNORE]]
    assert off.targets.tolist() == [[b, IGNORE, a, c, c, IGNORE]]
    assert on.dfa_state.tolist() == [[1, 0, 0, 1, 1, 1]]
    # the scored letter positions are t = 0, 2, 3, 4 either way
    for split in (on, off):
        assert letter_targets(split.targets, 20).tolist() == [[True, False, True, True, True, False]]


def test_regbench_separator_target_changes_targets_only_and_the_cache_key(tmp_path):
    """Same sequences, automata, chance and n-gram baselines with the option on and off; only
    the targets at `|` differ, and the two configs never share a cache entry."""
    on_cfg = small_task("dfa", num_train=30, num_val=10, num_test=20, separator_target=True)
    off_cfg = dict(on_cfg, separator_target=False)
    on, off = generate(on_cfg), generate(off_cfg)
    sep = 18
    for a, b in ((on.train, off.train), (on.test, off.test)):
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.dfa_trans, b.dfa_trans)
        assert torch.equal(a.dfa_state, b.dfa_state)
        differ = a.targets != b.targets
        assert differ.any() and (a.targets[differ] == sep).all() and (b.targets[differ] == IGNORE).all()
    assert on.info["chance"] == off.info["chance"] and on.info["baselines"] == off.info["baselines"]
    assert cache_mod.cache_key(on_cfg) != cache_mod.cache_key(off_cfg)
    # a record made before the option existed has no key: it means false (its data, its cache entry)
    legacy = {k: v for k, v in off_cfg.items() if k != "separator_target"}
    assert torch.equal(generate(legacy).train.targets, off.train.targets)
    assert len({cache_mod.cache_key(c) for c in (on_cfg, off_cfg, legacy)}) == 3
    assert torch.equal(load_task(on_cfg, str(tmp_path)).train.targets, on.train.targets)
    assert torch.equal(load_task(off_cfg, str(tmp_path)).train.targets, off.train.targets)


def test_regbench_automata_disjoint_and_test_fixed_across_train_sizes():
    small = generate(small_task("dfa", num_train=40, num_val=20, num_test=20))
    big = generate(small_task("dfa", num_train=80, num_val=20, num_test=20))
    assert torch.equal(small.test.inputs, big.test.inputs[:, : small.test.inputs.shape[1]])

    def keys(split):
        return {dfa_from_table(t).key() for t in split.dfa_trans}
    tr, va, te = keys(big.train), keys(big.val), keys(big.test)
    assert len(tr) == 80 and len(te) == 20
    assert not (tr & te) and not (tr & va) and not (va & te)


def test_cache_generates_once_and_replaces_corrupt_entries(tmp_path, monkeypatch):
    cfg = small_task("induction")
    calls = []
    real = generate

    def counting(c):
        calls.append(1)
        return real(c)
    first = cache_mod.cached(cfg, counting, tmp_path)
    again = cache_mod.cached(cfg, counting, tmp_path)
    assert len(calls) == 1 and torch.equal(first.train.inputs, again.train.inputs)
    (path,) = tmp_path.glob("*.pt")
    path.write_bytes(b"not a torch file")
    cache_mod.cached(cfg, counting, tmp_path)
    assert len(calls) == 2
    other = dict(cfg, seed=5)
    assert cache_mod.cache_key(other) != cache_mod.cache_key(cfg)
    assert load_task(cfg, str(tmp_path)).name == "induction"


def test_an_older_generators_cache_is_never_read(tmp_path, monkeypatch):
    """Neither as the same entry nor as a larger set to cut from: its data follow other laws."""
    calls = []

    def counting(c):
        calls.append(c["num_train"])
        return generate(c)
    monkeypatch.setattr(cache_mod, "GENERATOR_VERSION", cache_mod.GENERATOR_VERSION - 1)
    cache_mod.cached(small_task("associative_recall", num_train=60), counting, tmp_path)
    monkeypatch.undo()
    for n in (25, 60):
        data = cache_mod.cached(small_task("associative_recall", num_train=n), counting, tmp_path)
        assert data.info["generator_version"] == cache_mod.GENERATOR_VERSION
    assert calls == [60, 25, 60]


@pytest.mark.parametrize("task", ["dfa", "induction"])
def test_smaller_training_sets_are_cut_from_a_cached_larger_one(task, tmp_path):
    big_cfg, small_cfg = small_task(task, num_train=60), small_task(task, num_train=25)
    calls = []

    def counting(c):
        calls.append(c["num_train"])
        return generate(c)
    cache_mod.cached(big_cfg, counting, tmp_path)
    cut = cache_mod.cached(small_cfg, counting, tmp_path)
    assert calls == [60]                                   # the small set was not generated again
    direct = generate(small_cfg)
    for split in ("train", "val", "test"):
        a, b = getattr(cut, split), getattr(direct, split)
        for name, value in b.as_dict().items():
            assert torch.equal(getattr(a, name), value), (split, name)
