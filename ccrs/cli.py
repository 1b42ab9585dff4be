"""``ccrs`` command line (also ``python -m ccrs``).

    ccrs data prepare --out runs/demo/prepared             # raw dir found automatically, see below
    ccrs data prepare --raw ../shared/data/redial --out s3://bucket/ccrs/prepared
    ccrs data synth --out /tmp/redial-synth
    ccrs data download --dest ~/.cache/ccrs/redial
    ccrs data link-eval --prepared runs/demo/prepared
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
import sys
from pathlib import Path

from ccrs import __version__
from ccrs.config import ConfigError, dump_config, load_config


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
    result = prepare(raw, args.out, cfg.data, skip_bad_lines=args.skip_bad_lines, force=args.force, progress=not args.quiet)
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
    from ccrs.data.download import download_all, load_sources

    sources = load_sources(args.sources)
    paths = download_all(sources, args.dest, timeout=args.timeout, progress=not args.quiet)
    for p in paths:
        print(p)
    return 0


def _cmd_link_eval(args: argparse.Namespace) -> int:
    from ccrs.data.dataset import PreparedDataset
    from ccrs.data.linker import DEFAULT_STOPWORDS, EntityLinker
    from ccrs.data.linker_eval import ANNOTATIONS, evaluate_linker
    from ccrs.data.locate import resolve_raw_dir

    ds = PreparedDataset.open(args.prepared)
    data_cfg = ds.manifest["config"]
    entities = ds.table("entities")
    linker = EntityLinker.from_entities(
        entities,
        stopwords=DEFAULT_STOPWORDS | {s.lower() for s in data_cfg["extra_stopwords"]},
        min_chars=data_cfg["min_entity_name_chars"],
    )
    raw, _ = resolve_raw_dir(args.raw, allow_download=False, allow_synthetic=False)
    annotations = raw / ANNOTATIONS
    if not annotations.is_file():
        print(f"error: {annotations} not found (CFCRS entity annotations)", file=sys.stderr)
        return 2
    names = dict(zip(entities.column("id").to_pylist(), entities.column("name").to_pylist(), strict=True))
    report = evaluate_linker(linker, names, annotations)
    report["prepared"] = args.prepared
    report["annotations"] = str(annotations)
    report["command"] = "ccrs " + " ".join(sys.argv[1:])
    text = json.dumps(report, indent=2)
    print(text)
    if args.save:
        from ccrs.data.linker_eval import write_report

        write_report(report, Path(args.save))
    return 0


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
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_download)

    p = dsub.add_parser("link-eval", help="entity-linker precision/recall against CFCRS annotations")
    p.add_argument("--prepared", required=True, help="prepared dataset URI (its entities and linker config)")
    p.add_argument("--raw", type=Path, help="raw directory holding annotations/ (default: as for prepare)")
    p.add_argument("--save", help="write <SAVE>.json and <SAVE>.md")
    p.set_defaults(func=_cmd_link_eval)

    cfg = sub.add_parser("config", help="show the resolved configuration")
    csub = cfg.add_subparsers(dest="config_command", required=True)
    p = csub.add_parser("show", help="print the config as YAML (defaults ← --config ← KEY=VALUE)")
    _add_config_args(p)
    p.set_defaults(func=_cmd_config_show)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from ccrs.data.raw import MissingRawFiles, RawDataError

    try:
        return int(args.func(args) or 0)
    except (ConfigError, RawDataError, MissingRawFiles) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
