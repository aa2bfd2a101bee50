"""Trainer pieces that need no training run: plans, schedule, deep supervision, freezing under DDP."""
import math
import os
import socket
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

from swin_umamba import SwinUMamba, SwinUMambaD
from swin_umamba.trainers import nnUNetTrainerSwinUMamba, nnUNetTrainerSwinUMambaD
from swin_umamba.trainers.base import (
    STOP_ENV_VAR,
    ConfigurationError,
    SwinUMambaTrainerBase,
    plans_with_trainable_patch,
    stop_after_epochs,
)
from swin_umamba.trainers.configuration import network_choice
from swin_umamba.trainers.lr_schedule import CosineLRScheduler
from swin_umamba.network_registry import NETWORKS, TRAINER_NAMES, network_of_trainer


def _plans(patch):
    return {"configurations": {"2d": {"patch_size": patch, "batch_size": 2, "architecture": {}}}}


def test_patch_is_rounded_up_to_multiples_of_32_in_a_copy():
    plans = _plans([91, 128])
    rounded = plans_with_trainable_patch(plans, "2d")
    assert rounded["configurations"]["2d"]["patch_size"] == [96, 128]
    assert plans["configurations"]["2d"]["patch_size"] == [91, 128]
    assert plans_with_trainable_patch(_plans([64, 32]), "2d")["configurations"]["2d"]["patch_size"] == [64, 32]


def test_2d_plans_record_no_depth_strides():
    assert "depth_strides" not in plans_with_trainable_patch(_plans([91, 128]), "2d")["configurations"]["2d"]


def _planned_for(class_path: str, plans_name: str = "nnUNetPlansSwinUMambaD") -> dict:
    """Plans as `swin-umamba plan` writes them (the parts the trainer reads)."""
    return {"plans_name": plans_name, "configurations": {"2d": {
        "patch_size": [64, 64], "batch_size": 12,
        "architecture": {"network_class_name": class_path, "arch_kwargs": {}, "_kw_requires_import": []}}}}


def test_plans_for_the_other_network_stop_the_trainer_before_anything_is_built():
    plans = _planned_for("swin_umamba.nets.SwinUMambaD")
    with pytest.raises(ConfigurationError) as caught:
        nnUNetTrainerSwinUMamba(plans, "2d", 0, {}, torch.device("cpu"))
    message = str(caught.value)
    for part in ("'nnUNetPlansSwinUMambaD'", "made for SwinUMambaD", "--network swinumambaD",
                 "nnUNetTrainerSwinUMamba builds SwinUMamba", "-tr nnUNetTrainerSwinUMambaD",
                 "swin-umamba plan --network swinumamba`"):
        assert part in message, (part, message)

    plans = _planned_for("swin_umamba.nets.SwinUMamba", "nnUNetPlansSwinUMamba")
    with pytest.raises(ConfigurationError, match="made for SwinUMamba .*nnUNetTrainerSwinUMambaD builds SwinUMambaD"):
        nnUNetTrainerSwinUMambaD(plans, "2d", 0, {}, torch.device("cpu"))


@pytest.mark.parametrize("class_path", ["swin_umamba.nets.SwinUMamba",
                                        "dynamic_network_architectures.architectures.unet.PlainConvUNet"])
def test_plans_for_the_same_network_or_nnunets_own_are_accepted(class_path):
    from swin_umamba.trainers.base import check_plans_network

    check_plans_network(_planned_for(class_path), "2d", "nnUNetTrainerSwinUMamba", SwinUMamba)
    check_plans_network({"configurations": {"2d": {"patch_size": [64, 64], "architecture": {}}}}, "2d",
                        "nnUNetTrainerSwinUMambaD", SwinUMambaD)


def test_every_registered_trainer_builds_its_registered_network():
    import swin_umamba.trainers as trainers

    from swin_umamba.network_registry import BASELINE_TRAINER  # nnU-Net's own network, for the baselines

    assert set(TRAINER_NAMES) | {BASELINE_TRAINER} == {n for n in trainers.__all__ if n.startswith("nnUNetTrainer")}
    for name in TRAINER_NAMES:
        assert getattr(trainers, name).network_class is network_of_trainer(name).network_class(), name
        assert getattr(trainers, name).network_class_3d is network_of_trainer(name).cls_3d, name
    assert {n.network_class() for n in NETWORKS.values()} == {SwinUMamba, SwinUMambaD}


def test_cosine_schedule_matches_torch_closed_form_at_any_epoch():
    param = torch.nn.Parameter(torch.zeros(1))
    ours = CosineLRScheduler(torch.optim.AdamW([param], lr=1e-4), 1e-4, t_max=1000, eta_min=1e-6)
    ref_opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(ref_opt, T_max=1000, eta_min=1e-6)
    ref_lrs = []
    for _ in range(400):
        ref_lrs.append(ref_opt.param_groups[0]["lr"])
        ref_opt.step()
        ref.step()
    for epoch in (0, 1, 99, 249, 399, 250):  # out of order: a resumed run jumps
        ours.step(epoch)
        assert math.isclose(ours.optimizer.param_groups[0]["lr"], ref_lrs[epoch], rel_tol=1e-9)
    ours.step(1000)
    assert math.isclose(ours.optimizer.param_groups[0]["lr"], 1e-6)


@pytest.mark.parametrize("trainer,net", [(nnUNetTrainerSwinUMamba, SwinUMamba), (nnUNetTrainerSwinUMambaD, SwinUMambaD)])
def test_deep_supervision_scales_match_the_network_outputs(trainer, net):
    fake = SimpleNamespace(enable_deep_supervision=True,
                           network_choice=network_choice(_plans([64, 96]), "2d", net, trainer.network_class_3d))
    scales = trainer._get_deep_supervision_scales(fake)
    with torch.no_grad():
        outs = net(1, 2, deep_supervision=True).eval()(torch.zeros(1, 1, 64, 96))
    assert [list(o.shape[-2:]) for o in outs] == [[round(64 * s[0]), round(96 * s[1])] for s in scales]


def test_stop_after_epochs(monkeypatch):
    monkeypatch.delenv(STOP_ENV_VAR, raising=False)
    assert stop_after_epochs() is None
    monkeypatch.setenv(STOP_ENV_VAR, "100")
    assert stop_after_epochs() == 100
    monkeypatch.setenv(STOP_ENV_VAR, "ten")
    with pytest.raises(ConfigurationError, match="'ten'"):
        stop_after_epochs()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, port: int, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = SwinUMambaD(1, 2, deep_supervision=True)  # every head in use, as in training
    trainer = SimpleNamespace(network=DDP(net), is_ddp=True, current_epoch=0, print_to_log_file=lambda *a: None)

    def grads_after_step():
        trainer.network.zero_grad(set_to_none=True)
        torch.manual_seed(100 + rank)  # each rank sees other data
        sum(o.square().mean() for o in trainer.network(torch.randn(1, 1, 32, 32))).backward()
        return {n: (None if p.grad is None else p.grad.clone()) for n, p in net.vssm_encoder.named_parameters()}

    SwinUMambaTrainerBase._set_encoder_frozen(trainer, True)
    frozen = grads_after_step()
    SwinUMambaTrainerBase._set_encoder_frozen(trainer, False)
    trainable = grads_after_step()
    gathered = [None, None]
    dist.all_gather_object(gathered, (frozen, trainable))
    if rank == 0:
        results.put(_ddp_problems(gathered))  # plain strings: tensors would not outlive this process
    dist.destroy_process_group()


def _ddp_problems(gathered) -> list[str]:
    (frozen0, train0), (frozen1, train1) = gathered
    problems = []
    for name, grad in frozen0.items():
        if name.startswith("patch_embed."):
            if grad is None or not torch.allclose(grad, frozen1[name]):
                problems.append(f"frozen phase: {name} should train and be all-reduced")
        elif grad is not None or frozen1[name] is not None:
            problems.append(f"frozen phase: {name} got a gradient")
    for name, grad in train0.items():
        if grad is None or not torch.allclose(grad, train1[name], atol=1e-6):
            problems.append(f"after unfreezing: {name} not trained or not all-reduced")
    return problems


@pytest.mark.slow  # two spawned processes with a network each
def test_freezing_under_ddp_keeps_gradients_synchronised():
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_ddp_worker, args=(r, port, results)) for r in range(2)]
    for p in procs:
        p.start()
    problems = results.get(timeout=300)
    for p in procs:
        p.join(timeout=60)
    assert problems == []
