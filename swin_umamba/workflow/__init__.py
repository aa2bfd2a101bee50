"""Running nnU-Net's own console programs as the steps of a longer job (`swin-umamba demo`, `reproduce`).

* `nnunet_runner` - the child process's environment, running a program into a log, log tails.
"""
