"""The ``results`` section of kind "sweep" results: one model generated and scored over a grid of guidance scales
(and optionally top-k / top-p), each point over one or more seeds, written by ``varbench sweep`` to
``OUT/sweep.json``.

Every point states its guidance rule and the effective weight on the conditional logits at the last step
(``last_step_weight``: VAR's linear ramp 1 + cfg, LlamaGen's constant cfg; 1 = no guidance), so points of both
families sit on one axis.  Per metric, a point's ``summary`` holds the mean, minimum, maximum and standard deviation
over its seeds: tables show the mean; EDM2 reports the minimum over runs (``min``).
"""

from __future__ import annotations

from typing import TypedDict

SUMMARY_RULE = ("per metric over the seeds of a point: mean (shown in tables), min (EDM2's convention: the best of "
                "several runs), max, std (ddof 1; 0 with one seed), spread = max - min")
OPTIMA = ("no_guidance", "fid", "fd_dinov2")  # the points reported apart (EDM2 found FID/FD optima apart)


class SeedRun(TypedDict):
    seed: int
    out: str  # the generate directory of this point and seed
    fid_json: str  # its score (a kind "fid" result)
    samples_sha256: str
    metrics: dict  # metric key -> value


class Summary(TypedDict):
    mean: float
    min: float
    max: float
    std: float
    spread: float  # max - min
    n: int  # seeds


class SweepPoint(TypedDict):
    cfg: float
    top_k: int
    top_p: float
    guidance_rule: str  # "var_ramp" | "constant"
    last_step_weight: float  # weight on the conditional logits at the last step (1 = no guidance)
    runs: list  # SeedRun per seed
    summary: dict  # metric key -> Summary


class Optimum(TypedDict):
    point: int  # index into points
    cfg: float
    top_k: int
    top_p: float
    last_step_weight: float
    metric: str | None  # the metric minimised (None for the no-guidance point)
    value: float | None  # its mean over seeds at that point
    tuned_on_reference: bool  # chosen by scoring against the evaluation reference itself
    reference: str | None  # that reference


class SweepResults(TypedDict):
    model: str
    grid: dict  # {"cfg": [...], "top_k": [...], "top_p": [...]}: the values swept (one value = fixed)
    seeds: list
    points: list  # SweepPoint, in grid order (cfg slowest... top_p fastest)
    optima: dict  # OPTIMA key -> Optimum | None (None: no such point in the grid / metric not computed)
    summary_rule: str
    reference: str | None  # the Inception reference of the scores
    dinov2_reference: str | None
    seconds: float
