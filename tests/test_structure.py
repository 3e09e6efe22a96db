"""The house rules that keep the tree readable: the pure-torch model packages import nothing of varbench but
``varbench.errors``, the import graph of varbench's packages has no cycle, modules and functions stay small, and the
command line's import is light (``varbench --help`` must stay fast)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

SOURCES = {"varbench": ROOT / "varbench", "varbench.baselines": ROOT / "baselines"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
NETWORK_MODULES = {"varbench.features.inception_net"}  # network definitions: long by nature


def modules() -> dict[str, Path]:
    out = {}
    for package, root in SOURCES.items():
        for path in root.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            out[".".join((package, *parts))] = path
    return out


def imports_of(path: Path, name: str) -> set[str]:
    """Every varbench module ``name`` imports, at module level or inside functions."""
    out = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
            known = modules()
            for a in node.names:  # "from pkg import submodule" imports the submodule; other names come from pkg
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    known = modules()
    return {m for m in out if m in known and m != name}


def unit(module: str) -> str:
    """The node of the package graph: a subpackage (varbench.generate) or a top-level module (varbench.errors)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def graph(level) -> dict[str, set[str]]:
    g: dict[str, set[str]] = {}
    for name, path in modules().items():
        src = level(name)
        g.setdefault(src, set()).update(level(m) for m in imports_of(path, name) if level(m) != src)
    return g


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (cycle := visit(m)):
                return cycle
        state[n] = 2
        stack.pop()
        return None

    for n in sorted(g):
        if n not in state and (cycle := visit(n)):
            return cycle
    return None


def test_package_and_module_import_graphs_have_no_cycle():
    assert find_cycle(graph(unit)) is None, find_cycle(graph(unit))
    assert find_cycle(graph(lambda m: m)) is None, find_cycle(graph(lambda m: m))
    # the graph is real: the CLI reaches down to the models through the pipelines
    assert {"varbench.generate", "varbench.generators"} <= graph(unit)["varbench.cli"]


@pytest.mark.parametrize("package", ["varbench.models", "varbench.baselines"])
def test_model_packages_import_only_errors_and_themselves(package):
    for name, path in modules().items():
        if unit(name) == package:
            assert imports_of(path, name) <= {"varbench.errors", "varbench"} | {
                m for m in modules() if m.startswith(package)}, name


@pytest.mark.parametrize("package", ["varbench.models", "varbench.baselines"])
def test_importing_the_models_pulls_in_only_torch(package):
    """At run time too: after `import torch`, importing every model module adds nothing but themselves."""
    names = [m for m in modules() if unit(m) == package]
    code = ("import sys, torch; before = set(sys.modules); "
            + "; ".join(f"import {m}" for m in names)
            + "; print(sorted(set(sys.modules) - before))")
    added = eval(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert set(added) <= {"varbench", "varbench.errors", *names}, added


def test_the_cli_imports_no_heavy_library():
    code = ("import sys, varbench.cli.app; "
            "print([m for m in ('torch', 'numpy', 'pandas', 'rich', 'matplotlib', 'scipy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_modules_and_functions_stay_small():
    long_modules, long_functions = [], []
    for name, path in modules().items():
        source = path.read_text()
        if source.count("\n") > MAX_MODULE_LINES and name not in NETWORK_MODULES:
            long_modules.append(f"{name} ({source.count(chr(10))} lines)")
        if name in NETWORK_MODULES:
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.body[0].lineno + 1  # the body: a command's option list is not logic
                if n > MAX_FUNCTION_LINES:
                    long_functions.append(f"{name}:{node.lineno} {node.name} ({n} lines)")
    assert long_modules == [] and long_functions == [], long_modules + long_functions


def test_every_package_and_its_data_is_installed():
    """A package (or data file) missing from pyproject's explicit lists is absent from the wheel: check both."""
    import fnmatch
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots = {pkg: ROOT / path for pkg, path in cfg["package-dir"].items()}
    found = {}
    for pkg, base in roots.items():
        for init in base.glob("**/__init__.py"):
            rel = init.parent.relative_to(base).parts
            found[".".join((pkg, *rel))] = init.parent
    assert set(found) == set(cfg["packages"])
    for pkg, folder in found.items():
        data = [p.relative_to(folder).as_posix() for p in folder.rglob("*")
                if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
                and not any((q / "__init__.py").exists() for q in p.parents if folder in q.parents)]
        patterns = cfg["package-data"].get(pkg, [])
        unlisted = [f for f in data if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
        assert not unlisted, f"{pkg}: data files not in [tool.setuptools.package-data]: {unlisted}"
