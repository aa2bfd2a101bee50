"""VMamba-Tiny (v0) building blocks as Swin-UMamba uses them.

Layer names, shapes and the order of operations follow the published
checkpoints exactly (docs/architecture.md), so `state_dict` keys load unchanged.
Everything inside the VSS parts is channel-last (B, H, W, C).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from swin_umamba.ops import selective_scan, selective_scan_backend
from swin_umamba.ops.cross_scan import cross_merge, cross_scan

LN_EPS = 1e-5


class DropPath(nn.Module):
    """Stochastic depth: drops the residual branch per sample while training.

    The keep probability is a (non-persistent) buffer, not a Python float, so that
    torch.compile does not specialise on it: blocks with different rates share one compiled
    graph instead of recompiling per block until Dynamo's recompile limit is hit."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)
        self.register_buffer("keep", torch.tensor(1.0 - self.p), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = self.keep.to(x.dtype)
        mask = (torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device, dtype=x.dtype) < keep).to(x.dtype)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class PatchEmbed2D(nn.Module):
    """Non-overlapping patches -> channel-last embedding."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int = 96):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class PatchMerging2D(nn.Module):
    """2x downsampling of a channel-last map: four sub-grids -> 4C -> LayerNorm -> 2C."""

    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat(
            [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1
        )
        return self.reduction(self.norm(x))


def _dt_bias_init(d_inner: int, dt_min: float = 1e-3, dt_max: float = 0.1, floor: float = 1e-4):
    """Bias whose softplus is log-uniform in [dt_min, dt_max] (Mamba's initialisation)."""
    dt = torch.exp(torch.rand(d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=floor)
    return dt + torch.log(-torch.expm1(-dt))  # inverse softplus


class DirectionalScan(nn.Module):
    """What SS2D and SS3D share: the projections, the parameters of K scan directions and the scan.

    A subclass adds the depthwise convolution (`build_conv`, `depthwise`) and the orders its
    directions read the map in (`scan_all_directions`)."""

    def __init__(self, d_model: int, d_state: int, d_conv: int, expand: int, directions: int):
        super().__init__()
        self.K = directions
        self.d_model = d_model
        self.d_state = d_state
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16)
        K, D, N, R = self.K, self.d_inner, d_state, self.dt_rank

        self.in_proj = nn.Linear(d_model, 2 * D, bias=False)
        self.build_conv(D, d_conv)
        self.x_proj_weight = nn.Parameter(torch.empty(K, R + 2 * N, D).uniform_(-D**-0.5, D**-0.5))
        self.dt_projs_weight = nn.Parameter(torch.empty(K, D, R).uniform_(-R**-0.5, R**-0.5))
        self.dt_projs_bias = nn.Parameter(torch.stack([_dt_bias_init(D) for _ in range(K)]))
        a = torch.arange(1, N + 1, dtype=torch.float32).repeat(K * D, 1)
        self.A_logs = nn.Parameter(torch.log(a))
        self.Ds = nn.Parameter(torch.ones(K * D))
        self.out_norm = nn.LayerNorm(D, eps=LN_EPS)
        self.out_proj = nn.Linear(D, d_model, bias=False)

    def build_conv(self, channels: int, kernel: int) -> None:
        raise NotImplementedError

    @property
    def depthwise(self) -> nn.Module:
        raise NotImplementedError

    def scan_all_directions(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def scan(self, xs: torch.Tensor) -> torch.Tensor:
        """xs: (B, K, D, L), direction k read in its own order -> the K scan outputs in the same layout."""
        B, K, D, L = xs.shape
        N, R = self.d_state, self.dt_rank
        x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, self.x_proj_weight)
        dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_projs_weight)
        return selective_scan(
            xs.reshape(B, K * D, L),
            dts.reshape(B, K * D, L),
            -torch.exp(self.A_logs.float()),
            Bs,
            Cs,
            D=self.Ds.float(),
            delta_bias=self.dt_projs_bias.float().reshape(-1),
            delta_softplus=True,
        ).view(B, K, D, L)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x channel-last, (B, H, W, C) or (B, Z, H, W, C)."""
        x, z = self.in_proj(x).chunk(2, dim=-1)
        x = F.silu(self.depthwise(x.movedim(-1, 1).contiguous()))
        y = self.scan_all_directions(x)
        y = y.transpose(1, 2).reshape(z.shape)
        y = self.out_norm(y) * F.silu(z)
        return self.out_proj(y)


class SS2D(DirectionalScan):
    """2D selective scan: four directional Mamba scans over a feature map, summed."""

    K = 4  # scan directions

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 3, expand: int = 2):
        super().__init__(d_model, d_state, d_conv, expand, directions=self.K)

    def build_conv(self, channels: int, kernel: int) -> None:
        self.conv2d = nn.Conv2d(channels, channels, kernel_size=kernel, padding=(kernel - 1) // 2, groups=channels)

    @property
    def depthwise(self) -> nn.Module:
        return self.conv2d

    def scan_all_directions(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, D, H, W) channel-first -> summed scan output (B, D, L) in row-major order."""
        H, W = x.shape[-2:]
        # one fused kernel per side where the Triton scan runs; the flips and transposes elsewhere
        fused = x.device.type == "cuda" and selective_scan_backend(x.device, self.d_state) == "triton"
        y = self.scan(cross_scan(x, fused))  # (B, K, D, L)
        return cross_merge(y, H, W, fused)


class VSSBlock(nn.Module):
    """Pre-norm residual around a directional scan (`mixer`: SS2D, or SS3D over volumes)."""

    def __init__(self, dim: int, drop_path: float = 0.0, d_state: int = 16, mixer: Callable[..., DirectionalScan] = SS2D):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.self_attention = mixer(dim, d_state=d_state)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.self_attention(self.ln_1(x)))


class VSSLayer(nn.Module):
    """A stack of VSS blocks at one resolution (no downsampling inside)."""

    def __init__(self, dim: int, depth: int, drop_path: list[float] | float = 0.0,
                 mixer: Callable[..., DirectionalScan] = SS2D):
        super().__init__()
        rates = drop_path if isinstance(drop_path, (list, tuple)) else [drop_path] * depth
        self.blocks = nn.ModuleList([VSSBlock(dim, drop_path=rates[i], mixer=mixer) for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


def _init_linear_and_norm(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class VSSMEncoder(nn.Module):
    """VMamba-Tiny encoder. Returns channel-first [input, layer0, layer1, layer2, layer3]."""

    def __init__(
        self,
        patch_size: int = 4,
        in_chans: int = 3,
        depths: tuple[int, ...] = (2, 2, 9, 2),
        dims: tuple[int, ...] = (96, 192, 384, 768),
        drop_path_rate: float = 0.2,
    ):
        super().__init__()
        self.patch_embed = PatchEmbed2D(patch_size, in_chans, dims[0])
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        starts = [sum(depths[:i]) for i in range(len(depths))]
        self.layers = nn.ModuleList(
            VSSLayer(dims[i], depths[i], rates[starts[i] : starts[i] + depths[i]]) for i in range(len(depths))
        )
        self.downsamples = nn.ModuleList(PatchMerging2D(dims[i]) for i in range(len(depths) - 1))
        self.apply(_init_linear_and_norm)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = [x]
        x = self.patch_embed(x)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            features.append(x.movedim(-1, 1))
            if i < len(self.downsamples):
                x = self.downsamples[i](x)
        return features
