"""``ccrs`` command line (also ``python -m ccrs``).

    ccrs data prepare --out runs/demo/prepared             # raw dir found automatically, see below
    ccrs data prepare --raw ../shared/data/redial --out s3://bucket/ccrs/prepared
    ccrs data synth --out /tmp/redial-synth
    ccrs data download --dest ~/.cache/ccrs/redial
    ccrs data link-eval --prepared runs/demo/prepared
    ccrs train rec --prepared runs/demo/prepared --model ccrs --split user --fold 0 --out runs/rec/ccrs/fold0
    ccrs eval rec --prepared runs/demo/prepared --runs runs/rec_plain --jobs 2 --save results/rec_plain
    ccrs config show recommender.n_layers=2

Where ``data prepare`` takes raw data from, first found wins: ``--raw DIR``, ``$CCRS_RAW_DIR``, a
sibling ``../shared/data/redial`` (of the working directory or of this checkout), ``ccrs data
download`` into ``~/.cache/ccrs/redial`` when the network allows, else a synthetic raw directory
(with a message saying so).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path

from ccrs import __version__
from ccrs.config import ConfigError, dump_config, load_config, load_run_config, model_overrides


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="YAML config file (see `ccrs config show`)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. data.kg_format=kgsf")


def _cmd_prepare(args: argparse.Namespace) -> int:
    from ccrs.data.locate import resolve_raw_dir
    from ccrs.data.prepare import prepare
    from ccrs.data.summary import format_summary

    overrides = list(args.overrides)
    if args.kg_format:
        overrides.append(f"data.kg_format={args.kg_format}")
    cfg = load_config(args.config, overrides)
    raw, origin = resolve_raw_dir(args.raw, allow_download=not args.no_download)
    print(f"raw data: {raw} ({origin})", file=sys.stderr)
    if args.engine == "ray":
        from ccrs.data.prepare_ray import prepare_on_ray

        result = prepare_on_ray(raw, args.out, cfg.data, skip_bad_lines=args.skip_bad_lines, force=args.force,
                                progress=not args.quiet, split_mb=args.split_mb)
    else:
        result = prepare(raw, args.out, cfg.data, skip_bad_lines=args.skip_bad_lines, force=args.force,
                         progress=not args.quiet)
    if result.skipped:
        print(f"{args.out}: already prepared from the same inputs and config (fingerprint "
              f"{result.manifest['fingerprint'][:12]}); use --force to rebuild", file=sys.stderr)
    else:
        print(f"published {args.out} in {result.seconds:.1f} s", file=sys.stderr)
    print(format_summary(result.manifest))
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from ccrs.data.synth import SynthSpec, write_synthetic_raw

    spec = SynthSpec(seed=args.seed, n_users=args.users, conversations_per_user=args.conversations_per_user)
    out = write_synthetic_raw(args.out, spec, kg_formats=tuple(args.kg_formats.split(",")))
    print(f"synthetic ReDial raw directory written to {out}")
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from ccrs.data.download import download_all, load_sources, mirrored

    sources = load_sources(args.sources)
    if args.mirror:
        sources = mirrored(sources, args.mirror)
    paths = download_all(sources, args.dest, timeout=args.timeout, progress=not args.quiet)
    for p in paths:
        print(p)
    return 0


#: ``ccrs data link-eval --rules``: name → (context_rules, genre_words, include_items, mention kinds compared).
#: ``serving`` is the serving linker (RecommenderService) compared on what CFCRS annotates, names;
#: ``serving+genre-words`` also counts the genre words it maps ("funny" → comedy), which CFCRS never labels.
LINKER_RULES = {"plain": (False, False, False, ("name",)), "serving": (True, True, True, ("name",)),
                "serving+genre-words": (True, True, True, ("name", "genre_word"))}


def _cmd_link_eval(args: argparse.Namespace) -> int:
    from ccrs.data.dataset import PreparedDataset
    from ccrs.data.linker import DEFAULT_STOPWORDS, EntityLinker, chat_everyday_words
    from ccrs.data.linker_eval import ANNOTATIONS, evaluate_linker
    from ccrs.data.locate import resolve_raw_dir

    rules = [r for r in args.rules.split(",") if r]
    unknown = [r for r in rules if r not in LINKER_RULES]
    if unknown or not rules:
        print(f"error: --rules: {', '.join(unknown) or '(none)'} not in {', '.join(LINKER_RULES)}", file=sys.stderr)
        return 2
    ds = PreparedDataset.open(args.prepared)
    data_cfg = ds.manifest["config"]
    entities = ds.table("entities")
    raw, _ = resolve_raw_dir(args.raw, allow_download=False, allow_synthetic=False)
    annotations = raw / ANNOTATIONS
    if not annotations.is_file():
        print(f"error: {annotations} not found (CFCRS entity annotations)", file=sys.stderr)
        return 2
    names = dict(zip(entities.column("id").to_pylist(), entities.column("name").to_pylist(), strict=True))
    report = {"prepared": args.prepared, "annotations": str(annotations),
              "command": "ccrs " + shlex.join(args.argv), "rules": {}}
    is_item = dict(zip(entities.column("id").to_pylist(), entities.column("is_item").to_pylist(), strict=True))
    for rule in rules:
        context, genre_words, items, kinds = LINKER_RULES[rule]
        everyday = chat_everyday_words(ds.table("turns").column("text").to_pylist()) if context else ()
        linker = EntityLinker.from_entities(
            entities, stopwords=DEFAULT_STOPWORDS | {s.lower() for s in data_cfg["extra_stopwords"]},
            min_chars=data_cfg["min_entity_name_chars"], context_rules=context, genre_words=genre_words,
            include_items=items, everyday_words=everyday)
        report["rules"][rule] = {part: evaluate_linker(linker, names, annotations, kinds=kinds, part=part,
                                                       is_item=is_item if items else None)
                                 for part in args.parts.split(",")}
    for rule, parts in report["rules"].items():
        for part, r in parts.items():
            m = r["by_entity_name"]
            print(f"{rule:22s} {part:9s} precision {m['precision']:.3f}  recall {m['recall']:.3f}  "
                  f"({r['messages']} messages; movie links in free text: {r.get('free_text_movie_links', 0)})")
    if args.save:
        from ccrs.data.linker_eval import write_report

        write_report(report, Path(args.save))
    return 0


def _parse_ints(text: str, name: str) -> list[int]:
    """``"0-9"`` / ``"0,2,5"`` / ``"3"`` → ints."""
    out: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part.strip()[1:]:
                lo, hi = part.split("-", 1)
                out += range(int(lo), int(hi) + 1)
            elif part.strip():
                out.append(int(part))
    except ValueError:
        raise ConfigError(f"{name}: expected integers like 0-9 or 0,1,2, got {text!r}") from None
    return out


def _cmd_train_rec(args: argparse.Namespace) -> int:
    from ccrs.train.rec_trainer import train_recommender

    cfg = load_run_config(args.config, args.overrides, args.model, args.seed)
    result = train_recommender(cfg, args.prepared, args.split, args.fold, args.out, progress=not args.quiet,
                               device=args.device)
    print(json.dumps({"variant": result.variant, "split": result.split, "fold": result.fold, "seed": result.seed,
                      "best_epoch": result.best_epoch, "valid": result.valid, "test": result.test,
                      "out": result.out}, indent=2))
    return 0


def _cmd_train_gen(args: argparse.Namespace) -> int:
    from ccrs.train.gen_trainer import train_generator

    extra = [f"generator.variant={args.model}"] if args.model else []
    cfg = load_run_config(args.config, [*args.overrides, *extra], None, args.seed)
    result = train_generator(cfg, args.prepared, args.rec_ckpt, args.fold, args.out, progress=not args.quiet,
                             device=args.device)
    keep = ("variant", "fold", "seed", "best_epoch", "epochs_run", "valid", "test", "out")
    print(json.dumps({k: result[k] for k in keep}, indent=2))
    return 0


def _cmd_eval_rec(args: argparse.Namespace) -> int:
    from ccrs.experiments.rec_table import aggregate as aggregate_runs
    from ccrs.experiments.rec_table import (
        format_markdown,
        merge_reports,
        read_report,
        run_grid,
        run_specs,
        write_report,
    )

    if args.merge and not args.save:
        raise ConfigError("--merge needs --save (the table to merge into)")
    cfg = load_config(args.config, args.overrides)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        model_overrides(m)  # rejects unknown model names early
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    for s in splits:
        if s not in ("user", "standard"):
            raise ConfigError(f"--splits: {s!r} is not user or standard")
    compare = []
    for pair in filter(None, args.compare.split(",")):
        a, _, b = pair.partition(":")
        if a not in models or b not in models:
            raise ConfigError(f"--compare {pair!r}: both models must be in --models")
        compare.append((a, b))
    per_model: dict[str, list[str]] = {m: [] for m in models}
    for item in args.set:
        model, _, override = item.partition(":")
        if model not in per_model or "=" not in override:
            raise ConfigError(f"--set {item!r}: expected MODEL:KEY=VALUE with MODEL in --models")
        per_model[model].append(override)
    configs = {m: load_config(args.config, [*model_overrides(m), *args.overrides, *o]) for m, o in per_model.items()}
    specs = run_specs(models, splits, _parse_ints(args.folds, "--folds"), _parse_ints(args.seeds, "--seeds"), cfg.seed)
    results = run_grid(configs, args.prepared, args.runs, specs, jobs=args.jobs, progress=not args.quiet)
    report = aggregate_runs(results, compare, n_resamples=args.resamples, part=args.part)
    report["title"] = "Recommendation, plain (non-meta) training" + (" — VALID split" if args.part == "valid" else "")
    report["command"] = args.command_line or "ccrs " + shlex.join(args.argv)
    report["config"] = cfg.to_dict()
    report["model_overrides"] = {m: o for m, o in per_model.items() if o}
    report["runs"] = {f"{s.split}/{s.model}/{s.key}": {k: v for k, v in r.items() if k != "history"}
                      for s, r in results.items()}
    print(format_markdown(report))
    if args.merge:
        report = merge_reports(read_report(args.save), report)
    if args.save:
        write_report(report, args.save)
        print(f"saved {args.save}.json and {args.save}.md", file=sys.stderr)
    return 0


def _cmd_diagnose_rec(args: argparse.Namespace) -> int:
    from ccrs.experiments.personalization import diagnose_checkpoint, format_markdown, save

    factors = [float(f) for f in args.factors.split(",") if f.strip()]
    if any(f < 0 for f in factors):
        raise ConfigError(f"--factors: inner-rate factors must be >= 0, got {args.factors!r}")
    reports = {}
    for item in args.ckpt:
        name, sep, path = item.partition("=")
        name, path = (name, path) if sep and "/" not in name else (f"checkpoint{len(reports)}", item)
        reports[name] = diagnose_checkpoint(path, args.prepared, args.fold, args.role, factors, args.max_attention_users)
    command = "ccrs " + shlex.join(args.argv)
    print(format_markdown(reports, command))
    if args.save:
        save(reports, args.save, command)
        print(f"saved {args.save}.json and {args.save}.md", file=sys.stderr)
    return 0


def _cmd_eval_decoding(args: argparse.Namespace) -> int:
    from ccrs.experiments.decoding import (
        decoding_overrides,
        decoding_report,
        format_decoding_markdown,
        write_decoding_report,
    )

    settings = None
    if args.setting:
        settings = {}
        for spec in args.setting:
            name, sep, keys = spec.partition(":")
            if not sep or not name:
                raise SystemExit(f"ccrs eval decoding: --setting {spec!r} is not NAME:KEY=VALUE[,KEY=VALUE...]")
            try:
                settings[name] = decoding_overrides([k for k in keys.split(",") if k])
            except (ValueError, ConfigError) as exc:
                raise SystemExit(f"ccrs eval decoding: --setting {spec!r}: {exc}") from None
    report = decoding_report(args.gen_ckpt, args.prepared, args.rec_ckpt, args.fold, args.part,
                             settings=settings, max_users=args.max_users)
    report["command"] = "ccrs " + shlex.join(args.argv)
    print(format_decoding_markdown(report))
    if args.save:
        write_decoding_report(report, args.save)
        print(f"saved {args.save}.json and {args.save}.md", file=sys.stderr)
    return 0


def _cmd_eval_interactive(args: argparse.Namespace) -> int:
    from ccrs.data.dataset import PreparedDataset
    from ccrs.eval.interactive import (
        InteractiveConfig,
        build_sessions,
        run_interactive,
        simulator_for,
        summarize,
    )
    from ccrs.experiments.interactive_table import format_run_markdown, write_run

    cfg = InteractiveConfig(args.endpoint, args.rounds, args.k, args.adapt, args.concurrency, args.timeout_s,
                            args.session_timeout_s, args.seed, args.max_conversations, args.max_turns, args.history)
    ds = PreparedDataset.open(args.prepared)
    sim = simulator_for(ds, args.seed)
    sessions, support, counts = build_sessions(ds, args.fold, sim, args.split, args.part, args.max_sessions or None)
    if not sessions:
        raise ConfigError(f"fold {args.fold}: no {args.part} user has a conversation with a suggested-and-liked movie")
    run = run_interactive(cfg, sessions, support, sim, progress=not args.quiet)
    summary = summarize(run.records, cfg.rounds)
    command = "ccrs " + shlex.join(args.argv)
    report = {"command": command, "config": vars(cfg), "fold": args.fold, "part": args.part, "counts": counts,
              "summary": summary, "http_calls": run.http_calls, "http_errors": run.http_errors,
              "error_messages": run.error_messages, "wall_s": run.wall_s,
              "adapt_ms_mean": (sum(run.adapt_ms.values()) / len(run.adapt_ms)) if run.adapt_ms else None}
    print(format_run_markdown(report))
    if args.save:
        write_run(report, run.records, args.save)
        print(f"saved {args.save}.json, {args.save}.md and {args.save}_sessions.jsonl.gz", file=sys.stderr)
    return 1 if run.http_errors else 0


def _cmd_figures(args: argparse.Namespace) -> int:
    from ccrs.experiments.figures import make_figures

    relations = tuple(r for r in args.relations.split(",") if r)
    made = make_figures(args.rec_ckpt, args.prepared, args.fold, args.out, args.responses, args.movies, args.users,
                        relations)
    for name, path in made.items():
        print(f"{name}: {path} (+ .json)")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from serve.local import serve_forever  # Ray stays out of the library: the app lives in serve/

    app_args = {"rec_ckpt": args.rec_ckpt, "gen_ckpt": args.gen_ckpt, "data": args.data,
                "cache_size": args.cache_size, "adaptations": args.adaptations, "max_batch_size": args.max_batch_size,
                "batch_wait_timeout_s": args.batch_wait_timeout_s, "recommender_only": not args.gen_ckpt}
    return serve_forever(app_args, args.host, args.port, log_level=args.log_level)


def _cmd_config_show(args: argparse.Namespace) -> int:
    print(dump_config(load_config(args.config, args.overrides)), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ccrs", description="Customized Conversational Recommender Systems on Ray")
    parser.add_argument("--version", action="version", version=f"ccrs {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="prepare, synthesize, download data; evaluate the entity linker")
    dsub = data.add_subparsers(dest="data_command", required=True)

    p = dsub.add_parser("prepare", help="raw ReDial + DBpedia → prepared dataset (Parquet + manifest) at a URI")
    p.add_argument("--raw", type=Path, help="raw ReDial directory (default: see `ccrs --help`)")
    p.add_argument("--out", required=True, help="local path or s3://bucket/prefix")
    p.add_argument("--kg-format", choices=["crslab", "kgsf"], help="KG file format (default: config data.kg_format)")
    p.add_argument("--skip-bad-lines", action="store_true", help="skip malformed dialog lines (counted in the manifest)")
    p.add_argument("--force", action="store_true", help="rebuild even if the published dataset is up to date")
    p.add_argument("--no-download", action="store_true", help="never try to download raw data")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: one process, everything in memory; ray: Ray Data tasks over input splits, tables "
                        "streamed to storage (raw sets that do not fit one process; same tables)")
    p.add_argument("--split-mb", type=float, default=32.0, help="--engine ray: MB of dialog JSONL per task")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    _add_config_args(p)
    p.set_defaults(func=_cmd_prepare)

    p = dsub.add_parser("synth", help="write a small synthetic raw directory in the ReDial schema")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--users", type=int, default=40)
    p.add_argument("--conversations-per-user", type=int, default=4)
    p.add_argument("--kg-formats", default="crslab,kgsf", help="comma-separated: crslab, kgsf")
    p.set_defaults(func=_cmd_synth)

    p = dsub.add_parser("download", help="fetch the public ReDial release and a DBpedia subgraph (checksums, resume)")
    p.add_argument("--dest", type=Path, required=True)
    p.add_argument("--sources", type=Path, help="sources JSON (default: the one shipped with ccrs)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per network operation")
    p.add_argument("--mirror", default="", help="fetch https://HOST/PATH from MIRROR/HOST/PATH instead (checksums "
                                                "still apply)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_download)

    p = dsub.add_parser("link-eval", help="entity-linker precision/recall against CFCRS annotations")
    p.add_argument("--prepared", required=True, help="prepared dataset URI (its entities and linker config)")
    p.add_argument("--raw", type=Path, help="raw directory holding annotations/ (default: as for prepare)")
    p.add_argument("--rules", default="plain,serving,serving+genre-words",
                   help="linker rule sets to evaluate: plain (the prepared data's), serving (the serving linker, "
                        "its names), serving+genre-words (also its genre words)")
    p.add_argument("--parts", default="dev,held_out,all",
                   help="halves of the annotated conversations (crc32 parity of the id): rules are chosen on "
                        "dev, reported on held_out")
    p.add_argument("--save", help="write <SAVE>.json and <SAVE>.md")
    p.set_defaults(func=_cmd_link_eval)

    train = sub.add_parser("train", help="train one model (plain, single process)")
    tsub = train.add_subparsers(dest="train_command", required=True)
    p = tsub.add_parser("rec", help="train + select on valid + test one recommender; resumes an interrupted run")
    p.add_argument("--prepared", required=True, help="prepared dataset URI")
    p.add_argument("--out", required=True, help="run directory (local or s3://): checkpoints, predictions, metrics")
    p.add_argument("--model", help="ccrs | ccrs_no_turn | kbrd | popularity | repeat_context (= recommender.variant)")
    p.add_argument("--split", default="user", choices=["user", "standard"])
    p.add_argument("--fold", type=int, help="test fold of the user split (default: the prepared one)")
    p.add_argument("--seed", type=int, help="= seed")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    _add_config_args(p)
    p.set_defaults(func=_cmd_train_rec)

    p = tsub.add_parser("gen", help="train + select on valid perplexity + evaluate one generator (plain, no meta)")
    p.add_argument("--prepared", required=True, help="prepared dataset URI")
    p.add_argument("--rec-ckpt", required=True, help="recommender checkpoint (frozen): gives p_u and fills item slots")
    p.add_argument("--out", required=True, help="run directory (local or s3://)")
    p.add_argument("--model", help="transformer | kbrd_gen | only_meta | ccrs (= generator.variant)")
    p.add_argument("--fold", type=int, default=0, help="test fold of the user split (the recommender's fold)")
    p.add_argument("--seed", type=int, help="= seed")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    _add_config_args(p)
    p.set_defaults(func=_cmd_train_gen)

    ev = sub.add_parser("eval", help="result tables over many runs")
    esub = ev.add_subparsers(dest="eval_command", required=True)
    p = esub.add_parser("rec", help="Table 1: every model on the user split (all folds) and the standard split (seeds)")
    p.add_argument("--prepared", required=True, help="prepared dataset URI")
    p.add_argument("--runs", required=True, help="root of the run directories (finished runs are reused)")
    p.add_argument("--models", default="popularity,repeat_context,kbrd,ccrs_no_turn,ccrs")
    p.add_argument("--splits", default="user,standard")
    p.add_argument("--folds", default="0-9", help="user-split test folds, e.g. 0-9 or 0,3")
    p.add_argument("--seeds", default="0,1,2", help="standard-split seeds")
    p.add_argument("--compare", default="ccrs:kbrd", help="paired tests A:B[,C:D]")
    p.add_argument("--set", action="append", default=[], metavar="MODEL:KEY=VALUE",
                   help="a config override for one model only, e.g. kbrd:rec_train.lr=0.003 (repeatable)")
    p.add_argument("--part", default="test", choices=["test", "valid"],
                   help="which predictions the table reports (valid: for choosing hyperparameters)")
    p.add_argument("--resamples", type=int, default=10_000, help="sign-flip permutations per test")
    p.add_argument("--jobs", type=int, default=1, help="runs trained at once (threads split between them)")
    p.add_argument("--save", help="write <SAVE>.json and <SAVE>.md")
    p.add_argument("--merge", action="store_true",
                   help="keep the splits of an existing <SAVE>.json that this command did not run (e.g. add the "
                        "standard split to a 10-fold user-split table without retraining it)")
    p.add_argument("--command-line", help=argparse.SUPPRESS)
    p.add_argument("-q", "--quiet", action="store_true")
    _add_config_args(p)
    p.set_defaults(func=_cmd_eval_rec)

    p = esub.add_parser("decoding", help="one generator checkpoint decoded greedy / no-repeat / beam / nucleus on the "
                                         "same samples: the effect on F1, BLEU and Dist")
    p.add_argument("--gen-ckpt", required=True, help="generator best.pt (plain, or meta: users adapted first)")
    p.add_argument("--rec-ckpt", required=True, help="the frozen recommender it was trained with")
    p.add_argument("--prepared", required=True)
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--part", choices=("test", "valid"), default="test")
    p.add_argument("--max-users", type=int, default=0, help="decode the first N users only (0 = all)")
    p.add_argument("--setting", action="append", metavar="NAME:KEY=VALUE[,...]",
                   help="a decoding to compare, e.g. 'nucleus T=0.7:generator.decoding=nucleus,generator.temperature=0.7' "
                        "(repeatable; default: greedy, no-repeat, beam and nucleus settings)")
    p.add_argument("--save", help="write <SAVE>.json, <SAVE>.md and <SAVE>_responses/")
    p.set_defaults(func=_cmd_eval_decoding)

    p = esub.add_parser("interactive", help="simulated seekers converse with a served system over HTTP: success@round, "
                                            "rounds to success, target recall (with --adapt: users adapted first)")
    p.add_argument("--endpoint", required=True, help="the app's base URL, e.g. http://127.0.0.1:8000/")
    p.add_argument("--prepared", required=True)
    p.add_argument("--split", default="user", choices=("user",))
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--part", choices=("test", "valid"), default="test", help="whose conversations (valid: to choose options)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--adapt", action="store_true", help="send each user's support conversations to /v1/users/{id}/adapt first")
    p.add_argument("--history", action="store_true",
                   help="send each user's support conversations to /v1/users/{id}/history first (a returning user)")
    p.add_argument("--concurrency", type=int, default=4, help="sessions at once")
    p.add_argument("--timeout-s", type=float, default=30.0, help="per HTTP call")
    p.add_argument("--session-timeout-s", type=float, default=300.0)
    p.add_argument("--max-sessions", type=int, default=0, help="the first N sessions only (0 = all)")
    p.add_argument("--max-turns", type=int, default=50, help="send the dialogue's last N turns (the app's max_turns)")
    p.add_argument("--max-conversations", type=int, default=50, help="support conversations per adaptation request")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", help="write <SAVE>.json, <SAVE>.md and <SAVE>_sessions.jsonl.gz")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_eval_interactive)

    diag = sub.add_parser("diagnose", help="does the customization customize? (β sweep, attention, γ, cold start)")
    dgsub = diag.add_subparsers(dest="diagnose_command", required=True)
    p = dgsub.add_parser("rec", help="personalization diagnostics of recommender checkpoints on one role's users")
    p.add_argument("--ckpt", action="append", required=True, metavar="[NAME=]URI",
                   help="a recommender best.pt, plain or meta (repeatable; NAME labels its section)")
    p.add_argument("--prepared", required=True, help="the prepared dataset the checkpoint was trained on")
    p.add_argument("--fold", type=int, default=0, help="user-split fold")
    p.add_argument("--role", default="valid", choices=["valid", "test"])
    p.add_argument("--factors", default="0,1,10", help="inner-rate multipliers of β (0 = no adaptation)")
    p.add_argument("--max-attention-users", type=int, help="cap on users probed for attention (default: all)")
    p.add_argument("--save", help="write <SAVE>.json and <SAVE>.md, e.g. results/personalization")
    p.set_defaults(func=_cmd_diagnose_rec)

    p = sub.add_parser("figures", help="the paper's Fig. 3 (relation / turn attention) and Fig. 4 (styles by genre), "
                                       "PNG + JSON, from a recommender checkpoint (and a generator's responses)")
    p.add_argument("--rec-ckpt", required=True, help="recommender best.pt (plain or meta)")
    p.add_argument("--prepared", required=True, help="the prepared dataset it was trained on")
    p.add_argument("--fold", type=int, default=0, help="user-split fold (its test users are shown)")
    p.add_argument("--responses", help="a generator run's test_responses.jsonl (for Fig. 4; the one under runs/)")
    p.add_argument("--out", required=True, help="folder for the PNG and JSON files, e.g. results/figures")
    p.add_argument("--movies", type=int, default=4, help="movies in Fig. 3 left")
    p.add_argument("--users", type=int, default=8, help="test users in Fig. 3 left")
    p.add_argument("--relations", default="director,starring,producer", help="relations shown in Fig. 3 left")
    p.set_defaults(func=_cmd_figures)

    p = sub.add_parser("serve", help="the recommender + generator HTTP API and chat page on Ray Serve (local)")
    p.add_argument("--rec-ckpt", required=True, help="recommender best.pt (local path or s3://)")
    p.add_argument("--gen-ckpt", default="", help="generator best.pt (local path or s3://); without it the app is "
                                                  "recommender-only (/v1/respond answers 503)")
    p.add_argument("--data", required=True, help="the prepared dataset the recommender was trained on (KG, linker)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--cache-size", type=int, default=1024, help="adapted users kept in memory (LRU)")
    p.add_argument("--adaptations", default="runs/serve/adaptations",
                   help="where every adaptation is archived (local folder or s3://), so it survives the store "
                        "replica's death and a restart; '' keeps adaptations in memory only")
    p.add_argument("--max-batch-size", type=int, default=16)
    p.add_argument("--batch-wait-timeout-s", type=float, default=0.0,
                   help="0: a batch takes what is queued, no wait (results/bench_serve.md)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="the replicas' log level; DEBUG adds an access line per call (requests, and the "
                        "store's long poll every 20 s per Recommender replica)")
    p.set_defaults(func=_cmd_serve)

    cfg = sub.add_parser("config", help="show the resolved configuration")
    csub = cfg.add_subparsers(dest="config_command", required=True)
    p = csub.add_parser("show", help="print the config as YAML (defaults ← --config ← KEY=VALUE)")
    _add_config_args(p)
    p.set_defaults(func=_cmd_config_show)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from ccrs.checkpoint import CheckpointError
    from ccrs.data.dataset import DatasetError
    from ccrs.data.download import DownloadError
    from ccrs.data.raw import MissingRawFiles, RawDataError

    try:
        return int(args.func(args) or 0)
    except (ConfigError, RawDataError, MissingRawFiles, DatasetError, CheckpointError, DownloadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
