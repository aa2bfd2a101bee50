"""Dataset converters: public releases -> nnU-Net v2 raw datasets of the Swin-UMamba paper.

Installed as `swin_umamba.preprocessing`. One module per source dataset, plus shared helpers:

* `amos`        - AMOS 2022 (MRI cases) -> Dataset702_AbdomenMR;
* `neurips_cell`- NeurIPS 2022 Cell Segmentation -> Dataset703_NeurIPSCell, and the reverse
                  (semantic prediction -> instance TIFF);
* `endovis17`   - EndoVis 2017 Robotic Instrument Segmentation -> Dataset704_Endovis17;
* `common`      - staging folder, atomic publish, dataset.json, integrity check, errors;
* `cli`         - the `convert-*` and `cells-to-instances` sub-commands.
"""
