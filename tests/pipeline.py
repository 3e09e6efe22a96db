"""Real outputs of the whole pipeline on the tiny models, made once per test session (about half a minute):
``varbench generate`` (var_test at three guidance scales, llamagen_test), ``varbench ref build`` (seeded noise),
``varbench fid`` on each, and a tiny ``varbench speed`` study.  The report, compare and plot tests read these files,
never hand-written result dicts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from varbench.cli.app import app

FID = ["--metrics", "fid,sfid,is,pr,kid", "--is-splits", "2", "--kid-subsets", "3", "--kid-subset-size", "4",
       "--device", "cpu", "--batch-size", "8"]
CFGS = (1.0, 1.5, 2.0)


@dataclass(frozen=True)
class Runs:
    root: Path
    weights: Path  # random Inception weights
    generate: dict  # cfg -> var_test generate directory (8 samples, 1 per class)
    fid: dict  # cfg -> fid.json of that directory
    llamagen: Path  # llamagen_test generate directory (2 samples)
    llamagen_fid: Path
    speed: Path  # speed result JSON


def cli(*args) -> str:
    res = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})
    assert res.exit_code == 0, (args, res.output, res.exception)
    return res.output


def make(root: Path) -> Runs:
    import torch

    from varbench.features.inception import random_state_dict

    weights = root / "inception-random-0.pth"
    torch.save(random_state_dict(0), weights)
    cli("generate", "--model", "noise_test", "--num-samples", "16", "--per-class", "1", "--seed", "1",
        "--out", root / "noise")
    cli("ref", "build", "ci_noise16", "--from", root / "noise" / "samples.npz", "--inception-weights", weights,
        "--device", "cpu")
    generate, fid = {}, {}
    for cfg in CFGS:
        out = generate[cfg] = root / f"var_test_cfg{cfg}"
        cli("generate", "--model", "var_test", "--num-samples", "8", "--per-class", "1", "--cfg", cfg, "--out", out)
        fid[cfg] = out / "fid.json"
        cli("fid", out, "--ref", "ci_noise16", "--inception-weights", weights, *FID, "--json", fid[cfg])
    llamagen = root / "llamagen_test"  # 256 px: scored against a reference made from its own images
    cli("generate", "--model", "llamagen_test", "--labels", "3,980,5,7", "--out", llamagen)
    cli("ref", "build", "self256", "--from", llamagen / "samples.npz", "--inception-weights", weights,
        "--device", "cpu")
    cli("fid", llamagen, "--ref", "self256", "--inception-weights", weights, "--metrics", "fid",
        "--device", "cpu", "--json", llamagen / "fid.json")
    speed = root / "speed.json"
    cli("speed", "--models", "var_d16", "--width", "64", "--depth", "1", "--vae-ch", "32", "--resolutions", "32,48",
        "--batch-sizes", "1", "--repeats", "2", "--warmup", "1", "--threads", "1", "--json", speed)
    return Runs(root, weights, generate, fid, llamagen, llamagen / "fid.json", speed)


def ok(result):
    """A CliRunner result that succeeded (its output shown when not)."""
    assert result.exit_code == 0, result.output
    return result


def one_line_error(result, *needles) -> str:
    """A CliRunner result that failed on bad input: exit 2, no traceback, exactly one error line holding ``needles``."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]
