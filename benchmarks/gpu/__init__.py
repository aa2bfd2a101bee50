"""Swin-UMamba's GPU figures in one command: scan kernels, cross-scan/merge, training iterations,
torch.compile's graph breaks and a short real nnUNetv2_train, each against its target.

    python -m benchmarks.gpu [--out benchmarks/gpu_results/DATE_gpu_bench] [--budget-s 450]
    python -m benchmarks.gpu --device cpu --dry-run --out /tmp/dry   # every section, tiny, on the CPU

One module per section (``scan``, ``cross_scan``, ``training``, ``compile_counts``, ``memory3d``, ``nnunet_train``),
each with ``NAME``, ``run(ctx, result)`` and ``tables(result)``; ``runner`` runs them in order, each
surviving the failure of another (its error goes into the JSON and the run goes on), and writes the
report. What is measured is a list of shape cases (``common.SHAPE_CASES``: a network at a patch).
"""
