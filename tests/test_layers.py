"""Layers only look down: evaluation code never imports training code (DEVELOPERS.md, issue 32)."""

import ast
from pathlib import Path

import ccrs

PACKAGE = Path(ccrs.__file__).parent
FORBIDDEN = {"eval": ("ccrs.meta", "ccrs.train")}


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, at any depth (function-level imports included)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.lineno, node.module))
    return out


def test_evaluation_never_imports_training_code():
    bad = []
    for layer, forbidden in FORBIDDEN.items():
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            bad += [f"{path.relative_to(PACKAGE.parent)}:{line} imports {mod}" for line, mod in _imports(path)
                    if any(mod == f or mod.startswith(f + ".") for f in forbidden)]
    assert not bad, "\n".join(bad)


def test_the_library_keeps_ray_in_its_one_adapter():
    """Model math knows nothing of Ray: only the Ray Data engine of ``ccrs data prepare`` imports it."""
    allowed = {PACKAGE / "data" / "prepare_ray.py"}
    bad = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {mod}"
           for path in sorted(PACKAGE.rglob("*.py")) if path not in allowed
           for line, mod in _imports(path) if mod == "ray" or mod.startswith("ray.")]
    assert not bad, "\n".join(bad)
