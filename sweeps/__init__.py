"""Ray Tune sweeps over seqicl models: ``python sweeps/run.py --task induction``."""
