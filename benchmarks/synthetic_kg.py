"""A synthetic KG with the real DBpedia subgraph's degree distribution, grown to any size (benchmarks only).

    kg = synthetic_kg(degrees, scale=16, items=6822, rng=np.random.default_rng(0))

A configuration model: n = scale × len(degrees) nodes, each with a degree drawn from ``degrees``
(the prepared dataset's ``entities.degree``; a log-normal fit when ``degrees`` is None), stubs paired
at random, 13 relation types on the pairs (both directions stored) and a self-loop relation (14
types, as the real KG). ``items``: how many entities are items (default 21% of n, the real share).
"""

from __future__ import annotations

import numpy as np
import torch

from ccrs.data.rec_examples import KnowledgeGraph


def synthetic_kg(degrees: np.ndarray | None, scale: float, items: int | None, rng: np.random.Generator) -> KnowledgeGraph:
    deg = degrees if degrees is not None else np.maximum(1, rng.lognormal(1.2, 1.0, 31874).astype(int))
    n = int(len(deg) * scale)
    d = rng.choice(deg, size=n)
    stubs = np.repeat(np.arange(n), d)
    rng.shuffle(stubs)
    half = len(stubs) // 2
    a, b = stubs[:half], stubs[half: 2 * half]
    keep = a != b
    a, b = a[keep], b[keep]
    rel = rng.integers(0, 13, size=a.size)
    loops = np.arange(n)
    head = np.concatenate([a, b, loops])
    tail = np.concatenate([b, a, loops])
    etype = np.concatenate([rel, rel, np.full(n, 13)])
    n_items = items or int(0.214 * n)
    item_ids = torch.from_numpy(np.sort(rng.choice(n, size=n_items, replace=False)))
    return KnowledgeGraph(torch.from_numpy(np.stack([head, tail])), torch.from_numpy(etype), n, 14, item_ids, [""] * n)


def real_degrees(prepared: str) -> np.ndarray | None:
    """The undirected degree of every entity of a prepared dataset (None when there is none)."""
    from pathlib import Path

    if not Path(prepared, "manifest.json").is_file():
        return None
    from ccrs.data.dataset import PreparedDataset

    return np.maximum(PreparedDataset.open(prepared).table("entities").column("degree").to_numpy(), 0)


def degrees_file(prepared: str, path: str = "/tmp/ccrs_scaling_degrees.npy") -> str:
    """:func:`real_degrees` saved for child processes: the file's path, or "" without a prepared set."""
    deg = real_degrees(prepared)
    if deg is None:
        return ""
    np.save(path, deg)
    return path


def run_child(script: str, spec: dict, cwd) -> dict:
    """``python script --child JSON`` in a fresh process (its peak RSS is its own): the last JSON line it
    prints, or ``spec`` with an ``error``."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, script, "--child", json.dumps(spec)], capture_output=True, text=True,
                          cwd=cwd)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    row = json.loads(lines[-1]) if lines else spec | {"error": f"exit {proc.returncode}: {proc.stderr[-600:]}"}
    row.pop("degrees", None)
    return row
