"""Every committed results folder regenerates its tables byte for byte from its compact
record (trials.jsonl.gz) alone: the tables in git are what the trials say."""
import shutil
from pathlib import Path

import pytest

from analysis.report import write_report

from conftest import ROOT

# a results folder may hold one table per sweep in subfolders (e.g. one per task and preset)
FOLDERS = sorted(p.parent for p in (ROOT / "results").glob("**/trials.jsonl.gz"))
TABLES = ("table.md", "table.csv", "table.json", "trials.csv", "best_configs.yaml")


def test_every_results_folder_has_a_compact_record():
    tops = [p for p in (ROOT / "results").iterdir() if p.is_dir()]
    assert len(tops) >= 5
    for top in tops:
        assert any(top.glob("**/trials.jsonl.gz")), top.name
    for table in (ROOT / "results").glob("**/table.md"):
        assert (table.parent / "trials.jsonl.gz").exists(), table.parent


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: str(p.relative_to(ROOT / "results")))
def test_report_reproduces_the_committed_tables(folder: Path, tmp_path):
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    for name in TABLES:
        (copy / name).unlink()
    write_report(copy)
    for name in TABLES:
        assert (copy / name).read_bytes() == (folder / name).read_bytes(), name
    assert (copy / "trials.jsonl.gz").read_bytes() == (folder / "trials.jsonl.gz").read_bytes()
