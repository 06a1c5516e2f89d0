"""One training run without Ray:

    python -m seqicl.train task=induction model=transformer model.d_model=64 optim.lr=3e-4
"""
from __future__ import annotations

import json
import sys

from ..config import ConfigError, compose


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip() + "\n\nEvery key of seqicl/conf/config.yaml (and of the chosen task and model) "
              "can be overridden as key=value; +key=value adds a new one.")
        return 0
    try:
        cfg = compose(argv)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from .loop import train  # after validation, so a bad override costs no torch import
    try:
        summary = train(cfg)
    except ValueError as e:  # e.g. a mixer rejecting its keyword arguments
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
