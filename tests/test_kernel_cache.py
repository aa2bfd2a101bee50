"""The compiled CPU kernel's cache: one build per torch, compiler, flags, source and CPU, shared by checkouts."""
from __future__ import annotations

import shutil

import torch

from swin_umamba.ops import scan_cpu


def test_the_name_changes_with_torch_flags_compiler_and_source_not_with_the_checkout(tmp_path, monkeypatch):
    name = scan_cpu.extension_name()
    checkout = tmp_path / "another_checkout" / "csrc"
    checkout.mkdir(parents=True)
    copy = shutil.copy(scan_cpu._SOURCE, checkout / "selective_scan_cpu.cpp")
    assert scan_cpu.extension_name(copy) == name  # same source elsewhere: the same build

    edited = tmp_path / "edited.cpp"
    edited.write_bytes(open(scan_cpu._SOURCE, "rb").read() + b"\n// changed\n")
    assert scan_cpu.extension_name(edited) != name

    with monkeypatch.context() as m:
        m.setattr(torch, "__version__", torch.__version__ + ".post1")
        assert scan_cpu.extension_name() != name
    with monkeypatch.context() as m:
        m.setattr(scan_cpu, "_CFLAGS", scan_cpu._CFLAGS + ["-DSOMETHING"])
        assert scan_cpu.extension_name() != name
    with monkeypatch.context() as m:
        m.setenv("CXX", "clang++-that-is-not-installed")
        assert scan_cpu.extension_name() != name
    assert scan_cpu.extension_name() == name


def test_the_build_compiles_a_copy_inside_its_own_folder(tmp_path, monkeypatch):
    """The build command names no checkout path, so checkouts do not rebuild each other's kernel."""
    from torch.utils import cpp_extension

    calls = []
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(cpp_extension, "load", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(scan_cpu, "_kernel", None)
    monkeypatch.setattr(scan_cpu, "_failed", None)
    monkeypatch.setattr(scan_cpu, "_register_fakes", lambda name: None)
    name = scan_cpu.extension_name()
    monkeypatch.setattr(torch.ops, name, object(), raising=False)
    scan_cpu.load_kernel()

    (call,) = calls
    folder = tmp_path / name
    assert call["name"] == name and call["build_directory"] == str(folder)
    assert call["sources"] == [str(folder / "selective_scan_cpu.cpp")]
    assert (folder / "selective_scan_cpu.cpp").read_bytes() == open(scan_cpu._SOURCE, "rb").read()
    assert sorted(p.name for p in folder.iterdir()) == ["selective_scan_cpu.cpp"]
