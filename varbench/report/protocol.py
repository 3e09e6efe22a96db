"""Where a reproduced number's protocol differs from a published row's, read from the result's fixed protocol paths.

Flags (each a short phrase in the report's "protocol differences" column): random weights; another reference batch;
Inception weights that are not the official file; another sample count; another label scheme; another guidance
value or rule (VAR's ramp vs a constant scale, with the weight at the last step); other top-k/top-p; another
generated or scored resolution; another paper version of the weights; rejection sampling; facts not stated.
"""

from __future__ import annotations

import math
from pathlib import Path

NOT_STATED = ("not_stated", "not_applicable")


def differences(result: dict, row: dict) -> list[str]:
    """Every protocol difference between ``result`` (a results-schema record) and ``row`` (a published row)."""
    p = result["protocol"]
    model, sampling, labels, samples = p["model"] or {}, p["sampling"], p["labels"], p["samples"] or {}
    out: list[str] = []
    if result["random_weights"] or model.get("random_weights"):
        out.append("random weights")
    out += _reference(p["reference"], row["reference_batch"])
    if (p["extractor"] or {}).get("official_weights") is False:
        out.append("Inception weights not the official file")
    if row["samples"] is not None and samples.get("count") is not None and samples["count"] != row["samples"]:
        out.append(f"{samples['count']} samples vs {row['samples']}")
    if row["label_scheme"] not in NOT_STATED:
        if labels is None:
            out.append(f"label scheme unknown (published: {row['label_scheme']})")
        elif labels["scheme"] != row["label_scheme"]:
            out.append(f"labels {labels['scheme']} vs {row['label_scheme']}")
    out += _guidance(sampling, row)
    out += _resolution(model, samples, row)
    if model.get("name") and not out.count("random weights"):
        version = model.get("paper_version")
        if version is None:
            out.append(f"paper version of the weights not known (published: {row['paper_version']})")
        elif version != row["paper_version"]:
            out.append(f"weights match {version}, published {row['paper_version']}")
    if row["rejection"]:
        out.append("published uses rejection sampling")
    return out


def _reference(reference: dict | None, batch: str) -> list[str]:
    if batch == "not_stated":
        return ["published reference batch not stated"]
    if reference is None:
        return [f"reference unknown (published: {batch})"]
    ours = reference.get("batch")
    if ours is None or Path(ours).stem.lower() != batch.lower():
        what = f"{reference['name']} (batch {ours})" if ours else f"{reference['name']} (computed statistics)"
        return [f"reference {what} vs {batch}"]
    return []


def _guidance(sampling: dict | None, row: dict) -> list[str]:
    if row["cfg"] is None:
        out = ["published cfg not stated"]
    elif sampling is None:
        return ["sampling settings unknown"]
    else:
        out = [] if _close(sampling["cfg"], row["cfg"]) else [f"cfg {sampling['cfg']:g} vs {row['cfg']:g}"]
    if sampling is None:
        return out
    rule = row["cfg_semantics"]
    if rule not in NOT_STATED and sampling["guidance_rule"] != rule:
        out.append(f"cfg rule {sampling['guidance_rule']} vs {rule} (last-step weight "
                   f"{sampling['last_step_weight']:g}; the published rule gives {_last_weight(rule, row['cfg'])})")
    for key in ("top_k", "top_p"):
        published = row[key]
        if published is not None and not _close(_off(key, sampling[key]), _off(key, published)):
            out.append(f"{key} {sampling[key]:g} vs {published:g}")
    return out


def _resolution(model: dict, samples: dict, row: dict) -> list[str]:
    out = []
    generated, scored = model.get("generated_resolution"), samples.get("resolution")
    resized = row["resolution"] != row["eval_resolution"]
    if generated is None and resized:
        out.append(f"published generated at {row['resolution']} and resized to {row['eval_resolution']}; "
                   "the run does not record its generation size")
    elif generated is not None and generated != row["resolution"]:
        out.append(f"generated at {generated} vs {row['resolution']}")
    if scored is not None and scored != row["eval_resolution"]:
        out.append(f"scored at {scored} vs {row['eval_resolution']}")
    return out


def _last_weight(rule: str, cfg: float | None) -> str:
    if cfg is None:
        return "?"
    return f"{1 + cfg:g}" if rule == "var_ramp" else f"{cfg:g}"


def _off(key: str, value: float) -> float:
    """top-p 1 keeps every token: the same as off (0)."""
    return 0.0 if key == "top_p" and value >= 1 else float(value)


def _close(a, b) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    except (TypeError, ValueError):
        return False
