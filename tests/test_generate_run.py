"""varbench.generate on the noise generator: chunks, manifest, resume, refusal, packing, PNGs (in-process)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from varbench.errors import VarbenchError
from varbench.generate import pack, rundir
from varbench.generate import run as sampler
from varbench.generate.plan import make_plan, sample_seed
from varbench.generate.run import GenerateJob
from varbench.generators.noise import NoiseGenerator
from varbench.results import read as results_read

RES = 16


def job_for(out: Path, *, batch_size=None, png=False, overwrite=False, rng="per-sample", **plan_kwargs) -> GenerateJob:
    kwargs = {"num_samples": 12, "per_class": 2, "chunk_size": None if rng == "official" else 5, **plan_kwargs}
    plan, batch = make_plan(rng=rng, batch_size=batch_size, **kwargs)
    return GenerateJob(out=out, plan=plan, model="noise_test", sampling={"cfg": 1.5}, batch_size=batch, png=png,
                       overwrite=overwrite)


def noise() -> NoiseGenerator:
    return NoiseGenerator(resolution=RES)


def read(path: Path) -> bytes:
    return path.read_bytes()


class Stop(Exception):
    pass


def stop_after_chunks(k: int, chunk_size: int = 5):
    """Interrupt right after the k-th chunk of this session is on disk."""
    def callback(event):
        if event.stage == sampler.SAMPLE_STAGE and event.saved and event.done == k * chunk_size:
            raise Stop

    return callback


def test_samples_npz_is_adm_format_and_reproduces_each_sample(tmp_path):
    job = job_for(tmp_path / "run", batch_size=2, seed=5)
    outcome = sampler.run(noise(), job)
    assert outcome.chunks_generated == 3 and outcome.chunks_reused == 0 and not outcome.already_complete
    with np.load(tmp_path / "run" / "samples.npz", allow_pickle=False) as f:
        assert f.files == ["arr_0", "labels", "indices"]
        arr, labels, indices = f["arr_0"], f["labels"], f["indices"]
    assert arr.dtype == np.uint8 and arr.shape == (12, RES, RES, 3)
    assert labels.dtype == np.int64 and indices.dtype == np.int64
    assert sorted(indices.tolist()) == list(range(12))  # no sample lost or duplicated
    assert not np.array_equal(indices, np.arange(12))  # balanced plans are shuffled
    # the ADM evaluator streams arr_0 straight out of the zip member (zipfile + npy header, no np.load)
    import zipfile

    with zipfile.ZipFile(tmp_path / "run" / "samples.npz") as zf, zf.open("arr_0.npy") as member:
        assert np.lib.format.read_magic(member) == (1, 0)
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
        assert (shape, fortran, dtype) == ((12, RES, RES, 3), False, np.dtype(np.uint8))
        assert np.array_equal(np.frombuffer(member.read(), np.uint8).reshape(shape), arr)
    plan = job.plan
    assert np.array_equal(labels, plan.labels_array()[indices])
    for row in range(12):  # row r is global sample indices[r], from its own label and seed alone
        want = NoiseGenerator(resolution=RES).generate([int(labels[row])], [sample_seed(5, int(indices[row]))])[0]
        assert np.array_equal(arr[row], want)


def test_batch_size_does_not_change_a_byte(tmp_path):
    sampler.run(noise(), job_for(tmp_path / "b2", batch_size=2))
    sampler.run(noise(), job_for(tmp_path / "b5", batch_size=5))
    assert read(tmp_path / "b2" / "samples.npz") == read(tmp_path / "b5" / "samples.npz")
    for c in range(3):  # chunk files too
        assert read(tmp_path / "b2" / "chunks" / f"{c:06d}.npy") == read(tmp_path / "b5" / "chunks" / f"{c:06d}.npy")


def test_interrupted_run_resumes_to_identical_bytes(tmp_path):
    ref = tmp_path / "ref"
    sampler.run(noise(), job_for(ref, batch_size=2))
    out = tmp_path / "resumed"
    with pytest.raises(Stop):
        sampler.run(noise(), job_for(out, batch_size=2), progress=stop_after_chunks(2))
    assert not (out / "samples.npz").exists()
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    done = sorted(p.name for p in (out / "chunks").iterdir())
    assert done == ["000000.json", "000000.npy", "000001.json", "000001.npy"]
    outcome = sampler.run(noise(), job_for(out, batch_size=3))  # another batch size is the same run
    assert (outcome.chunks_reused, outcome.chunks_generated) == (2, 1)
    assert read(out / "samples.npz") == read(ref / "samples.npz")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["sessions"]) == 2
    assert [c["chunk"] for c in manifest["chunks"]] == [0, 1, 2]


def test_manifest_records_everything_and_hashes_match(tmp_path):
    out = tmp_path / "run"
    sampler.run(noise(), job_for(out, batch_size=2, png=True))
    m = json.loads((out / "manifest.json").read_text())
    for key in ("schema", "schema_version", "status", "run_id", "identity", "model", "sampling",
                "seed", "rng", "dtype", "device", "plan", "uint8_rule", "env", "sessions", "chunks", "timings",
                "artefacts"):
        assert key in m, key
    assert m["model"]["random_weights"] is True and m["model"]["name"] == "noise_test"
    assert m["sampling"] is None and m["seed"] == 0 and m["rng"] == "per-sample"  # noise: no sampling settings
    assert m["identity"]["job"]["sampling"] == {"cfg": 1.5}
    assert m["plan"]["num_samples"] == 12 and m["plan"]["chunk_size"] == 5
    assert "round(255 * x)" in m["uint8_rule"]
    for key in ("varbench_version", "git_sha", "torch", "cuda", "device"):
        assert key in m["env"]
    for rec in m["chunks"]:
        data = (out / rec["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == rec["sha256"]
        assert rec["seconds"] >= 0 and rec["rank"] == 0 and rec["device"] == "cpu"
    art = m["artefacts"]["samples_npz"]
    assert art["sha256"] == hashlib.sha256(read(out / "samples.npz")).hexdigest()
    assert m["artefacts"]["png"]["count"] == 12
    assert m["timings"]["chunk_seconds_total"] >= 0 and m["sessions"][0]["world_size"] == 1
    res = results_read.load(out / "result.json", kind="generate")
    assert res["random_weights"] is True
    assert res["results"]["num_samples"] == 12 and res["results"]["samples_sha256"] == art["sha256"]
    assert res["config"]["plan"]["num_samples"] == 12 and res["config"]["batch_size"] == 2
    p = res["protocol"]
    assert p["labels"]["scheme"] == "2_per_class" and p["seeds"] == {**p["seeds"], "seed": 0, "rng": "per-sample"}
    with np.load(out / "samples.npz", allow_pickle=False) as f:
        assert p["samples"]["sha256"] == hashlib.sha256(np.ascontiguousarray(f["arr_0"]).data).hexdigest()
    assert p["samples"]["count"] == 12 and p["samples"]["order"] == "shuffled"


def test_finished_run_is_not_rewritten(tmp_path):
    out = tmp_path / "run"
    sampler.run(noise(), job_for(out))
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    outcome = sampler.run(noise(), job_for(out, batch_size=4))
    assert outcome.already_complete and outcome.chunks_generated == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps


def test_damaged_chunk_is_detected_by_hash_and_remade(tmp_path):
    out = tmp_path / "run"
    sampler.run(noise(), job_for(out))
    good = read(out / "samples.npz")
    npy = out / "chunks" / "000001.npy"
    data = bytearray(npy.read_bytes())
    data[-1] ^= 0xFF
    npy.write_bytes(bytes(data))
    outcome = sampler.run(noise(), job_for(out))
    assert (outcome.chunks_regenerated, outcome.chunks_generated, outcome.chunks_reused) == (1, 1, 2)
    assert read(out / "samples.npz") == good
    session = json.loads((out / "manifest.json").read_text())["sessions"][-1]
    assert session["chunks_regenerated"] == outcome.chunks_regenerated == 1  # a count, as in the outcome
    assert session["chunks_regenerated_indices"] == [1]


def test_different_command_is_refused_and_keeps_finished_chunks(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(Stop):
        sampler.run(noise(), job_for(out), progress=stop_after_chunks(1))
    before = read(out / "chunks" / "000000.npy")
    for job in (job_for(out, seed=1), job_for(out, num_samples=10), job_for(out, chunk_size=4)):
        with pytest.raises(VarbenchError, match="holds a different run") as info:
            sampler.preflight(job)
        assert "\n" not in str(info.value) and "--overwrite" in str(info.value)
        with pytest.raises(VarbenchError, match="holds a different run"):
            sampler.run(noise(), job)
    with pytest.raises(VarbenchError, match="seed 0 -> 1"):
        sampler.run(noise(), job_for(out, seed=1))
    assert read(out / "chunks" / "000000.npy") == before
    # a different generator (other resolution) is a different run too
    with pytest.raises(VarbenchError, match="model differ"):
        sampler.run(NoiseGenerator(resolution=8), job_for(out))
    # --overwrite replaces it
    outcome = sampler.run(noise(), job_for(out, seed=1, overwrite=True))
    assert outcome.chunks_generated == 3 and json.loads((out / "manifest.json").read_text())["seed"] == 1


def test_foreign_directory_is_refused(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(VarbenchError, match="holds no varbench run"):
        sampler.run(noise(), job_for(out))
    sampler.run(noise(), job_for(out, overwrite=True))
    assert (out / "notes.txt").read_text() == "keep me" and (out / "samples.npz").is_file()


def test_disk_full_is_one_line_and_resumable(tmp_path, monkeypatch):
    out = tmp_path / "run"
    calls = {"n": 0}
    real_fsync = os.fsync

    def fsync(fd):  # manifest, chunk 0 (.npy, .json), then the disk is full
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(VarbenchError, match="no space left") as info:
        sampler.run(noise(), job_for(out))
    assert "\n" not in str(info.value)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert not [p for p in out.rglob("*.tmp")]
    assert sorted(p.name for p in (out / "chunks").iterdir()) == ["000000.json", "000000.npy"]
    outcome = sampler.run(noise(), job_for(out))
    assert outcome.chunks_reused == 1
    sampler.run(noise(), job_for(tmp_path / "ref"))
    assert read(out / "samples.npz") == read(tmp_path / "ref" / "samples.npz")


def test_second_writer_is_locked_out(tmp_path):
    out = tmp_path / "run"
    lock = rundir.lock(out)
    try:
        with pytest.raises(VarbenchError, match="another varbench generate is writing"):
            sampler.run(noise(), job_for(out))
    finally:
        lock.release()
    sampler.run(noise(), job_for(out))


def test_stale_temp_files_of_a_killed_run_are_removed(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(Stop):
        sampler.run(noise(), job_for(out), progress=stop_after_chunks(1))
    (out / "chunks" / ".000001.npy.abc.tmp").write_bytes(b"half")
    (out / ".samples.npz.xyz.tmp").write_bytes(b"half")
    sampler.run(noise(), job_for(out))
    assert not list(out.rglob("*.tmp"))


class OfficialNoise(NoiseGenerator):
    """Noise with an official mode: one seed for the whole batch (the output depends on the batch)."""

    def __init__(self):
        super().__init__(resolution=RES)
        self.calls = []

    def generate_official(self, labels, seed):
        self.calls.append((list(labels), seed))
        rng = np.random.default_rng(seed)
        return rng.integers(0, 256, size=(len(labels), RES, RES, 3), dtype=np.uint8)


def test_official_mode_draws_each_chunk_as_one_seeded_batch(tmp_path):
    gen = OfficialNoise()
    job = job_for(tmp_path / "off", rng="official", batch_size=4)
    sampler.run(gen, job)
    plan = job.plan
    assert [len(labels) for labels, _ in gen.calls] == [4, 4, 4]
    assert [seed for _, seed in gen.calls] == [plan.chunk_seed(c) for c in range(3)]
    again = OfficialNoise()
    sampler.run(again, job_for(tmp_path / "off2", rng="official", batch_size=4))
    assert read(tmp_path / "off" / "samples.npz") == read(tmp_path / "off2" / "samples.npz")
    m = json.loads((tmp_path / "off" / "manifest.json").read_text())
    assert m["rng"] == "official" and "seed + c" in m["plan"]["seed_rule"]
    assert all(c["batch_size"] == 4 for c in m["chunks"])
    assert [c["seed"] for c in m["chunks"]] == m["plan"]["chunk_seeds"] == [job.plan.seed + c for c in range(3)]
    with pytest.raises(VarbenchError, match="no official RNG mode"):
        sampler.run(noise(), job_for(tmp_path / "x", rng="official", batch_size=4))


def test_explicit_labels_keep_label_order(tmp_path):
    plan, batch = make_plan(labels=[999, 1, 207, 1])
    sampler.run(noise(), GenerateJob(out=tmp_path / "lab", plan=plan, model="noise_test", batch_size=batch))
    with np.load(tmp_path / "lab" / "samples.npz", allow_pickle=False) as f:
        assert f["labels"].tolist() == [999, 1, 207, 1] and f["indices"].tolist() == [0, 1, 2, 3]


def test_generator_returning_wrong_images_is_caught(tmp_path):
    class Broken(NoiseGenerator):
        def generate(self, labels, seeds):
            return super().generate(labels, seeds).astype(np.float32)

    with pytest.raises(ValueError, match="expected uint8"):
        sampler.run(Broken(resolution=RES), job_for(tmp_path / "b"))
    assert not (tmp_path / "b" / "chunks" / "000000.npy").exists()


def test_write_npz_streams_a_loadable_deterministic_file(tmp_path):
    arr = np.arange(2 * 3 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3, 3)
    idx = np.array([1, 0], dtype=np.int64)

    def write(path):
        with open(path, "wb") as f:
            pack.write_npz(f, [("arr_0", arr.dtype, arr.shape, iter([arr[:1].tobytes(), arr[1:].tobytes()])),
                                  ("indices", idx.dtype, idx.shape, iter([idx.tobytes()]))])

    write(tmp_path / "a.npz")
    write(tmp_path / "b.npz")
    assert read(tmp_path / "a.npz") == read(tmp_path / "b.npz")
    with np.load(tmp_path / "a.npz", allow_pickle=False) as f:
        assert np.array_equal(f["arr_0"], arr) and np.array_equal(f["indices"], idx)
    with open(tmp_path / "c.npz", "wb") as f, pytest.raises(ValueError, match="expected"):
        pack.write_npz(f, [("arr_0", arr.dtype, arr.shape, iter([arr[:1].tobytes()]))])


def test_png_folder_is_read_by_torch_fidelity_and_clean_fid(tmp_path):
    out = tmp_path / "run"
    sampler.run(noise(), job_for(out, png=True))
    png_dir = out / "png"
    assert sorted(p.name for p in png_dir.iterdir()) == [f"{i:06d}.png" for i in range(12)]
    with np.load(out / "samples.npz", allow_pickle=False) as f:
        by_index = {int(i): a for i, a in zip(f["indices"], f["arr_0"])}

    from torch_fidelity.datasets import ImagesPathDataset
    from torch_fidelity.utils import glob_samples_paths

    files = glob_samples_paths(str(png_dir), False, "png", verbose=False)
    assert len(files) == 12
    ds = ImagesPathDataset(files)
    for i in (0, 7, 11):
        img = ds[i]  # uint8 CHW tensor, what torch-fidelity feeds its extractors
        assert img.dtype.is_floating_point is False
        assert np.array_equal(img.permute(1, 2, 0).numpy(), by_index[int(Path(files[i]).stem)])

    import torch
    from cleanfid import fid

    feats = fid.get_folder_features(
        str(png_dir), model=lambda x: x.flatten(1), num_workers=0, batch_size=4, device=torch.device("cpu"),
        mode="clean", custom_fn_resize=lambda x: x, verbose=False,
    )
    assert feats.shape == (12, 3 * RES * RES)
    want = np.stack([by_index[i].transpose(2, 0, 1).reshape(-1) for i in range(12)]).astype(np.float32)
    assert np.allclose(np.sort(feats, axis=0), np.sort(want, axis=0))


def test_png_can_be_added_to_a_finished_run(tmp_path):
    out = tmp_path / "run"
    sampler.run(noise(), job_for(out))
    npz = read(out / "samples.npz")
    outcome = sampler.run(noise(), job_for(out, png=True))
    assert not outcome.already_complete and outcome.chunks_generated == 0
    assert len(list((out / "png").glob("*.png"))) == 12 and read(out / "samples.npz") == npz
    assert json.loads((out / "manifest.json").read_text())["artefacts"]["png"]["count"] == 12
    assert outcome.pngs_only and outcome.png_dir == out / "png"


class Described(NoiseGenerator):
    """Noise that describes itself like LlamaGen: checkpoints with paths and hashes, its own pixel rule."""

    def __init__(self, path: str, sha: str):
        super().__init__(resolution=RES)
        self.path, self.sha = path, sha

    def describe(self) -> dict:
        return {**super().describe(), "device": "cpu", "pixel_rule": "uint8 = trunc(127.5 x + 128)",
                "checkpoints": {"gpt": {"path": self.path, "sha256": self.sha}}}

    def checkpoint_sha256(self) -> dict:
        return {"gpt": self.sha}


def test_identity_keeps_checkpoint_hashes_but_not_paths(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(Stop):
        sampler.run(Described("/cache/a/gpt.pt", "aa" * 32), job_for(out), progress=stop_after_chunks(1))
    # the same file found elsewhere (another node's cache) is the same run
    outcome = sampler.run(Described("/other/node/gpt.pt", "aa" * 32), job_for(out))
    assert outcome.chunks_reused == 1
    m = json.loads((out / "manifest.json").read_text())
    assert m["model"]["checkpoint_sha256"] == {"gpt": "aa" * 32}
    assert m["uint8_rule"] == "uint8 = trunc(127.5 x + 128)"
    assert m["artefacts"]["samples_npz"]["uint8_rule"] == m["uint8_rule"]
    # other weights are another run
    with pytest.raises(VarbenchError, match="model differ: checkpoint_sha256.gpt"):
        sampler.run(Described("/cache/a/gpt.pt", "bb" * 32), job_for(out))
