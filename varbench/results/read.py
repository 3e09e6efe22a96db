"""Reading results: ``load`` a file or ``validate`` an object, migrating version 1 on the way; one-line
``VarbenchError`` on anything else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from varbench.errors import VarbenchError
from varbench.results.migrate import from_v1
from varbench.results.schema import KINDS, SCHEMA, SCHEMA_VERSION, Protocol, Result


def load(path: str | Path, kind: str | None = None) -> Result:
    """Read, migrate (version 1) and validate a result file; one-line ``VarbenchError`` on anything unexpected."""
    path = Path(path)
    try:
        obj: Any = json.loads(path.read_text())
    except FileNotFoundError:
        raise VarbenchError(f"results file not found: {path}") from None
    except IsADirectoryError:
        raise VarbenchError(f"{path} is a directory; give a result JSON (generate writes DIR/result.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VarbenchError(f"{path} is not a readable JSON file: {e}") from None
    return validate(obj, str(path), kind)


def validate(obj: Any, where: str, kind: str | None = None) -> Result:
    if not isinstance(obj, dict) or obj.get("schema") != SCHEMA:
        raise VarbenchError(f"{where} is not a varbench result (missing \"schema\": \"{SCHEMA}\")")
    if obj.get("schema_version") == 1:
        obj = from_v1(obj)
    if obj.get("schema_version") != SCHEMA_VERSION:
        raise VarbenchError(
            f"{where} has schema_version {obj.get('schema_version')!r}; this varbench reads versions 1 and "
            f"{SCHEMA_VERSION} (a newer varbench wrote it: upgrade varbench)"
        )
    if obj.get("kind") not in KINDS:
        raise VarbenchError(f"{where} has unknown kind {obj.get('kind')!r}; expected one of {', '.join(KINDS)}")
    if kind is not None and obj["kind"] != kind:
        raise VarbenchError(f"{where} is a {obj['kind']!r} result; expected a {kind!r} result")
    missing = [k for k in Result.__annotations__ if k not in obj]
    if missing:
        raise VarbenchError(f"{where} lacks required keys: {', '.join(missing)}")
    for key in ("env", "protocol", "config", "results"):
        if not isinstance(obj[key], dict):
            raise VarbenchError(f"{where}: {key!r} must be a JSON object, got {type(obj[key]).__name__}")
    lacking = [k for k in Protocol.__annotations__ if k not in obj["protocol"]]
    if lacking:
        raise VarbenchError(f"{where}: protocol lacks {', '.join(lacking)}")
    if obj["kind"] == "fid":  # fid results written before intervals and DINOv2 metrics existed have neither
        obj["results"].setdefault("intervals", None)
        obj["results"].setdefault("dinov2", None)
        obj["results"].setdefault("audit", None)
    return obj  # type: ignore[return-value]
