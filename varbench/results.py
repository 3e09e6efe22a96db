"""The results schema shared by ``generate``, ``fid`` and ``speed`` (and read by ``report``/``compare``).

A result is one JSON object; every key is documented here (like lm-eval's ``result_schema.py``)::

    {
      "schema": "varbench.result",     # constant; identifies the file type
      "schema_version": 1,             # bumped on any incompatible change; readers refuse other versions
      "kind": "generate",              # "generate" | "fid" | "speed"
      "created": "2026-11-22T15:00:00+00:00",  # UTC, ISO 8601
      "env": {...},                    # varbench.env.collect(): versions, git sha, device, threads
      "config": {...},                 # every setting of the run (kind-specific, full, no defaults left implicit)
      "results": {...},                # kind-specific numbers (metric keys are plain: "fid", "is_mean", ...)
      "random_weights": false          # true when any model ran with random weights (always shown in reports)
    }
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, TypedDict

from varbench import atomic
from varbench.errors import VarbenchError

SCHEMA = "varbench.result"
SCHEMA_VERSION = 1
KINDS = ("generate", "fid", "speed")


class Result(TypedDict):
    schema: str  # always "varbench.result"
    schema_version: int  # SCHEMA_VERSION of the writer
    kind: str  # one of KINDS
    created: str  # UTC ISO 8601 timestamp
    env: dict  # varbench.env.collect(device)
    config: dict  # the full run configuration
    results: dict  # the numbers
    random_weights: bool  # any model with random weights


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def make(kind: str, config: dict, results: dict, *, device: str | None = None, random_weights: bool = False) -> Result:
    from varbench import env

    if kind not in KINDS:
        raise ValueError(f"unknown result kind {kind!r}")
    return Result(
        schema=SCHEMA,
        schema_version=SCHEMA_VERSION,
        kind=kind,
        created=now_utc(),
        env=env.collect(device),
        config=config,
        results=results,
        random_weights=bool(random_weights),
    )


def save(path: str | Path, result: Result) -> None:
    atomic.write_json(path, result)


def load(path: str | Path, kind: str | None = None) -> Result:
    """Read and validate a result file; one-line ``VarbenchError`` on anything unexpected."""
    path = Path(path)
    try:
        obj: Any = json.loads(path.read_text())
    except FileNotFoundError:
        raise VarbenchError(f"results file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VarbenchError(f"{path} is not a readable JSON file: {e}") from None
    return validate(obj, str(path), kind)


def validate(obj: Any, where: str, kind: str | None = None) -> Result:
    if not isinstance(obj, dict) or obj.get("schema") != SCHEMA:
        raise VarbenchError(f"{where} is not a varbench result (missing \"schema\": \"{SCHEMA}\")")
    if obj.get("schema_version") != SCHEMA_VERSION:
        raise VarbenchError(
            f"{where} has schema_version {obj.get('schema_version')!r}; this varbench reads version {SCHEMA_VERSION} "
            "(re-create it with this version)"
        )
    if obj.get("kind") not in KINDS:
        raise VarbenchError(f"{where} has unknown kind {obj.get('kind')!r}; expected one of {', '.join(KINDS)}")
    if kind is not None and obj["kind"] != kind:
        raise VarbenchError(f"{where} is a {obj['kind']!r} result; expected a {kind!r} result")
    missing = [k for k in Result.__annotations__ if k not in obj]
    if missing:
        raise VarbenchError(f"{where} lacks required keys: {', '.join(missing)}")
    return obj  # type: ignore[return-value]
