"""Checkpoint resolution and loading: strict keys, clear one-line errors, the pickle guard."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from var_recipe import recipe_vae, recipe_var
from varbench import checkpoint
from varbench.errors import VarbenchError
from varbench.generate.plan import sample_seed
from varbench.generators import weights, zoo
from varbench.generators.protocol import build
from varbench.generators.spec import WeightFile
from varbench.models.var import VARConfig
from varbench.models.vqvae import VQVAEConfig

PN = (1, 2, 4)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """Official-layout state dicts of a tiny VAR and VAE, saved the way the released files are (plain dicts)."""
    d = tmp_path_factory.mktemp("ckpt")
    var = recipe_var(VARConfig(depth=1, patch_nums=PN))
    vae = recipe_vae(VQVAEConfig(patch_nums=PN, ch=32))
    torch.save(var.state_dict(), d / "var.pth")
    torch.save(vae.state_dict(), d / "vae.pth")
    return d, var.state_dict(), vae.state_dict()


def custom(pn=PN):
    return zoo.custom_var(pn)


def test_custom_checkpoints_load_and_sample(ckpts):
    d, _, _ = ckpts
    g = build(custom(), {"var": d / "var.pth", "vae": d / "vae.pth"})
    assert g.var.cfg.depth == 1 and g.var.cfg.C == 64 and g.vae.cfg.ch == 32 and not g.random_weights
    imgs = g.generate([1, 2], [sample_seed(0, 0), sample_seed(0, 1)])
    assert imgs.shape == (2, 64, 64, 3)
    assert len(g.describe()["checkpoint_sha256"]["var"]) == 64


def test_wrapped_and_ddp_prefixed_state_dicts(ckpts, tmp_path):
    d, var_sd, _ = ckpts
    torch.save({"model": {f"module.{k}": v for k, v in var_sd.items()}}, tmp_path / "wrapped.pth")
    sd = checkpoint.load_state_dict(tmp_path / "wrapped.pth")
    assert set(sd) == set(var_sd)


def _err(fn) -> str:
    with pytest.raises(VarbenchError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_bad_checkpoints_give_one_line(ckpts, tmp_path):
    d, var_sd, vae_sd = ckpts
    vae = d / "vae.pth"
    # missing
    assert "not found" in _err(lambda: build(custom(), {"var": tmp_path / "nope.pth", "vae": vae}))
    # truncated
    raw = (d / "var.pth").read_bytes()
    (tmp_path / "trunc.pth").write_bytes(raw[: len(raw) // 2])
    assert "is truncated" in _err(lambda: build(custom(), {"var": tmp_path / "trunc.pth", "vae": vae}))
    # a text file passed as a checkpoint (torch.load would fail inside the unpickler with "KeyError: 101")
    (tmp_path / "notes.txt").write_text("e" * 100)
    assert "not a torch file" in _err(lambda: build(custom(), {"var": tmp_path / "notes.txt", "vae": vae}))
    # wrong / missing keys
    bad = dict(var_sd)
    bad.pop("head.bias")
    bad["extra.weight"] = torch.zeros(3)
    torch.save(bad, tmp_path / "keys.pth")
    msg = _err(lambda: build(custom(), {"var": tmp_path / "keys.pth", "vae": vae}))
    assert "missing keys: head.bias" in msg and "unexpected keys: extra.weight" in msg
    # wrong shapes
    bad = dict(var_sd)
    bad["head.bias"] = torch.zeros(7)
    torch.save(bad, tmp_path / "shape.pth")
    assert "head.bias (7,) vs expected (4096,)" in _err(lambda: build(custom(), {"var": tmp_path / "shape.pth", "vae": vae}))
    # a VAR file given as the VAE
    assert "VAR transformer checkpoint" in _err(lambda: build(custom(), {"var": d / "var.pth", "vae": d / "var.pth"}))
    # wrong schedule
    assert "--patch-nums" in _err(lambda: build(custom((1, 2, 3)), {"var": d / "var.pth", "vae": vae}))


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_with_code_is_refused(tmp_path, capsys):
    torch.save({"weight": torch.zeros(1), "payload": _Evil()}, tmp_path / "evil.pth")
    msg = _err(lambda: checkpoint.load_state_dict(tmp_path / "evil.pth"))
    assert "weights_only" in msg
    assert "pwned" not in capsys.readouterr().out


def test_zoo_depth_mismatch(ckpts):
    d, _, _ = ckpts
    spec = zoo.get("var_d16")
    msg = _err(lambda: build(spec, {"var": d / "var.pth", "vae": d / "vae.pth"}, patch_nums=PN))
    assert "depth 1" in msg and "var_d16" in msg


def test_offline_miss_names_file_url_and_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("VARBENCH_HOME", str(tmp_path))
    monkeypatch.setenv("VARBENCH_OFFLINE", "1")
    msg = _err(lambda: build(zoo.get("var_d16")))
    assert "var_d16.pth, vae_ch160v4096z32.pth not in" in msg  # every missing file at once
    assert "https://huggingface.co/FoundationVision/var/resolve/main/var_d16.pth" in msg
    assert "--var-ckpt PATH --vae-ckpt PATH" in msg and str(tmp_path / "weights") in msg


def test_no_network_is_one_quick_line(monkeypatch, tmp_path):
    """Downloads allowed but the hub unreachable (conftest blocks sockets): one line naming every file, no retries."""
    import time

    monkeypatch.setenv("VARBENCH_HOME", str(tmp_path))
    monkeypatch.delenv("VARBENCH_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    t0 = time.monotonic()
    msg = _err(lambda: build(zoo.get("var_d30")))
    assert time.monotonic() - t0 < 5
    assert "var_d30.pth, vae_ch160v4096z32.pth not in" in msg and "huggingface.co cannot be reached" in msg


def test_cache_hit_and_sha256_check(monkeypatch, tmp_path):
    monkeypatch.setenv("VARBENCH_HOME", str(tmp_path))
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "f.pth").write_bytes(b"abc")
    good = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert weights.resolve(WeightFile("var", "r/x", "f.pth", good)) == tmp_path / "weights" / "f.pth"
    assert "sha256 mismatch" in _err(lambda: weights.resolve(WeightFile("var", "r/x", "f.pth", "0" * 64)))


def test_patch_nums_must_fit_custom_checkpoints(ckpts):
    d, _, _ = ckpts
    spec = custom((1, 2, 3))
    assert "--patch-nums" in _err(lambda: build(spec, {"var": d / "var.pth", "vae": d / "vae.pth"}))
    assert "--patch-nums must be increasing" in _err(lambda: custom((1, 4, 2)))


def test_bad_labels_and_device():
    g = build(zoo.get("var_test"))
    assert "labels must be in 0..999" in _err(lambda: g.generate([1001], [0]))
    assert "CUDA is not available" in _err(lambda: build(zoo.get("var_test"), device="cuda"))
    assert np.asarray(g.generate([1000], [0])).shape == (1, 64, 64, 3)  # null class allowed


def test_generate_cli_with_custom_checkpoints(ckpts, tmp_path):
    """`varbench generate --var-ckpt/--vae-ckpt --patch-nums`: works with good files; bad ones are one line, exit 2."""
    from typer.testing import CliRunner

    from varbench.cli.app import app

    d, var_sd, _ = ckpts
    common = ["generate", "--vae-ckpt", str(d / "vae.pth"), "--patch-nums", "1,2,4", "--labels", "1,2"]
    res = CliRunner().invoke(app, [*common, "--var-ckpt", str(d / "var.pth"), "--out", str(tmp_path / "ok")])
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "ok" / "samples.npz", allow_pickle=False) as z:
        assert z["arr_0"].shape == (2, 64, 64, 3) and z["arr_0"].dtype == np.uint8
        assert z["labels"].tolist() == [1, 2] and z["indices"].tolist() == [0, 1]
    bad = dict(var_sd)
    bad["head.bias"] = torch.zeros(7)
    torch.save(bad, tmp_path / "bad.pth")
    for var_file, needle in ((tmp_path / "bad.pth", "shape mismatches"), (d / "vae.pth", "VQVAE tokenizer checkpoint")):
        res = CliRunner().invoke(app, [*common, "--var-ckpt", str(var_file), "--out", str(tmp_path / "bad")])
        assert res.exit_code == 2, res.output
        assert "Traceback" not in res.output
        errors = [line for line in res.stderr.splitlines() if line.strip()]
        assert len(errors) == 1 and needle in errors[0], res.stderr
