"""Compiled CPU selective scan: build/load of the C++ kernel and its autograd Function.

The C++ source (``csrc/selective_scan_cpu.cpp``) is compiled at first use with
``torch.utils.cpp_extension.load`` (needs a C++ compiler and ``ninja``) and cached in torch's
extensions directory (``TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``), one folder per
build key: a hash of the torch build, the Python ABI, the compiler, the flags, the source and the CPU
(the flags hold ``-march=native``). A build for another torch, compiler or CPU is therefore never
loaded: its key differs and the kernel is built anew beside it. The source is compiled from a copy
inside that folder, so every checkout and installation of the same source shares one build. torch's
build lock (a file baton in the build directory) serialises concurrent builds from several processes.

If the build or the load fails, one warning is logged and :func:`load_kernel` returns
``None``; the dispatcher then uses the pure-PyTorch path.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import torch

from swin_umamba.environment import TORCH_EXTENSIONS_DIR_VAR

log = logging.getLogger(__name__)

_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc", "selective_scan_cpu.cpp")
# -ffast-math lets GCC compile the clamps of the exponential to min/max instructions (without
# it, NaN-preserving compares and blends: the forward measured 20% slower); it is given to the
# compiler only, not to the linker, so crtfastmath (flush-to-zero for the whole process) is
# not linked in.
# -fopenmp: at::parallel_for is OpenMP code inlined from torch's headers; without the flag it
# runs serially. The library links libgomp.so.1, i.e. the copy torch has already loaded.
_CFLAGS = ["-O3", "-march=native", "-ffast-math", "-fopenmp"]
_LDFLAGS = ["-fopenmp"]
# states are kept every CHUNK steps for the backward (memory: L/CHUNK states per channel)
CHUNK = 64

_lock = threading.Lock()
_kernel = None
_failed: str | None = None
build_seconds: float | None = None  # wall time of the last load (build or cache hit)


def _cpu_signature() -> str:
    """What -march=native depends on: the CPU's model and feature flags."""
    parts = [platform.machine(), platform.processor()]
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key = line.split(":", 1)[0].strip()
                if key in ("flags", "Features", "model name", "vendor_id", "cpu family", "model"):
                    parts.append(line.strip())
                if not line.strip():  # first processor block is enough
                    break
    except OSError:
        pass
    return "\n".join(parts)


def _compiler() -> str:
    """The C++ compiler torch's build runs ($CXX, else c++) and the first line of its --version."""
    command = os.environ.get("CXX", "c++")
    try:
        found = shutil.which(command) or command
        version = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=30).stdout
        return f"{found} {version.splitlines()[0] if version else ''}"
    except (OSError, subprocess.SubprocessError):
        return f"{command} (not runnable)"


def build_key(source: str | os.PathLike = _SOURCE) -> dict[str, str]:
    """Everything a compiled kernel depends on; a build is loaded only where all of it is the same."""
    return {
        "torch": f"{torch.__version__} {torch.version.git_version}",
        "python": sys.implementation.cache_tag or sys.version,
        "compiler": _compiler(),
        "flags": " ".join(_CFLAGS + _LDFLAGS),
        "source": hashlib.sha256(Path(source).read_bytes()).hexdigest(),
        "cpu": _cpu_signature(),
    }


def extension_name(source: str | os.PathLike = _SOURCE) -> str:
    """The kernel's name and its cache folder's: a short hash of build_key."""
    key = "\n".join(f"{k}={v}" for k, v in sorted(build_key(source).items()))
    return f"swin_umamba_scan_cpu_{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def build_directory(name: str) -> Path:
    """The kernel's folder in torch's extensions directory."""
    from torch.utils import cpp_extension

    root = os.environ.get(TORCH_EXTENSIONS_DIR_VAR) or cpp_extension.get_default_build_root()
    return Path(root) / name


def _source_in(folder: Path) -> str:
    """The source copied into the build folder, once: the name carries its hash, so a copy there holds the
    same bytes, and leaving it untouched (its time too) lets ninja find the build up to date."""
    copy = folder / os.path.basename(_SOURCE)
    if not copy.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        handle, staged = tempfile.mkstemp(prefix=f".{copy.name}.", suffix=".tmp", dir=folder)
        os.close(handle)
        try:
            shutil.copyfile(_SOURCE, staged)
            with contextlib.suppress(FileExistsError):  # a concurrent process placed it first
                os.link(staged, copy)  # complete or absent, never half-copied; never replaces
        finally:
            os.unlink(staged)
    return str(copy)


def _ensure_ninja_on_path() -> None:
    """torch looks for the ``ninja`` executable on PATH; the PyPI wheel may sit in an
    un-activated virtual environment, so add its directory."""
    try:
        import ninja  # type: ignore

        bin_dir = getattr(ninja, "BIN_DIR", None)
    except Exception:
        bin_dir = None
    if bin_dir and os.path.isdir(bin_dir):
        path = os.environ.get("PATH", "")
        if bin_dir not in path.split(os.pathsep):
            os.environ["PATH"] = bin_dir + os.pathsep + path


CUDA_HOME_NOTICE = "No CUDA runtime is found"


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


@contextlib.contextmanager
def _without_cuda_home_notice():
    """Drops the one line torch.utils.cpp_extension logs when it is first imported on a machine with a
    CUDA build of torch but no GPU ("No CUDA runtime is found, using CUDA_HOME=..."): this kernel is
    built for the CPU and needs no CUDA, so on every command that line is only noise."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    notice = _DropMessage(CUDA_HOME_NOTICE)
    logger.addFilter(notice)
    try:
        yield
    finally:
        logger.removeFilter(notice)


def load_kernel(verbose: bool = False):
    """The compiled module (with ``forward``/``backward``), or ``None`` if it cannot be built."""
    global _kernel, _failed, build_seconds
    if _kernel is not None or _failed is not None:
        return _kernel
    with _lock:
        if _kernel is not None or _failed is not None:
            return _kernel
        start = time.perf_counter()
        try:
            _ensure_ninja_on_path()
            with _without_cuda_home_notice():
                from torch.utils import cpp_extension

            name = extension_name()
            folder = build_directory(name)
            cpp_extension.load(
                name=name,
                sources=[_source_in(folder)],
                extra_cflags=_CFLAGS,
                extra_ldflags=_LDFLAGS,
                build_directory=str(folder),
                is_python_module=False,
                verbose=verbose,
            )
            _kernel = getattr(torch.ops, name)
        except Exception as exc:  # no compiler, no ninja, build error, ...
            _failed = f"{type(exc).__name__}: {exc}"
            warnings.warn(
                "swin_umamba: could not build the CPU selective-scan kernel; using the slower "
                f"pure-PyTorch scan instead ({_failed.splitlines()[0][:300]})",
                RuntimeWarning,
                stacklevel=2,
            )
            log.warning("CPU selective-scan kernel unavailable: %s", _failed)
            return None
        build_seconds = time.perf_counter() - start
        try:
            _register_fakes(name)
        except Exception as exc:  # eager use is unaffected
            log.warning("CPU selective-scan kernel: torch.compile cannot trace it (%s)", exc)
        return _kernel


def _register_fakes(name: str) -> None:
    """Shapes of the kernel's outputs for tracing (torch.compile, meta tensors): without them
    Dynamo runs the C++ code on tensors that have no data and fails."""

    def forward(u, delta, A, Bt, Ct, D, bias, softplus, chunk):
        batch, kd, L = u.shape
        nchunks = max(1, -(-L // max(1, chunk)))
        return [u.new_empty(u.shape), u.new_empty(batch, kd, nchunks, A.shape[1]),
                u.new_empty(batch, kd, A.shape[1])]

    def backward(u, delta, A, Bt, Ct, D, bias, softplus, ckpt, dout, chunk):
        batch, kd, _ = u.shape
        return [u.new_empty(u.shape), u.new_empty(u.shape), u.new_empty(batch, kd, A.shape[1]),
                Bt.new_empty(Bt.shape), Ct.new_empty(Ct.shape), u.new_empty(batch, kd)]

    torch.library.register_fake(f"{name}::forward", forward)
    torch.library.register_fake(f"{name}::backward", backward)


def kernel_error() -> str | None:
    """Why the kernel could not be loaded (``None`` if it loaded or was never tried)."""
    return _failed


class _ScanCPU(torch.autograd.Function):
    """delta is the raw step size: the kernel adds delta_bias and applies softplus itself."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, delta_bias, delta_softplus):
        kernel = load_kernel()
        Bt = B.transpose(-1, -2).contiguous()
        Ct = C.transpose(-1, -2).contiguous()
        u, delta, A, D, delta_bias = (t.contiguous() for t in (u, delta, A, D, delta_bias))
        out, ckpt, last = kernel.forward(u, delta, A, Bt, Ct, D, delta_bias, delta_softplus, CHUNK)
        ctx.save_for_backward(u, delta, A, Bt, Ct, D, delta_bias, ckpt)
        ctx.delta_softplus = delta_softplus
        ctx.mark_non_differentiable(last)
        return out, last

    @staticmethod
    def backward(ctx, dout, dlast):
        u, delta, A, Bt, Ct, D, delta_bias, ckpt = ctx.saved_tensors
        if dout is None:
            dout = torch.zeros_like(u)
        du, ddelta, dA, dBt, dCt, dD = load_kernel().backward(
            u, delta, A, Bt, Ct, D, delta_bias, ctx.delta_softplus, ckpt, dout.contiguous(), CHUNK
        )
        # dA/dD: per batch element
        dbias = ddelta.sum((0, 2)) if ctx.needs_input_grad[6] else None
        return (du, ddelta, dA.sum(0), dBt.transpose(-1, -2), dCt.transpose(-1, -2), dD.sum(0), dbias,
                None)


def scan_cpu_kernel(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False,
                    return_last_state=False):
    """Selective scan through the compiled kernel; float32 CPU tensors expected
    (the public :func:`swin_umamba.ops.selective_scan` takes care of casting)."""
    if D is None:
        D = u.new_zeros(u.shape[1])
    if delta_bias is None:
        delta_bias = u.new_zeros(u.shape[1])
    out, last = _ScanCPU.apply(u, delta, A, B, C, D, delta_bias, bool(delta_softplus))
    return (out, last) if return_last_state else out
