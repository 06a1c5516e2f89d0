"""The original seq_icl table (test accuracy, %), to print beside seqicl's numbers."""

ORIGINAL = {
    "associative_recall": {"transformer": 100.0, "s4d": 32.4, "h3": 98.2, "gilr": 50.2, "lru": 11.6,
                           "lstm": 36.2, "rwkv": 30.0, "random": 25.0},
    "induction": {"transformer": 97.2, "s4d": 8.8, "h3": 100.0, "gilr": 6.2, "lru": 4.8, "lstm": 4.8,
                  "rwkv": 6.0, "random": 5.0},
}
