"""Selective scan as Triton kernels (forward and backward), registered as torch.library ops.

:func:`selective_scan_triton` has the contract of :func:`swin_umamba.ops.selective_scan`
(see ``dispatch.py``): u, delta (batch, KD, L); A (KD, N); B, C (batch, G, N, L) or
(batch, N, L), channel d reading group d // (KD // G); optional D, delta_bias (KD,);
float32 output. Inputs may be float32, float16 or bfloat16: the kernels load them as they
are and compute in float32; gradients come back in each input's dtype.

Kernel design. A program owns ``block_d`` channels of one group for one batch element and
walks the sequence in chunks of ``chunk`` steps (a compile-time constant), carrying the
state (block_d, N) from chunk to chunk. Inside a chunk the recurrence
``h_t = a_t h_{t-1} + b_t`` is one ``tl.associative_scan`` over time on a
(block_d, N, chunk) tile, the incoming state folded into the first step. N is padded to a
power of two, the ragged last chunk and the last channel block are masked; masked steps
have a = 1, b = 0, so they carry the state through unchanged.

The forward keeps only the state at the start of every chunk (batch, KD, n_chunks, N).
The backward walks the chunks in reverse order: it recomputes the chunk's states from the
kept one, runs the adjoint ``g_t = C_t dy_t + a_{t+1} g_{t+1}`` as a reverse scan (the
decay of the following step is recomputed from its step size, so nothing is ever divided
by a product of decays), and reduces the gradients in registers: dB and dC over the
program's channels, dA, dD and d(delta_bias) over time. No (batch, KD, N, L) tensor is ever
stored. The gradient reaching the last state is taken into account too. The programs'
contributions to the shared gradients (dB and dC: every channel block of a group; dA, dD and
d(delta_bias): every batch element) are added atomically in float32, so their sums depend on
the order in which the GPU runs the programs. Under ``torch.use_deterministic_algorithms(True)``
each program instead stores its contribution in a slot of its own and torch sums the slots in a
fixed order: gradients are bit-identical run to run, at the cost of one (batch, G, N, L) buffer
per channel block of a group for dB and for dC during the backward.

Triton's interpreter (``TRITON_INTERPRET=1`` set before this module is imported) runs the
same kernels on CPU tensors; that is how the tests exercise them without a GPU. The kernels
call Triton builtins only, not the ``@triton.jit`` helpers of ``triton.language.standard``
(``tl.sum``, ``tl.zeros``): those are compiled-mode functions when triton itself was imported
without the variable, and a copy of this module defined under the interpreter must still
run in such a process.
"""
from __future__ import annotations

import contextlib
import re

import torch

from swin_umamba.ops.triton_import import IMPORT_ERROR as _IMPORT_ERROR
from swin_umamba.ops.triton_import import tl, triton

# time steps per kernel chunk; the forward keeps one state per chunk for the backward
CHUNK = 64
# channels per program (a power of two), and Triton launch options (num_warps, and e.g.
# num_stages or maxnreg), forward and backward. With CHUNK = 64 and N = 16 these compile for
# sm_90 to 157 (forward) and 248 (backward) registers per thread, without spills.
FWD_CONFIG = {"block_d": 2, "num_warps": 4}
BWD_CONFIG = {"block_d": 2, "num_warps": 4}

# a private copy of this module (loaded under another name, e.g. by the interpreter tests)
# registers its ops under names of its own
_CANONICAL_NAME = "swin_umamba.ops.scan_triton"
_OP_PREFIX = "swin_umamba::selective_scan_triton" + (
    "" if __name__ == _CANONICAL_NAME else "_" + re.sub(r"\W", "_", __name__))


if triton is not None:

    @triton.jit
    def _affine_combine(a1, b1, a2, b2):
        # composition of h -> a1 h + b1, then h -> a2 h + b2
        return a1 * a2, a2 * b1 + b2

    @triton.jit
    def _add(a, b):
        return a + b

    @triton.jit
    def _sum(x, axis: tl.constexpr):
        return tl.reduce(x, axis, _add)

    @triton.jit
    def _softplus(z):
        # max(z, 0) + log1p(exp(-|z|)); log1p by the (1 + e) - 1 correction, exact for tiny e
        e = tl.exp(-tl.abs(z))
        w = 1.0 + e
        log1p = tl.where(w == 1.0, e, tl.log(w) * (e / (w - 1.0)))
        return tl.maximum(z, 0.0) + log1p

    @triton.jit
    def _sigmoid(z):
        e = tl.exp(-tl.abs(z))
        return tl.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    @triton.jit
    def _channel_vector(ptr, d, d_mask, PRESENT: tl.constexpr, BLOCK_D: tl.constexpr):
        """A (KD,) parameter for the program's channels in float32 (zeros if absent)."""
        if PRESENT:
            v = tl.load(ptr + d, mask=d_mask, other=0.0).to(tl.float32)
        else:
            v = tl.full([BLOCK_D], 0.0, tl.float32)
        return v

    @triton.jit
    def _program_channels(A_ptr, D_ptr, bias_ptr, N, per_group, n_blocks, HAS_D: tl.constexpr,
                          HAS_BIAS: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
        """The program's batch element, group, channels (int64) and states with their masks,
        KD, and its channels' A (BLOCK_D, BLOCK_N), D and delta_bias in float32."""
        b = tl.program_id(1).to(tl.int64)
        pid = tl.program_id(0)
        grp = pid // n_blocks
        d_local = (pid % n_blocks) * BLOCK_D + tl.arange(0, BLOCK_D)
        d_mask = d_local < per_group
        d = (grp * per_group + d_local).to(tl.int64)
        n = tl.arange(0, BLOCK_N)
        n_mask = n < N
        kd = per_group * (tl.num_programs(0) // n_blocks)
        A = tl.load(A_ptr + d[:, None] * N + n[None, :], mask=d_mask[:, None] & n_mask[None, :],
                    other=0.0).to(tl.float32)
        Dv = _channel_vector(D_ptr, d, d_mask, HAS_D, BLOCK_D)
        bias = _channel_vector(bias_ptr, d, d_mask, HAS_BIAS, BLOCK_D)
        return b, grp, d, d_mask, n, n_mask, kd, A, Dv, bias

    @triton.jit
    def _step_size(ptrs, mask, bias, SOFTPLUS: tl.constexpr):
        """(delta + bias, the step size: its softplus or itself, 0 where masked)."""
        z = tl.load(ptrs, mask=mask, other=0.0).to(tl.float32) + bias[:, None]
        if SOFTPLUS:
            dt = _softplus(z)
        else:
            dt = z
        return z, tl.where(mask, dt, 0.0)

    @triton.jit
    def _scan_fwd_kernel(
        u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr,
        out_ptr, last_ptr, ckpt_ptr,
        L, N, per_group, n_blocks, n_chunks,
        su_b, su_d, su_t, sdl_b, sdl_d, sdl_t,
        sB_b, sB_g, sB_n, sB_t, sC_b, sC_g, sC_n, sC_t,
        HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
        SAVE_STATES: tl.constexpr,
        BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, CHUNK: tl.constexpr,
    ):
        b, grp, d, d_mask, n, n_mask, KD, A, Dv, bias = _program_channels(
            A_ptr, D_ptr, bias_ptr, N, per_group, n_blocks, HAS_D, HAS_BIAS, BLOCK_D, BLOCK_N)
        dn_mask = d_mask[:, None] & n_mask[None, :]
        t = tl.arange(0, CHUNK)
        first = (t == 0)[None, None, :]
        last_step = (t == CHUNK - 1)[None, None, :]

        u_base = u_ptr + b * su_b + d[:, None] * su_d
        dl_base = delta_ptr + b * sdl_b + d[:, None] * sdl_d
        B_base = B_ptr + b * sB_b + grp * sB_g + n[:, None] * sB_n
        C_base = C_ptr + b * sC_b + grp * sC_g + n[:, None] * sC_n
        out_base = out_ptr + (b * KD + d[:, None]) * L
        ckpt_base = ckpt_ptr + ((b * KD + d[:, None]) * n_chunks) * N + n[None, :]

        h = tl.full([BLOCK_D, BLOCK_N], 0.0, tl.float32)
        for c in range(n_chunks):
            tt = c * CHUNK + t
            t_mask = tt < L
            dt_mask = d_mask[:, None] & t_mask[None, :]
            nt_mask = n_mask[:, None] & t_mask[None, :]
            if SAVE_STATES:
                tl.store(ckpt_base + c * N, h, mask=dn_mask)
            u = tl.load(u_base + tt[None, :] * su_t, mask=dt_mask, other=0.0).to(tl.float32)
            _, dt = _step_size(dl_base + tt[None, :] * sdl_t, dt_mask, bias, SOFTPLUS)
            Bm = tl.load(B_base + tt[None, :] * sB_t, mask=nt_mask, other=0.0).to(tl.float32)
            Cm = tl.load(C_base + tt[None, :] * sC_t, mask=nt_mask, other=0.0).to(tl.float32)

            a = tl.exp(dt[:, None, :] * A[:, :, None])
            x = (dt * u)[:, None, :] * Bm[None, :, :]
            x = tl.where(first, x + a * h[:, :, None], x)
            _, hs = tl.associative_scan((a, x), 2, _affine_combine)
            y = _sum(hs * Cm[None, :, :], axis=1) + Dv[:, None] * u
            tl.store(out_base + tt[None, :], y, mask=dt_mask)
            # masked steps carry the state, so the chunk's last column is the state after it
            h = _sum(tl.where(last_step, hs, 0.0), axis=2)
        tl.store(last_ptr + (b * KD + d[:, None]) * N + n[None, :], h, mask=dn_mask)

    @triton.jit
    def _scan_bwd_kernel(
        u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, ckpt_ptr, dout_ptr, dlast_ptr,
        du_ptr, ddelta_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr,
        L, N, per_group, n_blocks, n_chunks,
        su_b, su_d, su_t, sdl_b, sdl_d, sdl_t,
        sB_b, sB_g, sB_n, sB_t, sC_b, sC_g, sC_n, sC_t,
        sdo_b, sdo_d, sdo_t,
        HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
        HAS_DLAST: tl.constexpr, DETERMINISTIC: tl.constexpr,
        BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, CHUNK: tl.constexpr,
    ):
        b, grp, d, d_mask, n, n_mask, KD, A, Dv, bias = _program_channels(
            A_ptr, D_ptr, bias_ptr, N, per_group, n_blocks, HAS_D, HAS_BIAS, BLOCK_D, BLOCK_N)
        dn_mask = d_mask[:, None] & n_mask[None, :]
        G = KD // per_group
        blk = tl.program_id(0) % n_blocks
        t = tl.arange(0, CHUNK)
        first = (t == 0)[None, None, :]
        last_step = (t == CHUNK - 1)[None, None, :]

        u_base = u_ptr + b * su_b + d[:, None] * su_d
        dl_base = delta_ptr + b * sdl_b + d[:, None] * sdl_d
        do_base = dout_ptr + b * sdo_b + d[:, None] * sdo_d
        B_base = B_ptr + b * sB_b + grp * sB_g + n[:, None] * sB_n
        C_base = C_ptr + b * sC_b + grp * sC_g + n[:, None] * sC_n
        row = (b * KD + d[:, None]) * L  # du, ddelta: contiguous (batch, KD, L)
        if DETERMINISTIC:  # dB, dC: this program's slot of contiguous (batch, G, n_blocks, N, L)
            dBC_off = (((b * G + grp) * n_blocks + blk) * N + n[:, None]) * L
        else:  # dB, dC: contiguous (batch, G, N, L)
            dBC_off = ((b * G + grp) * N + n[:, None]) * L
        ckpt_base = ckpt_ptr + ((b * KD + d[:, None]) * n_chunks) * N + n[None, :]

        # adjoint of the state at the first step of the chunk after the current one
        if HAS_DLAST:
            g_next = tl.load(dlast_ptr + (b * KD + d[:, None]) * N + n[None, :], mask=dn_mask,
                             other=0.0).to(tl.float32)
        else:
            g_next = tl.full([BLOCK_D, BLOCK_N], 0.0, tl.float32)
        dA_acc = tl.full([BLOCK_D, BLOCK_N], 0.0, tl.float32)
        dD_acc = tl.full([BLOCK_D], 0.0, tl.float32)
        dbias_acc = tl.full([BLOCK_D], 0.0, tl.float32)
        for i in range(n_chunks):
            c = n_chunks - 1 - i
            tt = c * CHUNK + t
            t_mask = tt < L
            t1_mask = tt + 1 < L
            dt_mask = d_mask[:, None] & t_mask[None, :]
            dt1_mask = d_mask[:, None] & t1_mask[None, :]
            nt_mask = n_mask[:, None] & t_mask[None, :]

            u = tl.load(u_base + tt[None, :] * su_t, mask=dt_mask, other=0.0).to(tl.float32)
            z, dt = _step_size(dl_base + tt[None, :] * sdl_t, dt_mask, bias, SOFTPLUS)
            _, dt1 = _step_size(dl_base + (tt + 1)[None, :] * sdl_t, dt1_mask, bias, SOFTPLUS)
            dy = tl.load(do_base + tt[None, :] * sdo_t, mask=dt_mask, other=0.0).to(tl.float32)
            Bm = tl.load(B_base + tt[None, :] * sB_t, mask=nt_mask, other=0.0).to(tl.float32)
            Cm = tl.load(C_base + tt[None, :] * sC_t, mask=nt_mask, other=0.0).to(tl.float32)
            h0 = tl.load(ckpt_base + c * N, mask=dn_mask, other=0.0)

            # the chunk's states, recomputed from the state kept at its start
            a = tl.exp(dt[:, None, :] * A[:, :, None])
            dtu = dt * u
            bx = dtu[:, None, :] * Bm[None, :, :]
            x = tl.where(first, bx + a * h0[:, :, None], bx)
            _, hs = tl.associative_scan((a, x), 2, _affine_combine)

            # adjoint of the states: g_t = C_t dy_t + a_{t+1} g_{t+1}
            a1 = tl.exp(dt1[:, None, :] * A[:, :, None])
            r = Cm[None, :, :] * dy[:, None, :]
            r = tl.where(last_step, r + a1 * g_next[:, :, None], r)
            _, gs = tl.associative_scan((a1, r), 2, _affine_combine, reverse=True)
            g_next = _sum(tl.where(first, gs, 0.0), axis=2)

            # a_t h_{t-1} = h_t - b_t
            gah = gs * (hs - bx)
            gB = _sum(gs * Bm[None, :, :], axis=1)
            ddt = u * gB + _sum(gah * A[:, :, None], axis=1)
            du = dt * gB + Dv[:, None] * dy
            dD_acc += _sum(dy * u, axis=1)
            dA_acc += _sum(gah * dt[:, None, :], axis=2)
            if SOFTPLUS:
                ddt = ddt * _sigmoid(z)
            ddt = tl.where(dt_mask, ddt, 0.0)
            dbias_acc += _sum(ddt, axis=1)
            tl.store(du_ptr + row + tt[None, :], du.to(du_ptr.dtype.element_ty), mask=dt_mask)
            tl.store(ddelta_ptr + row + tt[None, :], ddt.to(ddelta_ptr.dtype.element_ty), mask=dt_mask)

            # over the program's channels in registers, then into the group's rows
            dB_part = _sum(gs * dtu[:, None, :], axis=0)
            dC_part = _sum(hs * dy[:, None, :], axis=0)
            if DETERMINISTIC:
                tl.store(dB_ptr + dBC_off + tt[None, :], dB_part, mask=nt_mask)
                tl.store(dC_ptr + dBC_off + tt[None, :], dC_part, mask=nt_mask)
            else:
                tl.atomic_add(dB_ptr + dBC_off + tt[None, :], dB_part, mask=nt_mask, sem="relaxed")
                tl.atomic_add(dC_ptr + dBC_off + tt[None, :], dC_part, mask=nt_mask, sem="relaxed")

        if DETERMINISTIC:  # dA (batch, KD, N), dD and d(delta_bias) (batch, KD): this batch element's slots
            tl.store(dA_ptr + (b * KD + d[:, None]) * N + n[None, :], dA_acc, mask=dn_mask)
            if HAS_D:
                tl.store(dD_ptr + b * KD + d, dD_acc, mask=d_mask)
            if HAS_BIAS:
                tl.store(dbias_ptr + b * KD + d, dbias_acc, mask=d_mask)
        else:
            tl.atomic_add(dA_ptr + d[:, None] * N + n[None, :], dA_acc, mask=dn_mask, sem="relaxed")
            if HAS_D:
                tl.atomic_add(dD_ptr + d, dD_acc, mask=d_mask, sem="relaxed")
            if HAS_BIAS:
                tl.atomic_add(dbias_ptr + d, dbias_acc, mask=d_mask, sem="relaxed")


def _interpreted() -> bool:
    """Whether the kernels were defined under Triton's interpreter (CPU tensors)."""
    if triton is None:
        return False
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(_scan_fwd_kernel, InterpretedFunction)


_availability: dict[torch.device, tuple[bool, str]] = {}


def triton_available(device="cuda") -> tuple[bool, str]:
    """``(True, "")`` if the Triton kernels can run on tensors of ``device``, else
    ``(False, reason)``. Never raises."""
    try:
        device = torch.device(device)
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"
    if device not in _availability:
        _availability[device] = _availability_of(device)
    return _availability[device]


def _availability_of(device: torch.device) -> tuple[bool, str]:
    try:
        if triton is None:
            return False, f"triton does not import ({_IMPORT_ERROR})"
        if _interpreted():
            if device.type == "cpu":
                return True, ""
            return False, ("the Triton kernels were defined under TRITON_INTERPRET=1, which runs "
                           f"them on CPU tensors only, not on {device.type}")
        if device.type == "cpu":
            return False, "Triton runs CPU tensors only under its interpreter (TRITON_INTERPRET=1 before import)"
        if device.type != "cuda":
            return False, f"no Triton path for {device.type} tensors"
        if not torch.cuda.is_available():
            return False, "CUDA is not available"
        if torch.version.hip is None:
            major, minor = torch.cuda.get_device_capability(device)
            if major < 7:
                return False, f"Triton needs a GPU of compute capability 7.0 or newer, this one is {major}.{minor}"
        return True, ""
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"


def _check_runnable(device: torch.device) -> None:
    ok, reason = triton_available(device)
    if not ok:
        raise RuntimeError(f"swin_umamba: the Triton selective scan cannot run here: {reason}")


def _n_chunks(L: int, chunk: int) -> int:
    return max(1, -(-L // chunk))


def _launch_context(device: torch.device):
    if device.type == "cuda":
        return torch.cuda.device(device)
    return contextlib.nullcontext()


def _launch_options(config: dict) -> dict:
    return {key: value for key, value in config.items() if key != "block_d"}


def _grid(batch: int, kd: int, groups: int, block_d: int):
    per_group = kd // groups
    n_blocks = -(-per_group // block_d)
    return per_group, n_blocks, (groups * n_blocks, batch)


@torch.library.custom_op(_OP_PREFIX + "_fwd", mutates_args=())
def _scan_fwd(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
              C: torch.Tensor, D: torch.Tensor | None, delta_bias: torch.Tensor | None,
              delta_softplus: bool, chunk: int, save_states: bool
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(out, last_state, chunk start states or an empty (batch, KD, 0, N) tensor)."""
    _check_runnable(u.device)
    batch, kd, L = u.shape
    groups, N = B.shape[1], A.shape[1]
    n_chunks = _n_chunks(L, chunk)
    out = u.new_empty((batch, kd, L), dtype=torch.float32)
    last = u.new_empty((batch, kd, N), dtype=torch.float32)
    ckpt = u.new_empty((batch, kd, n_chunks if save_states else 0, N), dtype=torch.float32)
    A = A.contiguous()
    D = None if D is None else D.contiguous()
    delta_bias = None if delta_bias is None else delta_bias.contiguous()
    block_d = min(FWD_CONFIG["block_d"], triton.next_power_of_2(kd // groups))
    per_group, n_blocks, grid = _grid(batch, kd, groups, block_d)
    with _launch_context(u.device):
        _scan_fwd_kernel[grid](
            u, delta, A, B, C, A if D is None else D, A if delta_bias is None else delta_bias,
            out, last, ckpt,
            L, N, per_group, n_blocks, n_chunks,
            *u.stride(), *delta.stride(), *B.stride(), *C.stride(),
            HAS_D=D is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=bool(delta_softplus),
            SAVE_STATES=bool(save_states),
            BLOCK_D=block_d, BLOCK_N=triton.next_power_of_2(N), CHUNK=chunk,
            **_launch_options(FWD_CONFIG),
        )
    return out, last, ckpt


@_scan_fwd.register_fake
def _scan_fwd_fake(u, delta, A, B, C, D, delta_bias, delta_softplus, chunk, save_states):
    batch, kd, L = u.shape
    N = A.shape[1]
    n_chunks = _n_chunks(L, chunk) if save_states else 0
    return (u.new_empty((batch, kd, L), dtype=torch.float32),
            u.new_empty((batch, kd, N), dtype=torch.float32),
            u.new_empty((batch, kd, n_chunks, N), dtype=torch.float32))


@torch.library.custom_op(_OP_PREFIX + "_bwd", mutates_args=())
def _scan_bwd(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
              C: torch.Tensor, D: torch.Tensor | None, delta_bias: torch.Tensor | None,
              ckpt: torch.Tensor, dout: torch.Tensor, dlast: torch.Tensor | None,
              delta_softplus: bool, chunk: int
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                         torch.Tensor, torch.Tensor]:
    """Gradients (du, ddelta, dA, dB, dC, dD, ddelta_bias), each in its input's dtype
    (dD and ddelta_bias float32 zeros of shape (KD,) when D or delta_bias is None)."""
    _check_runnable(u.device)
    batch, kd, L = u.shape
    groups, N = B.shape[1], A.shape[1]
    n_chunks = _n_chunks(L, chunk)
    if ckpt.shape != (batch, kd, n_chunks, N):
        raise ValueError(f"chunk states of shape {tuple(ckpt.shape)} do not match "
                         f"(batch, KD, n_chunks, N) = {(batch, kd, n_chunks, N)}")
    f32 = torch.float32
    block_d = min(BWD_CONFIG["block_d"], triton.next_power_of_2(kd // groups))
    per_group, n_blocks, grid = _grid(batch, kd, groups, block_d)
    deterministic = torch.are_deterministic_algorithms_enabled()
    du = torch.empty((batch, kd, L), dtype=u.dtype, device=u.device)
    ddelta = torch.empty((batch, kd, L), dtype=delta.dtype, device=u.device)
    if deterministic:  # a slot per program (every one written), summed below in a fixed order
        dA = torch.zeros((batch, kd, N), dtype=f32, device=u.device)
        dB = torch.empty((batch, groups, n_blocks, N, L), dtype=f32, device=u.device)
        dC = torch.empty((batch, groups, n_blocks, N, L), dtype=f32, device=u.device)
        dD = torch.zeros((batch, kd), dtype=f32, device=u.device)
        dbias = torch.zeros((batch, kd), dtype=f32, device=u.device)
    else:  # the programs add into these atomically
        dA = torch.zeros((kd, N), dtype=f32, device=u.device)
        dB = torch.zeros((batch, groups, N, L), dtype=f32, device=u.device)
        dC = torch.zeros((batch, groups, N, L), dtype=f32, device=u.device)
        dD = torch.zeros(kd, dtype=f32, device=u.device)
        dbias = torch.zeros(kd, dtype=f32, device=u.device)
    A = A.contiguous()
    D = None if D is None else D.contiguous()
    delta_bias = None if delta_bias is None else delta_bias.contiguous()
    dlast = None if dlast is None else dlast.contiguous()
    ckpt = ckpt.contiguous()
    with _launch_context(u.device):
        _scan_bwd_kernel[grid](
            u, delta, A, B, C, A if D is None else D, A if delta_bias is None else delta_bias,
            ckpt, dout, ckpt if dlast is None else dlast,
            du, ddelta, dA, dB, dC, dD, dbias,
            L, N, per_group, n_blocks, n_chunks,
            *u.stride(), *delta.stride(), *B.stride(), *C.stride(), *dout.stride(),
            HAS_D=D is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=bool(delta_softplus),
            HAS_DLAST=dlast is not None, DETERMINISTIC=deterministic,
            BLOCK_D=block_d, BLOCK_N=triton.next_power_of_2(N), CHUNK=chunk,
            **_launch_options(BWD_CONFIG),
        )
    if deterministic:
        dA, dB, dC, dD, dbias = dA.sum(0), dB.sum(2), dC.sum(2), dD.sum(0), dbias.sum(0)
    return (du, ddelta, dA.to(A.dtype), dB.to(B.dtype), dC.to(C.dtype),
            dD if D is None else dD.to(D.dtype),
            dbias if delta_bias is None else dbias.to(delta_bias.dtype))


@_scan_bwd.register_fake
def _scan_bwd_fake(u, delta, A, B, C, D, delta_bias, ckpt, dout, dlast, delta_softplus, chunk):
    kd = u.shape[1]
    return (torch.empty_like(u, memory_format=torch.contiguous_format),
            torch.empty_like(delta, memory_format=torch.contiguous_format),
            A.new_empty(A.shape),
            B.new_empty(B.shape), C.new_empty(C.shape),
            (u.new_empty(kd, dtype=torch.float32) if D is None else D.new_empty(kd)),
            (u.new_empty(kd, dtype=torch.float32) if delta_bias is None else delta_bias.new_empty(kd)))


def _setup_context(ctx, inputs, output):
    u, delta, A, B, C, D, delta_bias, delta_softplus, chunk, save_states = inputs
    ctx.save_for_backward(u, delta, A, B, C, D, delta_bias, output[2])
    ctx.delta_softplus = delta_softplus
    ctx.chunk = chunk
    ctx.mark_non_differentiable(output[2])


def _backward(ctx, dout, dlast, _dckpt):
    u, delta, A, B, C, D, delta_bias, ckpt = ctx.saved_tensors
    if ckpt.shape[2] == 0:
        raise RuntimeError("selective_scan_triton: the forward kept no chunk states (it ran "
                           "with save_states=False) but a backward was requested")
    if dout is None:
        dout = torch.zeros(u.shape, dtype=torch.float32, device=u.device)
    du, ddelta, dA, dB, dC, dD, dbias = _scan_bwd(
        u, delta, A, B, C, D, delta_bias, ckpt, dout, dlast, ctx.delta_softplus, ctx.chunk)
    return (du, ddelta, dA, dB, dC, None if D is None else dD,
            None if delta_bias is None else dbias, None, None, None)


_scan_fwd.register_autograd(_backward, setup_context=_setup_context)


def selective_scan_triton(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False,
                          return_last_state=False):
    """Selective scan through the Triton kernels; differentiable in all tensor arguments.

    Shapes and semantics as :func:`swin_umamba.ops.selective_scan`; returns float32
    ``out`` (batch, KD, L), or ``(out, last_state)`` with last_state (batch, KD, N).
    """
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f"u and delta must be (batch, KD, L), got {tuple(u.shape)} and {tuple(delta.shape)}")
    batch, kd, L = u.shape
    if A.dim() != 2 or A.shape[0] != kd:
        raise ValueError(f"A must be (KD, N) with KD={kd}, got {tuple(A.shape)}")
    if B.dim() == 3:  # (batch, N, L): one group
        B = B.unsqueeze(1)
    if C.dim() == 3:
        C = C.unsqueeze(1)
    N = A.shape[1]
    if B.dim() != 4 or B.shape[0] != batch or B.shape[2:] != (N, L) or C.shape != B.shape:
        raise ValueError(f"B and C must be (batch, G, N, L) = ({batch}, G, {N}, {L}), "
                         f"got {tuple(B.shape)} and {tuple(C.shape)}")
    if kd % B.shape[1]:
        raise ValueError(f"KD={kd} is not divisible by the number of groups G={B.shape[1]}")
    for name, vec in (("D", D), ("delta_bias", delta_bias)):
        if vec is not None and vec.shape != (kd,):
            raise ValueError(f"{name} must be (KD,) = ({kd},), got {tuple(vec.shape)}")
    if L == 0:
        raise ValueError("selective_scan_triton needs a sequence length L >= 1")
    chunk = int(CHUNK)
    if chunk < 1 or chunk & (chunk - 1):
        raise ValueError(f"scan_triton.CHUNK must be a power of two, got {chunk}")
    tensors = (u, delta, A, B, C, D, delta_bias)
    save_states = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    out, last, _ = _scan_fwd(u, delta, A, B, C, D, delta_bias, bool(delta_softplus), chunk, save_states)
    return (out, last) if return_last_state else out


__all__ = ["CHUNK", "selective_scan_triton", "triton_available"]
