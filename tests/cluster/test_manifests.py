"""Every file under cluster/ parses, pins the versions pyproject.toml pins, and names things that exist."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

CLUSTER = REPO / "cluster"
YAMLS = sorted(CLUSTER.rglob("*.yaml"))
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _pin(name: str) -> str:
    """``2.60`` for ``ray[...]>=2.60,<2.61``: the minor version pyproject.toml admits."""
    (dep,) = [d for d in PYPROJECT["project"]["dependencies"] if re.match(rf"{name}(\[|>|=|<)", d)]
    return re.search(r">=\s*(\d+\.\d+)", dep).group(1)


RAY, TORCH = _pin("ray"), _pin("torch")


def test_every_yaml_parses():
    assert len(YAMLS) >= 6
    for path in YAMLS:
        docs = list(yaml.safe_load_all(path.read_text()))
        assert docs and all(isinstance(d, dict) for d in docs), path


def _versions(text: str, pattern: str) -> set[str]:
    return {m.group(1) for m in re.finditer(pattern, text)}


@pytest.mark.parametrize("path", [*YAMLS, CLUSTER / "Dockerfile"], ids=lambda p: str(p.relative_to(CLUSTER)))
def test_ray_and_torch_versions_agree_with_pyproject(path):
    text = path.read_text()
    images = _versions(text, r"rayproject/ray:(\d+\.\d+)\.\d+")
    ray_versions = _versions(text, r"rayVersion:\s*\"?(\d+\.\d+)")
    torch_versions = _versions(text, r"torch==(\d+\.\d+)")
    assert images | ray_versions <= {RAY}, (path, images, ray_versions)
    assert torch_versions <= {TORCH}, (path, torch_versions)
    if path.name in ("Dockerfile", "cluster.yaml"):
        assert images == {RAY} and torch_versions == {TORCH}, path
    if path.parent.name == "k8s":
        assert ray_versions == {RAY}, path


def _cluster_specs() -> list[tuple[str, dict]]:
    out = []
    for path in sorted((CLUSTER / "k8s").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"].get("rayClusterSpec") or doc["spec"].get("rayClusterConfig")
        out.append((path.name, spec))
    return out


@pytest.mark.parametrize("name,spec", _cluster_specs(), ids=[n for n, _ in _cluster_specs()])
def test_kuberay_clusters_have_token_auth_gpu_workers_and_an_idle_head(name, spec):
    assert spec["authOptions"]["mode"] == "token"
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    gpus = [g for g in spec["workerGroupSpecs"]
            if "nvidia.com/gpu" in g["template"]["spec"]["containers"][0]["resources"]["limits"]]
    assert gpus and gpus[0]["minReplicas"] == 0
    for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        env = group["template"]["spec"]["containers"][0].get("env", [])
        assert not any("SECRET" in e["name"] or "ACCESS_KEY" in e["name"] for e in env)  # no credentials in files


def test_the_rayservice_serve_config_equals_serve_config_yaml():
    service = yaml.safe_load((CLUSTER / "k8s" / "rayservice.yaml").read_text())
    embedded = yaml.safe_load(service["spec"]["serveConfigV2"])
    ours = yaml.safe_load((REPO / "serve" / "config.yaml").read_text())
    assert embedded["applications"] == ours["applications"]
    assert embedded.get("proxy_location") == ours.get("proxy_location")


def _entry_modules() -> set[str]:
    mods = set()
    texts = [p.read_text() for p in [*YAMLS, CLUSTER / "README.md", CLUSTER / "submit.sh"]]
    for text in texts:
        mods |= set(re.findall(r"python -m ([\w.]+)", text))
        mods |= {m.split(":")[0] for m in re.findall(r"import_path:\s*([\w.:]+)", text)}
    return mods


def test_entry_points_named_in_the_manifests_exist():
    mods = _entry_modules()
    assert {"ray_jobs.pipeline", "ray_jobs.tune", "serve.app"} <= mods
    for mod in mods:
        rel = Path(*mod.split("."))
        assert (REPO / f"{rel}.py").is_file() or (REPO / rel / "__main__.py").is_file(), mod
    service = yaml.safe_load((CLUSTER / "k8s" / "rayservice.yaml").read_text())
    for app in yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]:
        module, attr = app["import_path"].split(":")
        text = (REPO / f"{Path(*module.split('.'))}.py").read_text()
        assert re.search(rf"^def {attr}\(", text, re.M), app["import_path"]


def test_the_entry_point_flags_in_the_manifests_are_accepted():
    """Each RayJob's command line parses with its driver's own argument parser."""
    for path in sorted((CLUSTER / "k8s").glob("rayjob-*.yaml")):
        entry = yaml.safe_load(path.read_text())["spec"]["entrypoint"].split()
        assert entry[:2] == ["python", "-m"], path
        module = __import__(entry[2], fromlist=["build_parser", "main"])
        module.build_parser().parse_intermixed_args(entry[3:])  # SystemExit(2) on an unknown or missing flag


def test_submit_sh_derives_a_stable_run_name(tmp_path):
    fake_ray = tmp_path / "ray"
    fake_ray.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')  # prints what ray job submit would get
    fake_ray.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    cmd = [str(CLUSTER / "submit.sh"), "--", "python", "-m", "ray_jobs.tune", "--stage", "rec"]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    other = subprocess.run([*cmd[:-1], "dial"], capture_output=True, text=True, env=env, check=True)
    args = first.stdout.split("\n")
    run_name = args[args.index("--run-name") + 1]
    assert run_name.startswith("ccrs-") and first.stdout == again.stdout and run_name not in other.stdout
    assert "--runtime-env" in args and args[args.index("--runtime-env") + 1].endswith("cluster/runtime_env.yaml")
