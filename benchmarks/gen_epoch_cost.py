"""What the paper-size generator costs per epoch against the size Table 2 was trained at, side by side.

    .venv/bin/python benchmarks/gen_epoch_cost.py --prepared runs/real/prepared \
        --rec-ckpt runs/real/rec_hist/user/ccrs/fold0/best.pt [--batches 20] [--rounds 2]

Sizes (``kbrd_gen``, the plain rows' variant; the meta rows' cost is one plain epoch's warm start plus
a short meta phase):

* ``table2``: word dim 128, FFN 128, 128 context tokens (Table 2 of issue 33, ``results/generation.md``);
* ``paper``: the library defaults, the paper's (KBRD's) size: word dim 300, FFN 300, 2 + 2 layers,
  2 heads, 256 context tokens.

Both are loaded once (fold 0 of the user split), then timed in turn, ``--rounds`` times each, on
``--batches`` training batches of 32 (forward, backward, Adam step) and on one valid perplexity pass
over the same number of batches; seconds per epoch = seconds per batch × the training part's
batches. The ratio is the figure to read (the machine is shared and noisy). Writes
results/gen_epoch_cost.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"
SIZES = {"table2": ["generator.word_dim=128", "generator.ffn_dim=128", "generator.max_context_tokens=128"],
         "paper": []}


def _setup(prepared: str, rec_ckpt: str, overrides: list[str]):
    import torch

    from ccrs.config import load_config
    from ccrs.models.generator import build_generator
    from ccrs.train.gen_data import load_gen_data

    cfg = load_config(None, ["generator.variant=kbrd_gen", *overrides])
    data = load_gen_data(prepared, 0, cfg, rec_ckpt)
    model = build_generator(cfg.generator, data.tokenizer, data.examples.user_vectors.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=cfg.gen_train.lr)
    return cfg, data, model, opt


def _time(cfg, data, model, opt, n: int) -> dict:
    import torch

    train = data.part("train")
    gen = torch.Generator().manual_seed(0)
    batches = [b for _, b in zip(range(n), train.batches(cfg.gen_train.batch_size, shuffle=True, generator=gen),
                                 strict=False)]
    model.train()
    t0 = time.perf_counter()
    for batch in batches:
        nll, k = model.token_nll(batch)
        opt.zero_grad(set_to_none=True)
        (nll / max(k, 1)).backward()
        opt.step()
    train_s = (time.perf_counter() - t0) / len(batches)
    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        for batch in batches:
            model.token_nll(batch)
    n_batches = (len(train) + cfg.gen_train.batch_size - 1) // cfg.gen_train.batch_size
    return {"train_s_per_batch": train_s, "eval_s_per_batch": (time.perf_counter() - t0) / len(batches),
            "batches_per_epoch": n_batches, "train_s_per_epoch": train_s * n_batches}


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prepared", required=True)
    p.add_argument("--rec-ckpt", required=True)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--save", default=str(RESULTS / "gen_epoch_cost"))
    args = p.parse_args(argv)
    setups = {name: _setup(args.prepared, args.rec_ckpt, over) for name, over in SIZES.items()}
    runs: dict[str, list[dict]] = {name: [] for name in SIZES}
    for _ in range(args.rounds):
        for name, s in setups.items():
            runs[name].append(_time(*s, args.batches))
    out = {"command": "python benchmarks/gen_epoch_cost.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "threads": torch.get_num_threads(), "sizes": {}}
    for name, rs in runs.items():
        cfg, data, model, _ = setups[name]
        best = min(rs, key=lambda r: r["train_s_per_batch"])  # the least disturbed round
        out["sizes"][name] = {"overrides": SIZES[name], "parameters": sum(p.numel() for p in model.parameters()),
                              "vocab": len(data.tokenizer), "rounds": rs, **best}
    base = out["sizes"]["table2"]["train_s_per_batch"]
    for s in out["sizes"].values():
        s["ratio_to_table2"] = s["train_s_per_batch"] / base
    lines = ["# Generator cost per epoch: the paper's size against Table 2's", "", "Regenerate with:", "",
             f"    {out['command']}", "",
             f"kbrd_gen, fold 0 of the user split, batches of 32, {out['threads']} torch threads on this machine; best of "
             f"{args.rounds} rounds of {args.batches} batches each, sizes timed in turn in one process.", "",
             "| size | parameters | train s / batch | eval s / batch | batches / epoch | train min / epoch | ratio |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, s in out["sizes"].items():
        lines.append(f"| {name} | {s['parameters']:,} | {s['train_s_per_batch']:.3f} | {s['eval_s_per_batch']:.3f} | "
                     f"{s['batches_per_epoch']} | {s['train_s_per_epoch'] / 60:.1f} | {s['ratio_to_table2']:.2f}× |")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.save + ".json").write_text(json.dumps(out, indent=2) + "\n")
    Path(args.save + ".md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
