"""Inference speed: in-process batch throughput (fp32 vs bf16, channels_last), and the REST server's
single-image latency (p50/p95) and batch throughput, for a logged/registered model.

    python -m bench.serving_speed --model models:/utkface-mtl@champion --data ../shared/data/UTKFace
    python -m bench.serving_speed --model runs:/<run_id>/model --data ../shared/data/UTKFace --requests 300
"""

from __future__ import annotations

import argparse
import base64
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
import torch

from mtl.images import decode_bytes
from mtl.predict import load_predictor
from mtl.serve import model_server


def in_process(model_uri: str, images: list[np.ndarray], batch_size: int) -> None:
    results = {}
    for label, kwargs in (("fp32", {}), ("bf16", {"bf16": True})):
        predictor = load_predictor(model_uri, batch_size=batch_size, **kwargs)
        predictor.predict_arrays(images[:batch_size])  # warm-up
        start = time.perf_counter()
        frame = predictor.predict_arrays(images)
        seconds = time.perf_counter() - start
        results[label] = frame
        print(f"in-process {label}, batch {batch_size}: {len(images) / seconds:.1f} images/s "
              f"(decode excluded, resize and TTA included)")
    diff_age = np.abs(results["fp32"]["age"] - results["bf16"]["age"])
    diff_p = np.abs(results["fp32"]["female_probability"] - results["bf16"]["female_probability"])
    flips = int((results["fp32"]["gender"] != results["bf16"]["gender"]).sum())
    print(f"bf16 vs fp32: age |diff| max {diff_age.max():.3f} y (mean {diff_age.mean():.3f}), "
          f"female probability |diff| max {diff_p.max():.4f}, gender flips {flips}/{len(images)}")


def through_server(model_uri: str, payloads: list[str], n_requests: int, batch_size: int) -> None:
    log = Path(tempfile.mkdtemp()) / "server.log"
    with model_server(model_uri, log) as url:
        session = requests.Session()

        def post(batch):
            reply = session.post(f"{url}/invocations", json={"dataframe_split": {"columns": ["image"],
                                                                                "data": [[b] for b in batch]}})
            reply.raise_for_status()

        for i in range(10):
            post([payloads[i % len(payloads)]])
        latencies = []
        for i in range(n_requests):
            start = time.perf_counter()
            post([payloads[i % len(payloads)]])
            latencies.append((time.perf_counter() - start) * 1000)
        p50, p95 = np.percentile(latencies, [50, 95])
        print(f"server, one image per request ({n_requests} requests): p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
              f"mean {np.mean(latencies):.1f} ms")
        start = time.perf_counter()
        n = 0
        for i in range(0, len(payloads), batch_size):
            post(payloads[i : i + batch_size])
            n += len(payloads[i : i + batch_size])
        print(f"server, batches of {batch_size}: {n / (time.perf_counter() - start):.1f} images/s (decode included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    files = sorted(p for p in Path(args.data).iterdir() if p.name.count("_") == 3)[:: 7][: args.images]
    raw = [f.read_bytes() for f in files]
    print(f"torch threads {torch.get_num_threads()}, {len(raw)} real face images")
    in_process(args.model, [decode_bytes(b) for b in raw], args.batch_size)
    through_server(args.model, [base64.b64encode(b).decode() for b in raw], args.requests, args.batch_size)


if __name__ == "__main__":
    main()
