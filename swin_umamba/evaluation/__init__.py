"""Metrics of the Swin-UMamba paper (DSC, NSD, cell F1) and the `swin-umamba evaluate` command.

Modules, one job each:

* `surface`   - surface elements, surface distances and the normalised surface Dice (NSD);
* `overlap`   - the Dice similarity coefficient (DSC);
* `modes`     - the two evaluation modes (`paper`, `corrected`), rounding and summaries;
* `abdomen`   - AbdomenMR (dataset 702) per-organ DSC/NSD rules;
* `endoscopy` - Endovis17 (dataset 704) per-frame DSC/NSD rules;
* `cells`     - NeurIPS Cell Seg (dataset 703) F1 at IoU 0.5;
* `labels`    - Dice per label of label maps named by a dataset.json (the demo's scores);
* `files`     - reading masks, pairing ground truth with predictions, writing the CSV;
* `runner`    - scoring a whole folder of predictions for one task;
* `cli`       - the `evaluate` sub-command.

`paper` mode keeps the quirks of the authors' evaluation scripts so that numbers can be
compared with the published ones; `corrected` mode fixes them (see `modes`).
"""
from .modes import CORRECTED, MODES, PAPER  # noqa: F401
