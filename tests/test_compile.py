"""torch.compile over the networks with the compiled CPU scan: one graph, no recompiles, eager's results.

(nnU-Net compiles on GPUs only; this runs Dynamo's tracing on the CPU with the `eager` backend,
which checks everything that decides graph breaks and recompiles without generating code.)
"""
import pytest
import torch
from torch._dynamo.utils import counters

from swin_umamba import SwinUMamba, SwinUMambaD
from swin_umamba.ops import selective_scan_backend
from swin_umamba.ops.dispatch import ENV_VAR
from tests.cpu_kernel import require_cpu_kernel


@pytest.fixture
def cpu_kernel(monkeypatch):
    require_cpu_kernel()
    monkeypatch.delenv(ENV_VAR, raising=False)  # the automatic choice: the kernel on CPU tensors
    assert selective_scan_backend("cpu") == "cpu_kernel"
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def train_step_grads(net, call, x, seed):
    """Gradients of net's parameters after one training step through ``call`` (net or its compiled form)."""
    torch.manual_seed(seed)  # the same DropPath masks for eager and compiled
    net.zero_grad(set_to_none=True)
    sum(o.mean() for o in call(x)).backward()
    return {name: p.grad.clone() for name, p in net.named_parameters()}


@pytest.mark.slow  # tracing a whole network: about half a minute per network on a CPU
@pytest.mark.parametrize("cls", [SwinUMamba, SwinUMambaD])
def test_compiled_network_is_one_graph_and_matches_eager(cpu_kernel, cls):
    torch.manual_seed(0)
    net = cls(1, 3, deep_supervision=True)
    rates = {m.p for m in net.modules() if type(m).__name__ == "DropPath"}
    assert len(rates) > 8  # more distinct rates than Dynamo's recompile limit
    compiled = torch.compile(net, backend="eager")
    x = torch.randn(1, 1, 64, 64)

    got = train_step_grads(net, compiled, x, seed=1)
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["graph_break"])
    assert not counters["graph_break"] and not counters["recompiles"]
    want = train_step_grads(net, net, x, seed=1)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)

    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), net(x), rtol=1e-5, atol=1e-6)
