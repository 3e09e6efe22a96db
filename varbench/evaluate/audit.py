"""``varbench audit``: is a sample set what the protocol asks for, before it is scored?

``audit(samples)`` reads the images of an opened ``SampleSet`` once (``varbench.evaluate.duplicates``) and checks,
under the ADM ImageNet protocol of VAR (``PROTOCOLS["adm"]``; ``"none"`` keeps only the integrity checks):

- format and range: uint8 NHWC RGB (``audit_path`` also reports float or NCHW arrays, which ``open_samples`` refuses);
- count: 50,000 images (VAR README: 50 per class of 1000); resolution: the reference's side, else 256 or 512;
- labels, class balance (50 per class) and order: the ADM evaluator computes IS over consecutive 5,000-row splits in
  file order, so a class-sorted file gives each split 100 classes and a deflated IS (guided-diffusion#165: 62 vs 298;
  VAR#77, VAR#83);
- exact duplicates (sha256 of each image) and near-duplicates (64-bit dHash within ``near_threshold`` bits);
- for a varbench generate directory (``varbench.evaluate.audit_run``): plan complete, chunk sha256s, samples.npz
  sha256 and seeds.

Every check has a fixed key and status pass / warn / fail / skip (``varbench.results.audit``); a fail means the scores
of this set are not the protocol's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from varbench.errors import VarbenchError
from varbench.evaluate import audit_run
from varbench.evaluate.audit_checks import (PROTOCOLS, AuditProtocol, count_check, duplicate_checks, format_check,
                                            get_protocol, label_checks, range_check, resolution_check)
from varbench.evaluate.duplicates import scan
from varbench.evaluate.samples import LABEL_KEYS, SAMPLES_FILE, SampleSet, load_npz, npz_array, npz_keys, open_samples
from varbench.progress import Progress, no_progress
from varbench.results import schema
from varbench.results.audit import CHECK_KEYS, AuditCheck, AuditResults, check, skip, verdict

__all__ = ["PROTOCOLS", "AuditProtocol", "AuditReport", "audit", "audit_path", "get_protocol", "reference_resolution"]


@dataclass
class AuditReport:
    path: Path
    protocol: AuditProtocol
    checks: dict[str, AuditCheck]  # every key of CHECK_KEYS, in that order
    samples: SampleSet | None = None  # None when the images could not be opened as uint8 NHWC
    duplicates: dict = field(default_factory=dict)
    array_sha256: str | None = None  # of the uint8 (N, H, W, 3) array, for the result's protocol.samples
    resolution: int | None = None  # the side a reference pins (None: any of the protocol's sides)
    reference: str | None = None
    batch_size: int = 256
    seconds: float = 0.0

    @property
    def failed(self) -> list[AuditCheck]:
        return [c for c in self.checks.values() if c["status"] == "fail"]

    @property
    def warned(self) -> list[AuditCheck]:
        return [c for c in self.checks.values() if c["status"] == "warn"]

    @property
    def warnings(self) -> list[str]:
        """One line per warn and fail, for a scoring result's warnings."""
        return [f"audit {c['key']} ({c['status']}): {c['message']}" for c in self.failed + self.warned]

    @property
    def verdict(self) -> str:
        return verdict(self.checks)

    def to_result(self) -> schema.Result:
        """The result of kind "audit" (``varbench.results.audit.AuditResults``)."""
        protocol = schema.empty_protocol()
        s = self.samples
        if s is not None:
            for key in ("model", "sampling", "labels", "seeds"):
                protocol[key] = (s.source or {}).get(key)
            protocol["samples"] = s.info(self.array_sha256)
        n = s.n if s is not None else 0
        results = AuditResults(
            verdict=self.verdict, failed=[c["key"] for c in self.failed], warned=[c["key"] for c in self.warned],
            checks=self.checks, protocol=dataclasses.asdict(self.protocol), duplicates=self.duplicates,
            seconds=round(self.seconds, 3), images_per_second=round(n / self.seconds, 1) if self.seconds else None)
        config = {"samples": str(self.path), "protocol": self.protocol.name, "resolution": self.resolution,
                  "reference": self.reference, "batch_size": self.batch_size}
        return schema.make("audit", config, results, protocol, device="cpu",
                           random_weights=bool(s is not None and s.random_weights), warnings=self.warnings)


def audit(samples: SampleSet, protocol: str | AuditProtocol = "adm", *, resolution: int | None = None,
          reference: str | None = None, batch_size: int = 256, progress: Progress = no_progress) -> AuditReport:
    """Audit an opened sample set, reading its images once.  ``resolution``: the side the scores need (a reference's;
    default: any of the protocol's sides)."""
    proto = get_protocol(protocol)
    if batch_size < 1:
        raise VarbenchError(f"--batch-size must be at least 1, got {batch_size}")
    t0 = time.perf_counter()
    run_dir = audit_run.run_dir_of(samples)
    file_digest = _NpzDigest.over(samples, run_dir)
    decoded = hashlib.sha256() if samples.array is None else None  # folders: the sha256 of the decoded array
    consumers = [d.update for d in (file_digest, decoded) if d is not None]
    images = scan(samples, batch_size=batch_size, consumers=consumers, progress=progress)
    checks = {"format": format_check(samples), "range": range_check(images),
              "count": count_check(samples.n, proto),
              "resolution": resolution_check(samples.height, samples.width, proto, resolution),
              **label_checks(samples.labels, samples.n, proto, _missing_labels(samples))}
    dup_checks, duplicates = duplicate_checks(images, samples.n, proto)
    checks.update(dup_checks)
    if run_dir is None:
        checks.update(audit_run.not_a_run())
    else:
        checks.update(audit_run.run_checks(run_dir, samples, file_digest.hexdigest() if file_digest else None,
                                           progress))
    return AuditReport(path=samples.path, protocol=proto, checks={k: checks[k] for k in CHECK_KEYS}, samples=samples,
                       duplicates=duplicates, array_sha256=decoded.hexdigest() if decoded else samples.content_key,
                       resolution=resolution, reference=reference, batch_size=batch_size,
                       seconds=time.perf_counter() - t0)


def audit_path(path, protocol: str | AuditProtocol = "adm", *, resolution: int | None = None,
               reference: str | None = None, batch_size: int = 256, progress: Progress = no_progress) -> AuditReport:
    """Open SAMPLES and audit them; an npz whose arr_0 is not uint8 NHWC RGB (float, NCHW, grey) is reported as a
    failed format check instead of refused.  Unreadable input raises ``VarbenchError``."""
    proto = get_protocol(protocol)
    try:
        samples = open_samples(path)
    except VarbenchError as error:
        report = _bad_array_report(Path(path).expanduser(), proto, resolution, reference, error)
        if report is None:
            raise
        return report
    return audit(samples, proto, resolution=resolution, reference=reference, batch_size=batch_size, progress=progress)


def reference_resolution(name: str) -> int:
    """The side of a reference: a built one (name or .npz path), else a known one's listed resolution."""
    from varbench.evaluate import reference as references

    if name in references.known() and not references.path_for(name).is_file():
        return int(references.known()[name]["resolution"])
    stats, _ = references.resolve(name)
    return max(stats.height, stats.width)


# ---- helpers --------------------------------------------------------------------------------------------------------


def _missing_labels(samples: SampleSet) -> str:
    if samples.array is None:
        return "an image folder stores no labels"
    npz = samples.path / SAMPLES_FILE if samples.path.is_dir() else samples.path
    stored = [k for k in LABEL_KEYS if k in npz_keys(npz)]
    if stored:
        return f"{stored[0]!r} is not {samples.n} integer labels"
    return "no labels stored (arr_0 only, as the ADM and VAR packers write)"


class _NpzDigest:
    """sha256 of a generate run's uncompressed samples.npz, while its arr_0 rows stream past once: the bytes before
    the array are read from the file, the rows come from the audit's pass, the bytes after are read at the end."""

    def __init__(self, path: Path, offset: int, nbytes: int):
        self.path, self.end = path, offset + nbytes
        self.h = hashlib.sha256()
        with open(path, "rb") as f:
            self.h.update(f.read(offset))

    @classmethod
    def over(cls, samples: SampleSet, run_dir: Path | None) -> _NpzDigest | None:
        arr = samples.array
        if run_dir is None or not isinstance(arr, np.memmap) or not arr.flags.c_contiguous:
            return None
        npz = run_dir / SAMPLES_FILE
        if not npz.is_file() or Path(arr.filename).resolve() != npz.resolve():
            return None
        return cls(npz, int(arr.offset), int(arr.nbytes))

    def update(self, batch: np.ndarray) -> None:
        self.h.update(batch)

    def hexdigest(self) -> str:
        with open(self.path, "rb") as f:
            f.seek(self.end)
            while block := f.read(1 << 22):
                self.h.update(block)
        return self.h.hexdigest()


def _bad_array_report(path: Path, proto: AuditProtocol, resolution: int | None, reference: str | None,
                      error: VarbenchError) -> AuditReport | None:
    """An npz whose arr_0 exists but is not uint8 (N, H, W, 3): the format fails; count, resolution and the label
    checks still run.  None when the problem is another one (the caller re-raises it)."""
    npz = path if path.is_file() else path / SAMPLES_FILE
    try:
        array = npz_array(npz, "arr_0") if npz.suffix.lower() == ".npz" and npz.is_file() else None
    except VarbenchError:
        return None
    if array is None or (array.dtype == np.uint8 and array.ndim == 4 and array.shape[-1] == 3 and len(array)):
        return None
    n = len(array) if array.ndim else 0
    checks = {"format": check("format", "fail", f"{array.dtype} {tuple(array.shape)}", "uint8 (N, H, W, 3)",
                              str(error)),
              "range": _raw_range(array), "count": count_check(n, proto)}
    hw = _raw_hw(array)
    checks["resolution"] = resolution_check(*hw, proto, resolution) if hw \
        else skip("resolution", "no image axes")
    checks.update(label_checks(_npz_labels(npz, n), n, proto, "no labels stored"))
    why = "the images are not uint8 (N, H, W, 3): fix the format first"
    checks.update({k: skip(k, why) for k in ("exact_duplicates", "near_duplicates")})
    checks.update(audit_run.not_a_run(why))
    return AuditReport(path=path, protocol=proto, checks={k: checks[k] for k in CHECK_KEYS}, resolution=resolution,
                       reference=reference)


def _raw_range(array: np.ndarray) -> AuditCheck:
    if not (np.issubdtype(array.dtype, np.number) and array.ndim and len(array)):
        return skip("range", f"{array.dtype} values")
    head = np.asarray(array[:64])
    lo, hi = float(head.min()), float(head.max())
    hint = " ([0, 1] floats: scale by 255, round, clip, cast)" if 0 <= lo and hi <= 1 else \
        " ([-1, 1] floats: (x + 1) * 127.5, round, clip, cast)" if -1 <= lo < 0 and hi <= 1 else ""
    return check("range", "fail", [lo, hi], [0, 255],
                 f"{array.dtype} values in [{lo:g}, {hi:g}] over the first {len(head)} images: uint8 0..255 "
                 f"expected{hint}")


def _raw_hw(array: np.ndarray) -> tuple[int, int] | None:
    if array.ndim == 4:
        return (array.shape[2], array.shape[3]) if array.shape[1] == 3 and array.shape[-1] != 3 \
            else (array.shape[1], array.shape[2])
    return (array.shape[1], array.shape[2]) if array.ndim == 3 else None


def _npz_labels(npz: Path, n: int) -> np.ndarray | None:
    with load_npz(npz) as z:
        for key in LABEL_KEYS:
            if key in z.files:
                cand = z[key]
                return cand if cand.ndim == 1 and len(cand) == n and np.issubdtype(cand.dtype, np.integer) else None
    return None
