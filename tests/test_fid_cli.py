"""``varbench ref build`` + ``varbench fid`` end to end on a small generated set (random Inception weights, CPU),
the other backends, the feature cache, and every bad input ending in one line and exit code 2."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import inception_random
from varbench.evaluate import reference as stats
from varbench.files import sha256_file
from varbench.cli.app import app
from varbench.features import inception
from varbench.metrics import fid as fid_metric
from varbench.metrics import inception_score, kid, prec_recall

runner = CliRunner()
SMALL = ["--kid-subset-size", "6", "--kid-subsets", "5", "--is-splits", "3", "--device", "cpu", "--batch-size", "5"]


def run(*args, ok=True):
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
    return result


def fails(*args, match: str):
    """Exit code 2 with exactly one error line, the last, that contains ``match``; no traceback.  (A progress bar
    that was running when the error came may stand above it.)"""
    result = run(*args, ok=False)
    assert result.exit_code == 2, (result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert all("/" in line and ("reference" in line or "features" in line) for line in lines[:-1]), result.stderr
    assert match in errors[0], errors[0]
    assert "Traceback" not in result.output and result.stdout == ""
    return errors[0]


def save_pngs(folder, imgs, mode="RGB"):
    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(imgs):
        Image.fromarray(im).convert(mode).save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return inception_random.weights_file(tmp_path_factory)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """12 samples of the random-weight var_test generator (64 px), written by ``varbench generate``."""
    out = tmp_path_factory.mktemp("gen") / "var_test"
    run("generate", "--model", "var_test", "--labels", ",".join(str(i) for i in range(1, 13)), "--out", out)
    return out


@pytest.fixture(scope="module")
def toy_ref(tmp_path_factory, weights):
    """A reference built from a folder of 12 "real" PNG images."""
    folder = save_pngs(tmp_path_factory.mktemp("real") / "imgs", inception_random.images(12, 64, 64, seed=7))
    run("ref", "build", "toy", "--from", folder, "--inception-weights", weights, "--device", "cpu",
        "--batch-size", "5")
    return stats.load(stats.path_for("toy"))


def test_ref_build_then_fid_end_to_end(generated, toy_ref, weights, tmp_path):
    ex = inception.InceptionExtractor.from_file(weights)
    assert toy_ref.extractor_id == ex.id and toy_ref.resolution == [64, 64] and toy_ref.n == 12
    assert toy_ref.origin == "computed" and toy_ref.features.shape == (12, 2048)
    listed = json.loads(run("ref", "list", "--json").stdout)
    assert {"name": "toy", "built": True}.items() <= next(r for r in listed if r["name"] == "toy").items()
    assert json.loads(run("ref", "show", "toy", "--json").stdout)["source_sha256"] == toy_ref.source_sha256

    out = tmp_path / "fid.json"
    shown = run("fid", generated, "--ref", "toy", "--inception-weights", weights, *SMALL, "--json", out)
    assert "FID (fid)" in shown.stdout and "sFID" in shown.stdout
    result = json.loads(out.read_text())
    res, p = result["results"], result["protocol"]
    assert result["kind"] == "fid" and result["schema_version"] == 2
    assert result["random_weights"] is True  # var_test samples and non-official Inception weights
    assert set(res["metrics"]) == {"fid", "sfid", "is_mean", "is_std", "precision", "recall", "kid_mean", "kid_std"}
    assert all(np.isfinite(v) for v in res["metrics"].values())
    cfg = result["config"]
    assert cfg["metrics"] == ["fid", "sfid", "is", "pr", "kid"] and cfg["dtype"] == "fp32"
    assert cfg["kid_subset_size"] == 6 and cfg["pr_distance"] == "fp16" and cfg["device"] == "cpu"
    # how the samples were made, from the generate directory's result: what a report needs to find published numbers
    assert p["model"]["name"] == "var_test" and p["model"]["random_weights"] is True
    assert p["sampling"]["cfg"] == 1.5 and p["sampling"]["guidance_rule"] == "var_ramp"
    assert p["labels"]["scheme"] == "explicit" and p["seeds"]["rng"] == "per-sample"
    arr = np.load(generated / "samples.npz")["arr_0"]
    assert p["samples"]["sha256"] == hashlib.sha256(arr.tobytes()).hexdigest()
    assert (p["samples"]["resolution"], p["samples"]["count"]) == (64, 12)
    assert p["reference"]["source_sha256"] == toy_ref.source_sha256 and p["reference"]["extractor_id"] == ex.id
    assert p["reference"]["batch"] is None and p["reference"]["origin"] == "computed"
    assert p["extractor"]["id"] == ex.id and p["arithmetic"]["float32"]["cudnn_conv_fp32_precision"] == "ieee"
    assert p["arithmetic"]["precision"].startswith("fp16 squared distances (ADM") and "eig" in p["arithmetic"]["fid"]
    assert result["env"]["torch"]
    warnings = " ".join(result["warnings"])
    assert "rank-deficient" in warnings and "class-sorted" in warnings  # labels 1..12 in order

    # the numbers are the pure functions applied to the cached features and the reference
    with np.load(res["features"]["cache_path"]) as z:
        pool3, logits, spatial = z["pool3"], z["logits"], z["spatial"]
    m = res["metrics"]
    assert m["fid"] == fid_metric.frechet_distance(*fid_metric.feature_statistics(pool3), toy_ref.mu, toy_ref.sigma)
    assert m["sfid"] == fid_metric.frechet_distance(*fid_metric.feature_statistics(spatial), toy_ref.mu_s,
                                                    toy_ref.sigma_s)
    assert m["is_mean"] == inception_score.inception_score(logits, 3, labels=np.arange(1, 13)).mean
    pr = prec_recall.precision_recall(toy_ref.features, pool3)
    assert (m["precision"], m["recall"]) == (pr.precision, pr.recall)
    assert m["kid_mean"] == kid.kernel_inception_distance(pool3, toy_ref.features, subsets=5, subset_size=6).mean


def test_rescoring_uses_cached_features(generated, toy_ref, weights, tmp_path, monkeypatch):
    run("fid", generated, "--ref", "toy", "--inception-weights", weights, *SMALL, "--metrics", "fid")

    def no_extraction(self, images):
        raise AssertionError("features were recomputed")

    monkeypatch.setattr(inception.InceptionExtractor, "extract", no_extraction)
    out = tmp_path / "again.json"
    run("fid", generated, "--ref", "toy", "--inception-weights", weights, *SMALL, "--metrics", "is,pr", "--json", out)
    res = json.loads(out.read_text())["results"]
    assert res["features"]["cached"] is True and set(res["metrics"]) == {"is_mean", "is_std", "precision", "recall"}


def test_backend_all_runs_one_table(generated, toy_ref, weights, tmp_path):
    out = tmp_path / "all.json"
    shown = run("fid", generated, "--ref", "toy", "--inception-weights", weights, *SMALL,
                "--metrics", "is,pr,kid", "--backend", "all", "--json", out)
    assert "torch-fidelity" in shown.stdout and "clean-fid" in shown.stdout and "Δ torch-fidelity" in shown.stdout
    res = json.loads(out.read_text())["results"]
    assert set(res["backends"]) == {"adm", "torch-fidelity", "clean-fid"}
    tf, cf, ours = res["backends"]["torch-fidelity"], res["backends"]["clean-fid"], res["metrics"]
    assert set(tf) == {"is_mean", "is_std", "precision", "recall", "kid_mean", "kid_std"}
    assert set(cf) == {"kid_mean"}
    # torch-fidelity shuffles before its IS splits (seed 2020): our order-robust IS is that number
    assert tf["is_mean"] == pytest.approx(res["details"]["is"]["shuffled_mean"], rel=1e-4)
    # same subsets (same seed and sampling), features equal to float rounding
    assert tf["kid_mean"] == pytest.approx(ours["kid_mean"], rel=1e-3, abs=1e-6)
    assert res["differences"]["torch-fidelity"]["kid_mean"] == pytest.approx(tf["kid_mean"] - ours["kid_mean"])
    assert np.isfinite(cf["kid_mean"])


@pytest.mark.slow
def test_backend_all_with_fid(generated, toy_ref, weights, tmp_path):  # clean-fid's SciPy sqrtm at d=2048: ~1 min
    out = tmp_path / "all_fid.json"
    run("fid", generated, "--ref", "toy", "--inception-weights", weights, *SMALL, "--metrics", "fid,kid",
        "--backend", "all", "--json", out)
    res = json.loads(out.read_text())["results"]
    ours = res["metrics"]["fid"]
    for name in ("torch-fidelity", "clean-fid"):
        assert res["backends"][name]["fid"] == pytest.approx(ours, rel=1e-3)


def _adm_reference_npz(path, imgs):
    rng = np.random.default_rng(0)
    np.savez(path, arr_0=imgs, mu=rng.uniform(0, 1, 2048), sigma=np.diag(rng.uniform(0.5, 1.5, 2048)),
             mu_s=rng.uniform(0, 1, 2023), sigma_s=np.diag(rng.uniform(0.5, 1.5, 2023)))
    return path


def test_ref_build_from_adm_npz(tmp_path, weights, monkeypatch):
    src = _adm_reference_npz(tmp_path / "VIRTUAL_toy.npz", inception_random.images(5, 64, 64, seed=9))
    # stored ADM statistics come from the official network: refused with other weights
    fails("ref", "build", "admref", "--from", src, "--inception-weights", weights, match="--recompute")
    # ... and used as they are with the official weights (here: our random file made to look official)
    sha = inception.InceptionExtractor.from_file(weights).weights_sha256
    monkeypatch.setattr(inception, "OFFICIAL_SHA256_PREFIX", sha[:8])
    run("ref", "build", "admref", "--from", src, "--inception-weights", weights, "--device", "cpu")
    ref = stats.load(stats.path_for("admref"))
    with np.load(src) as z:
        np.testing.assert_array_equal(ref.mu, z["mu"])
        np.testing.assert_array_equal(ref.sigma_s, z["sigma_s"])
    assert ref.origin == "adm-stored" and ref.features.shape == (5, 2048)
    assert ref.extractor_id == "inception-2015-12-05@1" and ref.source_sha256 == sha256_file(src)
    fails("ref", "build", "admref", "--from", src, "--inception-weights", weights, match="--force")


def test_bad_inputs_are_one_line_exit_2(tmp_path, generated, toy_ref, weights):
    w = ["--inception-weights", weights, "--device", "cpu"]
    imgs = inception_random.images(3, 64, 64)
    mixed = save_pngs(tmp_path / "mixed", imgs)
    Image.fromarray(inception_random.images(1, 48, 64)[0]).save(mixed / "999.png")
    fails("fid", mixed, "--ref", "toy", *w, match="mixed image sizes")
    rgba = save_pngs(tmp_path / "rgba", imgs, mode="RGBA")
    fails("fid", rgba, "--ref", "toy", *w, match="mode RGBA")
    (tmp_path / "empty").mkdir()
    fails("fid", tmp_path / "empty", "--ref", "toy", *w, match="holds no images")
    corrupt = save_pngs(tmp_path / "corrupt", imgs)
    (corrupt / "001.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    fails("fid", corrupt, "--ref", "toy", *w, match="001.png")
    truncated = save_pngs(tmp_path / "truncated", imgs)
    data = (truncated / "002.png").read_bytes()
    (truncated / "002.png").write_bytes(data[: len(data) // 2])
    fails("fid", truncated, "--ref", "toy", *w, match="002.png")

    np.savez(tmp_path / "float.npz", arr_0=imgs.astype(np.float32) / 255)
    fails("fid", tmp_path / "float.npz", "--ref", "toy", *w, match="dtype float32")
    np.savez(tmp_path / "nchw.npz", arr_0=imgs.transpose(0, 3, 1, 2).copy())
    fails("fid", tmp_path / "nchw.npz", "--ref", "toy", *w, match="NCHW")

    np.savez(tmp_path / "one.npz", arr_0=imgs[:1])
    fails("fid", tmp_path / "one.npz", "--ref", "toy", "--metrics", "sfid", *w, match="at least 2 samples")
    fails("fid", tmp_path / "one.npz", "--ref", "toy", "--metrics", "pr", *w, match="more than 3 samples")
    fails("fid", generated, "--ref", "toy", "--metrics", "kid", *w, match="--kid-subset-size")
    fails("fid", generated, "--ref", "toy", "--metrics", "fid,bogus", *w, match="bogus")

    # references of another resolution or extractor are refused
    other = stats.ReferenceStats(**{**toy_ref.__dict__, "height": 32, "width": 32, "name": "small"})
    stats.save(other, tmp_path / "small.npz")
    fails("fid", generated, "--ref", tmp_path / "small.npz", *w, match="32x32")
    other = stats.ReferenceStats(**{**toy_ref.__dict__, "extractor_id": "inception-2015-12-05@1", "name": "official"})
    stats.save(other, tmp_path / "official.npz")
    # (--metrics fid: set-size checks come before the Inception weights, and so before the extractor check)
    fails("fid", generated, "--ref", tmp_path / "official.npz", "--metrics", "fid", *w, match="feature extractor")
    fails("fid", generated, "--ref", "tyo", *w, match="did you mean toy")
    fails("fid", generated, "--ref", "imagenet256", *w, match="VIRTUAL_imagenet256_labeled.npz")


def test_nan_features_are_refused(tmp_path_factory, tmp_path):
    nan_weights = inception_random.weights_file(tmp_path_factory, nan=True)
    folder = save_pngs(tmp_path / "two", inception_random.images(2, 64, 64))
    fails("ref", "build", "nanref", "--from", folder, "--inception-weights", nan_weights, "--device", "cpu",
          match="NaN/inf")


def test_grayscale_and_palette_are_converted(tmp_path):
    from varbench.evaluate import samples as images

    imgs = inception_random.images(2, 16, 16)
    folder = save_pngs(tmp_path / "gray", imgs, mode="L")
    Image.fromarray(imgs[0]).convert("P").save(folder / "002.png")
    (folder / "003.jpg").write_bytes((folder / "000.png").read_bytes())  # a PNG under a lossy name
    samples = images.open_samples(folder)
    batch = next(samples.batches(8))
    assert batch.shape == (4, 16, 16, 3) and batch.dtype == np.uint8
    assert np.array_equal(batch[0, ..., 0], batch[0, ..., 2])  # grey replicated into RGB
    assert any("converted to RGB" in w for w in samples.warnings) and any("JPEG" in w for w in samples.warnings)


def test_single_other_backend_skips_our_features(toy_ref, weights, tmp_path):
    imgs = inception_random.images(4, 64, 64, seed=11)
    np.savez(tmp_path / "four.npz", arr_0=imgs)
    out = tmp_path / "cf.json"
    run("fid", tmp_path / "four.npz", "--ref", "toy", "--inception-weights", weights, "--device", "cpu",
        "--backend", "clean-fid", "--metrics", "kid", "--kid-subset-size", "4", "--kid-subsets", "3", "--json", out)
    result = json.loads(out.read_text())
    res = result["results"]
    assert res["backend"] == "clean-fid" and set(res["metrics"]) == {"kid_mean"} and res["features"] is None
    assert result["protocol"]["samples"]["sha256"] == hashlib.sha256(imgs.tobytes()).hexdigest()
    assert result["protocol"]["model"] is None  # a bare npz: nothing says how it was made


def test_npy_or_text_named_npz_is_one_line(tmp_path, toy_ref, weights):
    w = ["--inception-weights", weights, "--device", "cpu"]
    np.save(tmp_path / "x.npy", inception_random.images(3, 64, 64))
    (tmp_path / "x.npy").rename(tmp_path / "x.npz")
    fails("fid", tmp_path / "x.npz", "--ref", "toy", *w, match=".npy array, not an .npz archive")
    fails("ref", "build", "fromnpy", "--from", tmp_path / "x.npz", *w, match=".npy array, not an .npz archive")
    np.savez(tmp_path / "ok.npz", arr_0=inception_random.images(3, 64, 64))
    fails("fid", tmp_path / "ok.npz", "--ref", tmp_path / "x.npz", *w, match=".npy array, not an .npz archive")
    (tmp_path / "t.npz").write_text("just some text\n")
    err = fails("fid", tmp_path / "t.npz", "--ref", "toy", *w, match="not an npz archive")
    assert "pickled" not in err
    fails("fid", tmp_path / "ok.npz", "--ref", tmp_path / "t.npz", *w, match="not an npz archive")
    assert not stats.path_for("fromnpy").exists()


@pytest.mark.parametrize("what", ["samples.npz", "png"])
def test_scoring_a_generate_dirs_npz_or_png_folder_keeps_its_protocol(generated, toy_ref, weights, tmp_path, what):
    if what == "png":
        run("generate", "--model", "var_test", "--labels", ",".join(str(i) for i in range(1, 13)), "--png",
            "--out", generated)
    out = tmp_path / "fid.json"
    run("fid", generated / what, "--ref", "toy", "--inception-weights", weights, *SMALL,
        "--metrics", "fid", "--json", out)
    result = json.loads(out.read_text())
    assert result["random_weights"] is True
    p = result["protocol"]
    assert p["model"]["name"] == "var_test" and p["model"]["random_weights"] is True
    assert p["sampling"]["cfg"] == 1.5 and p["samples"]["kind"] == ("folder" if what == "png" else "npz")


def test_fid_json_refuses_an_existing_file_before_any_work(generated, toy_ref, weights, tmp_path, monkeypatch):
    target = tmp_path / "result.json"
    target.write_text('{"keep": true}')

    def no_weights(*args, **kwargs):
        raise AssertionError("Inception weights loaded before the --json check")

    with monkeypatch.context() as m:
        m.setattr(inception.InceptionExtractor, "from_file", no_weights)
        fails("fid", generated, "--ref", "toy", "--inception-weights", weights, *SMALL, "--metrics", "fid",
              "--json", target, match="--overwrite")
    assert target.read_text() == '{"keep": true}'
    run("fid", generated, "--ref", "toy", "--inception-weights", weights, *SMALL, "--metrics", "fid",
        "--json", target, "--overwrite")
    assert json.loads(target.read_text())["kind"] == "fid"


def test_undersized_sets_are_refused_before_loading_weights(tmp_path, toy_ref, monkeypatch):
    def no_weights(*args, **kwargs):
        raise AssertionError("Inception weights loaded before required_counts")

    monkeypatch.setattr(inception.InceptionExtractor, "from_file", no_weights)
    np.savez(tmp_path / "one.npz", arr_0=inception_random.images(1, 64, 64))
    fails("fid", tmp_path / "one.npz", "--ref", "toy", "--metrics", "sfid", "--device", "cpu",
          "--inception-weights", tmp_path / "missing.pth", match="at least 2 samples")
