"""What every Swin-UMamba trainer shares: network choice, recipe (docs/recipe.md), freezing, checkpoints.

The named trainers in `variants.py` only pick the network and whether ImageNet
weights are used.
"""
from __future__ import annotations

import os

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from swin_umamba.environment import STOP_AFTER_EPOCHS_VAR as STOP_ENV_VAR
from swin_umamba.nets import SwinUMamba, SwinUMamba3D
from swin_umamba.network_registry import network_built_by, network_of_class
from swin_umamba.nnunet_layout import DEPTH_STRIDES_KEY
from swin_umamba.inflation import inflate_weights
from swin_umamba.ops import selective_scan_backend
from swin_umamba.pretrained import load_vmamba_weights, resolve_weights_path
from swin_umamba.trainers.checkpoints import AtomicCheckpointMixin
from swin_umamba.trainers.common import ConfigurationError, stop_after_epochs, unwrap
from swin_umamba.trainers.configuration import choose_network, memory_verdict, network_choice, trainable_plans
from swin_umamba.trainers.finetune import PretrainedWeightsMixin
from swin_umamba.trainers.lr_schedule import CosineLRScheduler
from swin_umamba.trainers.nonfinite import NonFiniteGuardMixin


def plans_with_trainable_patch(plans: dict, configuration_name: str, network_class: type[nn.Module] = SwinUMamba,
                               network_class_3d: type[nn.Module] = SwinUMamba3D) -> dict:
    """Plans whose patch size is a multiple of the network's stride along each axis (rounded up) and whose 3D
    configuration records its depth strides: a copy when anything changes, so the trainer's saved
    plans.json (used for prediction) carries what it actually trained with."""
    choice = network_choice(plans, configuration_name, network_class, network_class_3d)
    return trainable_plans(plans, configuration_name, choice)


def check_plans_network(plans: dict, configuration_name: str, trainer_name: str, network_class: type) -> None:
    """Refuse plans that `swin-umamba plan` made for the other network: their batch size was sized for it.

    Plans naming no Swin-UMamba network (nnU-Net's own, e.g. nnUNetPlans) suit both networks."""
    configuration = PlansManager(plans).get_configuration(configuration_name).configuration
    named = configuration.get("architecture", {}).get("network_class_name", "")
    planned = network_of_class(named)
    if planned is None or issubclass(network_class, planned.network_class()):
        return
    ours = network_built_by(network_class)
    replan = f", or plan for this trainer with `swin-umamba plan --network {ours.name}`" if ours else ""
    raise ConfigurationError(
        f"The plans '{plans.get('plans_name', '?')}' (configuration '{configuration_name}') were made for "
        f"{planned.class_name} (`swin-umamba plan --network {planned.name}`), but {trainer_name} builds "
        f"{network_class.__name__}; the batch size would be the one sized for {planned.class_name}. "
        f"Train these plans with -tr {planned.trainer} (or {', '.join(planned.trainers[1:])}){replan}."
    )


def _fingerprint(module: nn.Module) -> torch.Tensor:
    return torch.stack([p.detach().double().sum() for p in module.state_dict().values()])


class SwinUMambaTrainerBase(PretrainedWeightsMixin, NonFiniteGuardMixin, AtomicCheckpointMixin, nnUNetTrainer):
    network_class: type[nn.Module] = SwinUMamba  # for the 2d configuration
    network_class_3d: type[nn.Module] = SwinUMamba3D  # for 3d_fullres, 3d_lowres and 3d_cascade_fullres
    use_imagenet_weights = True
    freeze_encoder_epochs = 10  # only when starting from ImageNet weights
    extra_checkpoint_every = 50

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        check_plans_network(plans, configuration, type(self).__name__, self.network_class)
        choice = network_choice(plans, configuration, self.network_class, self.network_class_3d)
        original_patch = PlansManager(plans).get_configuration(configuration).patch_size
        plans = trainable_plans(plans, configuration, choice)
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.network_choice = choice
        self.initial_lr = 1e-4
        self.weight_decay = 0.05
        self.enable_deep_supervision = True
        self._encoder_frozen = False
        self._weights_restored = False
        self._initial_fingerprint = None
        if choice.depth_strides is not None:
            self.print_to_log_file(
                f"{choice.network_class.__name__} with depth strides {list(choice.depth_strides)} (total stride "
                f"{list(choice.stride)} per axis; recorded as '{DEPTH_STRIDES_KEY}' in the model's plans.json)")
        if list(original_patch) != list(self.configuration_manager.patch_size):
            self.print_to_log_file(
                f"Patch size {list(original_patch)} rounded up to {list(self.configuration_manager.patch_size)}: "
                f"{choice.network_class.__name__} needs multiples of {list(choice.stride)}."
            )
        self._report_memory_estimate()

    def _report_memory_estimate(self) -> None:
        """Log when the memory model expects this patch and batch to exceed the plans' GPU memory target."""
        verdict = memory_verdict(self.plans_manager.plans, self.configuration_name, self.network_choice,
                                 self.configuration_manager.batch_size, self.label_manager.num_segmentation_heads)
        if verdict is not None:
            self.print_to_log_file(verdict)

    @classmethod
    def build_network_architecture(cls, plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        """Never reads the ImageNet file: prediction must work without it. A 3D configuration takes the depth
        strides the model's plans.json records (the trainer writes them there)."""
        choice = choose_network(configuration_manager.configuration, "(from plans)", cls.network_class,
                                cls.network_class_3d)
        return choice.build(num_input_channels, num_output_channels, enable_deep_supervision)

    def _get_deep_supervision_scales(self):
        if not self.enable_deep_supervision:
            return None
        return [[1.0 / s for s in scale] for scale in self.network_choice.output_scales]

    def set_deep_supervision_enabled(self, enabled: bool):
        unwrap(self.network).deep_supervision = enabled

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.network.parameters(), lr=self.initial_lr, weight_decay=self.weight_decay,
                                      eps=1e-5, betas=(0.9, 0.999))
        return optimizer, CosineLRScheduler(optimizer, self.initial_lr, self.schedule_epochs, eta_min=1e-6)

    def initialize(self):
        # The cosine schedule always spans num_epochs; SWIN_UMAMBA_STOP_AFTER_EPOCHS ends the run early,
        # as the published runs did (1000-epoch schedule, checkpoint of epoch 99/249/349).
        self.schedule_epochs = self.num_epochs
        stop = stop_after_epochs()
        if stop is not None and stop < self.num_epochs:
            self.num_epochs = stop
            self.print_to_log_file(f"{STOP_ENV_VAR}={stop}: stopping after epoch {stop - 1} of a "
                                   f"{self.schedule_epochs}-epoch cosine schedule")
        # load (or build) the scan kernel now: inside torch.compile's tracing, the first load
        # would break the graph
        selective_scan_backend(self.device)
        super().initialize()
        self._initial_fingerprint = _fingerprint(unwrap(self.network))

    # ImageNet weights ---------------------------------------------------------------------------------
    def load_checkpoint(self, filename_or_checkpoint) -> None:
        super().load_checkpoint(filename_or_checkpoint)
        self._weights_restored = True

    def _starts_from_scratch(self) -> bool:
        """True unless a checkpoint (--c, --val) or -pretrained_weights already set the weights."""
        if self._weights_restored or self.current_epoch > 0:
            return False
        return torch.equal(self._initial_fingerprint, _fingerprint(unwrap(self.network)))

    def on_train_start(self):
        if not self.was_initialized:
            self.initialize()
        if self.use_imagenet_weights:
            if self._starts_from_scratch():
                path = resolve_weights_path()  # fails here, before any data is touched, if it is missing
                if self.network_choice.depth_strides is None:
                    self.print_to_log_file(load_vmamba_weights(unwrap(self.network), path).summary())
                else:
                    # the 2D ImageNet encoder inflated to 3D
                    self.print_to_log_file(inflate_weights(unwrap(self.network), path).summary())
            else:
                self.print_to_log_file("Weights come from a checkpoint or -pretrained_weights; ImageNet file not read.")
        super().on_train_start()

    # encoder freezing ---------------------------------------------------------------------------------
    def _set_encoder_frozen(self, frozen: bool) -> None:
        encoder = unwrap(self.network).vssm_encoder
        for name, p in encoder.named_parameters():
            p.requires_grad_(not frozen or name.startswith("patch_embed."))
        self._encoder_frozen = frozen
        if self.is_ddp:
            # DDP records which parameters need gradients when it is built: build it again
            self.network = DDP(self.network.module, device_ids=self.network.device_ids)
        state = "frozen (patch_embed trains)" if frozen else "trainable"
        self.print_to_log_file(f"Epoch {self.current_epoch}: encoder {state}")

    def on_train_epoch_start(self):
        should_freeze = self.use_imagenet_weights and self.current_epoch < self.freeze_encoder_epochs
        if should_freeze != self._encoder_frozen:
            self._set_encoder_frozen(should_freeze)
        super().on_train_epoch_start()

    # checkpoints ---------------------------------------------------------------------------------------
    def on_epoch_end(self):
        epoch = self.current_epoch
        if (epoch + 1) % self.extra_checkpoint_every == 0:
            self.save_checkpoint(os.path.join(self.output_folder, f"checkpoint_{epoch}.pth"))
        super().on_epoch_end()
