"""One training run without Ray:

    python -m seqicl.train task=induction model=transformer model.d_model=64 optim.lr=3e-4
"""
from __future__ import annotations

import argparse
import json
import sys

from ..cli import OneLineParser
from ..config import ConfigError, compose


def main(argv: list[str]) -> int:
    p = OneLineParser(prog="python -m seqicl.train", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter,
                      epilog="Every key of seqicl/conf/config.yaml (and of the chosen task and model) can be "
                             "overridden as key=value; +key=value adds a new one, ++key=value sets or adds.")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    args = p.parse_args(argv)
    try:
        cfg = compose(args.overrides)  # also validates: a config that cannot train stops here
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from .loop import train  # only once the config is known good
    try:
        summary = train(cfg)
    except ValueError as e:  # e.g. a mixer rejecting its keyword arguments
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
