"""Running nnU-Net's own console programs as the steps of a longer job (`swin-umamba demo`, `reproduce`).

* `nnunet_commands` - the argument list of each nnU-Net program (plan, train, predict, find best, ensemble);
* `nnunet_runner`  - the child process's environment, running a program into a log, log tails;
* `progress`       - what the console shows meanwhile: numbered steps, one line per training epoch;
* `trainer_lookup` - finding a trainer class by name where nnU-Net would, without changing this process.
"""
