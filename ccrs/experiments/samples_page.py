"""A page people can read: test contexts with the human response and every Table 2 row's response.

    page = samples_markdown(records_by_row, PreparedDataset.open("runs/real/prepared"), n=40, seed=0)
    Path("results/samples.md").write_text(page)

``records_by_row`` are Table 2's pooled test records (``{row: [record, ...]}``, each with ``fold``,
``sample_id``, ``conversation_id``, ``turn_index``, ``user_id`` and the readable ``response``: slots
filled by the recommender, detokenized). The ``n`` samples are drawn with ``random.Random(seed)`` from
the samples every row answered, so the page is the same for the same runs. The context (the last
``context_turns`` turns, speakers labelled) and the human response are read from the prepared
``turns`` table, their ``__item__`` slots filled with the ReDial names of the movies the turn
mentions (``movie_ids``, one per slot, from the ``movies`` table).

The page quotes ReDial (Li et al., 2018; CC BY 4.0) and says so at its top.
"""

from __future__ import annotations

import random

from ccrs.data.dataset import PreparedDataset
from ccrs.eval.response_stats import asks_for_recommendation

ATTRIBUTION = ("Dialogue text (context and human responses) from ReDial (Li et al., 2018, *Towards Deep "
               "Conversational Recommendations*), CC BY 4.0.")


def fill_turn(text: str, movie_ids: list[int], names: dict[int, str], placeholder: str = "__item__") -> str:
    """``text`` with its placeholders replaced, in order, by the names of ``movie_ids`` (one id per
    slot, as the prepared ``turns`` table keeps them; extra or unnamed slots stay)."""
    parts = text.split(placeholder)
    out = [parts[0]]
    for k, rest in enumerate(parts[1:]):
        name = names.get(movie_ids[k]) if k < len(movie_ids) else None
        out += [f"*{name}*" if name else placeholder, rest]
    return "".join(out)


def _turns(ds: PreparedDataset, conversations: set[str]) -> dict[str, list[dict]]:
    t = ds.table("turns").to_pydict()
    by_conv: dict[str, list[dict]] = {}
    for i, c in enumerate(t["conversation_id"]):
        if c in conversations:
            by_conv.setdefault(c, []).append({k: t[k][i] for k in ("turn_index", "role", "text", "movie_ids")})
    return {c: sorted(rows, key=lambda r: r["turn_index"]) for c, rows in by_conv.items()}


def draw_samples(records_by_row: dict[str, list[dict]], n: int, seed: int) -> list[tuple[int, int]]:
    """``n`` (fold, sample_id) keys every row answered, drawn with ``random.Random(seed)``, in draw order."""
    keys = None
    for recs in records_by_row.values():
        own = {(r.get("fold", 0), r["sample_id"]) for r in recs}
        keys = own if keys is None else keys & own
    pool = sorted(keys or ())
    return random.Random(seed).sample(pool, min(n, len(pool)))


def samples_markdown(records_by_row: dict[str, list[dict]], ds: PreparedDataset, n: int = 40, seed: int = 0,
                     context_turns: int = 4, title: str = "Test samples, every Table 2 row side by side",
                     command: str | None = None) -> str:
    keys = draw_samples(records_by_row, n, seed)
    by_key = {row: {(r.get("fold", 0), r["sample_id"]): r for r in recs} for row, recs in records_by_row.items()}
    first = next(iter(by_key.values()))
    turns = _turns(ds, {first[k]["conversation_id"] for k in keys})
    movies = ds.table("movies").to_pydict()
    names = {int(m): " ".join(n.split()) for m, n in zip(movies["movie_id"], movies["name"], strict=True) if n.strip()}
    width = max(len(row) for row in records_by_row)
    lines = [f"# {title}", ""]
    if command:
        lines += ["Regenerate with:", "", f"    {command}", ""]
    lines += [f"{len(keys)} test samples drawn with `random.Random({seed})` from the samples every row answered. "
              f"Each shows the last {context_turns} turns of the context, the human recommender's response and each "
              "row's response (movie slots filled by the frozen recommender, *names in italics*). "
              "\"asks\" marks a seeker turn that asks for a movie by the rule of "
              "`ccrs.eval.response_stats.asks_for_recommendation`.", "", ATTRIBUTION, ""]
    for k, key in enumerate(keys, 1):
        rec = first[key]
        conv = turns.get(rec["conversation_id"], [])
        before = [t for t in conv if t["turn_index"] < rec["turn_index"]][-context_turns:]
        human = next((t for t in conv if t["turn_index"] == rec["turn_index"]), None)
        last = before[-1]["text"] if before else ""
        flag = " · seeker asks" if asks_for_recommendation(last) else ""
        lines += [f"## {k}. fold {key[0]}, user {rec['user_id']}, conversation {rec['conversation_id']}, "
                  f"turn {rec['turn_index']}{flag}", ""]
        for t in before:
            lines.append(f"> **{t['role'].capitalize()}:** {fill_turn(t['text'], t['movie_ids'], names)}  ")
        lines += ["", "| who | response |", "|---|---|"]
        if human is not None:
            lines.append(f"| **human** | {_cell(fill_turn(human['text'], human['movie_ids'], names))} |")
        for row, recs in by_key.items():
            lines.append(f"| {row:<{width}} | {_cell(recs[key].get('response', recs[key]['generated']))} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|") or "(empty)"
