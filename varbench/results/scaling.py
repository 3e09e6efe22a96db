"""The ``results`` section of kind "scaling" results, and the VAR paper's fitted scaling laws (package data).

Two records share the kind, told apart by ``results["what"]``:

- ``"model"`` (``ScalingResults``): one model's teacher-forced validation loss and token accuracy, written by
  ``varbench scaling`` to ``OUT/<model>/result.json``;
- ``"fits"`` (``ScalingFitsResults``): power laws metric = (c * N)^alpha over several models, ``OUT/fits.json``.

Units: ``l_*`` are cross-entropies in nats; ``acc_*`` and ``err_*`` are percent (``err = 100 - acc``).  The fits use
the error as a fraction (``err / 100``), the unit of the paper's printed Err laws (their values lie in 0.90-0.97),
and N in billions of transformer parameters (the VQVAE excluded, as the paper's model sizes).

``paper_laws()`` reads ``published/scaling_laws.csv``: metric, c, alpha, pearson_r and their source.
"""

from __future__ import annotations

import csv
import functools
from importlib import resources
from typing import TypedDict

from varbench.errors import VarbenchError

METRICS = ("l_avg", "l_last", "err_avg", "err_last")  # the four fitted quantities, in the paper's order of Fig. 5
LAWS_FILE = "scaling_laws.csv"
_LAW_COLUMNS = ("metric", "c", "alpha", "pearson_r", "x", "y", "paper_version", "source", "notes")


class ScaleStats(TypedDict):
    scale: int  # index of the scale, 0 = the 1x1 map
    side: int  # token-map side pn
    resolution: int  # 16 * pn: the ``L_<reso>`` name of the official trainer's per-scale logging
    tokens: int  # pn * pn per image
    ce: float  # mean cross-entropy (nats) over this scale's tokens of every image
    acc: float  # argmax accuracy over those tokens, percent


class DataInfo(TypedDict):
    path: str  # the --data argument (absolute)
    kind: str  # "folder" | "npz"
    naming: str | None  # folder class names: "class_index" ("390") | "synset" ("n02526121"); None for npz
    count: int  # images evaluated (after --limit)
    available: int  # images found
    limit: int | None  # --limit
    order: str  # the evaluation order (which images --limit keeps)
    listing_sha256: str  # cheap identity: relative paths, labels and sizes (folder) / file size, shape, labels (npz)
    content_sha256: str  # sha256 over the per-image sha256 (file bytes, or the npz row's uint8 bytes), in order
    classes: int  # distinct labels evaluated


class ScalingResults(TypedDict):
    what: str  # "model"
    model: str  # zoo name or the custom checkpoint's name
    params: int  # transformer parameters N (VQVAE excluded)
    params_billions: float  # N / 1e9, the x of the fits
    num_images: int
    tokens_per_image: int  # sum of pn^2 (680 at 256 px)
    last_scale_tokens: int  # patch_nums[-1]^2 (256 at 256 px)
    l_avg: float  # cross-entropy over all tokens of all images (eval_ep's L_mean), nats
    l_last: float  # over the last scale's tokens (eval_ep's L_tail), nats
    acc_avg: float  # argmax == target over all tokens, percent (eval_ep's acc_mean)
    acc_last: float  # over the last scale, percent (eval_ep's acc_tail)
    err_avg: float  # 100 - acc_avg, percent
    err_last: float  # 100 - acc_last, percent
    l_avg_sem: float | None  # standard error of l_avg over images (std of per-image means / sqrt(n)); None if n < 2
    l_last_sem: float | None
    per_scale: list  # [ScaleStats], coarse to fine
    paper_law: dict  # metric -> the paper's law at this N (err as a fraction, as the law)
    data: DataInfo
    protocol: dict  # the validation protocol, spelled out (see varbench.scaling.loss.PROTOCOL)
    random_weights: bool  # the model's weights are random: the numbers test the pipeline, not a model
    num_chunks: int
    chunks_evaluated: int  # this session, all processes
    chunks_reused: int  # finished by an earlier session, verified by sha256
    seconds: float  # wall time of this session
    images_per_second: float | None  # images evaluated this session / evaluation wall time


class PowerLawFit(TypedDict):
    metric: str  # one of METRICS
    n_models: int
    alpha: float | None  # exponent of metric = (c * N)^alpha (least squares of log metric on log N); None if n < 2
    c: float | None  # exp(log_c); None when alpha is 0 or undefined, or exp overflows (alpha near 0)
    log_c: float | None  # ln c = intercept / alpha (the line is alpha * (log_c + ln N) in log space)
    r: float | None  # Pearson r of (log N, log metric)
    r_ci95: list | None  # Fisher z: tanh(atanh(r) +- 1.96 / sqrt(n - 3)); None when n < 4 (no interval exists)
    alpha_ci95: list | None  # t interval of the slope (n - 2 degrees of freedom); None when n < 3
    paper_alpha: float
    paper_c: float
    paper_r: float
    note: str  # why an interval or fit is missing, or "" when complete


class FitPoint(TypedDict):
    model: str
    params_billions: float  # N
    l_avg: float  # nats
    l_last: float
    err_avg: float  # fraction (100 - acc_avg) / 100, the unit of the paper's Err laws
    err_last: float
    random_weights: bool
    result: str | None  # the model's result.json, when the fits were made from files


class ScalingFitsResults(TypedDict):
    what: str  # "fits"
    models: list  # model names, in order of N
    points: list  # [FitPoint], the data of the fits
    fits: list  # [PowerLawFit], in METRICS order
    x: str  # what N is
    err_unit: str  # "fraction: (100 - acc) / 100"
    interval_rule: str  # how r_ci95 and alpha_ci95 are made
    data_content_sha256: list  # distinct data identities of the points (one when all saw the same images)
    random_weights: bool  # any point's model had random weights


@functools.lru_cache(maxsize=1)
def _laws() -> tuple[dict, ...]:
    path = resources.files("varbench.results") / "published" / LAWS_FILE
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != _LAW_COLUMNS:
                raise VarbenchError(f"{path}: columns {reader.fieldnames} differ from {list(_LAW_COLUMNS)}")
            rows = []
            for raw in reader:
                rows.append({**raw, "c": float(raw["c"]), "alpha": float(raw["alpha"]),
                             "pearson_r": float(raw["pearson_r"])})
    except (OSError, ValueError) as e:
        raise VarbenchError(f"cannot read the published scaling laws {path}: {e}") from None
    if sorted(r["metric"] for r in rows) != sorted(METRICS):
        raise VarbenchError(f"{path}: expected one row for each of {', '.join(METRICS)}")
    return tuple(rows)


def paper_laws() -> dict[str, dict]:
    """metric -> {metric, c, alpha, pearson_r, x, y, paper_version, source, notes} (fresh dicts)."""
    return {r["metric"]: dict(r) for r in _laws()}


def paper_value(metric: str, params_billions: float) -> float:
    """The paper's law (c * N)^alpha at N billion parameters (err as a fraction)."""
    law = paper_laws()[metric]
    return (law["c"] * params_billions) ** law["alpha"]
