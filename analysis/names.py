"""Display names of tasks, models and metrics, in the original seq_icl table's order."""
from __future__ import annotations

MODEL_NAMES = {"transformer": "Transformer", "s4d": "S4D", "h3": "H3", "gilr": "GILR", "lru": "LRU",
               "lstm": "LSTM", "rwkv": "RWKV", "hyena": "Hyena", "retnet": "RetNet", "gla": "GLA",
               "mamba": "Mamba", "linear_transformer": "Linear Transformer"}
TASK_NAMES = {"associative_recall": "associative recall", "induction": "induction head", "dfa": "RegBench (DFA)"}
METRIC_NAMES = {"accuracy": "test accuracy", "dfa_accuracy": "test DFA accuracy"}


def model_order(models) -> list[str]:
    known = [m for m in MODEL_NAMES if m in models]
    return known + sorted(set(models) - set(known))
