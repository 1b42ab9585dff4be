"""The sweep's results as files: a ranked trial table, the best config as YAML, plots as PNG.

    rows = [TrialRow("a1", {"rec.inner_lr": 0.01}, objective=0.11, seconds=80.0, status="TERMINATED"), ...]
    ranked(rows)                                   # best first (None objectives last)
    format_table(rows, space)                      # Markdown
    plot_objective_over_trials(rows) -> bytes      # PNG
    plot_objective_vs_params(rows, space) -> dict[str, bytes]

No Ray: ``ray_jobs/tune.py`` turns Tune's ``ResultGrid`` into rows.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

from ccrs.tuning.search_space import SearchSpace


@dataclass
class TrialRow:
    trial_id: str
    params: dict[str, Any]
    objective: float | None
    seconds: float
    status: str
    order: int = 0
    metrics: dict[str, float] = field(default_factory=dict)


def ranked(rows: list[TrialRow]) -> list[TrialRow]:
    return sorted(rows, key=lambda r: (r.objective is None or not math.isfinite(r.objective),
                                       -(r.objective or 0.0), r.order, r.trial_id))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def format_table(rows: list[TrialRow], space: SearchSpace, objective_name: str = "objective") -> str:
    keys = list(space.params)
    extra = sorted({k for r in rows for k in r.metrics})
    head = ["rank", "trial", *keys, objective_name, *extra, "seconds", "status"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(ranked(rows), 1):
        cells = [str(i), r.trial_id, *(_fmt(r.params.get(k, "")) for k in keys),
                 "" if r.objective is None else f"{r.objective:.5f}", *(_fmt(r.metrics.get(k, "")) for k in extra),
                 f"{r.seconds:.0f}", r.status]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def plot_objective_over_trials(rows: list[TrialRow], objective_name: str = "objective") -> bytes:
    plt = _pyplot()
    done = sorted((r for r in rows if r.objective is not None), key=lambda r: r.order)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    xs = [r.order for r in done]
    ys = [r.objective for r in done]
    ax.plot(xs, ys, "o", label="trial")
    best, run = [], -math.inf
    for y in ys:
        run = max(run, y)
        best.append(run)
    ax.step(xs, best, where="post", label="best so far")
    ax.set_xlabel("trial (order started)")
    ax.set_ylabel(objective_name)
    ax.legend()
    return _png(fig)


def plot_objective_vs_params(rows: list[TrialRow], space: SearchSpace, objective_name: str = "objective") -> dict[str, bytes]:
    plt = _pyplot()
    done = [r for r in rows if r.objective is not None]
    out = {}
    for key, param in space.params.items():
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        have = [r for r in done if r.params.get(key) is not None]
        xs = [r.params[key] for r in have]
        if param.kind == "choice" and not all(isinstance(x, int | float) for x in xs):
            labels = [str(v) for v in param.values]
            xs = [labels.index(str(x)) for x in xs]
            ax.set_xticks(range(len(labels)), labels)
        ax.plot(xs, [r.objective for r in have], "o")
        if param.log_scale:
            from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

            ax.set_xscale("log")
            # Ranges span 1–2 decades: label 1·10^k and 3·10^k plainly; matplotlib's labelled minor ticks overlap.
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(key)
        ax.set_ylabel(objective_name)
        out[key] = _png(fig)
    return out
