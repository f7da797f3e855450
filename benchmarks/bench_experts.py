"""Patches per second through the expert runtime vs a naive loop.

    python benchmarks/bench_experts.py                       # small CNN, CPU, 40k x 30k slide
    python benchmarks/bench_experts.py --model resnet50-like --device cuda --patches 4000

Both sides run the same checkpoint (saved as a state_dict with a model card and loaded through the
card path) on the same patches: 224 px at 0.5 µm/px (20x) from the tissue of a generated
SynthPath slide (cached in /tmp/slidescout-bench).

- runtime: ``run_patches`` (pyvips ``Region.fetch`` reader pool, batches, channels-last,
  inference_mode; pinned memory and bf16 autocast on CUDA);
- naive: OpenSlide ``read_region`` per patch at the best level, batch of 1, no threads, the
  module in eval mode under ``torch.no_grad``.

Also reported: the model's own throughput (batches already in memory), the reader pool's
throughput with a no-op model, and the share of time the model waited for data.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

CACHE = Path(os.environ.get("SLIDESCOUT_BENCH_CACHE", "/tmp/slidescout-bench"))
# small: 4 strided 3x3 conv stages (8-64 channels), ~0.1M parameters, ~0.03 GFLOP per 224 px patch;
# medium: the same at twice the width (~0.4M parameters, ~0.1 GFLOP); resnet50-like: ResNet-50
# (25M parameters, ~4 GFLOP), all randomly initialised (no downloads).
MODELS = {"small": ("tiny_cnn", {"width": 8}), "medium": ("tiny_cnn", {"width": 16}),
          "resnet50-like": ("resnet50", {})}


def bench_slide(size: tuple[int, int], seed: int = 0) -> Path:
    from slidescout.slides.synth import generate_slide

    slide_id = f"synth-{size[0]}x{size[1]}-s{seed}"
    path = CACHE / f"{slide_id}.tiff"
    if path.is_file():
        return path
    print(f"generating {path} (cached for later runs)...", flush=True)
    t0 = time.perf_counter()
    generate_slide(CACHE, slide_id, size=size, seed=seed, primary="tumor")
    print(f"  {time.perf_counter() - t0:.0f} s", flush=True)
    return path


def make_card(model: str) -> Path:
    """Save the model's (random) weights as a state_dict with a card; returns the card path."""
    import torch
    import yaml

    from slidescout.tools.experts.archs import ARCHITECTURES

    arch, args = MODELS[model]
    folder = CACHE / f"experts-model-{model}"
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = ARCHITECTURES[arch](2, **args).eval()
    torch.save(net.state_dict(), folder / "weights.pth")
    card = {"name": f"bench-{model}", "format": "state_dict", "path": "weights.pth", "architecture": arch,
            "architecture_args": args, "mpp": 0.5, "patch_size": 224, "labels": ["other", "tumor"],
            "output": "logits"}
    path = folder / "card.yaml"
    path.write_text(yaml.safe_dump(card, sort_keys=False))
    return path


def subset(plan, n: int):
    """``n`` patches of a plan, spread evenly over the tissue."""
    import dataclasses

    if n >= len(plan):
        return plan
    idx = np.linspace(0, len(plan) - 1, n).round().astype(int)
    return dataclasses.replace(plan, cells=plan.cells[idx], tissue=plan.tissue[idx])


def naive_loop(path: Path, plan, card, device: str, n: int) -> float:
    """Patches/s of OpenSlide read_region per patch + batch-of-1 inference."""
    import openslide
    import torch
    from PIL import Image

    from slidescout.tools.experts.loading import build_architecture

    net = build_architecture(card)
    net.load_state_dict(torch.load(str(card.weights), map_location="cpu", weights_only=True))
    net = net.to(device).eval()
    c = card.card
    mean = torch.tensor(c.mean).view(1, 3, 1, 1).to(device)
    std = torch.tensor(c.std).view(1, 3, 1, 1).to(device)
    osr = openslide.OpenSlide(str(path))
    target = plan.patch_l0 / plan.patch_size
    level = osr.get_best_level_for_downsample(target + 1e-6)
    ds = osr.level_downsamples[level]
    side = round(plan.patch_l0 / ds)
    boxes = plan.boxes()[:n]

    def one(box) -> None:
        img = osr.read_region((int(box[0]), int(box[1])), level, (side, side)).convert("RGB")
        if side != plan.patch_size:
            img = img.resize((plan.patch_size, plan.patch_size), Image.Resampling.BILINEAR)
        x = torch.from_numpy(np.array(img)).permute(2, 0, 1).unsqueeze(0).float().div(255)
        x = ((x.to(device) - mean) / std)
        with torch.no_grad():
            net(x).softmax(1).cpu()

    for box in boxes[:3]:  # warm-up
        one(box)
    t0 = time.perf_counter()
    for box in boxes:
        one(box)
    osr.close()
    return len(boxes) / (time.perf_counter() - t0)


def model_only(card, device: str, batch: int, repeats: int = 5) -> float:
    """Patches/s of the loaded runner alone on in-memory batches (prepared as the runtime does)."""
    from slidescout.tools.experts.pool import model_pool

    runner = model_pool().get(card, device)
    x = np.random.default_rng(0).integers(0, 255, (batch, 224, 224, 3), dtype=np.uint8)
    if getattr(runner, "host_prepare", False):
        x = runner.prepared(x)
    if device.startswith("cuda"):
        import torch

        x = torch.from_numpy(x).pin_memory()
    runner(x)
    t0 = time.perf_counter()
    for _ in range(repeats):
        runner(x)
    return batch * repeats / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slide", type=Path, help="a slide to use instead of the generated one")
    ap.add_argument("--size", default="40000x30000", help="generated slide size (default 40000x30000)")
    ap.add_argument("--model", choices=sorted(MODELS), default="small")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda")
    ap.add_argument("--patches", type=int, default=2000, help="patches through the runtime (0: all tissue)")
    ap.add_argument("--naive-patches", type=int, default=None, help="patches through the naive loop")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the runtime's (16 CPU, 64 GPU)")
    ap.add_argument("--workers", type=int, default=None, help="reader threads (default: cores, 2-8)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best of each is kept")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)

    import torch

    from slidescout.slides import open_slide
    from slidescout.tools.experts.cards import load_card
    from slidescout.tools.experts.loading import resolve_device
    from slidescout.tools.experts.runtime import run_patches
    from slidescout.tools.experts.tiling import plan_patches

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    w, h = (int(v) for v in args.size.lower().split("x"))
    path = args.slide or bench_slide((w, h))
    slide = open_slide(path)
    card = load_card(make_card(args.model))
    t0 = time.perf_counter()
    full = plan_patches(slide, None, mpp=0.5, patch_size=224, min_tissue=0.25, max_patches=10**7)
    plan_s = time.perf_counter() - t0
    plan = subset(full, args.patches) if args.patches else full
    naive_n = args.naive_patches or min(len(plan), 40 if args.model == "resnet50-like" else 300)

    run_patches(slide, card, plan=subset(plan, 128), device=device,
                batch_size=args.batch_size, workers=args.workers)  # load and warm up

    def noop(batch):
        return np.zeros((len(batch), 1), np.float32)

    # interleaved rounds, best of each: other processes on a shared machine only ever slow a side down
    runs, readers, model_ps, naive_ps, cpu_rt, cpu_naive = [], [], [], [], [], []
    for _ in range(args.rounds):
        c0 = time.process_time()
        runs.append(run_patches(slide, card, plan=plan, device=device, batch_size=args.batch_size,
                                workers=args.workers))
        c1 = time.process_time()
        naive_ps.append(naive_loop(path, plan, card, device, naive_n))
        c2 = time.process_time()
        cpu_rt.append(len(plan) / max(c1 - c0, 1e-9))
        cpu_naive.append((naive_n + 3) / max(c2 - c1, 1e-9))
        readers.append(run_patches(slide, noop, plan=plan, mpp=0.5, patch_size=224,
                                   batch_size=args.batch_size, workers=args.workers).stats.patches_per_s)
        model_ps.append(model_only(card, device, runs[-1].stats.batch_size))
    run = max(runs, key=lambda r: r.stats.patches_per_s)
    naive_ps, readers_ps, model_ps = max(naive_ps), max(readers), max(model_ps)
    s = run.stats
    result = {
        "slide": str(path), "slide_size": list(slide.dimensions), "tissue_patches": len(full),
        "plan_s": round(plan_s, 2), "model": args.model, "device": s.device,
        "gpu": torch.cuda.get_device_name(0) if s.device.startswith("cuda") else None,
        "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "batch_size": s.batch_size, "workers": s.workers, "patches": s.patches,
        "runtime_patches_per_s": round(s.patches_per_s, 1),
        "naive_patches_per_s": round(naive_ps, 1), "naive_patches": naive_n,
        "speedup": round(s.patches_per_s / naive_ps, 2),
        "runtime_patches_per_cpu_s": round(max(cpu_rt), 1), "naive_patches_per_cpu_s": round(max(cpu_naive), 1),
        "cpu_efficiency_ratio": round(max(cpu_rt) / max(cpu_naive), 2),
        "wait_fraction": round(s.wait_fraction, 3),
        "model_only_patches_per_s": round(model_ps, 1),
        "readers_only_patches_per_s": round(readers_ps, 1), "rounds": args.rounds,
        "runtime_rounds": [round(r.stats.patches_per_s, 1) for r in runs],
        "runtime_stats": s.to_dict(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"slide {path.name} {w}x{h}, {len(full)} tissue patches of 224 px at 0.5 µm/px (plan {plan_s:.1f} s)")
        print(f"model {args.model} on {result['gpu'] or s.device} (torch threads {result['torch_threads']}), "
              f"batch {s.batch_size}, {s.workers} reader threads, {s.patches} patches")
        print(f"  runtime      {s.patches_per_s:8.1f} patches/s   model waited for data {s.wait_fraction:.1%}")
        print(f"  naive loop   {naive_ps:8.1f} patches/s   ({naive_n} patches, OpenSlide + batch of 1)")
        print(f"  speedup      {s.patches_per_s / naive_ps:8.1f}x")
        print(f"  per CPU-second: runtime {max(cpu_rt):.0f}, naive {max(cpu_naive):.0f} patches "
              f"({max(cpu_rt) / max(cpu_naive):.1f}x; independent of other load on the machine)")
        print(f"  model only   {model_ps:8.1f} patches/s   (in-memory batches)")
        print(f"  readers only {readers_ps:8.1f} patches/s   (no-op model)")
        print(f"  (best of {args.rounds} interleaved rounds; runtime rounds: "
              f"{', '.join(str(round(r.stats.patches_per_s)) for r in runs)})")
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
