"""Smoke test of benchmarks/: the modules import, the floor stand-in is right, tiny measurements run,
the tables print. No timing assertions (timings belong to `python -m benchmarks.run_all`)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import bench_network, bench_network3d, bench_predict, run_all, scan_bound, scan_in_network, timing
from swin_umamba.ops import random_scan_inputs
from tests.cpu_kernel import require_cpu_kernel

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def scan_inputs(batch=2, kd=8, L=5, groups=4, N=3):
    """float32 inputs with a float64 u (the stand-in casts)."""
    inputs = random_scan_inputs(batch, kd, L, groups, N)
    return [t.to(torch.float64 if i == 0 else torch.float32).requires_grad_() for i, t in enumerate(inputs)]


def test_floor_scan_shape_dtype_and_gradients():
    u, delta, A, B, C, D, bias = scan_inputs()
    y = bench_network.floor_scan(u, delta, A, B, C, D=D, delta_bias=bias, delta_softplus=True)
    assert y.shape == (2, 8, 5) and y.dtype == torch.float32
    torch.testing.assert_close(y, (u.float() * D[:, None]).detach())
    y.sum().backward()
    for t in (u, delta, A, B, C, D, bias):
        assert t.grad is not None and t.grad.shape == t.shape
    torch.testing.assert_close(u.grad.float(), D.detach()[:, None].expand(2, 8, 5))
    torch.testing.assert_close(D.grad, u.detach().float().sum((0, 2)))
    assert delta.grad.abs().sum() == 0 and B.grad.abs().sum() == 0
    y, last = bench_network.floor_scan(u, delta, A, B, C, D=D, return_last_state=True)
    assert last.shape == (2, 8, 3)


def test_floor_is_installed_only_inside_the_block():
    import swin_umamba.nets.vmamba as vmamba

    original = vmamba.selective_scan
    with bench_network.floor_installed():
        assert vmamba.selective_scan is bench_network.floor_scan
    assert vmamba.selective_scan is original


def test_floor_network_backward_reaches_the_scan_inputs():
    net = bench_network.build_network("SwinUMambaD", (64, 64), 3, deep_supervision=True)
    with bench_network.floor_installed():
        outs = net(torch.randn(1, 1, 64, 64))
        sum(o.mean() for o in outs).backward()
    ss2d = next(m for m in net.modules() if hasattr(m, "x_proj_weight"))
    assert ss2d.x_proj_weight.grad is not None and ss2d.dt_projs_weight.grad is not None
    assert ss2d.Ds.grad is not None and ss2d.Ds.grad.abs().sum() > 0
    assert ss2d.A_logs.grad is not None and ss2d.dt_projs_bias.grad is not None


def test_plain_conv_unet_from_default_plans():
    kwargs = bench_network.plain_conv_unet_kwargs((256, 256))
    assert kwargs["n_stages"] == 7
    assert kwargs["features_per_stage"] == (32, 64, 128, 256, 512, 512, 512)
    assert [list(s) for s in kwargs["strides"]][:2] == [[1, 1], [2, 2]]
    net = bench_network.build_network("PlainConvUNet", (64, 64), 3, deep_supervision=True)
    outs = net(torch.randn(1, 1, 64, 64))
    assert outs[0].shape == (1, 3, 64, 64)


@pytest.mark.parametrize("network,variant,mode", [("SwinUMamba", "floor", "fwd"), ("SwinUMambaD", "scan", "fwd"),
                                                  ("PlainConvUNet", "plain", "fwdbwd")])
def test_tiny_network_measurement(network, variant, mode):
    res = bench_network.measure(network, variant, 64, mode, threads=1, warmup=0, repeats=1, num_classes=2)
    assert (res["network"], res["variant"], res["size"], res["mode"], res["batch"], res["classes"]) == \
        (network, variant, 64, mode, 1, 2)
    expected_backend = {"floor": "floor stand-in", "plain": "none"}.get(variant, bench_network._scan_backend())
    assert res["scan_backend"] == expected_backend
    net = bench_network.build_network(network, (64, 64), 2, deep_supervision=True)
    assert res["params_M"] == pytest.approx(sum(p.numel() for p in net.parameters()) / 1e6)
    assert len(res["walls_s"]) == 1 and res["wall_s"] == res["walls_s"][0]  # the median of one timed call
    assert res["threads"] == 1 and res["memory_method"] and res["peak_rss_mb"] is not None


def test_interleaved_measurement_times_both_variants():
    scan, floor = bench_network.measure_interleaved("SwinUMambaD", 64, "fwd", threads=1, warmup=0, repeats=2,
                                                    num_classes=2)
    assert (scan["variant"], floor["variant"]) == ("scan", "floor")
    assert scan["scan_backend"] != floor["scan_backend"] == "floor stand-in"
    for res in (scan, floor):
        assert len(res["walls_s"]) == 2 and res["wall_s"] == pytest.approx(sum(res["walls_s"]) / 2)
        assert res["peak_rss_mb"] is None  # interleaved runs measure no memory
    assert scan["x_floor_rounds"] == pytest.approx([s / f for s, f in zip(scan["walls_s"], floor["walls_s"])])


def test_alternate_rotates_the_order_every_round():
    order = []
    samples = bench_network.alternate({k: (lambda k=k: order.append(k)) for k in "abc"}, warmup=1, repeats=2)
    # 1 + warmup untimed rounds, then the timed ones; each round starts one later
    assert order == list("abc" "bca" "cab" "abc")
    assert {k: len(v) for k, v in samples.items()} == {"a": 2, "b": 2, "c": 2}
    assert all(wall >= 0 and cpu >= 0 for v in samples.values() for wall, cpu in v)


def test_plain_conv_unet_3d_from_default_plans():
    kwargs = bench_network.plain_conv_unet_kwargs((16, 64, 64), spacing=(4.0, 1.0, 1.0))
    assert kwargs["conv_op"] is torch.nn.Conv3d and kwargs["norm_op"] is torch.nn.InstanceNorm3d
    # anisotropic: depth is not pooled until the in-plane spacing is within 2x of it; features capped at 320
    assert [list(s) for s in kwargs["strides"]] == [[1, 1, 1], [1, 2, 2], [1, 2, 2], [2, 2, 2], [2, 2, 2]]
    assert kwargs["features_per_stage"] == (32, 64, 128, 256, 320)
    with pytest.raises(ValueError, match="instead of"):
        bench_network.plain_conv_unet_kwargs((16, 60, 64), spacing=(4.0, 1.0, 1.0))


def test_3d_depth_strides_follow_nnunet_pooling():
    assert bench_network3d.depth_strides((16, 64, 64), (4.0, 1.0, 1.0)) == {
        "SwinUMamba3D": (1, 1, 2, 2, 2), "SwinUMambaD3D": (1, 2, 2, 2)}
    assert bench_network3d.depth_strides((32, 64, 64), (1.0, 1.0, 1.0))["SwinUMambaD3D"][0] == 4  # isotropic


def test_3d_benchmark_alternates_every_network_with_its_floor_and_plain(capsys):
    res = bench_network3d.measure_mode("fwd", patch=(8, 32, 32), threads=1, warmup=0, repeats=2, num_classes=2,
                                       log=None)
    assert set(res["samples"]) == {f"{n} {v}" for n in bench_network3d.NETWORKS for v in ("scan", "floor")} | {
        "PlainConvUNet plain"}
    assert all(len(v) == 2 for v in res["samples"].values())
    for row in res["rows"]:
        ours, floor = res["samples"][f"{row['network']} scan"], res["samples"][f"{row['network']} floor"]
        assert row["x_floor_rounds"] == pytest.approx([a[0] / b[0] for a, b in zip(ours, floor)])
        assert row["x_floor"] == pytest.approx(sum(row["x_floor_rounds"]) / 2)
        assert row["verdict"] == ("PASS" if row["x_floor"] <= 1.3 else "FAIL")
    bench_network3d.print_table([res])
    assert "SwinUMambaD3D" in capsys.readouterr().out


@pytest.mark.slow
def test_measurement_in_a_subprocess():
    results = bench_network.measure_in_subprocess("SwinUMambaD", "pair", 32, "fwd", threads=1, warmup=0,
                                                  repeats=1, num_classes=2, timeout=300)
    assert [r["variant"] for r in results] == ["scan", "floor"]
    assert all((r["network"], r["size"], r["mode"], r["threads"]) == ("SwinUMambaD", 32, "fwd", 1) for r in results)
    # the worker's own process: its wall time includes the timed call it reports
    assert all(r["process_s"] >= r["wall_s"] for r in results)


def test_bad_variant_is_refused():
    with pytest.raises(ValueError):
        bench_network.measure("PlainConvUNet", "floor", 64, "fwd", repeats=0)
    with pytest.raises(ValueError):
        bench_network.measure_interleaved("PlainConvUNet", 64, "fwd", repeats=1)


def test_network_summary_and_tables(capsys):
    """Times and memory of one key come from different processes; the summary merges them."""
    results = []
    for network, variant, size, mode, batch, timed in bench_network.plan([64]):
        for v in ("scan", "floor") if variant == "pair" else (variant,):
            slow = 1.2 if v == "scan" else 1.0
            results.append({"network": network, "variant": v, "size": size, "mode": mode, "batch": batch,
                            "threads": 2, "classes": 4, "scan_backend": "cpu_kernel",
                            "memory_method": None if variant == "pair" else "test",
                            "wall_s": slow if timed else None, "cpu_s": slow if timed else None,
                            "peak_rss_mb": None if variant == "pair" else 100.0 * slow * batch})
    summary = bench_network.summarise(results)
    assert all(r["scan_mb"] is not None and r["floor_mb"] is not None for r in summary["memory"])
    assert {r["batch"] for r in summary["memory"]} == {1, 2}
    assert {(r["mode"], r["verdict"]) for r in summary["time"]} == {("fwd", "FAIL"), ("fwdbwd", "PASS")}
    target_mem = [r for r in summary["memory"] if r["target"]]
    assert len(target_mem) == 2 and all(r["batch"] == 2 and r["verdict"] == "PASS" for r in target_mem)
    bench_network.print_tables(summary)
    rows = run_all.target_rows([], summary)
    run_all.print_targets(rows, 2)
    text = capsys.readouterr().out
    assert "PASS" in text and "FAIL" in text and "scan share 16.7%" in text


def test_scan_table_prints(capsys):
    row = {"kd": 768, "L": 4096, "mode": "fwd", "ours_s": 0.01, "oracle_s": 1.0, "speedup": 100.0,
           "cpu_speedup": 90.0, "ours_mb": 1.0, "oracle_mb": None, "target": ">= 30x oracle", "verdict": "PASS"}
    run_all.print_scan_table([row], "cpu_kernel")
    assert "768x4096" in capsys.readouterr().out


def test_timing_helpers():
    calls = []
    res = timing.time_calls(lambda: calls.append(1), warmup=1, repeats=3)
    assert len(calls) == 4 and len(res["walls_s"]) == 3
    assert res["wall_s"] == sorted(res["walls_s"])[1]  # the median
    with timing.PeakRSS() as mem:
        block = bytearray(32 * 2**20)
        block[::4096] = b"x" * len(block[::4096])
    assert mem.method
    if mem.reset:  # Linux: the high-water mark was reset at the start, so the 32 MiB touched show
        assert mem.mb >= 30
    assert timing.ratio(2.0, 0.0) is None and timing.fmt(None, ".1f", 4) == "   -"


def test_predict_pieces(tmp_path):
    image, label = bench_predict.synthetic_volume((6, 20, 24), seed=0)
    assert image.shape == label.shape == (6, 20, 24) and set(label.ravel()) <= {0, 1, 2} and label.max() > 0
    case = {"input": "IN", "dataset_id": 991}
    cmd = bench_predict.predict_command(case, bench_predict.OURS, tmp_path, tta=False)
    assert "--disable_tta" in cmd and "-device" in cmd and cmd[cmd.index("-tr") + 1] == bench_predict.OURS
    bench_predict.print_table([])


@pytest.mark.parametrize("network", bench_network.NETWORKS)
def test_scan_workload_counts_every_scan(network):
    """Every scan's length is a token count of its stage, so doubling the patch side
    quadruples the updates; N = 16 states per (channel, step); the scan is restored."""
    import swin_umamba.nets.vmamba as vmamba

    original = vmamba.selective_scan
    small, small_steps = scan_bound.scan_workload(network, 64)
    large, large_steps = scan_bound.scan_workload(network, 128)
    assert vmamba.selective_scan is original
    assert small > 0 and large == 4 * small
    assert small == 16 * small_steps and large == 16 * large_steps


def test_scan_bound_arithmetic():
    # 8 M updates = 1 M registers: 9 M FMAs forward; 0.8 M (channel, step) pairs: 1.9 M more
    assert scan_bound.bound_ms("fwd", 8_000_000, 800_000, rate_per_ns=1.0, threads=1) == pytest.approx(10.9)
    # forward+backward: 25 per register, 38 per 8 pairs; twice the rate halves the time
    assert scan_bound.bound_ms("fwdbwd", 8_000_000, 800_000, rate_per_ns=1.0, threads=2) == pytest.approx(14.4)


def test_peak_fma_rate_probe():
    import platform
    import shutil

    if platform.machine() not in ("x86_64", "AMD64") or not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("the FMA probe needs x86-64 and a C compiler")
    assert scan_bound.peak_fma_rate(1, repeats=1) > 0.1  # a 2010s x86 core does several per ns


def test_run_all_with_every_section_skipped_writes_the_json(tmp_path, capsys):
    out = tmp_path / "results.json"
    assert run_all.main(["--threads", "1", "--quick", "--skip-scan", "--skip-network", "--skip-predict",
                         "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert (results["meta"]["threads"], results["meta"]["quick"]) == (1, True)
    assert results["scan"] is results["network"] is results["predict"] is None
    text = capsys.readouterr().out
    assert "quick run" in text and f"results written to {out}" in text
    assert "[1/3]" not in text and "[2/3]" not in text and "[3/3]" not in text  # nothing measured


class _FakeKernel:
    """Records its calls; forward returns u + 1."""

    def __init__(self):
        self.calls = []

    def forward(self, u, delta, A, *rest):
        self.calls.append(("forward", u.clone()))
        return u + 1

    def backward(self, u, delta, A, *rest):
        self.calls.append(("backward", u.clone()))
        return u - 1


def test_kernel_recorder_times_keys_and_captures_copies():
    fake = _FakeKernel()
    recorder = scan_in_network.KernelRecorder(fake)
    u, A = torch.zeros(1, 6, 5), torch.zeros(6, 3)
    recorder.capture = True
    assert torch.equal(recorder.forward(u, u, A, 7), u + 1)
    recorder.capture = False
    recorder.backward(u, u, A)
    u += 5  # the captured arguments are copies, taken before the call
    assert set(recorder.seconds) == {("fwd", 1, 6, 5, 3), ("bwd", 1, 6, 5, 3)}
    assert recorder.calls[("fwd", 1, 6, 5, 3)] == 1 and all(t >= 0 for t in recorder.seconds.values())
    (op, args), = recorder.captured
    assert op == "forward" and torch.equal(args[0], torch.zeros(1, 6, 5)) and args[3] == 7
    rounds = scan_in_network.time_alone(fake, recorder.captured, repeats=2)
    assert len(rounds) == 2 and set(rounds[0]) == {("fwd", 1, 6, 5, 3)}
    assert [c[0] for c in fake.calls] == ["forward", "backward", "forward", "forward"]


def test_scan_in_network_report(capsys):
    from swin_umamba.ops import scan_cpu

    require_cpu_kernel()
    kernel = scan_cpu.load_kernel()
    scan_in_network.main(["--network", "SwinUMamba", "--size", "64", "--threads", "1", "--repeats", "1"])
    assert scan_cpu.load_kernel() is kernel  # the recorder is gone again
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("1x")]
    # SwinUMamba's encoder: 2 + 2 + 9 + 2 scans at L = 256, 64, 16, 4 tokens, each forward and backward
    # KD = 4 directions x d_inner (twice the stage width 96, 192, 384, 768)
    calls = {(shape, direction): int(n) for shape, direction, n, *_ in rows}
    expected = {"1x768x256": 2, "1x1536x64": 2, "1x3072x16": 9, "1x6144x4": 2}
    assert calls == {(shape, direction): n for shape, n in expected.items() for direction in ("fwd", "bwd")}
    assert "kernel inside it" in out and "minor page faults per step" in out


@pytest.mark.slow
def test_gpu_bench_dry_run_reports_every_section(tmp_path):
    """The GPU benchmark's dry run on the CPU: every section is in the JSON, what needs CUDA is
    skipped with the reason, and what the CPU can run (Triton under its interpreter, the PyTorch
    path, compile with the eager backend) produced numbers."""
    import json
    import subprocess

    from benchmarks.gpu import nnunet_train, runner

    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--device", "cpu", "--dry-run",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=900, cwd=BENCH.parent)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_bench_dry_run.json").read_text())
    sections = report["sections"]
    assert set(sections) == set(runner.SECTION_NAMES)
    assert report["meta"]["dry_run"] and report["meta"]["mamba_available"] is False

    scan = sections["scan"]
    assert scan["status"] == "ok" and "needs CUDA" in scan["backends"]["mamba"]
    agreement = {row["backend"]: row for row in scan["agreement"]}
    assert agreement["triton"]["ok"] and agreement["torch"]["ok"]
    assert "needs CUDA" in agreement["mamba"]["error"]
    assert {row["network"] for row in scan["rows"]} == {*bench_network.NETWORKS, *bench_network3d.NETWORKS}
    for row in scan["rows"]:
        assert row["triton_fwdbwd_ms"] > 0 and row["torch_fwd_ms"] > 0 and row["verdict_fwd"] == "n/a"

    cross = sections["cross_scan"]
    assert cross["status"] == "ok" and cross["rows"]
    assert cross["fused"] == "available"  # the fused kernels run under the interpreter in a dry run
    assert {row["variant"] for row in cross["rows"]} == {"torch eager", "torch.compile", "fused Triton"}
    # the scan only moves values; the merge sums four directions, in another order in the kernel
    assert all(row["scan_max_abs_diff"] == 0 and row["merge_max_abs_diff"] < 1e-5 for row in cross["rows"])
    rows_3d = [row for row in cross["rows"] if row["shape"].count("x") == 4]  # B x D x Z x H x W
    assert rows_3d and {row["variant"] for row in rows_3d} == {"torch eager", "torch.compile"}
    assert all(row["scan_fwdbwd_ms"] > 0 for row in rows_3d)

    rows = sections["training"]["rows"]
    by_key = {(r["network"], r["scan"], r["mode"]): r for r in rows}
    assert by_key[("SwinUMamba", "triton", "compiled")]["error"] == "skipped: needs CUDA"
    assert by_key[("SwinUMamba", "mamba", "eager")]["error"] == "skipped: needs CUDA"
    for key in (("PlainConvUNet", None, "eager"), ("PlainConvUNet", None, "compiled")):
        assert by_key[key]["ms_per_iter"] > 0 and "error" not in by_key[key]
    swin_cpu = [r for r in rows if r["scan"] == "auto"]
    assert swin_cpu and all("ms_per_iter" in r for r in swin_cpu)
    assert {len(r["patch"]) for r in swin_cpu} == {2, 3}  # a 2D and a 3D Swin-UMamba network trained
    plain_3d = [r for r in rows if r["network"] == "PlainConvUNet" and len(r["patch"]) == 3]
    assert plain_3d and all(r["ms_per_iter"] > 0 for r in plain_3d)

    memory = sections["memory3d"]
    assert memory["status"] == "ok" and set(memory["fits"]) == set(memory["points"])
    assert all(len(points) >= 3 and points[0]["allocated_bytes"] > 0 for points in memory["points"].values())
    assert all(fit["per_pixel_bytes"] > 0 for fit in memory["fits"].values())
    assert all(t["verdict"] == "n/a" for t in sections["training"]["targets"])

    counts = {(r["network"], r["scan"]): r for r in sections["compile_counts"]["rows"]}
    plain = counts[("PlainConvUNet", None)]
    assert plain["graph_breaks"] == 0 and plain["recompiles"] == 0 and plain["verdict"] == "PASS"
    assert counts[("SwinUMamba", "triton")]["error"] == "skipped: needs CUDA"

    train = sections["nnunet_train"]
    assert train["status"] == "skipped" and "dry run" in train["reason"]
    assert any("nnUNetv2_train" in c and nnunet_train.BENCH_TRAINER in c for c in train["commands"])
    assert any("nnUNetv2_train" in c and "3d_fullres" in c for c in train["commands"])

    text = (tmp_path / "gpu_bench_dry_run.md").read_text()
    assert "## Selective scan" in text and "## Training targets" in text and "| SwinUMambaD |" in text


def test_gpu_shape_cases_and_training_order():
    from benchmarks.gpu import common, training

    cases = {c.network: c for c in common.SHAPE_CASES}
    case = cases["SwinUMamba3D"]
    assert case.depth_strides == bench_network3d.depth_strides(case.patch, case.spacing)["SwinUMamba3D"]
    assert case.dry().patch == (common.DRY_RUN_DEPTH, common.DRY_RUN_PATCH_SIDE, common.DRY_RUN_PATCH_SIDE)
    assert case.dry().depth_strides == case.depth_strides and case.with_network("PlainConvUNet").depth_strides is None
    configs = training.training_configs(True, common.SHAPE_CASES)
    # the patches take turns: the first configuration of the 2D patch, then of the 3D one, ...
    assert [len(c.patch) for c, *_ in configs[:4]] == [2, 3, 2, 3]
    three_d = [(c.network, scan, compiled) for c, scan, compiled, _ in configs if len(c.patch) == 3]
    assert three_d[-2:] == [("SwinUMamba3D", "triton", True), ("SwinUMambaD3D", "triton", True)]
    assert ("PlainConvUNet", None, False) in three_d and len(configs) == len(set(configs))


def _benchmark_sources() -> list[Path]:
    return sorted(BENCH.rglob("*.py"))


def test_benchmarks_import_nothing_from_tests_and_leave_sys_path_alone():
    """benchmarks/ runs as modules from the repository root: no import of tests/, no sys.path edit."""
    import ast

    offences = []
    for path in _benchmark_sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            where = f"{path.relative_to(BENCH.parent)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                offences += [f"{where} import {a.name}" for a in node.names if a.name.split(".")[0] == "tests"]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module.split(".")[0] in ("tests", "nnunet_plans"):
                    offences.append(f"{where} from {node.module}")
            elif (isinstance(node, ast.Attribute) and node.attr == "path"
                  and isinstance(node.value, ast.Name) and node.value.id == "sys"):
                offences.append(f"{where} sys.path")
    assert len(_benchmark_sources()) > 10 and offences == []


def test_scan_directions_benchmark_times_every_variant():
    from benchmarks import bench_scan_directions

    times = bench_scan_directions.run((1, 2, 4, 4, 16), rounds=2, backward=True)
    assert sorted(times) == [4, 6, 8] and all(t > 0 for t in times.values())


def test_scan_directions_accuracy_benchmark_trains_every_variant_alike():
    from benchmarks import bench_scan_directions_accuracy

    results = bench_scan_directions_accuracy.run(0, steps=2, eval_every=1, crop=(8, 32, 32))
    assert sorted(results) == [4, 6, 8]
    for result in results.values():
        assert [step for step, _ in result["dice"]] == [1, 2]
        assert all(0 <= value <= 1 for _, value in result["dice"]) and result["step_s"] > 0
