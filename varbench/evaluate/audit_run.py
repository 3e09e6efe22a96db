"""The checks of ``varbench audit`` that only a ``varbench generate`` directory allows (``varbench.generate.rundir``):
the run finished its plan, every chunk file is the one its manifest recorded, ``samples.npz`` is the one
``result.json`` describes, and the seeds are unique and follow from the plan alone, never from the process count.

Seeds are read from the manifest where it records them (official mode: each chunk record's ``seed`` and the plan's
``chunk_seeds``); per-sample seeds are not stored, so they are recomputed with ``varbench.generate.plan.sample_seed``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
from pathlib import Path

import numpy as np

from varbench.errors import VarbenchError
from varbench.evaluate.duplicates import workers
from varbench.evaluate.samples import SampleSet
from varbench.files import sha256_file
from varbench.generate import rundir
from varbench.generate.plan import Plan, sample_seed
from varbench.progress import Progress, ProgressEvent, no_progress
from varbench.results.audit import AuditCheck, check, skip

RUN_KEYS = ("run_plan", "run_chunks", "run_samples", "run_seeds")
CHUNK_STAGE = "audit: verifying chunks"


def run_dir_of(samples: SampleSet) -> Path | None:
    """The generate directory the samples come from (its npz, the directory itself, or its png/ folder)."""
    if samples.kind == "generate_dir":
        d = samples.path
    elif samples.source is not None:  # DIR/samples.npz or DIR/png given directly
        d = samples.path.parent
    else:
        return None
    return d if (d / rundir.MANIFEST).is_file() else None


def not_a_run(why: str = "not a varbench generate directory") -> dict[str, AuditCheck]:
    return {key: skip(key, why) for key in RUN_KEYS}


def run_checks(run_dir: Path, samples: SampleSet, file_sha256: str | None,
               progress: Progress = no_progress) -> dict[str, AuditCheck]:
    """The four run checks; ``file_sha256``: samples.npz's sha256 when the caller hashed it while reading."""
    try:
        manifest = rundir.read_manifest(run_dir)
        plan = plan_of(manifest["plan"])
    except VarbenchError as e:
        return {**not_a_run("no readable manifest"), "run_plan": check("run_plan", "fail", message=str(e))}
    except (KeyError, TypeError, ValueError) as e:
        return {**not_a_run("no readable plan"), "run_plan": check(
            "run_plan", "fail", message=f"{run_dir / rundir.MANIFEST} has no readable plan ({type(e).__name__}: {e})")}
    records, plan_check = _plan_check(run_dir, manifest, plan, samples)
    return {"run_plan": plan_check, "run_chunks": _chunk_check(run_dir, records, progress),
            "run_samples": _samples_check(run_dir, manifest, samples, file_sha256),
            "run_seeds": _seed_check(manifest, plan, records)}


def plan_of(d: dict) -> Plan:
    """The plan a manifest records (its derived keys, such as num_chunks, are recomputed)."""
    kwargs = {f.name: d[f.name] for f in dataclasses.fields(Plan) if f.name in d}
    if kwargs.get("labels") is not None:
        kwargs["labels"] = tuple(int(x) for x in kwargs["labels"])
    return Plan(**kwargs)


def few(items: list, n: int = 5) -> str:
    return ", ".join(map(str, items[:n])) + (f", ... (+{len(items) - n})" if len(items) > n else "")


def _plan_check(run_dir: Path, manifest: dict, plan: Plan, samples: SampleSet) -> tuple[dict, AuditCheck]:
    """Chunk records by index (the manifest's, else the chunk's own record file) and the run_plan check."""
    listed = {r.get("chunk"): r for r in manifest.get("chunks") or [] if isinstance(r, dict)}
    records, missing, misplaced = {}, [], []
    for chunk in plan.chunks():
        rec_path, npy = rundir.chunk_paths(run_dir, chunk)
        rec = listed.get(chunk.index) or _read_record(rec_path)
        if rec is None or not npy.is_file():
            missing.append(chunk.index)
            continue
        if (rec.get("start"), rec.get("stop")) != (chunk.start, chunk.stop):
            misplaced.append(chunk.index)
        records[chunk.index] = rec
    status = manifest.get("status")
    value, expected = f"{len(records)}/{plan.num_chunks} chunks", f"{plan.num_chunks}/{plan.num_chunks} chunks"
    problems = []
    if status != "complete":
        problems.append(f"the run is not finished (status {status!r}): rerun its generate command to resume it")
    if missing and (records or status != "complete"):
        problems.append(f"{len(missing)} of {plan.num_chunks} planned chunks are missing (chunk {few(missing)}): "
                        "rerun the generate command to remake them")
    if misplaced:
        problems.append(f"chunk record(s) {few(misplaced)} cover other sample indices than the plan")
    if samples.n != plan.num_samples:
        problems.append(f"the samples hold {samples.n} images but the plan has {plan.num_samples}")
    if problems:
        return records, check("run_plan", "fail", value, expected, "; ".join(problems))
    if missing:  # a finished run whose chunk files were all removed after packing (to save space)
        return records, check("run_plan", "warn", value, expected, f"the run finished, but its {plan.num_chunks} "
                              "chunk files were removed: the chunks cannot be verified (samples.npz still is)")
    return records, check("run_plan", "pass", value, expected,
                          f"finished; all {plan.num_chunks} planned chunks present with the planned sample indices")


def _read_record(path: Path) -> dict | None:
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def _chunk_check(run_dir: Path, records: dict, progress: Progress) -> AuditCheck:
    """sha256 of every present chunk file against its record (the manifest's where it lists the chunk)."""
    if not records:
        return skip("run_chunks", "no chunk files to verify")
    items = sorted(records.items())
    progress(ProgressEvent(CHUNK_STAGE, 0, len(items), unit="chunks"))
    bad = []
    with concurrent.futures.ThreadPoolExecutor(workers()) as pool:  # hashlib releases the GIL
        digests = pool.map(lambda item: sha256_file(run_dir / rundir.CHUNKS / f"{item[0]:06d}.npy"), items)
        for done, ((index, rec), digest) in enumerate(zip(items, digests), 1):
            if digest != rec.get("sha256"):
                bad.append(index)
            progress(ProgressEvent(CHUNK_STAGE, done, len(items), unit="chunks"))
    value, expected = f"{len(items) - len(bad)}/{len(items)} match", f"{len(items)}/{len(items)} match"
    if bad:
        return check("run_chunks", "fail", value, expected,
                     f"chunk file(s) {few(bad)} differ from the sha256 their manifest records (corrupted or "
                     "replaced after the run): rerun the generate command to remake them, then pack again")
    return check("run_chunks", "pass", value, expected, "every chunk file is the one its manifest recorded (sha256)")


def _samples_check(run_dir: Path, manifest: dict, samples: SampleSet, file_sha256: str | None) -> AuditCheck:
    """samples.npz (the file and its arr_0) against result.json and the manifest's artefact record."""
    from varbench.results import read

    if samples.array is None:
        return skip("run_samples", "the audited images are a PNG folder; audit the run directory to check "
                                   "samples.npz")
    try:
        result = read.load(run_dir / rundir.RESULT, "generate")
    except VarbenchError as e:
        return check("run_samples", "fail", message=f"{e}; a finished generate run has result.json")
    npz = run_dir / rundir.SAMPLES
    got_file = file_sha256 or sha256_file(npz)
    art = (manifest.get("artefacts") or {}).get("samples_npz") or {}
    wanted = {
        "result.json samples_sha256": (result["results"].get("samples_sha256"), got_file),
        "manifest samples_npz.sha256": (art.get("sha256"), got_file),
        "result.json protocol.samples.sha256 (arr_0)": ((result["protocol"].get("samples") or {}).get("sha256"),
                                                        samples.content_key),
        "manifest samples_npz.array_sha256 (arr_0)": (art.get("array_sha256"), samples.content_key),
    }
    bad = [name for name, (want, got) in wanted.items() if want != got]
    value, expected = got_file[:16], str(result["results"].get("samples_sha256"))[:16]
    if bad:
        return check("run_samples", "fail", value, expected,
                     f"{npz.name} is not the file the run wrote ({'; '.join(bad)} differ): it was changed or "
                     "replaced; rerun the generate command to pack it again from the chunks")
    return check("run_samples", "pass", value, expected,
                 "samples.npz and its arr_0 have the sha256 that result.json and the manifest record")


def _seed_check(manifest: dict, plan: Plan, records: dict) -> AuditCheck:
    world = sorted({r["world_size"] for r in records.values() if isinstance(r.get("world_size"), int)})
    made = f"; made by {'/'.join(map(str, world))} process(es)" if world else ""
    if plan.rng != "official":
        seeds = np.fromiter((sample_seed(plan.seed, i) for i in range(plan.num_samples)), np.uint64,
                            plan.num_samples)
        dup = plan.num_samples - len(np.unique(seeds))
        value = f"{plan.num_samples} per-sample seeds, {dup} reused"
        if dup:
            return check("run_seeds", "fail", value, "unique", f"{dup} sample seeds repeat (a hash collision)")
        return check("run_seeds", "pass", value, "unique",
                     f"per-sample mode: sample i uses sample_seed({plan.seed}, i), a function of the run seed and "
                     f"the sample index only, whatever the process count{made}")
    return _official_seeds(manifest, plan, records, made)


def _official_seeds(manifest: dict, plan: Plan, records: dict, made: str) -> AuditCheck:
    """Official mode: each chunk is one batch drawn from one recorded seed; seeds must be unique and be the plan's."""
    planned = (manifest.get("plan") or {}).get("chunk_seeds")
    seeds = {c: r.get("seed") for c, r in sorted(records.items())}
    unrecorded = [c for c, s in seeds.items() if s is None]
    by_seed: dict = {}
    for c, s in seeds.items():
        if s is not None:
            by_seed.setdefault(s, []).append(c)
    shared = [cs for cs in by_seed.values() if len(cs) > 1]
    off_plan = [c for c, s in seeds.items() if s is not None and planned is not None
                and (c >= len(planned) or s != planned[c])]
    value = f"{len(by_seed)} distinct seeds over {len(seeds)} chunks"
    expected = f"{len(seeds)} distinct seeds" + (", = plan chunk_seeds" if planned else "")
    problems = []
    if shared:
        problems.append(f"chunks {few([' = '.join(map(str, cs)) for cs in shared], 3)} were drawn from the same "
                        "seed: their images repeat (a seed that depends on the process, not the chunk?)")
    if off_plan:
        problems.append(f"chunk(s) {few(off_plan)} were seeded otherwise than the plan's chunk_seeds (the process "
                        "layout changed the seeds?)")
    if problems:
        return check("run_seeds", "fail", value, expected, "; ".join(problems) + "; regenerate with one seed per chunk")
    rule = [plan.chunk_seed(c) for c in range(plan.num_chunks)]
    if unrecorded:
        return check("run_seeds", "warn", value, expected,
                     f"the manifest records no seed for chunk(s) {few(unrecorded)} (an older varbench): only the "
                     "recorded seeds were checked (unique)")
    if planned is None and any(s != rule[c] for c, s in seeds.items()):
        return check("run_seeds", "warn", value, expected, "the seeds are unique, but the plan lists no chunk_seeds "
                     "and they are not this varbench's rule (an older varbench made the run)")
    note = "" if planned is None or list(planned) == rule else " (another varbench's rule than this one's)"
    return check("run_seeds", "pass", value, expected,
                 f"official mode: chunk c is one batch drawn from its recorded seed, the plan's seed for chunk c{note}, "
                 f"a function of the run seed and the chunk only, whatever the process count{made}")
