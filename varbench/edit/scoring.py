"""Scoring a finished edit benchmark: Inception features of the originals, reconstructions and composites, the scores
of ``varbench.edit.scores``, and the result of kind "edit"."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from varbench.edit.editor import SEED_RULE, Editor
from varbench.edit.scores import RANK_RULE, composite, features, reconstruction_scores, task_scores
from varbench.generate import rundir
from varbench.progress import Progress, ProgressEvent, no_progress

FEATURE_STAGE = "Inception features"
ARITHMETIC = {"fid": "pool3 float32 features, float64 mean/covariance, eigenvalue trace (varbench.metrics.fid)",
              "kid": "unbiased MMD^2, polynomial kernel, 100 subsets of min(1000, N) rows, seed 2020, float64",
              "psnr": "per image over the region, 10 log10(255^2 / MSE) on uint8 values in float64, capped at 100 dB",
              "target_rank": RANK_RULE}


def _load(path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        return z["arr_0"]


def score(generator, job, plans: dict, artefacts: dict, manifest: dict, seconds: float,
          progress: Progress = no_progress) -> dict:
    """The result of a benchmark whose streams are packed under ``job.out``."""
    from varbench.edit.protocol import TARGET_RULE, TASKS
    from varbench.evaluate.cache import load_extractor

    extractor = load_extractor(job.inception_weights, job.device)
    original, recon = _load(job.out / "original" / "samples.npz"), _load(job.out / "recon" / "samples.npz")
    outputs = {t: _load(job.out / t / "samples.npz") for t in TASKS}
    generated = {t: Editor(generator, job.spec(t)).generated_pixels() for t in TASKS}
    sets = {"original": original, "recon": recon, **{t: composite(outputs[t], original, generated[t]) for t in TASKS}}
    total, done = sum(len(a) for a in sets.values()), 0
    feats = {}
    progress(ProgressEvent(FEATURE_STAGE, 0, total))
    for name, images in sets.items():
        feats[name] = features(extractor, images, job.feature_batch_size,
                               lambda k, base=done: progress(ProgressEvent(FEATURE_STAGE, base + k, total)))
        done += len(images)
    from varbench.results.edit import task_entry

    entries = []
    for t in TASKS:
        targets = plans[t].labels_array() if t == "class_edit" else None
        s = task_scores(t, outputs[t], original, recon, generated[t],
                        {"composite": feats[t], "original": feats["original"]}, targets)
        rule = TARGET_RULE if t == "class_edit" else f"null class {generator.var.null_class} (no class)"
        entries.append(task_entry(manifest["tasks"][t], label_rule=rule, num_images=len(original),
                                  samples_npz=str(job.out / t / "samples.npz"),
                                  samples_sha256=artefacts[t]["array_sha256"], scores=s))
    recon_scores = reconstruction_scores(recon, original, feats, str(job.out / "recon" / "samples.npz"),
                                         artefacts["recon"]["array_sha256"])
    return _result(generator, job, extractor, entries, recon_scores, artefacts, len(original), seconds)


def _result(generator, job, extractor, entries, recon_scores, artefacts, n: int, seconds: float) -> dict:
    from varbench.edit.protocol import ORDER_RULE, TARGET_RULE
    from varbench.generators.protocol import model_info, sampling_record
    from varbench.results import schema
    from varbench.results.edit import EditResults

    res = int(generator.resolution)
    results = EditResults(mode="benchmark", num_images=n, resolution=res, preprocessed=_preprocessed(job),
                          tasks=entries, reconstruction=recon_scores, class_rank=RANK_RULE, png_dir=None,
                          manifest=str(job.out / "manifest.json"), wall_seconds=round(seconds, 3))
    protocol = schema.empty_protocol()
    protocol.update(
        model=model_info(generator), sampling=sampling_record(generator),
        labels=schema.LabelsInfo(scheme="edit_benchmark", per_class=None, num_classes=0, rule=TARGET_RULE),
        seeds=schema.SeedsInfo(seed=job.seed, rng=job.rng, rule=SEED_RULE),
        samples=schema.SamplesInfo(count=n, resolution=res, height=res, width=res,
                                   sha256=artefacts["original"]["array_sha256"],
                                   path=str(job.out / "original" / "samples.npz"), kind="npz", order=ORDER_RULE),
        extractor=schema.ExtractorInfo(id=extractor.id, official_weights=extractor.official,
                                       weights_sha256=extractor.weights_sha256, dtype=extractor.dtype,
                                       device=str(extractor.device)),
        arithmetic=dict(ARITHMETIC))
    warnings = []
    if generator.random_weights:
        warnings.append(f"{generator.name} has random weights: its edits test the pipeline, not a model")
    if not extractor.official:
        warnings.append(f"Inception weights {extractor.weights_path} are not the official file ({extractor.id}): "
                        "FID/KID and class ranks are not meaningful")
    if n < 2:
        warnings.append("FID/KID need at least 2 images: left out")
    config = {**rundir.canonical(dataclasses.asdict(job)), "chunk": job.chunk}
    return schema.make("edit", config, results, protocol, device=job.device,
                       random_weights=bool(generator.random_weights) or not extractor.official, warnings=warnings)


def _preprocessed(job) -> int:
    manifest = json.loads((job.out / "manifest.json").read_text())
    return int(manifest.get("preprocessed", 0))
