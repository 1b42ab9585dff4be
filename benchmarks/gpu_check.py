"""The CUDA path checked in one short run: what ``../shared/notes/gpu-path-review.md`` says may break.

    bash benchmarks/gpu_check.sh                     # on a CUDA machine (installs nothing it does not need)
    python benchmarks/gpu_check.py --device cpu      # the same steps on CPU (a dry run of the script itself)

Each step is timed, bounded (``--step-timeout``) and recorded in ``results/bench_gpu.json`` as
``ok`` / ``failed`` (with the error's last line) / ``skipped`` (with the reason), so one failure never
hides the others. Steps:

1. ``synthetic_data``: a small ReDial-shaped dataset, prepared (no network, no real data);
2. ``sdpa_double_backward``: second-order gradients through scaled-dot-product attention for head
   sizes 16/64/150 and dropout 0/0.1 (review item 2: the memory-efficient kernel has none);
3. ``rec_meta_step`` / ``gen_meta_step``: one recommender and one generator meta-step (second order)
   on CPU and on the device: ms per step, peak device memory;
4. ``bf16_inner_step``: the share of weights an inner step β·g leaves unchanged in bf16 (item 7);
5. ``train_rec_then_load_on_cpu``: ``ccrs train rec --device <device>``, then ``best.pt`` loaded in a
   process that sees no GPU (item 3);
6. ``gpu_marked_tests``: ``pytest -m gpu tests/gpu`` (when pytest is installed);
7. ``ray_train_use_gpu``: ``ray_jobs.train_recommender --use-gpu`` with one worker (nccl), when
   ``import ray`` works (the lent GPU image has no Ray: skipped with that reason).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY_REC = ["recommender.entity_dim=16", "recommender.user_dim=16", "recommender.n_heads=2", "rec_train.max_epochs=1",
            "rec_meta.meta_batch_size=4"]
TINY_GEN = ["generator.word_dim=64", "generator.ffn_dim=64", "generator.bias_hidden=32", "generator.min_word_count=1",
            "generator.max_context_tokens=64", "dial_meta.meta_batch_size=4", "dial_meta.max_task_samples=4"]


class Steps:
    def __init__(self, out: Path) -> None:
        self.out, self.steps = out, {}

    def run(self, name: str, fn, *args):
        t0 = time.perf_counter()
        try:
            result = fn(*args)
            self.steps[name] = {"status": "ok", "seconds": round(time.perf_counter() - t0, 2), **(result or {})}
        except Skip as s:
            self.steps[name] = {"status": "skipped", "reason": str(s)}
        except Exception as exc:  # record and go on: one failure must not hide the others
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            self.steps[name] = {"status": "failed", "seconds": round(time.perf_counter() - t0, 2), "error": last[:500]}
        print(f"[gpu_check] {name}: {json.dumps(self.steps[name])}", flush=True)
        self.save()
        return self.steps[name]

    def save(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_suffix(".tmp")
        tmp.write_text(json.dumps({"environment": environment(), "steps": self.steps}, indent=2) + "\n")
        tmp.replace(self.out)


class Skip(Exception):
    pass


def environment() -> dict:
    import torch

    env = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
           "cuda": torch.version.cuda, "python": sys.version.split()[0]}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    try:
        import torch_geometric

        env["torch_geometric"] = torch_geometric.__version__
    except ImportError:
        env["torch_geometric"] = None
    try:
        import ray

        env["ray"] = ray.__version__
    except ImportError:
        env["ray"] = None
    return env


def synthetic_data(work: Path) -> dict:
    from ccrs.data.prepare import prepare
    from ccrs.data.synth import write_synthetic_raw

    raw = work / "raw"
    write_synthetic_raw(raw)
    prepare(raw, str(work / "prepared"), progress=False)
    return {"prepared": str(work / "prepared")}


def sdpa_double_backward(device: str) -> dict:
    import torch
    import torch.nn.functional as F

    out = {}
    for head in (16, 64, 150):
        for p in (0.0, 0.1):
            q, k, v = (torch.randn(2, 2, 8, head, device=device, requires_grad=True) for _ in range(3))
            try:
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
                (g,) = torch.autograd.grad(y.square().sum(), q, create_graph=True)
                g.square().sum().backward()
                out[f"head{head}_dropout{p}"] = "ok"
            except Exception as exc:
                out[f"head{head}_dropout{p}"] = traceback.format_exception_only(type(exc), exc)[-1].strip()[:200]
    return {"cases": out, "all_ok": all(v == "ok" for v in out.values())}


def _meta_step_ms(make, device: str, steps: int = 3) -> dict:
    import torch

    from ccrs.meta.maml import meta_step

    training = make(device)
    training.model.train()
    users = training.meta_batches(1)[0]
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps + 1):  # the first step warms up
        tasks = [training.task(u) for u in users]
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        meta_step(training.maml, tasks, training.optimizer, training.meta_cfg.grad_clip, None)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    out = {"ms_per_step": round(1000 * sorted(times[1:])[len(times[1:]) // 2], 1)}
    if device.startswith("cuda"):
        out["peak_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def rec_meta_step(prepared: str, device: str) -> dict:
    from ccrs.config import load_config
    from ccrs.meta.rec_training import RecMetaTraining

    cfg = load_config(None, TINY_REC)
    out = {"cpu": _meta_step_ms(lambda d: RecMetaTraining(cfg, prepared, 0, device=d), "cpu")}
    if device != "cpu":
        out[device] = _meta_step_ms(lambda d: RecMetaTraining(cfg, prepared, 0, device=d), device)
    return out


def gen_meta_step(prepared: str, rec_ckpt: str, device: str) -> dict:
    from ccrs.config import load_config
    from ccrs.meta.gen_training import GenMetaTraining

    cfg = load_config(None, TINY_GEN)
    out = {"cpu": _meta_step_ms(lambda d: GenMetaTraining(cfg, prepared, 0, rec_ckpt, device=d), "cpu")}
    if device != "cpu":
        out[device] = _meta_step_ms(lambda d: GenMetaTraining(cfg, prepared, 0, rec_ckpt, device=d), device)
    return out


def bf16_inner_step() -> dict:
    import torch

    gen = torch.Generator().manual_seed(0)
    w = (torch.randn(100_000, generator=gen) * 0.1).bfloat16()  # weights of a typical scale, held in bf16
    g = torch.randn(100_000, generator=gen)
    out = {}
    for g_scale in (1.0, 0.01):  # unit-scale and small gradients (late in training)
        for beta in (0.006, 0.06, 0.6):
            adapted = w - (beta * g_scale * g).bfloat16()  # the inner step computed in bf16
            out[f"g{g_scale}_beta{beta}_unchanged_share"] = round(float((adapted == w).float().mean()), 4)
    return out


def train_rec_then_load_on_cpu(prepared: str, work: Path, device: str) -> dict:
    out = work / "rec"
    cmd = [sys.executable, "-m", "ccrs", "train", "rec", "--prepared", prepared, "--split", "user", "--fold", "0",
           "--out", str(out), "--device", device, "-q", *TINY_REC]
    subprocess.run(cmd, check=True, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    probe = ("from ccrs.checkpoint import load_checkpoint; import sys; "
             "p = load_checkpoint(sys.argv[1]); print(sorted({str(t.device) for t in p['state_dict'].values()}))")
    res = subprocess.run([sys.executable, "-c", probe, str(out / "best.pt")], check=True, cwd=ROOT,
                         env=_env(CUDA_VISIBLE_DEVICES=""), capture_output=True, text=True, timeout=120)
    return {"best_pt": str(out / "best.pt"), "devices_in_checkpoint": res.stdout.strip()}


def ray_train_use_gpu(prepared: str, work: Path, device: str) -> dict:
    try:
        import ray  # noqa: F401
    except ImportError:
        raise Skip("ray is not installed here (the lent GPU image has CUDA torch and PyG but no Ray)") from None
    if device == "cpu":
        raise Skip("--device cpu: the nccl path needs a GPU")
    cmd = [sys.executable, "-m", "ray_jobs.train_recommender", "--data", prepared, "--fold", "0", "--storage-path",
           str(work / "ray"), "--run-name", "gpu", "--num-workers", "1", "--use-gpu", "-q", *TINY_REC,
           "rec_meta.epochs=1"]
    res = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    if res.returncode:
        raise RuntimeError((res.stderr or res.stdout).strip().splitlines()[-1][:500])
    return {"result": str(work / "ray" / "gpu" / "eval" / "result.json")}


def gpu_marked_tests(device: str) -> dict:
    try:
        import pytest  # noqa: F401
    except ImportError:
        raise Skip("pytest is not installed here") from None
    if device == "cpu":
        raise Skip("--device cpu: the gpu-marked tests skip themselves without CUDA")
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests/gpu", "-p", "no:cacheprovider"],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    summary = (res.stdout.strip().splitlines() or [""])[-1]
    if res.returncode:
        raise RuntimeError(summary)
    return {"summary": summary}


def _env(**extra) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **extra}
    return env


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu for a dry run")
    p.add_argument("--out", default=str(ROOT / "results" / "bench_gpu.json"))
    p.add_argument("--work", help="scratch folder (default: a temporary one)")
    args = p.parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible (torch.cuda.is_available() is False); "
              "use --device cpu for a dry run", file=sys.stderr)
        return 2
    steps = Steps(Path(args.out))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        data = steps.run("synthetic_data", synthetic_data, work)
        steps.run("sdpa_double_backward", sdpa_double_backward, args.device)
        steps.run("bf16_inner_step", bf16_inner_step)
        if data["status"] != "ok":
            print("gpu_check: no data, the model steps cannot run", file=sys.stderr)
            return 1
        prepared = data["prepared"]
        rec = steps.run("train_rec_then_load_on_cpu", train_rec_then_load_on_cpu, prepared, work, args.device)
        steps.run("rec_meta_step", rec_meta_step, prepared, args.device)
        if rec["status"] == "ok":
            steps.run("gen_meta_step", gen_meta_step, prepared, rec["best_pt"], args.device)
        steps.run("gpu_marked_tests", gpu_marked_tests, args.device)
        steps.run("ray_train_use_gpu", ray_train_use_gpu, prepared, work, args.device)
    failed = [n for n, s in steps.steps.items() if s["status"] == "failed"]
    print(f"gpu_check: {len(steps.steps)} steps, failed: {', '.join(failed) or 'none'}; wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
