"""Architecture rules: import layers, lazy imports, the public surface, documented keys."""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import docmill
from docmill.cli.main import _parser
from docmill.engine.api import RunSummary
from docmill.settings.loader import Settings, known_keys

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "docmill"
DOCS = [REPO / "docs" / "ARCHITECTURE.md", REPO / "README.md"]

# A module may import only from its own layer or a lower one (docs/CONTRACT.md).
LAYERS = {
    "model": 0,
    "settings": 1,
    "observability": 2,
    "sources": 3,
    "state": 3,
    "outputs": 3,
    "deliver": 3,
    "processors": 4,
    "llm": 4,
    "engine": 5,
    "cli": 6,
    "api": 6,
    "executors": 6,
    "testkit": 6,
    "service": 6,
}
EXEMPT = {"docmill", "docmill.__main__"}  # the package's lazy facade and `python -m`
HEAVY = ("pypdfium2", "pypdf", "pyarrow", "psutil", "sklearn", "phonenumbers", "ray")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, target] if target else base)


def docmill_imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, imported docmill module) for every import in ``source``, at any depth.

    ``from docmill import x`` counts as importing ``docmill.x``; names the top-level
    package re-exports lazily count as the module that defines them.
    """
    lazy: dict[str, tuple[str, str]] = getattr(docmill, "_LAZY", {})
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "docmill"
            ]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = _resolve_relative(module, is_package, node.level, node.module)
            else:
                target = node.module or ""
            if target.split(".")[0] != "docmill":
                continue
            if target == "docmill":
                for alias in node.names:
                    if alias.name in lazy:
                        found.append((node.lineno, lazy[alias.name][0]))
                    else:
                        found.append((node.lineno, f"docmill.{alias.name}"))
            else:
                found.append((node.lineno, target))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and node.args[0].value.startswith("docmill.")
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def layer_of(module: str) -> int | None:
    """The layer of a docmill module; None for the exempt top level (``docmill.__version__``)."""
    parts = module.split(".")
    if len(parts) < 2 or module in EXEMPT:
        return None
    if parts[1] not in LAYERS:
        if (PACKAGE / parts[1]).is_dir() or (PACKAGE / f"{parts[1]}.py").is_file():
            raise AssertionError(
                f"docmill.{parts[1]} has no layer: add it to LAYERS here and to docs/CONTRACT.md"
            )
        return None  # an attribute of the top-level package, e.g. __version__
    return LAYERS[parts[1]]


def violations(path: Path, source: str | None = None) -> list[str]:
    module = module_name(path)
    if module in EXEMPT:
        return []
    own = layer_of(module)
    assert own is not None, module
    text = path.read_text(encoding="utf-8") if source is None else source
    out = []
    for line, target in docmill_imports(text, module, path.name == "__init__.py"):
        other = layer_of(target)
        if other is not None and other > own:
            out.append(
                f"{path.relative_to(REPO)}:{line}: {module} (layer {own}) imports "
                f"{target} (layer {other})"
            )
    return out


def all_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


# --- (a) import layers ---------------------------------------------------------------


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages, PACKAGE
    assert packages <= set(LAYERS), f"packages without a layer: {sorted(packages - set(LAYERS))}"


def test_no_module_imports_a_higher_layer() -> None:
    modules = all_modules()
    assert len(modules) > 20
    found = [v for path in modules for v in violations(path)]
    assert found == [], "layer violations:\n" + "\n".join(found)


def test_layer_check_sees_imports_inside_functions_and_relative_imports() -> None:
    """The checker itself: a violation hidden in a function body is reported."""
    fake = PACKAGE / "state" / "store.py"
    hidden = "def f():\n    from docmill.engine.runner import Runner\n    return Runner\n"
    assert violations(fake, hidden) == [
        "src/docmill/state/store.py:2: docmill.state.store (layer 3) imports "
        "docmill.engine.runner (layer 5)"
    ]
    assert violations(fake, "import docmill.cli.main\n") != []
    assert violations(fake, "from docmill import engine\n") != []
    assert violations(fake, "from docmill import run\n") != []  # lazy: docmill.engine.api
    assert violations(fake, "from ..processors import registry\n") != []
    assert (
        violations(fake, "import importlib\nimportlib.import_module('docmill.engine.pool')\n") != []
    )
    assert violations(fake, "from docmill.model import Record\nfrom . import migrations\n") == []
    assert violations(fake, "from docmill import __version__\n") == []


# --- (b) lazy imports ----------------------------------------------------------------


def _modules_after(code: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCMILL_")}
    env["PYTHONPATH"] = str(REPO / "src")
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    loaded: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize(
    "code",
    [
        "import docmill.cli.main",
        "import docmill",
        "import docmill.cli.main as m\nm._parser().parse_args(['status', 'x'])",
        "import contextlib, io\nimport docmill.cli.main as m\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n    m.main(['--version'])",
    ],
)
def test_cli_start_does_not_import_heavy_modules(code: str) -> None:
    loaded = _modules_after(code)
    assert "docmill" in loaded
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert heavy == [], f"{code!r} imported {heavy}"


def test_the_probe_does_see_heavy_imports() -> None:
    assert "pyarrow" in _modules_after("import docmill.outputs.columns as c\nc.arrow_schema()")


# --- (c) the public surface ----------------------------------------------------------


def test_all_names_resolve() -> None:
    assert docmill.__all__
    for name in docmill.__all__:
        assert getattr(docmill, name) is not None, name
    assert docmill.Settings is Settings
    assert docmill.RunSummary is RunSummary
    assert callable(docmill.run)
    assert callable(docmill.load_settings)


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = docmill.no_such_thing  # type: ignore[attr-defined]
    assert not hasattr(docmill, "also_missing")
    with pytest.raises(ImportError):
        exec("from docmill import no_such_thing", {})


def test_version_matches_the_installed_distribution() -> None:
    try:
        installed = importlib.metadata.version("docmill")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("docmill is not installed in this environment")
    assert docmill.__version__ == installed
    assert re.fullmatch(r"\d+\.\d+\.\d+", docmill.__version__)


# --- (d, e) documentation ------------------------------------------------------------


def _docs_text() -> str:
    existing = [p for p in DOCS if p.is_file()]
    if not existing:
        pytest.skip("docs/ARCHITECTURE.md and README.md are not written yet")
    return "\n".join(p.read_text(encoding="utf-8") for p in existing)


def test_every_setting_is_documented() -> None:
    text = _docs_text()
    missing = [key for key in known_keys() if key not in text]
    assert missing == [], f"settings not mentioned in {[p.name for p in DOCS]}: {missing}"


def _subcommands() -> list[str]:
    actions = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(actions) == 1
    return sorted(actions[0].choices)


def test_every_cli_subcommand_is_in_the_readme() -> None:
    readme = REPO / "README.md"
    if not readme.is_file():
        pytest.skip("README.md is not written yet")
    text = readme.read_text(encoding="utf-8")
    commands = _subcommands()
    assert commands == [
        "estimate", "export", "keys", "retry", "run", "serve", "status", "train-classifier",
        "worker",
    ]
    missing = [c for c in commands if f"docmill {c}" not in text]
    assert missing == [], f"subcommands not in README.md: {missing}"


# --- (f) rooms and the forkserver's preload ----------------------------------------------


def _imports_of(path: Path) -> set[str]:
    """The docmill modules ``path`` imports, at any depth (lazy imports inside functions
    too, not those under ``if TYPE_CHECKING``); ``from docmill.x import y`` names
    ``docmill.x.y`` when that is a module, else ``docmill.x``."""
    module = module_name(path)
    is_package = path.name == "__init__.py"
    known = {module_name(p) for p in all_modules()}
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        for _, target in docmill_imports(ast.unparse(node), module, is_package):
            names = [target]
            if isinstance(node, ast.ImportFrom):
                names = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known] or names
            out.update(n for n in names if n in known)
    out.discard(module)
    return out


def test_processors_import_each_other_without_a_cycle() -> None:
    """No circle of imports among the processors, lazy ones included (OCR, PDF text and
    page images once leaned on each other). The registry alone may import what it
    registers (an extractor imports the registry's request type back)."""
    plugin_tables = {"docmill.processors.registry"}
    graph = {
        module_name(p): set() if module_name(p) in plugin_tables else _imports_of(p)
        for p in sorted((PACKAGE / "processors").rglob("*.py"))
    }
    state: dict[str, int] = {}
    cycles: list[str] = []

    def walk(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt == node or nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue  # a package and its own modules
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*trail[trail.index(nxt):], nxt]) if nxt in trail else nxt)
            elif nxt not in state:
                walk(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


def test_the_ocr_room_knows_no_pdf() -> None:
    """OCR reads images: a PDF page reaches it drawn by processors.pdf.render."""
    room = PACKAGE / "processors" / "ocr"
    found = [
        f"{path.relative_to(REPO)}:{line}: {target}"
        for path in sorted(room.rglob("*.py"))
        for line, target in docmill_imports(path.read_text(encoding="utf-8"), module_name(path))
        if target.startswith(("docmill.processors.pdf", "docmill.processors.tables"))
    ]
    assert found == []


def test_every_preloaded_module_exists() -> None:
    import importlib.util

    from docmill.engine.preload import WORKER_PRELOAD

    missing = [name for name in WORKER_PRELOAD if importlib.util.find_spec(name) is None]
    assert missing == [], f"engine/preload.py preloads modules that do not exist: {missing}"
    assert "docmill.processors.pdf.text" in WORKER_PRELOAD  # what every PDF task imports
