"""The paper's protocol for one dataset with nnU-Net's own commands (`swin-umamba reproduce`).

* `recipes` - what the paper did per dataset and the numbers it published;
* `run`     - one run's folders, trainer, checkpoint and remembered state (`state.json`);
* `steps`   - plan, train, predict, (cell instances,) evaluate: each skipped when already done;
* `report`  - our numbers beside the published ones (`comparison.md`, `comparison.csv`).
"""
