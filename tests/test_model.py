import pytest
import torch

from mtl.config import ModelConfig
from mtl.model import create_model, init_age_head

BACKBONES = ["efficientnet_lite0", "resnet18", "mobilenetv3_small_050"]


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("formulation", ["ordinal", "regression"])
def test_one_forward_pass_returns_both_tasks(backbone, formulation):
    torch.manual_seed(0)
    cfg = ModelConfig(backbone=backbone, weights="none", age_formulation=formulation, bin_width=5)
    model, info = create_model(cfg)
    assert info.source == "none"
    init_age_head(model, torch.tensor([10.0, 30.0, 50.0]))
    model.eval()
    out = model(torch.rand(3, 3, 48, 48).contiguous(memory_format=torch.channels_last))
    assert out["gender_logit"].shape == (3,)
    assert out["age"].shape == (3,)
    assert ((out["age"] >= 0) & (out["age"] <= 120)).all()
    if formulation == "ordinal":
        assert out["age_logits"].shape == (3, model.bins.num_bins - 1)
    else:
        assert "age_logits" not in out


def test_unknown_backbone_is_named():
    with pytest.raises(ValueError, match="not_a_net"):
        create_model(ModelConfig(backbone="not_a_net", weights="none"))


def test_wrong_input_shape_is_a_value_error():
    model, _ = create_model(ModelConfig(weights="none"))
    with pytest.raises(ValueError, match="expected images of shape"):
        model(torch.rand(2, 48, 48, 3))
