"""Swin-UMamba against nnU-Net's baselines under one protocol (`swin-umamba compare`,
`swin-umamba reproduce --baselines`).

* `protocol` - what "the same protocol" means (dataset, fold, schedule, stop, iterations, no TTA),
               read from the trained Swin-UMamba model, and the baseline models;
* `steps`    - the nnU-Net commands for one model: planning, training, prediction, scoring.

The statistics and the report are in `swin_umamba.evaluation.paired` and `paired_report`.
"""
