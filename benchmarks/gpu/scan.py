"""Section ``scan``: the selective scans of each shape case, timed per backend, and their agreement
with the reference scan.

Shapes are recorded from one forward of each case's network and timed at its planned batch size:
forward (no autograd) and forward+backward, for the Triton kernels, mamba-ssm's CUDA kernel
(``selective_scan_fn``; build it with ``python -m benchmarks.build_mamba_scan``) and the PyTorch
path, inputs u, delta, B, C in each of ``--scan-dtypes`` (A, D, delta_bias float32). Agreement: each
backend's float32 results against ``selective_scan_ref`` in float64, the largest relative error over
the output, the last state and the seven gradients, on a reduced shape of each scan (batch 1,
KD <= 64, L <= 256). Target: Triton <= 1.25x mamba's time, forward and forward+backward, every shape.
"""
from __future__ import annotations

import traceback

import torch

from benchmarks import timing
from benchmarks.gpu.common import error_text, release, scan_shapes, sync
from swin_umamba.ops import random_scan_grads, random_scan_inputs, selective_scan_ref

NAME = "scan"
TARGET = 1.25  # Triton / mamba-ssm, forward and forward+backward, every shape
REFERENCE_MAX_KD, REFERENCE_MAX_L = 64, 256  # the reduced shape of the agreement check
FWD_REL_TOL, GRAD_REL_TOL = 1e-4, 1e-3  # float32 inputs against the float64 reference
SCAN_INPUTS = ("u", "delta", "A", "B", "C", "D", "delta_bias")


def scan_functions(device) -> dict:
    """name -> (fn(u, delta, A, B, C, D, delta_bias, delta_softplus, return_last_state) or None, reason)."""
    from swin_umamba.ops import dispatch
    from swin_umamba.ops.scan_torch import scan_torch

    backends = {}
    try:
        from swin_umamba.ops import scan_triton

        ok, why = scan_triton.triton_available(device)
        backends["triton"] = (scan_triton.selective_scan_triton if ok else None, why)
    except Exception as exc:
        backends["triton"] = (None, f"the Triton scan does not import ({error_text(exc)})")
    if device.type != "cuda":
        backends["mamba"] = (None, "mamba-ssm's kernel needs CUDA")
    elif dispatch.mamba_scan_fn() is None:
        backends["mamba"] = (None, f"mamba-ssm does not import ({dispatch.mamba_error()})")
    else:
        raw = dispatch.mamba_scan_fn()

        def mamba(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False, return_last_state=False):
            return raw(u.contiguous(), delta.contiguous(), A.contiguous(), B.contiguous(), C.contiguous(), D=D,
                       z=None, delta_bias=delta_bias, delta_softplus=delta_softplus,
                       return_last_state=return_last_state)

        backends["mamba"] = (mamba, "")

    def torch_path(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False, return_last_state=False):
        # as the dispatcher calls it: float32 copies of the inputs
        return scan_torch(u.float(), delta.float(), A, B.float(), C.float(), D, delta_bias,
                          delta_softplus=delta_softplus, return_last_state=return_last_state)

    backends["torch"] = (torch_path, "")
    return backends


def scan_inputs(batch, kd, length, groups, n, dtype, device, seed):
    """SS2D-like inputs (u, delta, B, C in ``dtype``; A, D, delta_bias in float32, float64 stays)
    and an upstream gradient of the output."""
    params = torch.float64 if dtype == torch.float64 else torch.float32
    inputs = random_scan_inputs(batch, kd, length, groups, n, dtype=dtype, param_dtype=params, device=device,
                                seed=seed)
    return list(inputs), random_scan_grads(inputs, seed)[0]


def forward_backward(fn, inputs, gout):
    xs = [x.detach().clone().requires_grad_() for x in inputs]
    out, last = fn(*xs, delta_softplus=True, return_last_state=True)
    (out * gout.to(out.dtype)).sum().backward()
    return {"out": out.detach(), "last_state": last.detach(), **{f"d{n}": x.grad for n, x in zip(SCAN_INPUTS, xs)}}


def relative_errors(actual: dict, ref: dict) -> dict:
    """Per result: max |a - r| / max |r|, and whether ``a`` is finite."""
    res = {}
    for key, r in ref.items():
        a = actual[key].double()
        scale = r.abs().max().item()
        err = (a - r).abs().max().item()
        res[key] = {"rel": err / scale if scale else float("inf"), "finite": bool(torch.isfinite(a).all())}
    return res


def agreement(fn, shape: dict, device) -> dict:
    """The backend's float32 results against the float64 reference on the reduced shape."""
    kd, length = min(shape["KD"], REFERENCE_MAX_KD), min(shape["L"], REFERENCE_MAX_L)
    ref_inputs, ref_gout = scan_inputs(1, kd, length, shape["G"], shape["N"], torch.float64, device,
                                       seed=kd + length)
    ref = forward_backward(selective_scan_ref, ref_inputs, ref_gout)
    errs = relative_errors(forward_backward(fn, [t.float() for t in ref_inputs], ref_gout.float()), ref)
    fwd = max(errs["out"]["rel"], errs["last_state"]["rel"])
    grad = max(v["rel"] for k, v in errs.items() if k.startswith("d"))
    ok = fwd <= FWD_REL_TOL and grad <= GRAD_REL_TOL and all(v["finite"] for v in errs.values())
    return {"shape": f"1x{kd}x{length}", "fwd_rel": fwd, "grad_rel": grad, "ok": bool(ok), "errors": errs}


def time_scan(fn, inputs, gout, device, repeats: int, warmup: int) -> dict:
    xs = [x.detach().clone().requires_grad_() for x in inputs]

    def fwd():
        with torch.no_grad():
            fn(*[x.detach() for x in xs], delta_softplus=True)
        sync(device)

    def fwd_bwd():
        out = fn(*xs, delta_softplus=True)
        out.backward(gout.to(out.dtype))
        for x in xs:
            x.grad = None
        sync(device)

    return {"fwd_ms": 1e3 * timing.time_calls(fwd, warmup, repeats)["wall_s"],
            "fwdbwd_ms": 1e3 * timing.time_calls(fwd_bwd, warmup, repeats)["wall_s"]}


def verdict(ratio) -> str:
    return "n/a" if ratio is None else ("PASS" if ratio <= TARGET else "FAIL")


def run(ctx, result) -> None:
    settings, budget, device = ctx.settings, ctx.budget, ctx.settings.device
    backends = scan_functions(device)
    result["backends"] = {name: ("available" if fn else f"not available: {why}") for name, (fn, why) in backends.items()}
    for name, status in result["backends"].items():
        print(f"  {name}: {status}", flush=True)
    result.update(target=f"triton / mamba <= {TARGET}x, fwd and fwd+bwd, every shape",
                  agreement=[], rows=[], skipped=[])
    shapes = scan_shapes(settings)
    seen = set()
    for shape in shapes:  # agreement once per reduced shape
        key = (min(shape["KD"], REFERENCE_MAX_KD), min(shape["L"], REFERENCE_MAX_L), shape["G"], shape["N"])
        if key in seen:
            continue
        seen.add(key)
        for name, (fn, why) in backends.items():
            entry = {"backend": name}
            if fn is None:
                entry["error"] = f"skipped: {why}"
            else:
                try:
                    entry.update(agreement(fn, shape, device))
                except Exception as exc:
                    entry.update(error=error_text(exc), traceback=traceback.format_exc(limit=6))
            result["agreement"].append(entry)
            print(f"  agreement {name:>6} {entry.get('shape', key)}: "
                  + (f"fwd rel {entry['fwd_rel']:.1e}, grad rel {entry['grad_rel']:.1e}, "
                     f"{'ok' if entry['ok'] else 'FAIL'}" if "ok" in entry else entry["error"]), flush=True)
        ctx.save()
    deadline = 0.2 * budget.total  # the scans' share of the budget
    for dtype_name in settings.scan_dtypes:
        dtype = getattr(torch, dtype_name)
        for shape in shapes:
            row = {**shape, "dtype": dtype_name}
            if budget.elapsed() > deadline:
                row["error"] = "skipped: out of time"
                result["rows"].append(row)
                continue
            try:
                inputs, gout = scan_inputs(shape["batch"], shape["KD"], shape["L"], shape["G"], shape["N"], dtype,
                                           device, seed=shape["KD"])
            except Exception as exc:
                row["error"] = error_text(exc)
                result["rows"].append(row)
                continue
            for name, (fn, why) in backends.items():
                if fn is None:
                    continue
                try:
                    t = time_scan(fn, inputs, gout, device, settings.scan_repeats, settings.warmup + 1)
                    row[f"{name}_fwd_ms"], row[f"{name}_fwdbwd_ms"] = t["fwd_ms"], t["fwdbwd_ms"]
                except Exception as exc:
                    row[f"{name}_error"] = error_text(exc)
                release(device)
            for mode in ("fwd", "fwdbwd"):
                r = timing.ratio(row.get(f"triton_{mode}_ms"), row.get(f"mamba_{mode}_ms"))
                row[f"ratio_{mode}"], row[f"verdict_{mode}"] = r, verdict(r)
            del inputs, gout
            release(device)
            result["rows"].append(row)
            print(f"  {row['network']:>12} {row['batch']}x{row['KD']}x{row['L']} {dtype_name}: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in row.items() if k.endswith("_ms")), flush=True)
            ctx.save()
    verdicts = [r.get(f"verdict_{m}") for r in result["rows"] for m in ("fwd", "fwdbwd")]
    result["verdict"] = ("n/a" if not verdicts or "n/a" in verdicts or None in verdicts
                         else "PASS" if all(v == "PASS" for v in verdicts) else "FAIL")


def tables(result: dict) -> list[tuple[str, list, list]]:
    n = timing.number
    out = []
    if result.get("rows"):
        cols = [("network", "<12", n("network", "")), ("batch x KD x L", ">16",
                                                          lambda r: f"{r['batch']}x{r['KD']}x{r['L']}"),
                ("calls", ">5", n("calls", "d")), ("dtype", "<7", n("dtype", ""))]
        for mode in ("fwd", "fwdbwd"):
            cols += [(f"{b} {mode} ms", ">12", n(f"{b}_{mode}_ms", ".3f")) for b in ("triton", "mamba", "torch")]
            cols += [(f"{mode} T/M", ">8", n(f"ratio_{mode}", ".2f")), (f"{mode}", ">6", n(f"verdict_{mode}", ""))]
        cols.append(("note", "<10", lambda r: r.get("error")))
        out.append((f"Selective scan (target: Triton/mamba <= {TARGET}x)", cols, result["rows"]))
    if result.get("agreement"):
        cols = [("backend", "<7", n("backend", "")), ("reduced shape", ">14", n("shape", "")),
                ("fwd rel err", ">11", n("fwd_rel", ".1e")), ("grad rel err", ">12", n("grad_rel", ".1e")),
                ("ok", ">4", lambda r: None if "ok" not in r else ("ok" if r["ok"] else "FAIL")),
                ("note", "<10", lambda r: r.get("error"))]
        out.append((f"Scan agreement with the float64 reference scan (float32 inputs; ok: fwd <= {FWD_REL_TOL:g}, "
                    f"grads <= {GRAD_REL_TOL:g})", cols, result["agreement"]))
    return out
