"""The distribution ``ccrs-ray`` as a user installs it: a wheel built from the checkout, into a fresh venv.

The name on the public index matters: ``ccrs`` there is an unrelated project, so every documented
install command must name this one (or install from the checkout)."""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DIST = "ccrs-ray"


def test_pyproject_names_the_distribution():
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"] == DIST


def test_no_document_installs_the_other_projects_name():
    """``pip install ccrs`` / ``'ccrs[...]'`` would fetch the unrelated project from the index."""
    files = [REPO / "README.md", REPO / "Makefile", *REPO.glob("docs/*.md"), *REPO.glob("cluster/**/*")]
    bad = re.compile(r"pip install[^\n`]*?(?<![\w./-])['\"]?ccrs(\[[^\]]*\])?['\"]?(?=[\s`]|$)")
    hits = [f"{f.relative_to(REPO)}: {m.group(0)}" for f in files if f.is_file()
            for m in bad.finditer(f.read_text(errors="replace"))]
    assert not hits, hits


def test_wheel_installs_into_a_fresh_venv_and_runs(tmp_path):
    wheels = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(REPO)], check=True, cwd=tmp_path)
    (wheel,) = wheels.glob("ccrs_ray-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)],
                   check=True)
    # The dependencies (torch, Ray, ...) come from this interpreter's site-packages, added after the venv's
    # own: a plain path in a .pth file, so this environment's editable finder for the checkout stays out.
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = ("import importlib.metadata as m, ccrs, serve, ray_jobs.pipeline; "
             "from ccrs.data.download import load_sources; "
             "print(m.version('ccrs-ray'), ccrs.__file__, len(load_sources(None)) > 0)")
    out = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    version, where, sources = out.split()
    assert version == tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert where.startswith(str(site)), f"imported {where}, not the installed wheel"
    assert sources == "True"  # package data travels in the wheel
    files = subprocess.run([str(py), "-c", "import serve, pathlib; p = pathlib.Path(serve.__file__).parent; "
                            "print((p / 'config.yaml').is_file(), any((p / 'static').glob('*.html')))"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout.split()
    assert files == ["True", "True"]
    cli = subprocess.run([str(venv / "bin" / "ccrs"), "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert cli.returncode == 0 and "serve" in cli.stdout, cli.stderr
