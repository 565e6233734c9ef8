"""The package's folders are its layers, and imports only go down (read with ast, nothing imported).

base < ladder < usermodel < harness < engine < backends < experiments < report < cli/deps (the top).
No import cycle between modules, counting imports inside functions too. An import of a package module
inside a function must say why on its line or the line above (``# lazy: ...``): the one reason allowed is
keeping TensorFlow (or another heavy runtime) out of a process that does not need it. The report reads
result tables only: it imports no experiment and no backend.
"""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "lib" / "overhead"
LAYERS = ["base", "ladder", "usermodel", "harness", "engine", "backends", "experiments", "report"]
TOP = 99  # cli, deps, __main__


def module_name(path: Path) -> str:
    parts = ("overhead",) + path.relative_to(PKG).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PKG.rglob("*.py")}


def layer(mod: str) -> int:
    parts = mod.split(".")
    if len(parts) == 1:
        return -1  # the package's own __init__: importable by all
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else TOP


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(mod: str) -> list[tuple[str, int, bool, str]]:
    """(imported module, line, inside a function?, text of the statement and the line above it)."""
    path = MODULES[mod]
    lines = path.read_text().splitlines()
    tree = ast.parse(path.read_text())
    out = []

    def visit(node, in_func):
        for child in ast.iter_child_nodes(node):
            func = in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            names = []
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
                    base = base[:len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.split(".")[0] == "overhead":
                    names = [_resolve(f"{target}.{a.name}") for a in child.names]
            elif isinstance(child, ast.Import):
                names = [_resolve(a.name) for a in child.names if a.name.split(".")[0] == "overhead"]
            for n in names:
                if n and n != mod:
                    ln = child.lineno
                    comment = " ".join(lines[max(0, ln - 2):child.end_lineno])
                    out.append((n, ln, in_func, comment))
            visit(child, func)

    visit(tree, False)
    return out


GRAPH = {m: imports(m) for m in MODULES}


def test_the_folders_are_the_layers():
    assert {p.name for p in PKG.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))} == set(LAYERS)
    top = {p.stem for p in PKG.glob("*.py")}
    assert top == {"__init__", "__main__", "cli", "deps"}, top


def test_imports_only_go_down():
    upward = [f"{m}:{ln} imports {n}" for m, deps in GRAPH.items() for n, ln, _, _ in deps
              if layer(n) > layer(m) and not n.startswith(m + ".")
              and not (m.startswith("overhead.engine") and n.startswith("overhead.engine"))]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_the_report_reads_results_only():
    reach = [f"{m}:{ln} imports {n}" for m, deps in GRAPH.items() if m.startswith("overhead.report")
             for n, ln, _, _ in deps if n.split(".")[1] in ("experiments", "backends")]
    assert not reach, "\n".join(reach)


def _cycle() -> list[str] | None:
    edges = {m: sorted({n for n, *_ in deps if not m.startswith(n + ".") and n != "overhead"})
             for m, deps in GRAPH.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m):
        state[m] = 1
        stack.append(m)
        for n in edges.get(m, ()):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := dfs(n)):
                return found
        state[m] = 2
        stack.pop()
        return None

    for m in sorted(edges):
        if m not in state and (found := dfs(m)):
            return found
    return None


def test_no_import_cycle():
    cycle = _cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_imports_inside_functions_say_why():
    silent = [f"{m}:{ln} imports {n} inside a function" for m, deps in GRAPH.items()
              for n, ln, in_func, comment in deps if in_func and "lazy:" not in comment]
    assert not silent, "add `# lazy: <why>` or move it to the top:\n" + "\n".join(silent)


def test_the_checks_can_fail(tmp_path, monkeypatch):
    """A planted upward import and a planted cycle are found."""
    planted = {"overhead.base.config": [("overhead.report.fmt", 1, False, "")],
               "overhead.report.fmt": [("overhead.base.config", 1, False, "")]}
    monkeypatch.setattr(__import__(__name__), "GRAPH", {**GRAPH, **planted})
    assert _cycle() is not None
    up = [m for m, deps in planted.items() for n, *_ in deps if layer(n) > layer(m)]
    assert up == ["overhead.base.config"]


def test_every_experiment_runs_its_children_through_the_one_runner():
    """No experiment starts a Python child job itself: harness.child.run_child does (lscpu, the C FMA loop,
    the HTTP service, which runs until it is terminated, the wrk load generator with its apt-get, and the uv
    installer aside)."""
    direct = []
    for path in sorted((PKG / "experiments").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "subprocess" \
                    and node.attr in ("Popen", "run", "call", "check_output") \
                    and path.stem not in ("ceilings", "fmaloop", "loadgen_http", "loadgen_wrk", "spread",
                                          "versions_env"):  # lscpu; the C loop; a service; wrk; apt-get; uv
                direct.append(f"{path.stem}:{node.lineno} subprocess.{node.attr}")
    assert not direct, direct
    users = {p.stem for p in (PKG / "experiments").glob("*.py") if "run_child(" in p.read_text()}
    assert {"sweep", "startup", "idlegap", "memloop", "ceilings", "blasab", "loadgen"} <= users, users
