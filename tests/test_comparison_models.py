"""The compared models' labels: ours is named after the network its trainer trains."""
from __future__ import annotations

from pathlib import Path

import pytest

from swin_umamba.comparison.protocol import our_model
from swin_umamba.network_registry import NETWORKS, SWIN_UMAMBA_D
from swin_umamba.workflow.trainer_lookup import TrainerNotFound

TEST_TRAINERS = Path(__file__).resolve().parent / "nnunet_trainers"


@pytest.mark.parametrize("network", NETWORKS.values(), ids=lambda n: n.name)
def test_ours_is_labelled_with_the_paper_name_of_the_network_it_trains(network):
    for trainer in network.trainers:
        model = our_model(trainer)
        assert (model.label, model.trainer) == (network.paper_name, trainer)


def test_a_subclass_found_in_the_extra_folders_gets_its_networks_label():
    assert our_model("nnUNetTrainerSwinUMambaDScratch_compare", [TEST_TRAINERS]).label == SWIN_UMAMBA_D.paper_name
    assert our_model("nnUNetTrainer").label == "nnUNetTrainer"  # another network: the trainer's name
    with pytest.raises(TrainerNotFound):
        our_model("nnUNetTrainerNoSuchThing")
