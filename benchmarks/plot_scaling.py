"""Curves of results/scaling_users.json and results/prepare_scale.json (no measurement: plots only).

    .venv/bin/python benchmarks/plot_scaling.py     # writes results/scaling_users.png, results/prepare_scale.png
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "results"


def users() -> None:
    data = json.loads((RESULTS / "scaling_users.json").read_text())
    fig, ax = plt.subplots(1, 3, figsize=(15, 4), dpi=110)
    for way in ("user_table_dense", "user_table_row_sparse", "no_user_table"):
        rows = sorted((r for r in data["training"] if r["way"] == way and "error" not in r), key=lambda r: r["users"])
        x = [r["users"] for r in rows]
        ax[0].plot(x, [r["seconds_per_step"] for r in rows], "o-", label=way)
        ax[1].plot(x, [r["model_mb"] for r in rows], "o-", label=way)
        ax[2].plot(x, [r["adaptation_kb"] for r in rows], "o-", label=way)
    for a, label in zip(ax, ("s / meta-step", "model MB (serving replica)", "adaptation KB / user"), strict=True):
        a.set_xscale("log")
        a.set_xlabel("users")
        a.set_ylabel(label)
        a.grid(alpha=0.3)
    ax[2].set_yscale("log")
    ax[0].legend(fontsize=8)
    fig.suptitle("Users: 10k → 1M (results/scaling_users.md)")
    fig.tight_layout()
    fig.savefig(RESULTS / "scaling_users.png")
    plt.close(fig)


def prepare() -> None:
    data = json.loads((RESULTS / "prepare_scale.json").read_text())
    fig, ax = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    for engine in ("local", "ray", "ray_s3"):
        rows = sorted((r for r in data["rows"] if r["engine"] == engine and not r["returncode"]),
                      key=lambda r: r["conversations"])
        x = [r["conversations"] for r in rows]
        ax[0].plot(x, [r["seconds"] for r in rows], "o-", label=engine)
        ax[1].plot(x, [r["peak_driver_rss_gb"] for r in rows], "o-", label=f"{engine}: driver RSS")
        if engine != "local":
            ax[1].plot(x, [r["peak_tree_pss_gb"] for r in rows], "s--", label=f"{engine}: all processes PSS")
    for a, label in zip(ax, ("seconds", "peak memory GB"), strict=True):
        a.set_xscale("log")
        a.set_xlabel("conversations")
        a.set_ylabel(label)
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.suptitle("ccrs data prepare: local vs Ray Data (results/prepare_scale.md)")
    fig.tight_layout()
    fig.savefig(RESULTS / "prepare_scale.png")
    plt.close(fig)


if __name__ == "__main__":
    users()
    prepare()
