"""The ``results`` section of a result of kind "audit" (``varbench audit``, ``varbench.evaluate.audit``).

Every check has a fixed key (``CHECK_KEYS``) and is always present, so readers read ``results["checks"][key]``; a
check that does not apply to the sample set (the run checks of a plain npz) or cannot run (no labels) has status
"skip" and says why.  The statuses:

    pass   the set is as the protocol asks
    warn   allowed, but the reader of the numbers must know (printed with the scores)
    fail   the set breaks the protocol: its scores are not the protocol's (``varbench audit`` exits 1)
    skip   not applicable or not checkable here (the message says which)
"""

from __future__ import annotations

from typing import Any, TypedDict

STATUSES = ("pass", "warn", "fail", "skip")
CHECK_KEYS = (
    "format",  # uint8, NHWC, 3 channels (and lossy/converted image files of a folder)
    "range",  # pixel values: min and max over the whole set
    "count",  # number of images
    "resolution",  # H x W against the protocol's (or the reference's, or the run's) side
    "labels",  # class labels stored with the images (npz ``labels``/``arr_1``, a generate directory)
    "class_balance",  # images per class
    "order",  # class-sorted vs shuffled rows, in the IS splits of the ADM evaluator
    "exact_duplicates",  # identical images (sha256 of each image's bytes)
    "near_duplicates",  # images whose 64-bit difference hashes are within the protocol's Hamming threshold
    "run_plan",  # generate directory: finished, every planned chunk present with the planned indices
    "run_chunks",  # generate directory: each chunk file's sha256 equals its manifest record
    "run_samples",  # generate directory: samples.npz (file and arr_0) sha256 equal the result's and the manifest's
    "run_seeds",  # generate directory: seeds unique and a function of (seed, index or chunk) only
)


class AuditCheck(TypedDict):
    key: str  # one of CHECK_KEYS
    status: str  # one of STATUSES
    value: Any  # what was measured (a number, a short string or a short list; None when skipped)
    expected: Any  # what the protocol asks (None: anything goes)
    message: str  # one line: what the value means and, for warn/fail, what to do


class AuditResults(TypedDict):
    verdict: str  # "fail" if any check failed, else "warn" if any warned, else "pass"
    failed: list  # keys of the failed checks, in CHECK_KEYS order
    warned: list  # keys of the checks that warned
    checks: dict  # key -> AuditCheck, every key of CHECK_KEYS
    protocol: dict  # the audit protocol's parameters (varbench.evaluate.audit.AuditProtocol as a dict)
    duplicates: dict  # exact_groups: [[row, ...]], near_pairs: [[row, row, bits]] (first few), counts, hash rule
    seconds: float  # wall time of the audit (the images read once)
    images_per_second: float | None


def check(key: str, status: str, value: Any = None, expected: Any = None, message: str = "") -> AuditCheck:
    """One check's entry (the writers build every check through here)."""
    if key not in CHECK_KEYS:
        raise ValueError(f"unknown audit check {key!r}")
    if status not in STATUSES:
        raise ValueError(f"unknown audit status {status!r}")
    return AuditCheck(key=key, status=status, value=value, expected=expected, message=message)


def skip(key: str, why: str) -> AuditCheck:
    return check(key, "skip", message=why)


def verdict(checks: dict) -> str:
    statuses = {c["status"] for c in checks.values()}
    return "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"
