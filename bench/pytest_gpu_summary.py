"""The table of a parallel GPU-test call (bench/h200/gpu-tests-kernels.sh parallel), from its files.

    python bench/pytest_gpu_summary.py <the call's files folder> [--out bench/results/pytest-gpu-<card>-<date>.md]

Reads each shard's output (pytest_gpu_p_<shard>.txt: pytest -q -rA), the card line (card.txt) and
the collection count of `pytest --co -m gpu tests/` (pytest_gpu_collected.txt), and writes one row
per shard (passed, skipped, failed or errored, seconds) and the total against what was collected,
so that "every GPU test ran" is checked, not assumed. A shard whose output has no pytest summary
line (killed by its timeout) is a row that says so. Exits 1 unless every collected test ran and
none failed.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

SUMMARY = re.compile(r"^=*\s*(?P<body>(\d+ \w+(, )?)+) in (?P<secs>[\d.]+)s")
COUNT = re.compile(r"(\d+) (passed|skipped|failed|errors?|deselected|xfailed|xpassed)")
COLLECTED = re.compile(r"^(\d+)(?:/\d+)? tests? collected")


def shard_counts(text: str) -> dict | None:
    """passed/skipped/failed/errors/seconds of one pytest output; None without a summary line."""
    for line in reversed(text.splitlines()):
        m = SUMMARY.match(line.strip())
        if m:
            counts = {k: 0 for k in ("passed", "skipped", "failed", "errors")}
            for n, kind in COUNT.findall(m.group("body")):
                if kind.startswith("error"):
                    counts["errors"] += int(n)
                elif kind in counts:
                    counts[kind] += int(n)
            counts["seconds"] = float(m.group("secs"))
            return counts
    return None


def failures(text: str) -> list[str]:
    return [line.split(" - ")[0] for line in text.splitlines() if line.startswith(("FAILED ", "ERROR "))]


def summarize(folder: Path) -> tuple[str, bool]:
    shards = sorted(folder.glob("pytest_gpu_p_*.txt"))
    if not shards:
        raise SystemExit(f"error: {folder}: no pytest_gpu_p_*.txt (the files of a 'parallel' call)")
    card = (folder / "card.txt").read_text().strip().replace("\n", ", ") if (folder / "card.txt").is_file() else "?"
    collected_line = (folder / "pytest_gpu_collected.txt").read_text().strip() \
        if (folder / "pytest_gpu_collected.txt").is_file() else ""
    m = COLLECTED.match(collected_line)
    collected = int(m.group(1)) if m else None
    lines = [f"Card and start: {card}", "",
             "| shard | passed | skipped | failed or errored | s |", "|---|---:|---:|---:|---:|"]
    total = {"passed": 0, "skipped": 0, "bad": 0}
    bad_names, cut = [], []
    for path in shards:
        name = path.stem.removeprefix("pytest_gpu_p_")
        text = path.read_text(errors="replace")
        c = shard_counts(text)
        if c is None:
            cut.append(name)
            lines.append(f"| {name} | no summary line (cut by its timeout?) | | | |")
            continue
        bad = c["failed"] + c["errors"]
        total["passed"] += c["passed"]
        total["skipped"] += c["skipped"]
        total["bad"] += bad
        bad_names += failures(text)
        lines.append(f"| {name} | {c['passed']} | {c['skipped']} | {bad} | {c['seconds']:.1f} |")
    ran = total["passed"] + total["skipped"] + total["bad"]
    lines.append(f"| all | **{total['passed']}** | **{total['skipped']}** | **{total['bad']}** | |")
    lines.append("")
    lines.append(f"Collected by `pytest --co -q -m gpu tests/`: {collected if collected is not None else '?'}; "
                 f"ran in the shards: {ran}.")
    if bad_names:
        lines += ["", "Failed or errored:", ""] + [f"- `{n}`" for n in bad_names]
    if cut:
        lines += ["", f"Shards without a summary line: {', '.join(cut)}."]
    ok = not cut and total["bad"] == 0 and collected is not None and ran == collected
    return "\n".join(lines) + "\n", ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder")
    p.add_argument("--out")
    args = p.parse_args(argv)
    text, ok = summarize(Path(args.folder))
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
