"""Self-contained exports of a trained model. An export is a folder:

    weights.pt        the state dict: torch.load(path, weights_only=True)
    config.json       the full run config (model, task, optimiser, ...)
    vocab.json        the vocabulary, index = token id
    metrics.json      the metrics of the exported epoch
    provenance.json   format, where it came from (results folder, trial, checkpoint), epoch, date

Provenance holds no absolute path, so an export (and the results folder around it) can be moved
or copied: the results folder by its name, the trial folder and checkpoint relative to it.

``load_export(folder)`` rebuilds the model from these files and ``seqicl`` alone. Exports are
written into a temporary folder that is renamed into place, so a folder that exists is complete.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from .models import LanguageModel, build_model

FORMAT = "seqicl.export/1"
FILES = ("weights.pt", "config.json", "vocab.json", "metrics.json", "provenance.json")


class ExportError(RuntimeError):
    """A missing, incomplete, corrupt or foreign export, or a target that already exists."""


def write_export(out: str | Path, ckpt: dict, source: dict) -> Path:
    """Write the checkpoint dict (as ``seqicl.train.checkpoint`` saves it) as an export folder."""
    absolute = [k for k, v in source.items() if isinstance(v, str) and os.path.isabs(v)]
    if absolute:
        raise ValueError(f"provenance must hold relative paths, not absolute ones: {', '.join(absolute)}")
    out = Path(out)
    if out.exists():
        raise ExportError(f"{out} already exists: remove it or choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        torch.save(ckpt["model"], tmp / "weights.pt")
        docs = {"config.json": ckpt["config"], "vocab.json": ckpt["vocab"], "metrics.json": ckpt["metrics"],
                "provenance.json": {"format": FORMAT, "max_len": ckpt["max_len"], "epoch": ckpt["epoch"],
                                    "exported": time.strftime("%Y-%m-%dT%H:%M:%S"), **source}}
        for name, doc in docs.items():
            (tmp / name).write_text(json.dumps(doc, indent=1))
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def read_json(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ExportError(f"{path.parent}: not a complete export ({path.name} is missing)") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ExportError(f"{path}: corrupt (not valid JSON)") from None


def load_export(folder: str | Path, device: str | torch.device = "cpu") -> tuple[LanguageModel, dict]:
    """The exported model (eval mode) and its metadata: config, vocab, metrics, provenance."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(f"{folder}: no such export folder")
    meta = {name[:-5]: read_json(folder / name) for name in FILES if name.endswith(".json")}
    if not isinstance(meta["provenance"], dict) or meta["provenance"].get("format") != FORMAT:
        raise ExportError(f"{folder}: not a seqicl export")
    weights = folder / "weights.pt"
    if not weights.is_file():
        raise ExportError(f"{folder}: not a complete export (weights.pt is missing)")
    try:
        state = torch.load(weights, map_location=device, weights_only=True)
    except Exception as e:
        raise ExportError(f"{weights}: corrupt ({type(e).__name__})") from None
    try:
        model = build_model(meta["config"]["model"], len(meta["vocab"]), meta["provenance"]["max_len"])
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError):
        raise ExportError(f"{folder}: weights do not match the model its config describes") from None
    return model.to(device).eval(), meta
