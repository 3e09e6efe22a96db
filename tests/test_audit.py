"""``varbench audit``: each defect of a crafted bad set is detected (a scaled-down ADM protocol: 16 classes x 4
images of 64 px, IS splits of 16 rows), a correct set passes, the hashes and the pair search agree with slow
independent references, generate directories (made in-process, and a real var_test run) are verified chunk by chunk,
and the command exits 0 / 1 / 2."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from varbench.cli import audit as audit_cli
from varbench.cli.app import app
from varbench.errors import VarbenchError
from varbench.evaluate import duplicates
from varbench.evaluate.audit import PROTOCOLS, audit, audit_path
from varbench.evaluate.samples import decoded_sha256, open_samples
from varbench.files import sha256_file
from varbench.generate import run as sampler
from varbench.generate.plan import make_plan
from varbench.generate.run import GenerateJob
from varbench.generators.noise import NoiseGenerator
from varbench.results import read
from varbench.results.audit import CHECK_KEYS

CLASSES, PER, RES = 16, 4, 64
N = CLASSES * PER
SMALL = dataclasses.replace(PROTOCOLS["adm"], num_samples=N, num_classes=CLASSES, per_class=PER, resolutions=(RES,),
                            split_size=16, near_fail_fraction=0.25)


def smooth(n: int, res: int, seed: int = 0, grid: int = 6) -> np.ndarray:
    """uint8 (n, res, res, 3): bicubic blow-ups of random grid x grid images (smooth, like natural images at this
    scale; unrelated ones differ in about half their dHash bits)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, grid, grid, 3), dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(s).resize((res, res), Image.BICUBIC)) for s in small])


def good_set(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    labels = np.random.default_rng(seed).permutation(np.repeat(np.arange(CLASSES), PER))
    return smooth(N, RES, seed), labels


def save(path: Path, images, labels=None, **extra) -> Path:
    arrays = {"arr_0": images, **({} if labels is None else {"labels": labels}), **extra}
    np.savez(path, **arrays)
    return path


def run_audit(path, protocol=SMALL, **kw):
    return audit_path(path, protocol, **kw)


def statuses(report) -> dict:
    return {k: c["status"] for k, c in report.checks.items()}


# ---- crafted sets ---------------------------------------------------------------------------------------------------


def test_a_correct_set_passes_every_check(tmp_path):
    report = run_audit(save(tmp_path / "ok.npz", *good_set()))
    assert list(report.checks) == list(CHECK_KEYS)
    assert report.failed == [] and report.warned == [], report.warnings
    assert report.verdict == "pass"
    assert {k for k, s in statuses(report).items() if s == "skip"} == {"run_plan", "run_chunks", "run_samples",
                                                                          "run_seeds"}
    result = report.to_result()
    assert read.validate(json.loads(json.dumps(result)), "audit", "audit")["results"]["verdict"] == "pass"
    assert result["protocol"]["samples"]["sha256"] == hashlib.sha256(good_set()[0].tobytes()).hexdigest()


def test_wrong_count_fails(tmp_path):
    images, labels = good_set()
    report = run_audit(save(tmp_path / "short.npz", images[:-3], labels[:-3]))
    assert report.checks["count"]["status"] == "fail"
    assert (report.checks["count"]["value"], report.checks["count"]["expected"]) == (N - 3, N)


def test_wrong_resolution_fails_against_the_protocol_and_a_pinned_side(tmp_path):
    labels = good_set()[1]
    small = save(tmp_path / "r32.npz", smooth(N, 32), labels)
    assert run_audit(small).checks["resolution"]["status"] == "fail"
    pinned = run_audit(small, resolution=32).checks["resolution"]
    assert pinned["status"] == "pass" and pinned["expected"] == "32x32"
    wrong = run_audit(save(tmp_path / "r64.npz", *good_set()), resolution=32).checks["resolution"]
    assert wrong["status"] == "fail" and "reference" in wrong["message"]
    rect = run_audit(save(tmp_path / "rect.npz", smooth(N, 64)[:, :, :48], labels)).checks["resolution"]
    assert rect["status"] == "fail" and rect["value"] == "64x48"


def test_float_and_nchw_arrays_fail_the_format_and_still_report_the_rest(tmp_path):
    images, labels = good_set()
    floats = run_audit(save(tmp_path / "f.npz", images.astype(np.float32) / 255, labels))
    assert statuses(floats)["format"] == "fail" and "float32" in floats.checks["format"]["value"]
    assert floats.checks["range"]["status"] == "fail" and floats.checks["range"]["value"] == [0.0, 1.0]
    assert "scale by 255" in floats.checks["range"]["message"]
    assert statuses(floats)["count"] == "pass" and statuses(floats)["class_balance"] == "pass"  # labels still read
    assert statuses(floats)["exact_duplicates"] == "skip"
    signed = run_audit(save(tmp_path / "s.npz", images.astype(np.float32) / 127.5 - 1, labels))
    assert "(x + 1) * 127.5" in signed.checks["range"]["message"]
    nchw = run_audit(save(tmp_path / "nchw.npz", images.transpose(0, 3, 1, 2).copy(), labels))
    assert statuses(nchw)["format"] == "fail" and "NCHW" in nchw.checks["format"]["message"]
    assert nchw.checks["resolution"]["value"] == "64x64"
    assert nchw.to_result()["protocol"]["samples"] is None


def test_uint8_images_holding_only_0_and_1_fail_the_range(tmp_path):
    images, labels = good_set()
    report = run_audit(save(tmp_path / "01.npz", (images > 127).astype(np.uint8), labels))
    assert report.checks["range"]["status"] == "fail" and report.checks["range"]["value"] == [0, 1]
    images[3] = 128  # a blank image
    blank = run_audit(save(tmp_path / "blank.npz", images, labels)).checks["range"]
    assert blank["status"] == "warn" and blank["message"].startswith("1 image(s) are one flat value")


def test_missing_or_unusable_labels_warn_and_skip_balance_and_order(tmp_path):
    images, labels = good_set()
    report = run_audit(save(tmp_path / "nolabels.npz", images))
    assert statuses(report)["labels"] == "warn"
    assert statuses(report)["class_balance"] == statuses(report)["order"] == "skip"
    assert report.failed == [] and report.verdict == "warn"
    short = run_audit(save(tmp_path / "arr1.npz", images, arr_1=labels[:10]))
    assert "'arr_1' is not 64 integer labels" in short.checks["labels"]["message"]
    assert run_audit(save(tmp_path / "neg.npz", images, labels - 1)).checks["labels"]["status"] == "fail"


def test_unbalanced_classes_warn_and_missing_classes_fail(tmp_path):
    images, labels = good_set()
    uneven = labels.copy()
    uneven[np.flatnonzero(uneven == 0)[0]] = 1  # class 0 three times, class 1 five times
    report = run_audit(save(tmp_path / "uneven.npz", images, uneven))
    assert report.checks["class_balance"]["status"] == "warn"
    assert report.checks["class_balance"]["value"] == "16 classes, 3..5 per class"
    missing = np.where(labels == 0, 1, labels)
    report = run_audit(save(tmp_path / "missing.npz", images, missing))
    assert report.checks["class_balance"]["status"] == "fail" and "1 of 16 classes" in report.checks[
        "class_balance"]["message"]


def test_a_class_sorted_file_fails_the_order_and_an_interleaved_one_passes(tmp_path):
    images = smooth(N, RES)
    sorted_labels = np.repeat(np.arange(CLASSES), PER)  # VAR's sampler: 50 of class 0, then 50 of class 1, ...
    report = run_audit(save(tmp_path / "sorted.npz", images, sorted_labels))
    order = report.checks["order"]
    per_split = [len(set(sorted_labels[lo:lo + 16])) for lo in range(0, N, 16)]  # 4 classes in each 16-row split
    assert order["status"] == "fail" and order["value"].startswith(f"{np.mean(per_split):.0f} classes per IS split")
    assert "16-row chunks" in order["message"] and "deflated" in order["message"]
    none = dataclasses.replace(PROTOCOLS["none"], split_size=16)
    assert run_audit(tmp_path / "sorted.npz", none).checks["order"]["status"] == "warn"  # noted, not a breach
    interleaved = np.tile(np.arange(CLASSES), PER)  # varbench's plan order before the shuffle: i mod C
    assert run_audit(save(tmp_path / "inter.npz", images, interleaved)).checks["order"]["status"] == "pass"


def test_a_reused_seed_is_an_exact_duplicate(tmp_path):
    images, labels = good_set()
    images[40] = images[5]
    report = run_audit(save(tmp_path / "dup.npz", images, labels))
    assert report.checks["exact_duplicates"]["status"] == "fail" and report.checks["exact_duplicates"]["value"] == 1
    assert report.duplicates["exact_groups"] == [[5, 40]]
    assert report.checks["near_duplicates"]["status"] == "pass"  # an exact copy is not counted again as a near pair


def test_a_noisy_copy_and_a_shifted_copy_are_near_duplicates(tmp_path):
    images = smooth(24, 256, seed=3)
    rng = np.random.default_rng(1)
    images[7] = np.clip(images[2] + rng.normal(0, 2, images[2].shape).round(), 0, 255).astype(np.uint8)
    images[19] = np.roll(images[11], 1, axis=1)  # a 1-px shift
    none = dataclasses.replace(PROTOCOLS["none"], near_fail_fraction=0.5)  # 4 of 24 images: a warning
    report = run_audit(save(tmp_path / "near.npz", images), none)
    near = report.checks["near_duplicates"]
    assert near["status"] == "warn" and near["value"] == 2, near
    assert sorted((i, j) for i, j, _ in report.duplicates["near_pairs"]) == [(2, 7), (11, 19)]
    assert report.checks["exact_duplicates"]["status"] == "pass"
    assert run_audit(save(tmp_path / "clean.npz", smooth(24, 256, seed=3)), none).checks["near_duplicates"][
        "status"] == "pass"
    heavy = dataclasses.replace(none, near_fail_fraction=4 / 24)  # 4 of 24 images in near pairs: seeds were reused
    assert run_audit(tmp_path / "near.npz", heavy).checks["near_duplicates"]["status"] == "fail"


def test_dhash_matches_a_slow_loop_reference():
    rng = np.random.default_rng(0)
    for h, w in ((64, 64), (37, 50), (256, 256), (6, 5)):
        batch = rng.integers(0, 256, (5, h, w, 3), dtype=np.uint8)
        assert list(duplicates.dhash(batch)) == [loop_dhash(im) for im in batch], (h, w)


def loop_dhash(im: np.ndarray) -> int:
    """The documented rule, pixel by pixel: block means of the centred crop, BT.601 grey, right > left."""
    h, w, _ = im.shape
    rows, cols = duplicates.HASH_ROWS, duplicates.HASH_COLS
    if h < rows or w < cols:
        grid = [[im[r * h // rows, c * w // cols].astype(float) for c in range(cols)] for r in range(rows)]
    else:
        bh, bw = h // rows, w // cols
        r0, c0 = (h - bh * rows) // 2, (w - bw * cols) // 2
        grid = [[im[r0 + r * bh:r0 + (r + 1) * bh, c0 + c * bw:c0 + (c + 1) * bw].reshape(-1, 3).mean(0)
                 for c in range(cols)] for r in range(rows)]
    grey = [[float(np.dot(px, duplicates.LUMA)) for px in row] for row in grid]
    value = 0
    for r in range(rows):
        for c in range(cols - 1):
            value = (value << 1) | int(grey[r][c + 1] > grey[r][c])
    return value


def test_the_exhaustive_pair_search_finds_exactly_the_brute_force_pairs():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, 700, dtype=np.uint64)  # more rows than one block: pairs across blocks
    for a, b, flips in ((3, 650, 2), (255, 256, 5), (10, 11, 6), (500, 699, 0)):
        hashes[b] = hashes[a] ^ np.uint64(sum(1 << k for k in rng.choice(64, flips, replace=False)))
    rows = np.arange(len(hashes))
    found = duplicates.near_pairs(hashes, rows, 5)
    brute = [(i, j) for i in range(700) for j in range(i + 1, 700)
             if bin(int(hashes[i]) ^ int(hashes[j])).count("1") <= 5]
    assert found.count == len(brute) and sorted((i, j) for i, j, _ in found.listed) == sorted(brute)[:20]
    assert {(3, 650), (255, 256), (500, 699)} <= set(brute) and (10, 11) not in brute


def test_results_do_not_depend_on_the_batch_size(tmp_path):
    images, labels = good_set()
    images[9] = images[1]
    path = save(tmp_path / "b.npz", images, labels)
    one, other = run_audit(path, batch_size=5), run_audit(path, batch_size=256)
    assert one.checks == other.checks and one.duplicates == other.duplicates


def test_a_png_folder_is_read_once_and_its_decoded_array_recorded(tmp_path):
    images, _ = good_set()
    folder = tmp_path / "png"
    folder.mkdir()
    for i, im in enumerate(images[:20]):
        Image.fromarray(im).save(folder / f"{i:06d}.png")
    samples = open_samples(folder)
    report = audit(samples, PROTOCOLS["none"], batch_size=6)
    assert report.array_sha256 == decoded_sha256(samples) == hashlib.sha256(images[:20].tobytes()).hexdigest()
    assert report.checks["labels"]["value"] == 0 and "folder" in report.checks["labels"]["message"]


# ---- generate directories -------------------------------------------------------------------------------------------


class SmoothGenerator(NoiseGenerator):
    """Smooth images from each sample's seed (per-sample mode) or one batch per chunk seed (official mode)."""

    def __init__(self):
        super().__init__(resolution=32)

    def generate(self, labels, seeds):
        return np.concatenate([smooth(1, 32, int(s) % 2**32) for s in seeds])

    def generate_official(self, labels, seed):
        return smooth(len(labels), 32, int(seed))


def make_run(out: Path, rng: str = "per-sample") -> Path:
    plan, batch = make_plan(num_samples=12, per_class=1, seed=3, rng=rng,
                            batch_size=3 if rng == "official" else 2, chunk_size=None if rng == "official" else 3)
    sampler.run(SmoothGenerator(), GenerateJob(out=out, plan=plan, model="noise_test", batch_size=batch))
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("audit_run") / "run")


def copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def run_statuses(path) -> dict:
    report = audit_path(path, "none")
    return {k: (c["status"], c["message"]) for k, c in report.checks.items() if k.startswith("run_")}


def test_a_finished_run_passes_the_run_checks(run_dir):
    for path in (run_dir, run_dir / "samples.npz"):
        report = audit_path(path, "none")
        assert report.failed == [] and report.warned == [], report.warnings
        assert all(report.checks[k]["status"] == "pass" for k in CHECK_KEYS if k.startswith("run_")), path
    assert audit_path(run_dir, "none").checks["run_chunks"]["value"] == "4/4 match"


def test_a_missing_chunk_fails_the_plan(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path / "run")
    (run / "chunks" / "000002.npy").unlink()
    got = run_statuses(run)
    assert got["run_plan"][0] == "fail" and "chunk 2" in got["run_plan"][1]
    assert got["run_chunks"][0] == "pass"  # the three present chunks are intact


def test_chunks_removed_after_packing_only_warn(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path / "run")
    for p in (run / "chunks").glob("*.npy"):
        p.unlink()
    got = run_statuses(run)
    assert got["run_plan"][0] == "warn" and got["run_chunks"][0] == "skip" and got["run_samples"][0] == "pass"


def test_a_corrupted_chunk_fails_its_sha256(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path / "run")
    npy = run / "chunks" / "000001.npy"
    data = bytearray(npy.read_bytes())
    data[-1] ^= 0xFF
    npy.write_bytes(bytes(data))
    got = run_statuses(run)
    assert got["run_chunks"][0] == "fail" and "chunk file(s) 1 " in got["run_chunks"][1]
    assert got["run_plan"][0] == "pass" and got["run_samples"][0] == "pass"


def test_a_replaced_samples_npz_fails(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path / "run")
    with np.load(run / "samples.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["arr_0"][0, 0, 0, 0] ^= 1
    np.savez(run / "samples.npz", **arrays)
    got = run_statuses(run)
    assert got["run_samples"][0] == "fail" and "result.json samples_sha256" in got["run_samples"][1]


def test_an_unfinished_run_fails_the_plan(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path / "run")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["status"] = "running"
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert run_statuses(run)["run_plan"][0] == "fail"


def test_official_seeds_are_read_from_the_manifest_and_a_shared_seed_fails(tmp_path):
    run = make_run(tmp_path / "official", rng="official")
    manifest = json.loads((run / "manifest.json").read_text())
    assert [c["seed"] for c in manifest["chunks"]] == manifest["plan"]["chunk_seeds"]
    assert run_statuses(run)["run_seeds"][0] == "pass"
    for rec in manifest["chunks"]:  # as if seeded by rank (seed + rank, 2 processes): chunks 0 and 2 share a seed
        rec["seed"] = manifest["seed"] + rec["chunk"] % 2
    (run / "manifest.json").write_text(json.dumps(manifest))
    got = run_statuses(run)["run_seeds"]
    assert got[0] == "fail" and "0 = 2" in got[1] and "1 = 3" in got[1]


def test_per_sample_seeds_are_unique_whatever_the_process_count(run_dir):
    seeds = audit_path(run_dir, "none").checks["run_seeds"]
    assert seeds["status"] == "pass" and seeds["value"] == "12 per-sample seeds, 0 reused"


# ---- the command ----------------------------------------------------------------------------------------------------


def invoke(*args):
    return CliRunner().invoke(app, ["audit", *map(str, args)], env={"COLUMNS": "250"})


def test_cli_exit_codes_and_json(tmp_path):
    good = save(tmp_path / "ok.npz", *good_set())
    res = invoke(good, "--protocol", "none", "--json", tmp_path / "a.json")
    assert res.exit_code == 0, res.output
    result = read.load(tmp_path / "a.json", "audit")
    assert list(result["results"]["checks"]) == list(CHECK_KEYS) and result["results"]["failed"] == []
    res = invoke(good, "--json", tmp_path / "b.json")  # the real ADM protocol: 64 images of 64 px break it
    assert res.exit_code == 1, res.output
    assert read.load(tmp_path / "b.json", "audit")["results"]["failed"] == ["count", "resolution", "class_balance"]
    assert "FAIL" in res.output and "count" in res.stderr
    for bad in (tmp_path / "missing.npz", tmp_path / "a.json"):
        res = invoke(bad)
        assert res.exit_code == 2 and "Traceback" not in res.output
        assert len([ln for ln in res.stderr.splitlines() if ln.startswith("error:")]) == 1
    assert invoke(good, "--protocol", "strict").exit_code == 2
    assert invoke(good, "--json", tmp_path / "a.json").exit_code == 2  # an existing --json is refused
    assert audit_cli.PROTOCOL_NAMES == tuple(PROTOCOLS)


def test_cli_reference_pins_the_side(tmp_path):
    good = save(tmp_path / "ok.npz", *good_set())
    res = invoke(good, "--protocol", "none", "--reference", "imagenet256")  # known, not built: its listed side
    assert res.exit_code == 1 and "256x256" in res.output
    assert invoke(good, "--reference", "nosuchref").exit_code == 2


def test_a_real_var_test_run_passes_its_run_checks(tmp_path):
    import pipeline

    out = tmp_path / "var_test"
    pipeline.cli("generate", "--model", "var_test", "--num-samples", "8", "--per-class", "1", "--out", out)
    res = invoke(out, "--protocol", "none", "--json", tmp_path / "audit.json")
    assert res.exit_code == 0, res.output
    checks = read.load(tmp_path / "audit.json", "audit")["results"]["checks"]
    assert {k: checks[k]["status"] for k in ("run_plan", "run_chunks", "run_samples", "run_seeds")} == dict.fromkeys(
        ("run_plan", "run_chunks", "run_samples", "run_seeds"), "pass")
    assert checks["resolution"] == {**checks["resolution"], "status": "pass", "value": "64x64", "expected": None}
    assert sha256_file(out / "samples.npz").startswith(checks["run_samples"]["value"])  # hashed during the one pass
    res = invoke(out)  # the ADM protocol: 8 images of 64 px of 8 classes break it
    assert res.exit_code == 1 and "count, resolution, class_balance" in res.stderr


def test_bad_batch_size_is_a_one_line_error(tmp_path):
    with pytest.raises(VarbenchError, match="--batch-size"):
        run_audit(save(tmp_path / "ok.npz", *good_set()), batch_size=0)


def test_fid_runs_the_audit_first_and_records_it(real_runs, tmp_path):
    """`varbench fid` audits before scoring: a set that breaks the ADM protocol is scored with the audit's lines as
    warnings, and the audit is in the result; --audit off skips it."""
    from pipeline import FID, cli as run_cli

    out = tmp_path / "fid.json"
    run_cli("fid", real_runs.generate[1.0], "--ref", "ci_noise16", "--inception-weights", real_runs.weights, *FID,
            "--json", out)
    result = json.loads(out.read_text())
    audited = result["results"]["audit"]
    assert audited["verdict"] == "fail" and "count" in audited["failed"]  # 8 samples, not 50,000
    assert audited["checks"]["run_chunks"]["status"] == "pass"  # a real generate directory, intact
    assert any(w.startswith("audit count (fail)") for w in result["warnings"])
    run_cli("fid", real_runs.generate[1.0], "--ref", "ci_noise16", "--inception-weights", real_runs.weights, *FID,
            "--audit", "off", "--json", tmp_path / "off.json")
    off = json.loads((tmp_path / "off.json").read_text())
    assert off["results"]["audit"] is None and off["results"]["metrics"] == result["results"]["metrics"]
