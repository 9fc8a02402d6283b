"""Training throughput of cssl's engine (not a test; prints numbers and optionally writes JSON).

CPU (default): the ``quick`` profile's step — SimCLR, SmallCNN width 16, 16x16 colour textures, batch
256, channels_last, two views made by the batched augmentation — reported as steps/s and source
images/s, split into augmentation and model (forward + backward + Adam) time::

    python bench/bench_train.py                 # quick profile on this CPU
    python bench/bench_train.py --steps 50 --out bench/cpu.json

GPU (``--gpu``): synthetic CIFAR-shaped data (50k uint8 images), SimCLR ResNet-18, batch 512,
SGD, bf16 autocast + channels_last, comparing

* ``resident``: data kept on the GPU as uint8, batched augmentation of the whole batch on the GPU
  (what :func:`cssl.train.train` does), against
* ``loader``: the classic path, a ``torch.utils.data.DataLoader`` whose workers augment one image at a
  time on the CPU (same :class:`cssl.augment.Augmentation`), pinned memory, non-blocking copies,

and prints the time of one epoch of 50k images for each. ``--smoke`` runs both modes with tiny sizes on
whatever device is present (CPU here), only to show the code works.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from cssl.augment import Augmentation
from cssl.models import build_backbone, build_method
from cssl.train import _to_float, device_name, provenance


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _normaliser(x_uint8: torch.Tensor):
    xf = _to_float(x_uint8[:5000])
    mean = xf.mean(dim=(0, 2, 3)).view(1, -1, 1, 1)
    std = xf.std(dim=(0, 2, 3)).clamp_min(1e-3).view(1, -1, 1, 1)
    return lambda x: ((x - mean.to(x.device)) / std.to(x.device)).contiguous(memory_format=torch.channels_last)


def _model(backbone: str, width: int, device: torch.device, lr: float, optimizer: str):
    torch.manual_seed(0)
    method = build_method("simclr", build_backbone(backbone, width=width)).to(device).to(memory_format=torch.channels_last)
    opt = (torch.optim.SGD(method.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4) if optimizer == "sgd"
           else torch.optim.Adam(method.parameters(), lr=lr))
    return method, opt


def _step(method, opt, x1, x2, amp: bool) -> torch.Tensor:
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and x1.is_cuda):
        loss = method(x1, x2)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def bench_resident(x: torch.Tensor, *, backbone: str, width: int, batch: int, steps: int, warmup: int, device,
                   amp: bool, optimizer: str = "sgd", lr: float = 0.06, split: bool = False) -> dict:
    """Steps of the GPU-resident path; returns timings (seconds) and rates."""
    x = x.to(device)
    prepare = _normaliser(x)
    aug = Augmentation("abcde")
    gen = torch.Generator(device=device).manual_seed(0)
    method, opt = _model(backbone, width, device, lr, optimizer)
    t_aug = t_model = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        idx = torch.randint(0, x.shape[0], (batch,), device=device, generator=gen)
        ta = time.perf_counter()
        xb = _to_float(x[idx])
        x1, x2 = prepare(aug(xb, generator=gen)), prepare(aug(xb, generator=gen))
        if split:
            _sync(device)
        tb = time.perf_counter()
        _step(method, opt, x1, x2, amp)
        if split:
            _sync(device)
        if i >= warmup:
            t_aug += tb - ta
            t_model += time.perf_counter() - tb
    _sync(device)
    total = time.perf_counter() - t0
    out = {"steps": steps, "batch": batch, "seconds": total, "steps_per_s": steps / total,
           "images_per_s": steps * batch / total}
    if split:
        out.update(aug_s_per_step=t_aug / steps, model_s_per_step=t_model / steps)
    return out


class _PerSampleViews(torch.utils.data.Dataset):
    """Two augmented views of one image at a time (the per-sample DataLoader path)."""

    def __init__(self, x_uint8: torch.Tensor, aug: Augmentation):
        self.x, self.aug = x_uint8, aug

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int):
        img = _to_float(self.x[i:i + 1])
        return self.aug(img)[0], self.aug(img)[0]


def bench_loader(x: torch.Tensor, *, backbone: str, width: int, batch: int, steps: int, warmup: int, device,
                 amp: bool, workers: int, optimizer: str = "sgd", lr: float = 0.06) -> dict:
    """Steps of the per-sample DataLoader path (CPU workers augment, batches copied to the device)."""
    x = x.cpu()
    prepare = _normaliser(x)
    loader = torch.utils.data.DataLoader(_PerSampleViews(x, Augmentation("abcde")), batch_size=batch, shuffle=True,
                                         drop_last=True, num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=workers > 0)
    method, opt = _model(backbone, width, device, lr, optimizer)
    it, i = iter(loader), 0
    while i < warmup + steps:
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        try:
            v1, v2 = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        v1 = prepare(v1.to(device, non_blocking=True))
        v2 = prepare(v2.to(device, non_blocking=True))
        _step(method, opt, v1, v2, amp)
        i += 1
    _sync(device)
    total = time.perf_counter() - t0
    return {"steps": steps, "batch": batch, "seconds": total, "steps_per_s": steps / total,
            "images_per_s": steps * batch / total, "workers": workers}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gpu", action="store_true", help="CIFAR-shaped ResNet-18 benchmark: resident vs DataLoader path")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, both modes, on the available device")
    p.add_argument("--steps", type=int, default=30, help="timed steps (default 30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed warm-up steps (default 5)")
    p.add_argument("--workers", type=int, default=8, help="DataLoader workers of the loader path (default 8)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--out", default=None, help="folder for the report (default bench/results; train_cpu, train_gpu)")
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.workers < 0:
        p.error("--steps must be >= 1, --warmup and --workers >= 0")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    report = {"provenance": provenance(device), "device": device_name(device)}

    if args.smoke:
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (256, 3, 16, 16), dtype=torch.uint8, generator=g)
        kw = dict(backbone="resnet18", width=4, batch=32, steps=2, warmup=1, device=device, amp=True)
        report["resident"] = bench_resident(x, **kw)
        report["loader"] = bench_loader(x, workers=0, **kw)
        report["quick_cpu"] = bench_resident(x, backbone="smallcnn", width=4, batch=32, steps=2, warmup=1,
                                             device=device, amp=True, optimizer="adam", lr=2e-3, split=True)
    elif args.gpu:
        if device.type != "cuda":
            p.error("--gpu needs a CUDA device (use --smoke to check the code on CPU)")
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (50_000, 3, 32, 32), dtype=torch.uint8, generator=g)
        kw = dict(backbone="resnet18", width=64, batch=512, steps=args.steps, warmup=args.warmup, device=device, amp=True)
        steps_per_epoch = 50_000 // 512
        for name, fn, extra in (("resident", bench_resident, {}), ("loader", bench_loader, {"workers": args.workers})):
            r = fn(x, **kw, **extra)
            r["epoch_s_50k"] = steps_per_epoch / r["steps_per_s"]
            report[name] = r
            print(f"{name:9s}: {r['steps_per_s']:.2f} steps/s, {r['images_per_s']:.0f} images/s, "
                  f"epoch of 50k images {r['epoch_s_50k']:.1f} s", flush=True)
        report["speedup_resident_vs_loader"] = report["loader"]["epoch_s_50k"] / report["resident"]["epoch_s_50k"]
        print(f"GPU-resident path is {report['speedup_resident_vs_loader']:.2f}x faster per epoch ({report['device']})")
    else:
        from cssl.data import colour_textures

        xtr, *_ = colour_textures(10_000, 10, size=16, seed=0)
        r = bench_resident(torch.as_tensor(xtr), backbone="smallcnn", width=16, batch=256, steps=args.steps,
                           warmup=args.warmup, device=device, amp=True, optimizer="adam", lr=2e-3, split=True)
        report["quick"] = r
        print(f"quick profile (SimCLR, SmallCNN w16, 16x16, batch 256) on {report['device']}: "
              f"{r['steps_per_s']:.2f} steps/s, {r['images_per_s']:.0f} images/s "
              f"(augmentation {1e3 * r['aug_s_per_step']:.1f} ms + model {1e3 * r['model_s_per_step']:.1f} ms per step)")
    if args.smoke:
        print(json.dumps({k: v for k, v in report.items() if k != "provenance"}, indent=1))
    if args.smoke:  # a code check, not a measurement: no report
        return 0
    sys.path.insert(0, str(Path(__file__).parent))
    from _report import RESULTS, write_report

    table = ["| path | steps/s | images/s | epoch of 50k images (s) |", "|---|---|---|---|"]
    for name in ("quick", "resident", "loader"):
        if name in report:
            r = report[name]
            epoch = f"{r['epoch_s_50k']:.1f}" if "epoch_s_50k" in r else "-"
            table.append(f"| {name} | {r['steps_per_s']:.2f} | {r['images_per_s']:,.0f} | {epoch} |")
    table += ["", f"Device: {report['device']}."]
    if "quick" in report:
        table[-1] += " Quick profile: SimCLR, SmallCNN width 16, 16x16 textures, batch 256 (images/s counts both views' source images)."
    else:
        table[-1] += (f" Paper profile shapes: SimCLR ResNet-18, 32x32, batch 512, synthetic CIFAR-shaped data; GPU-resident path "
                      f"{report['speedup_resident_vs_loader']:.2f}x faster per epoch than the DataLoader path (goal: <= 3 s per epoch on one H100).")
    write_report("train_gpu" if args.gpu else "train_cpu", report, table, args.out or RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
