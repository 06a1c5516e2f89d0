import pytest
import torch

from seqicl.data import IGNORE, Split
from seqicl.train.metrics import dfa_correct, evaluate

V = 5  # letters a=0, b=1, c=2, then `|`=3 and pad=4


class FixedLogits(torch.nn.Module):
    """A 'model' that predicts fixed tokens, to test the metrics on hand-made cases. Each
    input row starts with its own row number, so the lookup survives batching."""
    def __init__(self, preds: torch.Tensor):
        super().__init__()
        self.preds = preds

    def forward(self, tokens):
        return torch.nn.functional.one_hot(self.preds[tokens[:, 0]], V).float() * 10


def hand_dfa() -> torch.Tensor:
    """The table of the DFA 0 -a-> 1, 1 -b-> 0, 1 -c-> 1, as a batch of one: (1, 2, V)."""
    trans = torch.full((1, 2, V), -1, dtype=torch.int8)
    trans[0, 0, 0], trans[0, 1, 1], trans[0, 1, 2] = 1, 0, 1
    return trans


def hand_split() -> Split:
    """The sequence "a b | a c c" of the hand DFA: inputs a b | a c, targets b -100 a c c."""
    return Split(torch.tensor([[0, 1, 3, 0, 2]]), torch.tensor([[1, IGNORE, 0, 2, 2]]), hand_dfa(),
                 torch.tensor([[1, 0, 0, 1, 1]], dtype=torch.int8))


HAND_PREDS = torch.tensor([[2, 0, 0, 1, 0]])


def test_dfa_correct_by_hand():
    trans = hand_dfa()
    state = torch.tensor([[0, 1, 1, 0]])
    pred = torch.tensor([[0, 2, 0, 1]])  # a from 0 ok, c from 1 ok, a from 1 wrong, b from 0 wrong
    assert dfa_correct(pred, trans, state).tolist() == [[True, True, False, False]]


def test_evaluate_dfa_accuracy_and_accuracy_skip_masked_positions():
    # predictions: c (valid from 1, not the target), a (masked), a (valid, = target), b (valid), a (invalid)
    m = evaluate(FixedLogits(HAND_PREDS), hand_split())
    assert m["dfa_accuracy"] == pytest.approx(3 / 4)
    assert m["accuracy"] == pytest.approx(1 / 4)


def test_dfa_metrics_are_the_same_with_the_separator_as_a_target():
    """task.separator_target puts `|` (3) at t = 1 instead of -100: dfa_accuracy and tvd are
    scored at the letter targets either way, the loss and accuracy count the new target."""
    off = hand_split()
    on = Split(off.inputs, torch.tensor([[1, 3, 0, 2, 2]]), off.dfa_trans, off.dfa_state)
    model = FixedLogits(HAND_PREDS)
    m_off, m_on = evaluate(model, off), evaluate(model, on)
    assert m_on["dfa_accuracy"] == m_off["dfa_accuracy"] == pytest.approx(3 / 4)
    assert m_on["tvd"] == pytest.approx(m_off["tvd"])
    assert m_on["accuracy"] == pytest.approx(1 / 5)     # the prediction a at t = 1 is not `|`
    # the loss: the mean over 4 targets, then over the same 4 plus the `|` target at t = 1
    logp = torch.log_softmax(model(off.inputs)[0].float(), -1)
    at_sep = -float(logp[1, 3])
    assert m_on["loss"] == pytest.approx((4 * m_off["loss"] + at_sep) / 5)


def test_evaluate_accuracy_only_counts_unmasked_and_batches():
    inputs = torch.arange(3).unsqueeze(1).repeat(1, 4)
    targets = torch.full((3, 4), IGNORE)
    targets[:, -1] = torch.tensor([1, 2, 3])
    preds = torch.zeros((3, 4), dtype=torch.long)
    preds[:, -1] = torch.tensor([1, 0, 3])
    m = evaluate(FixedLogits(preds), Split(inputs, targets), max_tokens=8)  # batches of 2
    assert m["accuracy"] == pytest.approx(2 / 3) and "dfa_accuracy" not in m


def test_tvd_zero_for_the_dfa_distribution_and_hand_case():
    from seqicl.train.metrics import dfa_distribution, tvd
    trans = hand_dfa()
    state = torch.tensor([[0, 1]])
    q = dfa_distribution(trans, state)
    assert q.tolist() == [[[1, 0, 0, 0, 0], [0, 0.5, 0.5, 0, 0]]]
    assert tvd(q, trans, state).tolist() == [[0.0, 0.0]]
    # by hand: at state 1 the DFA is (0, .5, .5, 0, 0); p = (.2, .3, .1, .4, 0)
    # |p - q| = .2 + .2 + .4 + .4 + 0 = 1.2 -> tvd .6 ; at state 0 p = one-hot on `|` -> tvd 1
    p = torch.tensor([[[0, 0, 0, 1.0, 0], [0.2, 0.3, 0.1, 0.4, 0]]])
    assert tvd(p, trans, state)[0].tolist() == pytest.approx([1.0, 0.6])


def test_evaluate_reports_tvd_over_scored_positions():
    m = evaluate(FixedLogits(HAND_PREDS), hand_split())
    # FixedLogits puts softmax mass e^10/(e^10+4) on its token: compute each scored position's tvd
    top = torch.exp(torch.tensor(10.0)) / (torch.exp(torch.tensor(10.0)) + 4)
    rest = (1 - top) / 4
    at_1_on_c = 0.5 * (rest + abs(rest - 0.5) + abs(top - 0.5) + 2 * rest)   # state 1, predicts c
    at_0_on_a = 0.5 * (abs(top - 1) + 4 * rest)                               # state 0, predicts a
    at_1_on_b = at_1_on_c
    at_1_on_a = 0.5 * (top + 2 * abs(rest - 0.5) + 2 * rest)                  # state 1, predicts a
    want = (at_1_on_c + at_0_on_a + at_1_on_b + at_1_on_a) / 4
    assert m["tvd"] == pytest.approx(float(want), rel=1e-5)
