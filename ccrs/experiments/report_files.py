"""How a benchmark saves what it measured: ``<save>.json`` then ``<save>.md`` (the markdown last)."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable


def command_line(script: str, argv: list[str] | None) -> str:
    """The command that regenerates a results file, as the user typed its arguments."""
    return f"python benchmarks/{script} " + shlex.join(sys.argv[1:] if argv is None else argv)


def save_report(save: str, body: dict, format_markdown: Callable[[dict], str]) -> None:
    from ccrs import storage

    storage.write_bytes(storage.resolve(save + ".json"), json.dumps(body, indent=2).encode())
    storage.write_bytes(storage.resolve(save + ".md"), format_markdown(body).encode())
    print(f"saved {save}.json and {save}.md")
