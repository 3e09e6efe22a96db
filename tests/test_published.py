"""The published tables (varbench/results/published) equal the facts' transcription cell by cell (a copy in
tests/fixtures/published_facts.md, checked against ../shared/facts when that is present)."""

from __future__ import annotations

import re

import pytest

from conftest import FIXTURES, SHARED
from varbench.errors import VarbenchError
from varbench.generators import zoo
from varbench.results import published

FACTS = FIXTURES / "published_facts.md"  # the repository's own copy: the suite needs nothing beside the clone
BASELINES_MD, VAR_MD = FACTS, FACTS
MARKERS = {"baselines.md": ("### 1.1 Table 1", "### 1.2 Table 2", "**Reported FID/IS (ImageNet 256)**"),
           "var.md": ('README "VAR zoo" table',)}


def md_table_after(path, marker: str) -> list[list[str]]:
    """Body rows (cells stripped) of the first Markdown pipe table after the line containing ``marker``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if marker in line)
    i = next(j for j in range(start + 1, len(lines)) if lines[j].startswith("|"))
    rows = []
    while i < len(lines) and lines[i].startswith("|"):
        rows.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
        i += 1
    assert re.fullmatch(r"[-| :]+", "|".join(rows[1])), "second line must be the header rule"
    return rows[2:]


def plain(cell: str) -> str:
    """The cell without Markdown emphasis; the table's "–" (no value) becomes ""."""
    cell = cell.replace("**", "").strip()
    return "" if cell == "–" else cell


def number(cell: str, row: dict, key: str):
    """A numeric facts cell checked against the row: value equal, "~" iff the key is marked approximate."""
    text = plain(cell)
    if not text:
        assert row[key] is None, (row["model"], key, row[key])
        return
    approx = text.startswith("~")
    assert approx == (key in row["approx"]), (row["model"], key)
    assert row[key] == float(text.lstrip("~")), (row["model"], key, row[key], text)


def with_paren(value: str, paren: str) -> str:
    return f"{value} ({paren})" if paren else value


def test_var_table1_equals_facts_cell_by_cell():
    facts = md_table_after(BASELINES_MD, "### 1.1 Table 1")
    rows = published.load("var_neurips_table1")
    assert len(rows) == len(facts) == 26
    for cells, row in zip(facts, rows):
        typ, model, fid, is_, pre, rec, params, steps, time = cells
        assert plain(typ) == row["type"] or (typ == "–" and row["type"] == "–")
        assert plain(model) == with_paren(row["model"], row["remark"])
        for cell, key in ((fid, "fid"), (is_, "is_mean"), (pre, "precision"), (rec, "recall")):
            number(cell, row, key)
        assert plain(params) == row["params"]
        assert plain(steps) == row["steps"]
        assert plain(time) == (with_paren(row["time_rel"], row["time_source"]) if row["time_rel"] else "")


def test_var_table2_equals_facts_cell_by_cell():
    facts = md_table_after(BASELINES_MD, "### 1.2 Table 2")
    rows = published.load("var_neurips_table2")
    assert len(rows) == len(facts) == 6
    for (typ, model, fid, is_, time), row in zip(facts, rows):
        assert plain(typ) == row["type"]
        assert plain(model) == with_paren(row["model"], row["remark"])
        number(fid, row, "fid")
        number(is_, row, "is_mean")
        assert plain(time) == row["time_rel"]
        assert row["resolution"] == row["eval_resolution"] == 512


def test_var_readme_zoo_equals_facts_cell_by_cell():
    facts = md_table_after(VAR_MD, "README \"VAR zoo\" table")
    rows = published.load("var_readme_zoo")
    assert len(rows) == len(facts) == 6
    for (model, reso, fid, cost, params), row in zip(facts, rows):
        assert model == row["model"]
        assert int(reso) == row["resolution"] == row["eval_resolution"]
        number(fid, row, "fid")
        assert plain(cost) == row["time_rel"]
        assert params == row["params"]
        assert row["paper_version"] == "VAR arXiv v1"


def test_llamagen_readme_equals_facts_cell_by_cell():
    facts = md_table_after(BASELINES_MD, "**Reported FID/IS (ImageNet 256)**")
    rows = published.load("llamagen_readme")
    assert len(rows) == len(facts) == 10
    for (model, grid, fid, is_, pre, rec), row in zip(facts, rows):
        assert model == row["model"]
        g = row["resolution"] // 16
        assert grid == f"{g}×{g}"
        number(fid, row, "fid")
        value, _, paren = is_.partition(" (")
        number(value, row, "is_mean")
        assert paren.rstrip(")") == row["remark"]
        number(pre, row, "precision")
        number(rec, row, "recall")
        assert row["eval_resolution"] == 256 and row["cfg_semantics"] == "constant"
        assert row["label_scheme"] == "uniform_random"


def test_every_row_names_its_protocol():
    vocab = {
        "reference_batch": {"VIRTUAL_imagenet256_labeled", "VIRTUAL_imagenet512", "not_stated"},
        "label_scheme": {"50_per_class", "uniform_random", "not_stated", "not_applicable"},
        "cfg_semantics": {"var_ramp", "constant", "not_stated", "not_applicable"},
    }
    for row in published.all_rows():
        assert row["paper_version"] and row["source"], row["model"]
        for key, allowed in vocab.items():
            assert row[key] in allowed, (row["model"], key, row[key])
        assert row["resolution"] in (256, 384, 512) and row["eval_resolution"] in (256, 512)
        if row["zoo"]:
            assert row["rejection"] is False, f"{row['model']}: a rejection-sampled row cannot map to a zoo model"
            assert row["reference_batch"] != "not_stated" and row["samples"] == 50000


def test_paper_versions_differ_where_the_facts_say():
    """VAR-d16: NeurIPS Table 1 says 3.30, the README (arXiv v1) 3.55; the report must keep both apart."""
    rows = {r["table"]: r for r in published.for_model("var_d16")}
    assert rows["var_neurips_table1"]["fid"] == 3.30 and rows["var_readme_zoo"]["fid"] == 3.55
    assert rows["var_neurips_table1"]["paper_version"] != rows["var_readme_zoo"]["paper_version"]
    best = [r for r in published.load("var_neurips_table1") if r["model"] == "VAR-d30-re"][0]
    assert (best["fid"], best["is_mean"], best["rejection"], best["zoo"]) == (1.73, 350.2, True, "")
    lg = [r for r in published.load("llamagen_readme") if r["model"] == "LlamaGen-XL-384"][0]
    assert (lg["resolution"], lg["eval_resolution"], lg["fid"]) == (384, 256, 2.62)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared (the project's facts) is not beside this clone")
def test_the_fixture_copy_equals_the_shared_facts():
    for name, markers in MARKERS.items():
        for marker in markers:
            assert md_table_after(FACTS, marker) == md_table_after(SHARED / "facts" / name, marker), marker


def test_published_rows_name_zoo_models_that_exist():
    names = set(zoo.names())
    assert {r["zoo"] for r in published.all_rows() if r["zoo"]} <= names
    assert published.for_model("var_d16")[0]["fid"] == 3.30  # NeurIPS Table 1 first


def test_unknown_table_and_bad_file_raise_one_line(tmp_path, monkeypatch):
    with pytest.raises(VarbenchError, match="did you mean var_readme_zoo"):
        published.load("var_readme")
    bad = tmp_path / "published"
    bad.mkdir()
    header = (published.data_dir() / "var_readme_zoo.csv").read_text().splitlines()[0]
    (bad / "var_readme_zoo.csv").write_text(header.replace("fid,", "fidd,") + "\n")
    monkeypatch.setattr(published, "data_dir", lambda: bad)
    published._load.cache_clear()
    try:
        with pytest.raises(VarbenchError, match="unexpected columns \\['fidd'\\]"):
            published.load("var_readme_zoo")
        (bad / "var_readme_zoo.csv").write_text(header + "\nvar_readme_zoo,VAR,x,,,abc" + "," * 21 + "\n")
        published._load.cache_clear()
        with pytest.raises(VarbenchError, match="column 'fid' has a bad value 'abc'"):
            published.load("var_readme_zoo")
    finally:
        published._load.cache_clear()
