"""Running nnU-Net's own console programs as the steps of a longer job (`demo`, `reproduce`, `compare`).

* `nnunet_commands` - the argument list of each nnU-Net program (plan, train, predict, find best, ensemble);
* `nnunet_runner`   - the child process's environment, running a program into a log, log tails;
* `nnunet_folders`  - nnU-Net's folders from the environment, a raw dataset's folder by id or name;
* `nnunet_outputs`  - what those folders hold already: plans and preprocessed data, cases, checkpoints;
* `predictions`     - the check of a prediction's inputs, the stamp of which checkpoint made a folder;
* `errors`          - WorkflowError and its kinds, for the callers to catch;
* `progress`        - what the console shows meanwhile: numbered steps, one line per training epoch;
* `trainer_lookup`  - finding a trainer class by name where nnU-Net would, without changing this process.
"""
