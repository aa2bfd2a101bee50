"""Triton's interpreter (``TRITON_INTERPRET=1``) made fast enough to run the scan kernels on CPU tensors.

The interpreter's generic ``associative_scan`` and ``reduce`` call the combine function once per
element in Python. The versions here call it once per step along the axis on whole slices, in the
same sequential order of combines (so the results are the same), which makes the kernels' CPU
checks about 100x faster. They serve the kernels' tests and the GPU benchmark's CPU dry run;
nothing in training uses them.
"""
from __future__ import annotations

import contextlib

import numpy as np


def vectorised_generic_scan(self, inputs):
    """Inclusive scan along ``self.axis``: one combine call per step on whole slices."""
    axis = self.axis
    data = [np.moveaxis(x.handle.data, axis, 0) for x in inputs]
    outs = [np.empty_like(d) for d in data]
    acc = None
    for i in range(data[0].shape[0]):
        cur = tuple(self.to_tensor(d[i], x.dtype) for d, x in zip(data, inputs))
        if acc is None:
            acc = cur
        else:
            res = self.combine_fn.fn(*acc, *cur)
            acc = res if isinstance(res, tuple) else (res,)
        for o, a in zip(outs, acc):
            o[i] = np.reshape(a.handle.data, o[i].shape)
    return [self.to_tensor(np.moveaxis(o, 0, axis), x.dtype) for o, x in zip(outs, inputs)]


def vectorised_generic_reduce(self, inputs):
    """Reduction along ``self.axis`` (never None in our kernels): a left fold, one combine call per
    step on whole slices."""
    axis = self.axis
    data = [np.moveaxis(x.handle.data, axis, 0) for x in inputs]
    acc = tuple(self.to_tensor(d[0], x.dtype) for d, x in zip(data, inputs))
    for i in range(1, data[0].shape[0]):
        cur = tuple(self.to_tensor(d[i], x.dtype) for d, x in zip(data, inputs))
        res = self.combine_fn.fn(*acc, *cur)
        acc = res if isinstance(res, tuple) else (res,)
    outs = [np.reshape(a.handle.data, d.shape[1:]) for a, d in zip(acc, data)]
    if self.keep_dims:
        outs = [np.expand_dims(o, axis) for o in outs]
    return [self.to_tensor(o, x.dtype) for o, x in zip(outs, inputs)]


@contextlib.contextmanager
def vectorised_interpreter():
    """Triton's interpreter uses the vectorised scan and reduce inside the block (restored after it)."""
    from triton.runtime import interpreter

    saved = interpreter.ScanOps.generic_scan, interpreter.ReduceOps.generic_reduce
    interpreter.ScanOps.generic_scan = vectorised_generic_scan
    interpreter.ReduceOps.generic_reduce = vectorised_generic_reduce
    try:
        yield
    finally:
        interpreter.ScanOps.generic_scan, interpreter.ReduceOps.generic_reduce = saved
