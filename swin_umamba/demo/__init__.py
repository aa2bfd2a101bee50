"""`swin-umamba demo`: the embedded dataset planned, trained briefly, predicted and scored with nnU-Net's commands.

* `layout`   - the demo's dataset, trainer and work folder, and the nnU-Net commands' environment;
* `steps`    - copy, plan, train, predict (nnU-Net's programs), score, overlays;
* `scoring`  - Dice per class of the test cases: the table shown and `dice.csv`;
* `overlay`  - image, ground truth and prediction side by side in a PNG.
"""
