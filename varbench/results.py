"""The results schema shared by ``generate``, ``fid`` and ``speed`` (and read by ``report``/``compare``).

A result is one JSON object; every key is documented here (like lm-eval's ``result_schema.py``)::

    {
      "schema": "varbench.result",     # constant; identifies the file type
      "schema_version": 1,             # bumped on any incompatible change; readers refuse other versions
      "kind": "generate",              # "generate" | "fid" | "speed"
      "created": "2026-11-22T15:00:00+00:00",  # UTC, ISO 8601
      "env": {...},                    # varbench.env.collect(): versions, git sha, device, threads
      "config": {...},                 # every setting of the run (kind-specific, full, no defaults left implicit)
      "results": {...},                # kind-specific numbers (metric keys are plain: "fid", "is_mean", ...)
      "random_weights": false          # true when any model ran with random weights (always shown in reports)
    }

Kind-specific ``config`` and ``results`` (``FidResults``, ``GenerateResults``, ``SpeedRow``, ``SpeedFit`` below).  Metric keys are the ones
registered in ``varbench.metrics.registry`` (which also says which direction is better); a reader must accept extra
keys and treat a missing optional key as "not measured".  Compatible additions (new optional keys) keep
``schema_version`` 1; renaming or removing a key, or changing a unit, bumps it.

``generate`` (``varbench.sampler``; the output directory holds ``result.json`` beside ``samples.npz``)::

    config:  {"model": "var_d16",                   # zoo name
              "generator": {...},                   # the generator's identity (class, weights sha256, resolution)
              "weights": {"var": PATH, ...},        # weight files used
              "sampling": {"cfg": 1.5, "top_k": 900, "top_p": 0.96, "more_smooth": false, ...},
              "seed": 0, "rng": "...",              # global seed and RNG mode (see varbench.shard)
              "plan": {"num_samples": 50000, "per_class": 50, "labels": null, ...},  # label plan
              "dtype", "device", "batch_size", "world_size", "png", "out"}
    results: {"num_samples": 50000, "resolution": 256,
              "samples_npz": PATH, "samples_sha256": HEX,  # ADM format: arr_0 uint8 (N,H,W,3), labels, indices
              "wall_seconds": 812.3,                # this session, all processes
              "images_per_second": 61.5,            # registry key images_per_second
              ...}

``fid`` (``varbench.evaluate``)::

    config:  {"model": "var_d16" | absent,          # present when the samples come from a varbench generate dir
              "sampling": {...}, "plan": {...},     # copied from that generate result when known
              ...}                                  # evaluator settings: backends, reference, batch size, device
    results: {"metrics": {"fid", "sfid", "is_mean", "is_std", "precision", "recall", "kid_mean", "kid_std"},
                                                    # the ADM-protocol backend's numbers
              "backends": {NAME: {same keys}},      # every backend that ran (cross-checks)
              "reference": {"name", "sha256", "extractor", "n", "resolution"},  # reference batch / stats
              "samples": {"path", "n", "sha256", "resolution"}}                # the scored npz

``speed`` (``varbench.speed``)::

    results: {"rows": [{"model", "family", "mode",  # mode: "var_kv" | "var_nokv" | "raster_kv" | "raster_nokv" | "llamagen_kv"
                        "resolution", "batch_size", "steps", "tokens",
                        "latency_s",                # seconds per generate call of batch_size images
                        "throughput_img_s",         # images per second
                        "flops_analytic", "flops_counted",  # FLOPs per image as run, doubled with --cfg (formula; counter)
                        "peak_mem_bytes", "vq_decode_s"}, ...],
              "fits": [{"model", "mode", "quantity",  # quantity: "time" (measured) | "flops" (analytic sweep)
                        "batch_size", "exponent", "ci": [lo, hi]}, ...]}  # quantity ~ n^exponent, n = grid side
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, TypedDict

from varbench import atomic
from varbench.errors import VarbenchError

SCHEMA = "varbench.result"
SCHEMA_VERSION = 1
KINDS = ("generate", "fid", "speed")


class Result(TypedDict):
    schema: str  # always "varbench.result"
    schema_version: int  # SCHEMA_VERSION of the writer
    kind: str  # one of KINDS
    created: str  # UTC ISO 8601 timestamp
    env: dict  # varbench.env.collect(device)
    config: dict  # the full run configuration
    results: dict  # the numbers
    random_weights: bool  # any model with random weights


class QualityMetrics(TypedDict, total=False):
    fid: float  # Frechet distance of Inception pool features (lower is better)
    sfid: float  # the same on spatial (mixed_6/conv) features
    is_mean: float  # Inception Score, mean over splits
    is_std: float  # Inception Score, std over splits
    precision: float  # improved precision (k=3 manifolds)
    recall: float  # improved recall
    kid_mean: float  # kernel Inception distance, mean over subsets
    kid_std: float  # its std over subsets


class FidResults(TypedDict, total=False):
    metrics: QualityMetrics  # the ADM-protocol backend
    backends: dict  # backend name -> QualityMetrics
    reference: dict  # {name, sha256, extractor, n, resolution} of the reference batch or stats
    samples: dict  # {path, n, sha256, resolution} of the scored npz


class GenerateResults(TypedDict, total=False):
    num_samples: int  # images in samples.npz
    resolution: int  # pixels per side
    samples_npz: str  # path of the ADM-format npz
    samples_sha256: str  # its sha256
    wall_seconds: float  # wall time of the session
    images_per_second: float  # images generated per second (registry key images_per_second)


class SpeedRow(TypedDict, total=False):
    model: str  # zoo name
    family: str  # "var" | "llamagen" | "raster"
    mode: str  # "var_kv" | "var_nokv" | "raster_kv" | "raster_nokv" | "llamagen_kv"
    resolution: int  # pixels per side
    batch_size: int  # images per generate call
    steps: int  # sequential decoding steps
    tokens: int  # tokens generated per image
    latency_s: float  # seconds per call (median over timed repeats)
    throughput_img_s: float  # images per second
    flops_analytic: float  # FLOPs per image without CFG, from the closed-form count
    flops_counted: float  # FLOPs per image counted by torch
    peak_mem_bytes: int  # peak device memory of the call
    vq_decode_s: float  # seconds spent in the VQ decoder


class SpeedFit(TypedDict, total=False):
    model: str  # as in SpeedRow
    mode: str  # as in SpeedRow
    quantity: str  # "time": latency over the measured resolutions; "flops": the analytic count over a wide sweep
    batch_size: int  # batch of the timed rows (None for flops)
    exponent: float  # k in quantity ~ n^k, n = token-grid side
    ci: list  # [low, high] 95% interval of k (also as ci_low, ci_high)


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def make(kind: str, config: dict, results: dict, *, device: str | None = None, random_weights: bool = False) -> Result:
    from varbench import env

    if kind not in KINDS:
        raise ValueError(f"unknown result kind {kind!r}")
    return Result(
        schema=SCHEMA,
        schema_version=SCHEMA_VERSION,
        kind=kind,
        created=now_utc(),
        env=env.collect(device),
        config=config,
        results=results,
        random_weights=bool(random_weights),
    )


def save(path: str | Path, result: Result) -> None:
    atomic.write_json(path, result)


def load(path: str | Path, kind: str | None = None) -> Result:
    """Read and validate a result file; one-line ``VarbenchError`` on anything unexpected."""
    path = Path(path)
    try:
        obj: Any = json.loads(path.read_text())
    except FileNotFoundError:
        raise VarbenchError(f"results file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VarbenchError(f"{path} is not a readable JSON file: {e}") from None
    return validate(obj, str(path), kind)


def validate(obj: Any, where: str, kind: str | None = None) -> Result:
    if not isinstance(obj, dict) or obj.get("schema") != SCHEMA:
        raise VarbenchError(f"{where} is not a varbench result (missing \"schema\": \"{SCHEMA}\")")
    if obj.get("schema_version") != SCHEMA_VERSION:
        raise VarbenchError(
            f"{where} has schema_version {obj.get('schema_version')!r}; this varbench reads version {SCHEMA_VERSION} "
            "(re-create it with this version)"
        )
    if obj.get("kind") not in KINDS:
        raise VarbenchError(f"{where} has unknown kind {obj.get('kind')!r}; expected one of {', '.join(KINDS)}")
    if kind is not None and obj["kind"] != kind:
        raise VarbenchError(f"{where} is a {obj['kind']!r} result; expected a {kind!r} result")
    missing = [k for k in Result.__annotations__ if k not in obj]
    if missing:
        raise VarbenchError(f"{where} lacks required keys: {', '.join(missing)}")
    for key in ("env", "config", "results"):
        if not isinstance(obj[key], dict):
            raise VarbenchError(f"{where}: {key!r} must be a JSON object, got {type(obj[key]).__name__}")
    return obj  # type: ignore[return-value]
