"""torch.compile on CUDA with the Triton path: SwinUMamba and SwinUMambaD, three training iterations
(fp16 autocast with a gradient scaler, deep supervision, inductor) as one graph with no graph break and
no recompile; the Triton scan and the fused cross-scan/merge are in that graph. Needs a CUDA GPU on which
the Triton kernels pass their self-check; skipped elsewhere, with the reason.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch._dynamo.utils import counters

from swin_umamba import SwinUMamba, SwinUMambaD
from swin_umamba.ops import describe_scan_backend, dispatch

ITERATIONS = 3


@pytest.fixture
def triton_on_cuda(monkeypatch):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (compiles the networks with the Triton scan)")
    monkeypatch.setenv(dispatch.ENV_VAR, "triton")
    name, why = describe_scan_backend(torch.device("cuda", torch.cuda.current_device()))
    if name != "triton":
        pytest.skip(f"the Triton path is not used on this GPU: {why}")
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def recording_inductor(seen: list):
    """Inductor, after noting every op of each graph Dynamo hands it."""
    from torch._dynamo.backends.registry import lookup_backend

    inductor = lookup_backend("inductor")

    def backend(gm, example_inputs):
        seen.extend(str(node.target) for node in gm.graph.nodes if node.op == "call_function")
        return inductor(gm, example_inputs)

    return backend


@pytest.mark.parametrize("cls", [SwinUMamba, SwinUMambaD])
def test_compiled_training_is_one_graph_without_recompiles(triton_on_cuda, cls):
    torch.manual_seed(0)
    net = cls(1, 3, deep_supervision=True).cuda()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.05, eps=1e-5)
    scaler = torch.amp.GradScaler("cuda")
    ops: list[str] = []
    compiled = torch.compile(net, backend=recording_inductor(ops))
    x = torch.randn(2, 1, 128, 128, device="cuda")
    losses = []
    for _ in range(ITERATIONS):
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.float16):
            outs = compiled(x)
            loss = sum(o.float().square().mean() for o in outs)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(loss.item())
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert not counters["recompiles"], dict(counters["recompiles"])
    assert counters["stats"]["unique_graphs"] == 1
    assert all(math.isfinite(v) for v in losses), losses
    assert any("selective_scan_triton" in op for op in ops), sorted(set(ops))
    assert any("cross_scan" in op for op in ops) and any("cross_merge" in op for op in ops)
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
