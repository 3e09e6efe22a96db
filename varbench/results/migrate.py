"""Version-1 results (``reports/baseline.json``, users' earlier runs) -> version 2.

Version 1 kept the protocol facts inside ``config`` and ``results`` at these places, which is all this reads:
generate ``config.{model, generator, sampling, seed, rng, dtype, plan}`` and ``results.{num_samples, resolution,
samples_npz, samples_sha256}``; fid ``config.generate`` (when the samples came from a generate directory) and
``results.{samples, reference, extractor, warnings}``; speed needed no protocol.
"""

from __future__ import annotations

from varbench.results.schema import (SCHEMA_VERSION, ExtractorInfo, LabelsInfo, ModelInfo, ReferenceInfo,
                                     SamplesInfo, SeedsInfo, empty_protocol, label_scheme, sampling_info)


def from_v1(obj: dict) -> dict:
    out = {**obj, "schema_version": SCHEMA_VERSION, "protocol": empty_protocol(), "warnings": []}
    config, results = dict(obj.get("config") or {}), dict(obj.get("results") or {})
    kind = obj.get("kind")
    if kind == "generate":
        _generate(out["protocol"], config, results, bool(obj.get("random_weights")))
    elif kind == "fid":
        _fid(out["protocol"], config, results)
        out["warnings"] = list(results.pop("warnings", []) or [])
        results.setdefault("backends", {results.get("backend", "adm"): results.get("metrics", {})})
        results.setdefault("differences", {})
    out["config"], out["results"] = config, results
    out["warnings"].append("migrated from a version-1 result: facts it did not record are unknown")
    return out


def _sampling(sampling: dict | None, family: str | None, dtype: str | None):
    if not isinstance(sampling, dict) or not sampling:
        return None
    if family == "var" or "more_smooth" in sampling:
        from varbench.models.sample import VarSampling

        settings, steps = VarSampling(**{k: sampling[k] for k in ("cfg", "top_k", "top_p", "more_smooth")
                                         if k in sampling}), 10
    else:
        from varbench.baselines.sample import RasterSampling

        keys = ("cfg", "cfg_interval", "temperature", "top_k", "top_p")
        top_p = sampling.get("top_p", 0.0)
        settings = RasterSampling(**{k: sampling[k] for k in keys if k in sampling and k != "top_p"},
                                  top_p=0.0 if top_p in (None, 1.0) else top_p)
        steps = 256
    return sampling_info(settings, dtype or "fp32", steps)


def _labels(plan: dict | None, per_class, explicit: bool | None) -> LabelsInfo | None:
    plan = plan or {}
    per_class = plan.get("per_class", per_class)
    explicit = bool(plan.get("labels")) if explicit is None else explicit
    if per_class is None and not explicit:
        return None
    return LabelsInfo(scheme=label_scheme(per_class, explicit), per_class=per_class,
                      num_classes=int(plan.get("planned_classes") or 0), rule=str(plan.get("label_rule") or ""))


def _generate(p: dict, config: dict, results: dict, random_weights: bool) -> None:
    gen = config.get("generator") or {}
    described = gen.get("describe") or {}
    family = described.get("family")
    res = int(results.get("resolution") or gen.get("resolution") or 0)
    p["model"] = ModelInfo(name=str(config.get("model")), family=str(family), resolution=res,
                           generated_resolution=int(described.get("image_size") or res), params=described.get("params"),
                           checkpoint_sha256=dict(gen.get("checkpoint_sha256") or {}), random_weights=random_weights,
                           paper_version=None)
    p["sampling"] = _sampling(config.get("sampling"), family, config.get("dtype"))
    p["labels"] = _labels(config.get("plan"), None, None)
    p["seeds"] = SeedsInfo(seed=int(config.get("seed", 0)), rng=str(config.get("rng")),
                           rule=str((config.get("plan") or {}).get("seed_rule") or ""))
    p["samples"] = SamplesInfo(count=int(results.get("num_samples") or 0), resolution=res, height=res, width=res,
                               sha256=str(results.get("samples_sha256")), path=str(results.get("samples_npz")),
                               kind="npz", order=None)


def _fid(p: dict, config: dict, results: dict) -> None:
    gen = config.pop("generate", None)
    if isinstance(gen, dict):
        p["model"] = ModelInfo(name=str(gen.get("model")), family="unknown", resolution=int(gen.get("resolution") or 0),
                               generated_resolution=int(gen.get("resolution") or 0), params=None, checkpoint_sha256={},
                               random_weights=bool(gen.get("random_weights")), paper_version=None)
        p["sampling"] = _sampling(gen.get("sampling"), None, gen.get("dtype"))
        p["labels"] = _labels(None, gen.get("per_class"), False)
        p["seeds"] = SeedsInfo(seed=int(gen.get("seed") or 0), rng=str(gen.get("rng")), rule="")
    samples = results.pop("samples", None) or {}
    if samples:
        h, w = (list(samples.get("resolution") or [0, 0]) + [0, 0])[:2]
        p["samples"] = SamplesInfo(count=int(samples.get("n") or 0), resolution=max(h, w), height=h, width=w,
                                   sha256=str(samples.get("sha256") or samples.get("content_key")),
                                   path=str(samples.get("path")), kind=str(samples.get("kind")), order=None)
    ref = results.pop("reference", None) or {}
    if ref:
        res = ref.get("resolution") or [0]
        p["reference"] = ReferenceInfo(name=str(ref.get("name")), batch=None, origin=str(ref.get("origin")),
                                       source_sha256=str(ref.get("sha256")), stats_sha256=str(ref.get("stats_sha256")),
                                       extractor_id=str(ref.get("extractor_id")), n_stats=int(ref.get("n") or 0),
                                       n_features=int(ref.get("n_features") or 0), resolution=int(max(res)))
    ext = results.pop("extractor", None) or {}
    if ext:
        p["extractor"] = ExtractorInfo(id=str(ext.get("id")), official_weights=bool(ext.get("official_weights")),
                                       weights_sha256=str(ext.get("weights_sha256")), dtype=str(ext.get("dtype")),
                                       device=str(ext.get("device")))
    if config.get("pr_distance"):
        p["arithmetic"]["precision"] = p["arithmetic"]["recall"] = f"{config['pr_distance']} distances"
