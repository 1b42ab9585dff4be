"""What a returning user sees: the horror fan of issue 30, before and after the service remembers them.

    python studies/returning_user.py --data runs/real/prepared \\
        --ckpt kbrd=runs/real/rec_hist/user/kbrd/fold0/best.pt \\
        --ckpt ccrs_history=runs/real/rec_hist/user/ccrs_history/fold0/best.pt \\
        --ckpt ccrs_history_meta=runs/real/rec_hist_meta/ccrs_history-fold0/eval/best.pt \\
        --adapt ccrs_history_meta --save results/returning_user

User 9001 tells the service about two finished conversations about horror (the service's
``remember``, what ``POST /v1/users/9001/history`` and ``/adapt`` do), then opens a new conversation
with "Hi! I am looking for a movie to watch tonight". For each checkpoint: the top 8 for user 9001
and for a stranger, and how many of the top 8 come from the remembered conversations. ``--adapt
NAME`` sends the conversations to ``adapt`` instead (the MAML inner step; they are remembered too). The service
layer the Serve replicas run (``RecommenderService``), without HTTP; the HTTP path of the same
scenario is ``tests/serve/test_user_history_http.py``.
"""

from __future__ import annotations

import argparse
import sys

from ccrs.experiments.report_files import command_line, save_report
from ccrs.serving.recommender_service import Query, RecommenderService

FAN, STRANGER = 9001, 9002
HORROR = [
    [("seeker", "Hi! I love horror movies. Scream and Halloween are my favorites"),
     ("recommender", "Have you seen The Conjuring? Or Insidious?"),
     ("seeker", "Yes, The Conjuring was great, Insidious too"),
     ("recommender", "Then try The Shining, a classic")],
    [("seeker", "I want something scary tonight"),
     ("recommender", "Hereditary is very scary, so is It Follows"),
     ("seeker", "I loved It Follows! What else?"),
     ("recommender", "The Babadook or Sinister")],
]
OPEN = [("seeker", "Hi! I am looking for a movie to watch tonight")]


def run(name: str, ckpt: str, data: str, adapt: bool = False) -> dict:
    svc = RecommenderService.load(ckpt, data)
    before = svc.recommend([Query(FAN, OPEN, k=8)])[0]
    record = svc.remembered(None, HORROR)  # what either call keeps
    if adapt:
        svc.adapt(FAN, HORROR)
    else:
        svc.remember(FAN, HORROR)
    remembered = {int(svc.entity_to_item[e]) for e in record["entity"].tolist() if svc.entity_to_item[e] >= 0}
    after, stranger = svc.recommend([Query(FAN, OPEN, k=8), Query(STRANGER, OPEN, k=8)])
    return {"model": name, "checkpoint": ckpt, "reads_history": svc.reads_history, "adapted": adapt,
            "remembered_movies": sorted(svc.item_name(i) for i in remembered),
            "before": [n for _, n, _ in before.items], "after": [n for _, n, _ in after.items],
            "stranger": [n for _, n, _ in stranger.items],
            "after_from_history": sum(i in remembered for i, _, _ in after.items)}


def format_markdown(r: dict) -> str:
    lines = ["# A returning horror fan: top 8 before and after the service remembers them", "",
             f"`{r['command']}`", "", "Remembered conversations: " + " | ".join(
                 " / ".join(f"{role}: {text}" for role, text in conv) for conv in HORROR), "",
             f"New conversation: \"{OPEN[0][1]}\".", ""]
    for m in r["models"]:
        lines += [f"## {m['model']}" + ("" if m["reads_history"] else " (reads no history)")
                  + (" — adapted on the two conversations" if m.get("adapted") else ""), "",
                  f"Remembered movies linked: {', '.join(m['remembered_movies'])}", "",
                  "| # | user 9001 before | user 9001 after | a stranger |", "|---:|---|---|---|"]
        for i, (b, a, s) in enumerate(zip(m["before"], m["after"], m["stranger"], strict=True)):
            lines.append(f"| {i + 1} | {b} | {a} | {s} |")
        lines += ["", f"{m['after_from_history']} of the top 8 after are movies of the remembered conversations.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--ckpt", action="append", required=True, metavar="NAME=URI")
    ap.add_argument("--adapt", action="append", default=[], metavar="NAME",
                    help="checkpoints whose user is adapted on the conversations (MAML inner step) instead")
    ap.add_argument("--save", required=True)
    args = ap.parse_args(argv)
    models = [run(*item.split("=", 1), args.data, item.split("=", 1)[0] in args.adapt) for item in args.ckpt]
    report = {"command": command_line("returning_user.py", argv), "models": models}
    save_report(args.save, report, format_markdown)
    print(format_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
