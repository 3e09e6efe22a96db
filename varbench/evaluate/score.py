"""``varbench fid``: score a sample set against a built reference in the ADM evaluator's protocol.

``evaluate()`` wires samples, cached features and references into the metric computations of ``compute`` (and, on
request, the cross-check backends and the bootstrap intervals) and returns a results-schema record of kind "fid".
The config and its checks live in ``config``.
"""

from __future__ import annotations

import time

from varbench.evaluate import backends as backend_impl
from varbench.evaluate import bootstrap
from varbench.evaluate import reference as references
from varbench.evaluate import samples as sample_sets
from varbench.evaluate.cache import load_extractor, sample_features
from varbench.evaluate.compute import FeatureSet, metric_values
from varbench.evaluate.config import EvalConfig, arithmetic, required_counts
from varbench.progress import Progress, no_progress
from varbench.results import schema

__all__ = ["EvalConfig", "evaluate"]


def evaluate(samples_path, ref: str, config: EvalConfig, *, weights=None,
             progress: Progress = no_progress) -> schema.Result:
    """Score a sample set against a built reference; returns a result of kind "fid"."""
    from varbench.features.inception import precise_float32

    samples = sample_sets.open_samples(samples_path)
    reference, ref_path = references.resolve(ref)
    references.require_compatible(reference, reference.extractor_id, samples.resolution)  # the resolution, early
    warnings = list(samples.warnings) + required_counts(config, samples.n, len(reference.features))
    extractor = load_extractor(weights, config.device, config.dtype)  # only after every cheap check passed
    references.require_compatible(reference, extractor.id, samples.resolution)
    if not extractor.official:
        warnings.append(f"Inception weights {extractor.weights_path} are not the official file "
                        f"({extractor.id}): numbers are not comparable with published ones")
    if samples.random_weights:
        warnings.append("the samples come from a random-weight model (its generate result says so)")
    t0 = time.perf_counter()
    feats = sample_features(samples, extractor, batch_size=config.batch_size, dtype=config.dtype,
                            use_cache=config.feature_cache, progress=progress) if "adm" in config.backends else None
    values, details, intervals = {}, {}, None
    for backend in config.backends:
        if backend == "adm":
            sets = {"inception": FeatureSet({"pool3": feats.pool3, "logits": feats.logits, "spatial": feats.spatial},
                                            reference)}
            values["adm"], details, metric_warnings, items = metric_values(sets, config, samples.labels)
            warnings += metric_warnings
            if config.bootstrap:
                intervals = bootstrap.intervals(values["adm"], sets, items, config, progress)
        elif backend == "torch-fidelity":
            values[backend], details[backend] = backend_impl.torch_fidelity(samples, reference, extractor, config)
        else:
            values[backend], details[backend] = backend_impl.clean_fid(samples, reference, extractor, config)
    primary = "adm" if "adm" in values else config.backends[0]
    differences = {name: {k: v - values["adm"][k] for k, v in vals.items() if k in values["adm"]}
                   for name, vals in values.items() if name != "adm" and "adm" in values}
    results = schema.FidResults(
        metrics=values[primary], backend=primary, backends=values, differences=differences, details=details,
        features=None if feats is None else {
            "cached": feats.cached, "cache_path": feats.cache_path, "seconds": feats.seconds,
            "images_per_s": (samples.n / feats.seconds) if not feats.cached and feats.seconds else None},
        intervals=intervals, seconds=time.perf_counter() - t0)
    protocol = _protocol(samples, feats, reference, ref_path, extractor, config)
    with precise_float32() as precision:
        protocol["arithmetic"]["float32"] = precision
    run_config = {**config.to_dict(), "samples": str(samples.path), "ref": ref,
                  "inception_weights": extractor.weights_path}
    return schema.make("fid", run_config, results, protocol, device=config.device,
                       random_weights=samples.random_weights or not extractor.official, warnings=warnings)


def _protocol(samples, feats, reference, ref_path, extractor, config: EvalConfig) -> schema.Protocol:
    protocol = schema.empty_protocol()
    for key in ("model", "sampling", "labels", "seeds"):  # how the samples were made, when a generate run says so
        protocol[key] = (samples.source or {}).get(key)
    protocol["samples"] = samples.info(feats.array_sha256 if feats else sample_sets.decoded_sha256(samples))
    protocol["reference"] = reference.info(ref_path)
    protocol["extractor"] = schema.ExtractorInfo(id=extractor.id, official_weights=extractor.official,
                                                 weights_sha256=extractor.weights_sha256, dtype=extractor.dtype,
                                                 device=str(extractor.device))
    protocol["arithmetic"] = arithmetic(config)
    return protocol
