"""Section ``training``: one training iteration as nnU-Net's ``train_step`` does it (zero_grad, autocast
float16 forward with deep supervision, DC+CE loss, GradScaler backward, grad clipping at 12,
optimizer step, loss to the host) of each shape case's network and of nnU-Net's PlainConvUNet at the
same patch and its planned batch, eager and compiled, per scan backend: Triton compiled, mamba eager
(the authors' configuration), Triton eager, PyTorch eager, mamba compiled. Mean time of ``--iters``
iterations after ``--warmup`` (compiled: at least COMPILE_COUNT_ITERS, the first includes compiling)
and peak memory allocated; the compiled runs also record Dynamo's counters over their first
iterations (section ``compile_counts``). Targets: Triton compiled <= 0.8x mamba eager in time,
<= 1.1x in peak memory."""
from __future__ import annotations

import time
import traceback
from collections import Counter

import torch

from benchmarks import timing
from benchmarks.gpu.common import NUM_CLASSES, ShapeCase, error_text, release, scan_backend_env, sync
from swin_umamba.network_registry import SWIN_UMAMBA

NAME = "training"
TARGET_TIME = 0.80    # Swin-UMamba iteration, Triton compiled / mamba eager
TARGET_MEMORY = 1.10  # its peak memory, the same ratio
COMPILE_COUNT_ITERS = 3
BINDING_NETWORK = SWIN_UMAMBA.class_name  # the network whose targets decide


def training_configs(cuda: bool, cases) -> list[tuple[ShapeCase, str | None, bool, str]]:
    """(case, scan backend or None, compiled, why it is skipped or "") in the order they run: what the
    targets compare first, so that a short budget still measures them, the patches taking turns (each
    patch's first configuration, then each one's second, ...). PlainConvUNet runs at the patch of each
    case (once per distinct patch); a 3D patch runs eager only, compiled Triton last."""
    by_patch = {}
    for case in cases:
        by_patch.setdefault(case.patch, []).append(case)
    per_patch = [_configs_of_one_patch(swin, cuda) for swin in by_patch.values()]
    return [configs[i] for i in range(max(map(len, per_patch))) for configs in per_patch if i < len(configs)]


def _configs_of_one_patch(swin: list[ShapeCase], cuda: bool) -> list[tuple[ShapeCase, str | None, bool, str]]:
    needs = "" if cuda else "needs CUDA"
    plain = swin[0].with_network("PlainConvUNet")
    if len(swin[0].patch) == 3:
        configs = [(case, scan, False, needs) for case in swin for scan in ("mamba", "triton")]
        configs.append((plain, None, False, ""))
        if not cuda:
            configs.append((swin[-1], "auto", False, ""))
        return configs + [(case, "triton", True, needs) for case in swin]
    configs = []
    for case in swin:
        configs += [(case, "mamba", False, needs), (case, "triton", True, needs)]
    configs += [(plain, None, False, ""), (plain, None, True, "")]
    for case in swin:
        configs += [(case, "triton", False, needs), (case, "torch", False, needs)]
    if not cuda:  # the CPU's own backend, so that a dry run trains a Swin-UMamba network too
        configs.append((swin[-1], "auto", False, ""))
    configs += [(case, "mamba", True, needs) for case in swin]
    return configs


def build_loss(n_outputs: int):
    import numpy as np
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    loss = DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1,
                          weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)
    weights = np.array([1 / (2 ** i) for i in range(n_outputs)])
    weights[-1] = 0  # nnU-Net's weights: the lowest resolution does not count
    return DeepSupervisionWrapper(loss, weights / weights.sum())


def optimizer_for(network: str, net):
    """The trainers' optimizers: nnU-Net's SGD for PlainConvUNet, the Swin-UMamba trainers' AdamW."""
    if network == "PlainConvUNet":
        return torch.optim.SGD(net.parameters(), lr=1e-2, weight_decay=3e-5, momentum=0.99, nesterov=True)
    return torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.05, eps=1e-5, betas=(0.9, 0.999))


def compile_counts() -> dict:
    from torch._dynamo.utils import counters

    breaks = dict(counters["graph_break"])
    return {"graph_breaks": sum(breaks.values()), "recompiles": sum(dict(counters["recompiles"]).values()),
            "unique_graphs": dict(counters["stats"]).get("unique_graphs", 0),
            "graph_break_reasons": dict(Counter(breaks).most_common(5))}


def train_iteration(settings, case: ShapeCase, scan: str | None, compiled: bool) -> dict:
    from torch._dynamo.utils import counters

    from swin_umamba.ops import dispatch

    network, patch = case.network, case.patch
    device, batch = settings.device, settings.batch(network, patch)
    row = {"network": network, "patch": list(patch), "scan": scan, "mode": "compiled" if compiled else "eager",
           "batch": batch,
           "amp": str(settings.amp_dtype).replace("torch.", "") if settings.amp_dtype else "none"}
    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    net = case.build(NUM_CLASSES, deep_supervision=True).to(device)
    if case.depth_strides is not None:
        row["depth_strides"] = list(case.depth_strides)
    if scan is not None:
        row["scan_used"] = dispatch.selective_scan_backend(device, 16)
        if scan != "auto" and row["scan_used"] != scan:
            raise RuntimeError(f"SWIN_UMAMBA_SCAN={scan} does not apply here: the scan used is {row['scan_used']}")
    with torch.no_grad():
        sizes = [o.shape[2:] for o in net(torch.zeros(1, 1, *patch, device=device))]
    scales = [tuple(p // s for p, s in zip(patch, size)) for size in sizes]
    loss_fn = build_loss(len(scales))
    opt = optimizer_for(network, net)
    scaler = torch.amp.GradScaler(device.type) if settings.amp_dtype == torch.float16 else None
    data = torch.randn(batch, 1, *patch, device=device)
    full = torch.randint(0, NUM_CLASSES, (batch, 1, *patch), device=device).float()
    target = [full[(slice(None), slice(None), *(slice(None, None, k) for k in s))].contiguous() for s in scales]
    call = torch.compile(net, backend=settings.compile_backend) if compiled else net
    row["params_M"] = round(sum(p.numel() for p in net.parameters()) / 1e6, 2)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=settings.amp_dtype, enabled=settings.amp_dtype is not None):
            loss = loss_fn(call(data), target)
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
        return float(loss.detach().cpu())

    warmup = max(settings.warmup, COMPILE_COUNT_ITERS) if compiled else settings.warmup
    t0 = time.perf_counter()
    step()
    sync(device)
    row["first_iter_s"] = round(time.perf_counter() - t0, 2)
    for i in range(1, warmup):
        step()
        if compiled and i == COMPILE_COUNT_ITERS - 1:
            row["compile_counts"] = compile_counts()
    if compiled and "compile_counts" not in row:  # a dry run's single warm-up iteration
        row["compile_counts"] = {**compile_counts(), "iterations": warmup}
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        losses = [step() for _ in range(settings.iters)]
        sync(device)
        elapsed = time.perf_counter() - t0
        row["peak_alloc_GiB"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
        row["peak_reserved_GiB"] = round(torch.cuda.max_memory_reserved(device) / 2**30, 3)
    else:
        with timing.PeakRSS() as mem:
            t0 = time.perf_counter()
            losses = [step() for _ in range(settings.iters)]
            elapsed = time.perf_counter() - t0
        row["peak_rss_MB"] = round(mem.mb, 1)
    row["ms_per_iter"] = round(1e3 * elapsed / settings.iters, 2)
    row["final_loss"] = losses[-1]
    return row


def estimated_seconds(settings, compiled: bool) -> float:
    """A guess of one configuration's time, to leave what does not fit for later sections."""
    if settings.dry:
        return 0.0
    return 100.0 if compiled else 15.0


def run(ctx, result) -> None:
    settings, budget = ctx.settings, ctx.budget
    configs = training_configs(settings.cuda, settings.cases)
    result.update(cases=[c.label() for c in settings.cases], num_classes=NUM_CLASSES, warmup=settings.warmup,
                  iters=settings.iters, compile_backend=settings.compile_backend,
                  batches={f"{n} {'x'.join(map(str, p))}": settings.batch(n, p)
                           for n, p in dict.fromkeys((c[0].network, c[0].patch) for c in configs)}, rows=[])
    for case, scan, compiled, skip in configs:
        network, patch = case.network, case.patch
        base = {"network": network, "patch": list(patch), "scan": scan, "mode": "compiled" if compiled else "eager"}
        if skip:
            row = {**base, "error": f"skipped: {skip}"}
        elif budget.left(settings.train_reserve) < estimated_seconds(settings, compiled):
            row = {**base, "error": "skipped: out of time"}
        else:
            try:
                with scan_backend_env(scan if scan != "auto" else None):
                    row = train_iteration(settings, case, scan, compiled)
            except Exception as exc:
                row = {**base, "error": error_text(exc), "traceback": traceback.format_exc(limit=8)}
            release(settings.device)
        result["rows"].append(row)
        label = f"{network} {'x'.join(map(str, patch))} [{scan or '-'}] {base['mode']}"
        print(f"  {label:>36}: " + (row["error"] if "error" in row else
                                    f"{row['ms_per_iter']:.1f} ms/iter, first iteration {row['first_iter_s']} s, "
                                    f"peak {row.get('peak_alloc_GiB', row.get('peak_rss_MB'))}"), flush=True)
        ctx.save()
    result["targets"] = training_targets(result["rows"], settings.cases)
    torch._dynamo.reset()


def training_targets(rows: list[dict], cases) -> list[dict]:
    """Per shape case: Triton compiled against mamba eager, time and peak memory."""
    def find(case, scan, mode):
        return next((r for r in rows if (r["network"], tuple(r["patch"]), r["scan"], r["mode"])
                     == (case.network, case.patch, scan, mode) and "error" not in r), None)

    targets = []
    for case in cases:
        network = case.network
        ours, theirs = find(case, "triton", "compiled"), find(case, "mamba", "eager")
        for what, key, limit in (("time", "ms_per_iter", TARGET_TIME),
                                 ("peak memory", "peak_alloc_GiB", TARGET_MEMORY)):
            r = timing.ratio(ours.get(key) if ours else None, theirs.get(key) if theirs else None)
            targets.append({"network": network, "patch": list(case.patch), "what": what, "ratio": r, "target": f"<= {limit}x",
                            "verdict": "n/a" if r is None else ("PASS" if r <= limit else "FAIL"),
                            "binding": network == BINDING_NETWORK})
    return targets


def tables(result: dict) -> list[tuple[str, list, list]]:
    n = timing.number
    out = []
    if result.get("rows"):
        cols = [("network", "<13", n("network", "")), ("patch", "<9", lambda r: "x".join(map(str, r["patch"]))),
                ("scan", "<6", n("scan", "")), ("mode", "<8", n("mode", "")),
                ("batch", ">5", n("batch", "d")), ("ms/iter", ">9", n("ms_per_iter", ".1f")),
                ("peak GiB", ">8", n("peak_alloc_GiB", ".2f")), ("first iter s", ">12", n("first_iter_s", ".1f")),
                ("note", "<10", n("error", ""))]
        out.append(("Training iteration (AMP on CUDA, deep supervision)", cols, result["rows"]))
    if result.get("targets"):
        cols = [("network", "<12", n("network", "")), ("patch", "<9", lambda r: "x".join(map(str, r["patch"]))),
                ("Triton compiled / mamba eager", "<30", n("what", "")),
                ("ratio", ">6", n("ratio", ".2f")), ("target", ">8", n("target", "")),
                ("verdict", ">7", n("verdict", ""))]
        out.append(("Training targets", cols, result["targets"]))
    return out
