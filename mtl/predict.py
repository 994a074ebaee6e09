"""Batch prediction: ``python -m mtl.predict --model MODEL_URI PATHS... -o predictions.csv``.

PATHS may be image files, folders (searched recursively) or zip archives. Every image gets one row;
an image that cannot be read gets an ``error`` and empty predictions, and the run goes on.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from mtl.images import ImageDecodeError, decode_bytes
from mtl.pyfunc import OUTPUT_COLUMNS, Predictor
from mtl.sources import IMAGE_SUFFIXES


def iter_images(paths: list[str]) -> Iterator[tuple[str, bytes | Exception]]:
    """Yield ``(name, bytes)`` for every image under ``paths`` (or the error that reading raised)."""
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
                yield str(file), file.read_bytes()
        elif path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for entry in sorted(archive.namelist()):
                    if entry.lower().endswith(IMAGE_SUFFIXES):
                        yield f"{path}:{entry}", archive.read(entry)
        elif path.is_file():
            yield str(path), path.read_bytes()
        else:
            yield str(path), FileNotFoundError(f"no such file or folder: {path}")


def load_predictor(model_uri: str, **kwargs) -> Predictor:
    """A Predictor from an MLflow model URI (``models:/utkface-mtl@champion``, ``runs:/ID/model``, a path)."""
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri)) if not Path(model_uri).is_dir() else Path(model_uri)
    candidates = list(local.rglob("model.json"))
    if not candidates:
        raise FileNotFoundError(f"{model_uri} is not a utkface-mtl model (no model.json in its artifacts)")
    return Predictor.load(candidates[0].parent, **kwargs)


def predict_paths(predictor: Predictor, paths: list[str], *, batch_size: int = 64,
                  progress: bool = True) -> pd.DataFrame:
    """One row per image: ``path``, the prediction columns and ``error`` (empty when it worked)."""
    rows: list[dict] = []
    pending: list[tuple[str, object]] = []

    def flush() -> None:
        if not pending:
            return
        preds = predictor.predict_arrays([img for _, img in pending])
        for (name, _), pred in zip(pending, preds.to_dict("records")):
            rows.append({"path": name, **pred, "error": ""})
        pending.clear()

    for name, data in tqdm(iter_images(paths), desc="predicting", unit="img", disable=not progress):
        try:
            if isinstance(data, Exception):
                raise data
            pending.append((name, decode_bytes(data)))
        except (ImageDecodeError, OSError) as exc:
            rows.append({"path": name, **{c: None for c in OUTPUT_COLUMNS}, "error": str(exc)})
        if len(pending) >= batch_size:
            flush()
    flush()
    return pd.DataFrame(rows, columns=["path", *OUTPUT_COLUMNS, "error"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mtl.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="MLflow model URI, e.g. models:/utkface-mtl@champion")
    parser.add_argument("paths", nargs="+", help="image files, folders or zip archives")
    parser.add_argument("-o", "--output", default="predictions.csv")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    predictor = load_predictor(args.model, batch_size=args.batch_size)
    frame = predict_paths(predictor, args.paths, batch_size=args.batch_size)
    frame.to_csv(args.output, index=False)
    n_err = int((frame["error"] != "").sum())
    print(f"wrote {len(frame)} rows to {args.output} ({n_err} unreadable)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
