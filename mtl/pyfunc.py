"""The trained model as an MLflow pyfunc: images in (base64, bytes or arrays), age and gender out.

Preprocessing lives inside the model, so a client passes a face crop as it is.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, Schema
from PIL import Image

from mtl.config import ModelConfig
from mtl.images import ImageDecodeError, decode_any, square_resize
from mtl.model import MultiTaskNet, create_model

OUTPUT_COLUMNS = ["age", "age_low", "age_high", "gender", "female_probability"]
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "image")]),
    outputs=Schema([ColSpec("double", "age"), ColSpec("double", "age_low"), ColSpec("double", "age_high"),
                    ColSpec("string", "gender"), ColSpec("double", "female_probability")]),
)


class BadInputError(ValueError):
    """A request row that cannot be scored; the message names the row and the problem."""


class Predictor:
    """A trained network plus its preprocessing and age-interval calibration, usable without MLflow."""

    def __init__(self, model: MultiTaskNet, *, image_size: int, crop: float = 1.0, interval: dict | None = None,
                 batch_size: int = 64, bf16: bool = False):
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.image_size = image_size
        self.crop = crop
        self.interval = interval or {}
        self.batch_size = batch_size
        self.bf16 = bf16

    @classmethod
    def load(cls, model_dir: str | Path, **kwargs) -> "Predictor":
        """Load from a folder written by :func:`save_model_dir`."""
        model_dir = Path(model_dir)
        meta = json.loads((model_dir / "model.json").read_text())
        model, _ = create_model(ModelConfig(**meta["model"]), pretrained=False)
        model.load_state_dict(torch.load(model_dir / "weights.pt", map_location="cpu", weights_only=True))
        return cls(model, image_size=meta["image_size"], crop=meta.get("crop", 1.0), interval=meta.get("interval"),
                   **kwargs)

    def preprocess(self, images: list[np.ndarray]) -> torch.Tensor:
        batch = np.stack([square_resize(img, self.image_size, self.crop) for img in images])
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
        return x.contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def predict_arrays(self, images: list[np.ndarray]) -> pd.DataFrame:
        """Predict for RGB uint8 arrays; returns one row per image with OUTPUT_COLUMNS."""
        ages, probs = [], []
        for start in range(0, len(images), self.batch_size):
            x = self.preprocess(images[start : start + self.batch_size])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                out = self.model.infer(x)
            ages.append(out["age"].float().numpy())
            probs.append(torch.sigmoid(out["gender_logit"].float()).numpy())
        age = np.concatenate(ages) if ages else np.zeros(0)
        female = np.concatenate(probs) if probs else np.zeros(0)
        low, high = self.age_interval(age)
        return pd.DataFrame({
            "age": age.astype(float),
            "age_low": low,
            "age_high": high,
            "gender": np.where(female >= 0.5, "female", "male"),
            "female_probability": female.astype(float),
        }, columns=OUTPUT_COLUMNS)

    def age_interval(self, age: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return interval_bounds(age, self.interval)


def interval_bounds(age: np.ndarray, interval: dict) -> tuple[np.ndarray, np.ndarray]:
    """Interval from validation residual quantiles in log-age: ``age * exp(q_low) .. age * exp(q_high)``."""
    q_low, q_high = interval.get("log_residual_low", 0.0), interval.get("log_residual_high", 0.0)
    age = np.clip(np.asarray(age, float), 0.5, None)
    return age * np.exp(q_low), age * np.exp(q_high)


def calibrate_interval(true_age: np.ndarray, pred_age: np.ndarray, coverage: float = 0.8) -> dict:
    """Quantiles of log(true) - log(pred) on held-out data, for a ``coverage`` central interval."""
    residual = np.log(np.asarray(true_age, float)) - np.log(np.clip(np.asarray(pred_age, float), 0.5, None))
    alpha = (1 - coverage) / 2
    return {"coverage": coverage, "log_residual_low": float(np.quantile(residual, alpha)),
            "log_residual_high": float(np.quantile(residual, 1 - alpha))}


def save_model_dir(model: MultiTaskNet, model_cfg: ModelConfig, *, image_size: int, crop: float, interval: dict,
                   target: str | Path) -> Path:
    """Write weights and the metadata needed to rebuild the network (no pretrained download)."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), target / "weights.pt")
    meta = {"model": asdict(model_cfg), "image_size": image_size, "crop": crop, "interval": interval}
    (target / "model.json").write_text(json.dumps(meta, indent=2))
    return target


def decode_column(frame: pd.DataFrame) -> list[np.ndarray]:
    """Decode the ``image`` column; raise BadInputError naming the first bad row and why."""
    if not isinstance(frame, pd.DataFrame):
        raise BadInputError(f"expected a DataFrame with an 'image' column, got {type(frame).__name__}")
    if "image" not in frame.columns:
        raise BadInputError(f"missing column 'image' (got columns: {list(map(str, frame.columns))})")
    images = []
    for row, value in enumerate(frame["image"].tolist()):
        try:
            images.append(decode_any(value))
        except ImageDecodeError as exc:
            raise BadInputError(f"row {row}: {exc}") from None
    return images


class UtkfaceMtlModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper around :class:`Predictor`."""

    def load_context(self, context) -> None:
        self.predictor = Predictor.load(context.artifacts["model_dir"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        try:
            images = decode_column(model_input)
        except BadInputError as exc:
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        return self.predictor.predict_arrays(images)


def encode_image(rgb: np.ndarray, fmt: str = "JPEG") -> str:
    """Base64 text of an image, as clients send it to the REST endpoint."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def pip_requirements() -> list[str]:
    """Pinned requirements of the serving environment (the versions this model was built with)."""
    pins = ["torch", "timm", "mlflow", "pillow", "numpy", "pandas", "pyyaml", "scikit-learn", "albumentations"]
    return [f"{name}=={version(name)}" for name in pins]


def log_pyfunc(model_dir: Path, *, example_image: np.ndarray, registered_model_name: str | None = None):
    """Log the model (weights, metadata, the ``mtl`` code) as an MLflow pyfunc named ``model``."""
    example = pd.DataFrame({"image": [encode_image(example_image)]})
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=UtkfaceMtlModel(),
        artifacts={"model_dir": str(model_dir)},
        code_paths=[str(Path(__file__).resolve().parent)],
        signature=SIGNATURE,
        input_example=example,
        pip_requirements=pip_requirements(),
        registered_model_name=registered_model_name,
    )
