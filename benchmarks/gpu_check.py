"""GPU check of the selective scan and of one nnU-Net training iteration (needs CUDA).

    python benchmarks/gpu_check.py --out OUT_DIR [--skip-numerics] [--skip-timing]
                                   [--dtypes float16 bfloat16] [--batch 24] [--iters 10] [--budget-s S]

(a) Numerics: on CUDA, every available backend -- mamba-ssm's kernel (``mamba``, when
    ``mamba_ssm.ops.selective_scan_interface`` imports) and our PyTorch path (``torch``) -- against
    the float64 oracle (tests/scan_oracle.py, run on the GPU), forward output and the gradients of
    all seven inputs for a dense random upstream gradient, at small sizes and at the four SS2D
    shapes of a 256x256 input (KD x L = 768x4096, 1536x1024, 3072x256, 6144x64; batch 1, G=4,
    N=16), plus mamba against torch. Errors are max |a - b| and that divided by max |reference|.
    Also the time of one scan forward+backward per backend and shape.

(b) Timing: one training iteration as ``nnUNetTrainer.train_step`` does it -- zero_grad,
    forward and deep-supervised DC+CE loss under autocast, backward, grad clipping at 12,
    optimizer step, loss copied to the host -- at a 256x256 patch with nnU-Net's planned batch
    size (24: ``nnUNetv2_plan_and_preprocess -c 2d`` on a synthetic dataset of 8 single-channel
    60x256x256 volumes, 3 labels, spacing 1x1x5 planned the 2d configuration below). For
    SwinUMamba and SwinUMambaD with the mamba kernel and with our torch path
    (SWIN_UMAMBA_SCAN=torch), and for the PlainConvUNet of those plans. Autocast float16 with
    GradScaler is what nnU-Net's train_step does (``autocast('cuda')``); bfloat16 (no scaler) is
    measured too. Optimizers as the trainers use them: AdamW (lr 1e-4, wd 0.05, eps 1e-5) for the
    Swin-UMamba networks, SGD (lr 1e-2, momentum 0.99, nesterov, wd 3e-5) for PlainConvUNet.
    Eager mode (nnU-Net compiles the network by default; compile time is not part of this).
    Reported: mean ms per iteration over ``--iters`` after ``--warmup`` iterations, peak memory
    allocated and reserved by PyTorch during the timed iterations.

Prints tables and writes ``gpu_check.json`` into ``--out`` (after every row). With ``--budget-s``,
no new case or configuration starts once that many seconds have passed; they are listed as skipped.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
import traceback

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from scan_oracle import selective_scan_oracle  # noqa: E402

from swin_umamba.network_registry import NETWORKS  # noqa: E402
from swin_umamba.ops import dispatch  # noqa: E402
from swin_umamba.ops.scan_torch import scan_torch  # noqa: E402

NAMES = ("u", "delta", "A", "B", "C", "D", "delta_bias")
START = time.perf_counter()
BUDGET = float("inf")


def out_of_time() -> bool:
    return time.perf_counter() - START > BUDGET
SMALL = [  # batch, KD, L, G, N
    (2, 64, 300, 4, 16),
    (1, 48, 1000, 3, 16),
    (3, 16, 2049, 1, 16),
    (2, 32, 129, 2, 8),
]
SS2D = [(1, 768, 4096, 4, 16), (1, 1536, 1024, 4, 16), (1, 3072, 256, 4, 16), (1, 6144, 64, 4, 16)]

PATCH = (256, 256)
PLANNED_BATCH = 24
NUM_CLASSES = 14  # 13 abdominal organs + background, as the AbdomenMR task
# nnU-Net 2.8.1's 2d plan for the synthetic 256x256 dataset (see the module docstring)
PLAIN_UNET = {
    "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    "arch_kwargs": {
        "n_stages": 7, "features_per_stage": [32, 64, 128, 256, 512, 512, 512],
        "conv_op": "torch.nn.modules.conv.Conv2d", "kernel_sizes": [[3, 3]] * 7,
        "strides": [[1, 1]] + [[2, 2]] * 6, "n_conv_per_stage": [2] * 7, "n_conv_per_stage_decoder": [2] * 6,
        "conv_bias": True, "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True},
    },
    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
}


# ------------------------------------------------------------------------------------------ (a) numerics
def make_inputs(batch, kd, L, groups, N, seed, device):
    """Distributed like SS2D's inputs (as tests/test_selective_scan.py), float64 on ``device``."""
    g = torch.Generator().manual_seed(seed)
    d = torch.float64
    u = torch.randn(batch, kd, L, generator=g, dtype=d)
    delta = torch.randn(batch, kd, L, generator=g, dtype=d) - 2.0
    A = -torch.arange(1, N + 1, dtype=d).repeat(kd, 1) * torch.exp(0.3 * torch.randn(kd, N, generator=g, dtype=d))
    B = torch.randn(batch, groups, N, L, generator=g, dtype=d)
    C = torch.randn(batch, groups, N, L, generator=g, dtype=d)
    D = torch.randn(kd, generator=g, dtype=d)
    bias = 0.5 * torch.randn(kd, generator=g, dtype=d)
    gout = torch.randn(batch, kd, L, generator=g, dtype=d)
    return [t.to(device) for t in (u, delta, A, B, C, D, bias)], gout.to(device)


def mamba_fn():
    fn = dispatch.mamba_scan_fn()
    if fn is None:
        return None

    def run(u, delta, A, B, C, D, bias, delta_softplus=True, return_last_state=False):
        return fn(u.contiguous(), delta.contiguous(), A.contiguous(), B.contiguous(), C.contiguous(), D=D,
                  z=None, delta_bias=bias, delta_softplus=delta_softplus, return_last_state=return_last_state)

    return run


def forward_backward(fn, inputs, gout, dtype):
    xs = [x.detach().to(dtype).clone().requires_grad_() for x in inputs]
    out, last = fn(*xs, delta_softplus=True, return_last_state=True)
    (out * gout.to(out.dtype)).sum().backward()
    return {"out": out.detach(), "last_state": last.detach(), **{f"d{n}": x.grad for n, x in zip(NAMES, xs)}}


def errors(actual: dict, ref: dict) -> dict:
    res = {}
    for k, r in ref.items():
        a = actual[k].double()
        err = (a - r.double()).abs().max().item()
        scale = r.double().abs().max().item()
        res[k] = {"abs": err, "rel": err / scale if scale else float("inf"), "finite": bool(torch.isfinite(a).all())}
    return res


def time_scan(fn, inputs, gout, repeats=5):
    xs = [x.detach().float().clone().requires_grad_() for x in inputs]
    g = gout.float()
    best_f, best_fb = float("inf"), float("inf")
    for _ in range(repeats + 1):  # first run is a warm-up
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad():
            fn(*[x.detach() for x in xs], delta_softplus=True)
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        out = fn(*xs, delta_softplus=True)
        (out * g).sum().backward()
        torch.cuda.synchronize()
        t2 = time.perf_counter()
        best_f, best_fb = min(best_f, t1 - t0), min(best_fb, t2 - t1)
        for x in xs:
            x.grad = None
    return {"fwd_ms": 1e3 * best_f, "fwd_bwd_ms": 1e3 * best_fb}


def numerics(device, save, fwd_tol=1e-4, grad_tol=1e-3):
    backends = {"torch": scan_torch}
    m = mamba_fn()
    if m is not None:
        backends["mamba"] = m
    rows, skipped = [], []
    result = {"fwd_rel_tol": fwd_tol, "grad_rel_tol": grad_tol, "backends": list(backends), "rows": rows,
              "skipped": skipped, "mamba_import_error": dispatch.mamba_error()}
    for kind, cases in (("small", SMALL), ("ss2d", SS2D)):
        for case in cases:
            batch, kd, L, G, N = case
            if out_of_time():
                skipped.append(list(case))
                print(f"skipped {case}: out of time", flush=True)
                continue
            inputs, gout = make_inputs(batch, kd, L, G, N, seed=kd + L, device=device)
            t0 = time.perf_counter()
            ref = forward_backward(selective_scan_oracle, inputs, gout, torch.float64)
            oracle_s = time.perf_counter() - t0
            results = {name: forward_backward(fn, inputs, gout, torch.float32) for name, fn in backends.items()}
            row = {"kind": kind, "shape": {"batch": batch, "KD": kd, "L": L, "G": G, "N": N},
                   "oracle_seconds": round(oracle_s, 2), "vs_oracle": {}, "timing": {}}
            for name, res in results.items():
                row["vs_oracle"][name] = errors(res, ref)
            if "mamba" in results:
                row["mamba_vs_torch"] = errors(results["mamba"], results["torch"])
            if kind == "ss2d":
                for name, fn in backends.items():
                    row["timing"][name] = time_scan(fn, inputs, gout)
            for name, errs in row["vs_oracle"].items():
                fwd = max(errs["out"]["rel"], errs["last_state"]["rel"])
                grad = max(v["rel"] for k, v in errs.items() if k.startswith("d"))
                errs["ok"] = bool(fwd <= fwd_tol and grad <= grad_tol and all(v["finite"] for k, v in errs.items()
                                                                             if isinstance(v, dict)))
            rows.append(row)
            del ref, results
            torch.cuda.empty_cache()
            print_numerics_row(row)
            save(numerics=result)
    return result


def print_numerics_row(row):
    s = row["shape"]
    shape = f"{s['batch']}x{s['KD']}x{s['L']} G={s['G']} N={s['N']}"
    for name, errs in row["vs_oracle"].items():
        grads = {k: v for k, v in errs.items() if k.startswith("d")}
        worst = max(grads, key=lambda k: grads[k]["rel"])
        t = row["timing"].get(name)
        timing = f"  fwd {t['fwd_ms']:.2f} ms, fwd+bwd {t['fwd_bwd_ms']:.2f} ms" if t else ""
        print(f"{shape:>26} {name:>6} vs oracle: out abs {errs['out']['abs']:.2e} rel {errs['out']['rel']:.2e} | "
              f"worst grad {worst} abs {grads[worst]['abs']:.2e} rel {grads[worst]['rel']:.2e} | "
              f"{'ok' if errs['ok'] else 'FAIL'}{timing}", flush=True)
    if "mamba_vs_torch" in row:
        e = row["mamba_vs_torch"]
        worst = max((k for k in e if k.startswith("d")), key=lambda k: e[k]["rel"])
        print(f"{shape:>26} mamba vs torch: out rel {e['out']['rel']:.2e}, worst grad {worst} rel {e[worst]['rel']:.2e}",
              flush=True)


# -------------------------------------------------------------------------------------------- (b) timing
def build_network(name, device):
    if name == "PlainConvUNet":
        from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

        net = get_network_from_plans(PLAIN_UNET["network_class_name"], PLAIN_UNET["arch_kwargs"],
                                     PLAIN_UNET["_kw_requires_import"], 1, NUM_CLASSES, deep_supervision=True)
        scales = [2 ** i for i in range(6)]
    else:
        import swin_umamba.nets as nets

        net = getattr(nets, name)(1, NUM_CLASSES, deep_supervision=True)
        scales = list(net.OUTPUT_SCALES)
    return net.to(device), scales


def build_loss(n_outputs):
    import numpy as np
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    loss = DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1,
                          weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)
    weights = np.array([1 / (2 ** i) for i in range(n_outputs)])
    weights[-1] = 0
    return DeepSupervisionWrapper(loss, weights / weights.sum())


def time_training(name, scan, amp_dtype, batch, warmup, iters, device):
    if scan is not None:
        os.environ[dispatch.ENV_VAR] = scan
    else:
        os.environ.pop(dispatch.ENV_VAR, None)
    torch.manual_seed(0)
    net, scales = build_network(name, device)
    used_backend = dispatch.selective_scan_backend(device) if name != "PlainConvUNet" else None
    loss_fn = build_loss(len(scales))
    if name == "PlainConvUNet":
        opt = torch.optim.SGD(net.parameters(), lr=1e-2, weight_decay=3e-5, momentum=0.99, nesterov=True)
    else:
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.05, eps=1e-5, betas=(0.9, 0.999))
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    data = torch.randn(batch, 1, *PATCH, device=device)
    full = torch.randint(0, NUM_CLASSES, (batch, 1, *PATCH), device=device).float()
    target = [full[:, :, ::s, ::s].contiguous() for s in scales]

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=amp_dtype):
            out = net(data)
            loss = loss_fn(out, target)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
            opt.step()
        return loss.detach().cpu().numpy()

    result = {"network": name, "scan": used_backend, "amp": str(amp_dtype).replace("torch.", ""), "batch": batch,
              "params_M": round(sum(p.numel() for p in net.parameters()) / 1e6, 2)}
    try:
        for _ in range(warmup):
            step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        losses = [step() for _ in range(iters)]
        torch.cuda.synchronize()
        result.update(ms_per_iter=round(1e3 * (time.perf_counter() - t0) / iters, 1),
                      peak_allocated_GiB=round(torch.cuda.max_memory_allocated() / 2 ** 30, 2),
                      peak_reserved_GiB=round(torch.cuda.max_memory_reserved() / 2 ** 30, 2),
                      final_loss=float(losses[-1]))
    except torch.OutOfMemoryError as exc:
        result.update(error=f"OOM: {str(exc).splitlines()[0]}")
    except Exception as exc:  # report and go on with the other configurations
        result.update(error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=5))
    del net, opt, data, full, target
    gc.collect()
    torch.cuda.empty_cache()
    os.environ.pop(dispatch.ENV_VAR, None)
    return result


def timing(device, dtypes, batch, warmup, iters, save):
    have_mamba = dispatch.mamba_scan_fn() is not None
    rows = []
    result = {"patch": list(PATCH), "num_classes": NUM_CLASSES, "warmup": warmup, "iters": iters, "rows": rows}
    for dtype in dtypes:
        configs = [("PlainConvUNet", None)]
        for net in (n.class_name for n in NETWORKS.values()):
            if have_mamba:
                configs.append((net, "mamba"))
            configs.append((net, "torch"))
        for name, scan in configs:
            if out_of_time():
                r = {"network": name, "scan": scan, "amp": str(dtype).replace("torch.", ""), "batch": batch,
                     "error": "skipped: out of time"}
            else:
                r = time_training(name, scan, dtype, batch, warmup, iters, device)
            rows.append(r)
            print(format_timing_row(r), flush=True)
            save(timing=result)
    return result


def format_timing_row(r):
    label = f"{r['network']}" + (f" [{r['scan']}]" if r["scan"] else "")
    if "error" in r:
        return f"{label:>28} {r['amp']:>8} batch {r['batch']}: {r['error']}"
    return (f"{label:>28} {r['amp']:>8} batch {r['batch']}: {r['ms_per_iter']:8.1f} ms/iter  "
            f"peak alloc {r['peak_allocated_GiB']:6.2f} GiB  reserved {r['peak_reserved_GiB']:6.2f} GiB")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT", "."))
    parser.add_argument("--skip-numerics", action="store_true")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--dtypes", nargs="+", choices=["float16", "bfloat16"], default=["float16", "bfloat16"])
    parser.add_argument("--batch", type=int, default=PLANNED_BATCH)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--budget-s", type=float, default=float("inf"),
                        help="start no new case or configuration after this many seconds")
    parser.add_argument("--json-name", default="gpu_check.json")
    args = parser.parse_args(argv)
    global BUDGET
    BUDGET = args.budget_s
    if not torch.cuda.is_available():
        print("gpu_check: needs CUDA")
        return 2
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True  # as nnU-Net's trainer sets it
    report = {
        "device": torch.cuda.get_device_name(device), "torch": torch.__version__, "cuda": torch.version.cuda,
        "python": platform.python_version(), "mamba_available": dispatch.mamba_scan_fn() is not None,
        "mamba_import_error": dispatch.mamba_error(),
    }
    print(f"{report['device']}, torch {report['torch']} (CUDA {report['cuda']}), mamba kernel: "
          f"{report['mamba_available']} {report['mamba_import_error'] or ''}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, args.json_name)

    def save(**parts):
        report.update(parts)
        with open(path, "w") as f:
            json.dump(report, f, indent=1)

    if not args.skip_numerics:
        print("\n(a) selective scan on CUDA vs the float64 oracle", flush=True)
        numerics(device, save)
    if not args.skip_timing:
        print(f"\n(b) one training iteration, patch {PATCH[0]}x{PATCH[1]}, batch {args.batch}, "
              f"{NUM_CLASSES} classes, deep supervision, eager", flush=True)
        dtypes = [getattr(torch, d) for d in args.dtypes]
        timing(device, dtypes, args.batch, args.warmup, args.iters, save)
    save()
    print(f"\nwrote {path}")
    failed = [r for r in report.get("numerics", {}).get("rows", []) for e in r["vs_oracle"].values() if not e["ok"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
