"""``varbench fid``: score a sample set against a built reference in the ADM evaluator's protocol.

``evaluate()`` wires samples, cached features and references into the metric computations of ``compute`` (and, on
request, the cross-check backends and the bootstrap intervals) and returns a results-schema record of kind "fid".
The config and its checks live in ``config``.
"""

from __future__ import annotations

import time

from varbench.errors import VarbenchError
from varbench.evaluate import backends as backend_impl
from varbench.evaluate import bootstrap
from varbench.evaluate import reference as references
from varbench.evaluate import samples as sample_sets
from varbench.evaluate.cache import load_extractor, sample_features
from varbench.evaluate.compute import FeatureSet, metric_values
from varbench.evaluate.config import EvalConfig, arithmetic, required_counts
from varbench.features.base import DINOV2, POOL3
from varbench.progress import Progress, no_progress
from varbench.results import schema

__all__ = ["EvalConfig", "evaluate"]


def evaluate(samples_path, ref: str | None, config: EvalConfig, *, weights=None, dinov2_weights=None,
             progress: Progress = no_progress) -> schema.Result:
    """Score a sample set against built references (``ref``: Inception; ``config.dinov2_ref``: DINOv2); returns a
    result of kind "fid".  Every cheap check runs before any weights load or feature is computed."""
    from varbench.features.inception import precise_float32

    samples = sample_sets.open_samples(samples_path)
    refs = _references(ref, config, samples)
    n_ref = {kind: len(r.features) for kind, (r, _) in refs.items()}
    warnings = list(samples.warnings) + required_counts(config, samples.n, n_ref.get("inception", 0),
                                                        n_ref.get("dinov2"))
    if samples.random_weights:
        warnings.append("the samples come from a random-weight model (its generate result says so)")
    t0 = time.perf_counter()
    extractors = _extractors(refs, config, samples, weights, dinov2_weights, warnings)
    audited = _audit(samples, refs, config, warnings, progress)
    sets, feats = {}, {}
    for kind, (reference, _) in refs.items():
        if kind == "dinov2" or "adm" in config.backends:
            feats[kind] = sample_features(samples, extractors[kind], batch_size=config.batch_size,
                                          dtype=config.dtype, use_cache=config.feature_cache, progress=progress)
            sets[kind] = FeatureSet(feats[kind].arrays, reference)
    values, details, intervals = _score(samples, refs, extractors, sets, config, warnings, progress)
    primary = "adm" if "adm" in values else config.backends[0]
    differences = {name: {k: v - values["adm"][k] for k, v in vals.items() if k in values["adm"]}
                   for name, vals in values.items() if name != "adm" and "adm" in values}
    inc = feats.get("inception")
    results = schema.FidResults(
        metrics=values[primary], backend=primary, backends=values, differences=differences, details=details,
        features=None if inc is None else _feature_info(inc, samples.n), intervals=intervals, audit=audited,
        dinov2=None if "dinov2" not in refs else {
            "reference": refs["dinov2"][0].info(refs["dinov2"][1]), "extractor": _extractor_info(extractors["dinov2"]),
            "features": _feature_info(feats["dinov2"], samples.n)},
        seconds=time.perf_counter() - t0)
    protocol = _protocol(samples, feats, refs, extractors, config)
    with precise_float32() as precision:
        protocol["arithmetic"]["float32"] = precision
    run_config = {**config.to_dict(), "samples": str(samples.path), "ref": ref,
                  "inception_weights": getattr(extractors.get("inception"), "weights_path", None),
                  "dinov2_weights": getattr(extractors.get("dinov2"), "weights_path", None)}
    random = samples.random_weights or any(ex.official is False for ex in extractors.values())
    return schema.make("fid", run_config, results, protocol, device=config.device, random_weights=random,
                       warnings=warnings)


def _extractors(refs: dict, config: EvalConfig, samples, weights, dinov2_weights, warnings: list) -> dict:
    """kind -> extractor of every reference, loaded only after every cheap check passed, id-checked against it."""
    extractors = {}
    for kind, (reference, _) in refs.items():
        ex = load_extractor(dinov2_weights if kind == "dinov2" else weights, config.device, config.dtype, kind=kind,
                            heads=config.dinov2_heads, resize=config.dinov2_resize)
        references.require_compatible(reference, ex.id, samples.resolution)
        warnings += _weights_warnings(kind, ex)
        extractors[kind] = ex
    return extractors


def _audit(samples, refs: dict, config: EvalConfig, warnings: list, progress) -> dict | None:
    """The audit's results section; a set that breaks the protocol is still scored, its lines become warnings."""
    if config.audit == "off":
        return None
    from varbench.evaluate.audit import audit

    side = next(iter(refs.values()))[0].height if refs else None
    report = audit(samples, config.audit, resolution=side, progress=progress)
    warnings += report.warnings
    return report.to_result()["results"]


def _references(ref: str | None, config: EvalConfig, samples) -> dict:
    """extractor kind -> (ReferenceStats, path) for the extractors the metrics need, resolution-checked."""
    wanted = {"inception": ref if config.needs_inception else None,
              "dinov2": config.dinov2_ref if config.needs_dinov2 else None}
    if config.needs_inception and ref is None:
        raise VarbenchError("the Inception metrics need --ref NAME (a reference built with varbench ref build)")
    out = {}
    for kind, name in wanted.items():
        if name is None:
            continue
        reference, path = references.resolve(name)
        expected = DINOV2 if kind == "dinov2" else POOL3
        if reference.feature != expected:
            flag = "--dinov2-ref" if kind == "dinov2" else "--ref"
            raise VarbenchError(f"{flag} {name} holds {reference.feature} statistics, but {kind} metrics need a "
                                f"{expected} reference (varbench ref build NAME --extractor {kind})")
        references.require_compatible(reference, reference.extractor_id, samples.resolution)  # the resolution
        out[kind] = (reference, path)
    return out


def _weights_warnings(kind: str, ex) -> list[str]:
    if kind == "inception" and not ex.official:
        return [f"Inception weights {ex.weights_path} are not the official file ({ex.id}): numbers are not "
                "comparable with published ones"]
    if kind == "dinov2" and ex.official is False:
        return [f"DINOv2 weights {ex.weights_path} are not the released ViT-L/14 ({ex.id}): FD_DINOv2 is not "
                "comparable with published ones"]
    return []


def _score(samples, refs: dict, extractors: dict, sets: dict, config: EvalConfig, warnings: list, progress):
    values, details, intervals = {}, {}, None
    for backend in config.backends:
        if backend == "adm":
            values["adm"], details, metric_warnings, items = metric_values(sets, config, samples.labels)
            warnings += metric_warnings
            if config.bootstrap:
                intervals = bootstrap.intervals(values["adm"], sets, items, config, progress)
        elif "inception" in refs:
            run = backend_impl.torch_fidelity if backend == "torch-fidelity" else backend_impl.clean_fid
            values[backend], details[backend] = run(samples, refs["inception"][0], extractors["inception"], config)
    return values, details, intervals


def _feature_info(feats, n: int) -> dict:
    return {"cached": feats.cached, "cache_path": feats.cache_path, "seconds": feats.seconds,
            "images_per_s": (n / feats.seconds) if not feats.cached and feats.seconds else None}


def _extractor_info(ex) -> schema.ExtractorInfo:
    return schema.ExtractorInfo(id=ex.id, official_weights=ex.official, weights_sha256=ex.weights_sha256,
                                dtype=ex.dtype, device=str(ex.device))


def _protocol(samples, feats: dict, refs: dict, extractors: dict, config: EvalConfig) -> schema.Protocol:
    """The protocol section: how the samples were made, the Inception reference and extractor (the DINOv2 ones are
    in ``results.dinov2``), and the arithmetic of every metric."""
    protocol = schema.empty_protocol()
    for key in ("model", "sampling", "labels", "seeds"):  # how the samples were made, when a generate run says so
        protocol[key] = (samples.source or {}).get(key)
    any_feats = feats.get("inception") or feats.get("dinov2")
    protocol["samples"] = samples.info(any_feats.array_sha256 if any_feats else sample_sets.decoded_sha256(samples))
    if "inception" in refs:
        reference, path = refs["inception"]
        protocol["reference"] = reference.info(path)
        protocol["extractor"] = _extractor_info(extractors["inception"])
    protocol["arithmetic"] = arithmetic(config)
    return protocol
