"""Docs that cannot rot: every shell block of the README and ``docs/`` is run or checked.

Each ```` ```bash ```` block carries a marker on the line before it:

* ``<!-- docs: run -->``: run here, on synthetic data, in order, in a scratch directory per page;
* ``<!-- docs: slow -->``: run by the ``slow`` test (needs trained checkpoints or a live server: the
  tiny pipeline trains them first, ``make serve``/``ccrs serve`` start in the background);
* ``<!-- docs: cluster-only -->``: needs what a test machine lacks (a Ray cluster, a bucket, a GPU,
  the internet, or the real data and its long runs); checked, not run;
* ``<!-- docs: ci -->``: the two commands CI runs itself (``.ci/run`` calls ``make test``).

Every block, run or not, is checked: ``ccrs`` subcommands and their flags against the real parser,
``python -m``/script flags against the source, ``section.key=value`` overrides against the config,
repository paths against the tree, ``make`` targets against the Makefile. Prose is checked too: paths
and config keys in inline code, and links to files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARKERS = ("run", "slow", "cluster-only", "ci")
_MARK = re.compile(r"<!--\s*docs:\s*([\w-]+)\s*-->")
#: Top-level folders a documented path may start with.
ROOTS = ("ccrs", "ray_jobs", "serve", "cluster", "benchmarks", "studies", "results", "docs", "tests", ".ci")
#: Flags whose value is something the command writes (it need not exist yet).
OUTPUT_FLAGS = {"--out", "--save", "--storage-path", "--predictions", "--dest", "--runs", "-o", "--root",
                "--work-dir", "--adaptations"}


@dataclass
class Block:
    page: Path
    line: int
    marker: str | None
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def shell_blocks(page: Path) -> list[Block]:
    out, lines = [], page.read_text().splitlines()
    i = 0
    while i < len(lines):
        if re.match(r"^```(bash|sh|shell|console)\s*$", lines[i]):
            prev = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
            m = _MARK.search(prev)
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append(Block(page, i + 1, m.group(1) if m else None, "\n".join(lines[i + 1:j])))
            i = j
        i += 1
    return out


ALL_BLOCKS = [b for p in PAGES for b in shell_blocks(p)]


def commands(text: str) -> list[str]:
    """The block's commands: continuation lines joined, comments dropped, split at ``&&``/``;``/``|``."""
    joined = re.sub(r"\\\n\s*", " ", text)
    out = []
    for line in joined.splitlines():
        try:
            toks = shlex.split(line, comments=True)
        except ValueError:  # an unbalanced quote in a comment: keep the part before '#'
            toks = shlex.split(line.split(" #")[0], comments=True)
        cur: list[str] = []
        for t in toks:
            if t in ("&&", ";", "|", "||", "&"):
                if cur:
                    out.append(shlex.join(cur))
                cur = []
            else:
                cur.append(t)
        if cur:
            out.append(shlex.join(cur))
    return out


# ----------------------------------------------------------------------------------------- static checks
def _config_sections() -> dict[str, set[str]]:
    from ccrs.config import CCRSConfig

    out = {}
    for f in dataclasses.fields(CCRSConfig):
        if dataclasses.is_dataclass(f.type) or isinstance(f.default_factory, type):
            cls = f.default_factory if isinstance(f.default_factory, type) else f.type
            out[f.name] = {g.name for g in dataclasses.fields(cls)}
    return out


SECTIONS = _config_sections()


def _check_override(token: str) -> str | None:
    m = re.fullmatch(r"([a-z_]+)\.([a-z_0-9]+)=.*", token)
    if not m or m.group(1) not in SECTIONS:
        return None
    return None if m.group(2) in SECTIONS[m.group(1)] else f"config key {m.group(1)}.{m.group(2)} does not exist"


def _check_path(token: str) -> str | None:
    token = token.rstrip(".,:;)").strip("'\"")
    if not re.match(rf"^({'|'.join(re.escape(r) for r in ROOTS)})/", token) or any(c in token for c in "<>{}$"):
        return None
    if "..." in token or token.endswith("/..."):
        return None
    if any(c in token for c in "*?["):
        return None if list(REPO.glob(token)) else f"no file matches {token}"
    p = REPO / token
    if p.exists() or any(p.parent.glob(glob_escape(p.name) + ".*")):  # a result's stem: x → x.md, x.json
        return None
    return f"path {token} does not exist"


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _ccrs_parser():
    from ccrs.cli import build_parser

    return build_parser()


def _subparser(parser, words: list[str]):
    """The parser of ``ccrs <words...>`` and the tokens left after the subcommand words."""
    import argparse

    i = 0
    while i < len(words):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or words[i] not in subs[0].choices:
            break
        parser = subs[0].choices[words[i]]
        i += 1
    return parser, words[i:]


def _flags(tokens: list[str]) -> list[str]:
    return [t.split("=")[0] for t in tokens if re.fullmatch(r"--?[a-zA-Z][\w-]*(=.*)?", t) and t not in ("-", "--")]


def _module_source(module: str) -> str | None:
    path = REPO / (module.replace(".", "/") + ".py")
    if not path.is_file():
        path = REPO / module.replace(".", "/") / "__main__.py"
    if not path.is_file():
        return None
    src = path.read_text()
    # flags a driver takes from a shared parser (ray_jobs.meta_driver) or the CLI it wraps
    for dep in re.findall(r"from (ray_jobs\.\w+|ccrs\.cli) import", src):
        dep_path = REPO / (dep.replace(".", "/") + ".py")
        if dep_path.is_file():
            src += dep_path.read_text()
    return src


def check_command(cmd: str) -> list[str]:
    toks = [t.strip("[]") for t in shlex.split(cmd)]
    toks = [t for t in toks if t and t != "..." and not t.startswith("...")]
    if not toks:
        return []
    errors: list[str] = []
    outputs = {i + 1 for i, t in enumerate(toks) if t in OUTPUT_FLAGS}
    for i, t in enumerate(toks):
        errors += [e for e in (_check_override(t), None if i in outputs else _check_path(t)) if e]
    prog, rest = Path(toks[0]).name, toks[1:]
    if prog in ("python", "python3") and rest[:2] == ["-m", "ccrs"]:
        prog, rest = "ccrs", rest[2:]
    if prog == "ccrs":
        parser, args = _subparser(_ccrs_parser(), [t for t in rest if not t.startswith("-")] and rest)
        known = set(parser._option_string_actions)
        errors += [f"ccrs {parser.prog.split(' ', 1)[-1]}: no option {f}" for f in _flags(args) if f not in known]
    elif prog in ("python", "python3") and rest[:1] == ["-m"]:
        src = _module_source(rest[1])
        if src is None:
            errors.append(f"no module {rest[1]} in the repository")
        else:
            errors += [f"{rest[1]}: no option {f}" for f in _flags(rest[2:]) if f"'{f}'" not in src and f'"{f}"' not in src]
    elif prog in ("python", "python3") and rest and rest[0].endswith(".py"):
        path = REPO / rest[0]
        if not path.is_file():
            errors.append(f"no script {rest[0]}")
        else:
            src = path.read_text()
            errors += [f"{rest[0]}: no option {f}" for f in _flags(rest[1:]) if f"'{f}'" not in src and f'"{f}"' not in src]
    elif prog == "make":
        targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))
        errors += [f"make: no target {t}" for t in rest if "=" not in t and not t.startswith("-") and t not in targets]
    elif prog in ("submit.sh",) or (prog == "ray" and rest[:2] == ["job", "submit"]):
        if "--" in rest:
            errors += check_command(shlex.join(rest[rest.index("--") + 1:]))
    return errors


def test_every_shell_block_is_marked():
    bad = [f"{b.where}: marker {b.marker!r} (one of {MARKERS} on the line before the block)"
           for b in ALL_BLOCKS if b.marker not in MARKERS]
    assert not bad, "\n".join(bad)
    assert sum(b.marker == "run" for b in ALL_BLOCKS) >= 2


def test_documented_commands_flags_keys_and_paths_exist():
    errors = [f"{b.where}: {e}   [{c}]" for b in ALL_BLOCKS for c in commands(b.text) for e in check_command(c)]
    assert not errors, "\n".join(errors)


def test_the_check_catches_what_disappears():
    """The checker itself: a flag, a key, a path, a module and a target that do not exist are caught."""
    for cmd, what in [("ccrs train rec --prepared x --out y --no-such-flag", "no option --no-such-flag"),
                      ("ccrs config show recommender.no_such_key=1", "recommender.no_such_key"),
                      ("python -m ray_jobs.tune --no-such-flag", "no option --no-such-flag"),
                      ("python -m ray_jobs.no_such_job", "no module"),
                      ("python benchmarks/no_such.py", "no script"),
                      ("serve run serve/no_such.yaml", "does not exist"),
                      ("make no-such-target", "no target")]:
        assert any(what in e for e in check_command(cmd)), (cmd, check_command(cmd))
    assert check_command("ccrs serve --rec-ckpt a --data b --log-level DEBUG") == []


def _prose(page: Path) -> str:
    return re.sub(r"```.*?```", "", page.read_text(), flags=re.S)


def test_prose_paths_config_keys_and_links_exist():
    errors = []
    for page in PAGES:
        text = _prose(page)
        for span in re.findall(r"`([^`\n]+)`", text):
            for tok in span.split():
                e = _check_path(tok) or _check_override(tok if "=" in tok else tok + "=x")
                if e:
                    errors.append(f"{page.relative_to(REPO)}: {e}")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if "://" in target or target.startswith("#"):
                continue
            if not (page.parent / target.split("#")[0]).exists():
                errors.append(f"{page.relative_to(REPO)}: link to {target} that does not exist")
    assert not errors, "\n".join(sorted(set(errors)))


def test_readme_is_a_front_door():
    text = (REPO / "README.md").read_text()
    lines = text.splitlines()
    assert len(lines) <= 150, f"README has {len(lines)} lines"
    first = next(b for b in shell_blocks(REPO / "README.md"))
    assert first.line <= 6 and [c.split()[:2] for c in commands(first.text)] == [["make", "demo"], ["make", "test"]]
    assert "make test" in (REPO / ".ci" / "run").read_text()
    for page in ("getting-started", "data", "models", "training", "tuning", "serving", "cluster", "results",
                 "architecture", "reproduction", "scaling"):
        assert f"(docs/{page}.md)" in text, page


def test_results_index_covers_every_committed_result():
    from ccrs.experiments.results_index import committed_files, groups

    index = (REPO / "docs" / "results.md").read_text()
    missing = [key for key in groups(committed_files()) if f"`results/{key}`" not in index]
    assert not missing, f"docs/results.md lacks {missing}: python -m ccrs.experiments.results_index > docs/results.md"


def test_architecture_diagram_is_rendered_from_its_source():
    src = (REPO / "docs" / "architecture" / "system.dot").read_bytes()
    svg = (REPO / "docs" / "architecture" / "system.svg").read_text()
    assert f"source sha256 {hashlib.sha256(src).hexdigest()}" in svg, "run `make diagram`"
    assert "architecture/system.svg" in (REPO / "docs" / "architecture.md").read_text()


# ------------------------------------------------------------------------------------------- running
def _sandbox(tmp: Path, synth_raw: Path) -> tuple[Path, dict]:
    """A scratch directory that looks like the checkout (its folders linked in), and the environment."""
    for name in ("ccrs", "ray_jobs", "serve", "cluster", "benchmarks", "studies", "docs", "Makefile",
                 "pyproject.toml", ".venv"):
        if (REPO / name).exists():
            (tmp / name).symlink_to(REPO / name)
    (tmp / "results").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}", PYTHONPATH=str(REPO),
               CCRS_RAW_DIR=str(synth_raw), CCRS_CACHE_DIR=str(tmp / "cache"))
    return tmp, env


def _run_block(block: Block, cwd: Path, env: dict, timeout: float = 600) -> None:
    t0 = time.monotonic()
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block.text], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, (f"{block.where} failed (rc {proc.returncode}, {time.monotonic() - t0:.0f} s):\n"
                                  f"{block.text}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")


@pytest.mark.parametrize("page", [p for p in PAGES if any(b.marker == "run" for b in shell_blocks(p))],
                         ids=lambda p: p.name)
def test_run_blocks_run_on_synthetic_data(page, synth_raw, tmp_path):
    cwd, env = _sandbox(tmp_path, synth_raw)
    for block in shell_blocks(page):
        if block.marker == "run":
            _run_block(block, cwd, env)


SERVE_START = re.compile(r"^\s*(make serve|ccrs serve)\b")


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if any(b.marker == "slow" for b in shell_blocks(p))],
                         ids=lambda p: p.name)
def test_slow_blocks_run_on_a_tiny_demo(page, synth_raw, tmp_path):
    """The tiny pipeline writes ``runs/demo`` (what ``make demo`` leaves), then the page's run and slow
    blocks run in order; a block that starts the server runs in the background until the page ends."""
    cwd, env = _sandbox(tmp_path, synth_raw)
    subprocess.run([sys.executable, "-m", "ray_jobs.pipeline", "--preset", "tiny", "--storage-path", "runs/demo",
                    "--cpus-per-worker", "0.5"], cwd=cwd, env=env, check=True, capture_output=True, timeout=900)
    servers: list[subprocess.Popen] = []
    try:
        for block in shell_blocks(page):
            if block.marker not in ("run", "slow"):
                continue
            if SERVE_START.match(block.text.strip().splitlines()[0]):
                log = open(tmp_path / f"serve-{block.line}.log", "w")
                servers.append(subprocess.Popen(["bash", "-c", block.text.strip().splitlines()[0].split(" #")[0]],
                                                cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True))
                deadline = time.monotonic() + 240
                while "ccrs serving at" not in (tmp_path / f"serve-{block.line}.log").read_text():
                    assert servers[-1].poll() is None and time.monotonic() < deadline, \
                        (tmp_path / f"serve-{block.line}.log").read_text()[-3000:]
                    time.sleep(1)
                continue
            _run_block(block, cwd, env)
    finally:
        for s in servers:
            if s.poll() is None:
                os.killpg(s.pid, signal.SIGINT)
                s.wait(timeout=60)
