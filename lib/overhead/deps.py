"""The package files a notebook (or a module) depends on, found by reading imports — never by importing.

    python lib/overhead/deps.py notebooks/02_benchmark.py [more sources or modules ...] [--target T]

Walks ``import overhead…`` / ``from overhead… import …`` / relative imports transitively through
``lib/overhead`` with :mod:`ast` only (no TensorFlow is imported, the standard library is enough, so it
runs before ``.venv`` exists), and also follows string constants that name a module of the package
exactly (``[sys.executable, "-m", "overhead.experiments.sweep", "worker"]``, ``"overhead.engine"`` in a table of
runtimes): a child process started that way is part of the stage too. Imports inside functions count.

Without ``--target`` it prints one path per line (relative to the repository). With ``--target T`` it
prints a make rule ``T: <files>`` followed by an empty rule per file (like ``gcc -MP``), so that a module
renamed or deleted later re-runs the stage instead of breaking make. The Makefile writes this to
``build/deps/<notebook>.d`` and includes it: a new module a stage imports is picked up without editing
the Makefile.
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

LIB = Path(__file__).resolve().parents[1]     # lib/
ROOT = LIB.parent
PACKAGE = "overhead"
_MODULE_STRING = re.compile(rf"{PACKAGE}(\.[A-Za-z_]\w*)+")


def module_file(name: str) -> Path | None:
    """lib/overhead/a/b.py or lib/overhead/a/b/__init__.py for 'overhead.a.b'; None outside the package."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = LIB.joinpath(*parts)
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _package_of(path: Path) -> str:
    rel = path.relative_to(LIB).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1])          # the package a module (or an __init__) belongs to


def _parse(path: Path) -> ast.AST:
    text = path.read_text(encoding="utf-8")
    try:
        return ast.parse(text)
    except SyntaxError:     # a notebook line that is not Python (an uncommented magic): drop such lines
        keep = [ln if not ln.lstrip().startswith(("%", "!")) else "" for ln in text.splitlines()]
        return ast.parse("\n".join(keep))


def imported_modules(path: Path) -> set[str]:
    """Dotted names of every module of the package that `path` imports or names (not transitive)."""
    inside = path.resolve().is_relative_to(LIB)
    package = _package_of(path.resolve()) if inside else ""
    names: set[str] = set()
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if not inside:
                    continue
                up = package.split(".")
                base = ".".join(up[: len(up) - (node.level - 1)])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            names.add(mod)
            names.update(f"{mod}.{a.name}" for a in node.names)   # `from overhead import sweep`
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_STRING.fullmatch(node.value):
            names.add(node.value)
    out = set()
    for n in names:
        parts = n.split(".")
        if parts[0] != PACKAGE:
            continue
        for i in range(1, len(parts) + 1):     # the packages on the way (their __init__ runs) and the module
            if module_file(".".join(parts[:i])):
                out.add(".".join(parts[:i]))
    return out


def data_files(path: Path) -> set[Path]:
    """The template files a module reads: its folder's ``templates/*`` when its source names "templates"."""
    folder = path.parent / "templates"
    if not folder.is_dir() or '"templates"' not in path.read_text():
        return set()
    return {f.resolve() for f in folder.iterdir() if f.is_file()}


def closure(sources) -> list[Path]:
    """Every package file reachable from the given notebook/module files or dotted module names, sorted."""
    todo, seen = [], set()
    for s in sources:
        p = module_file(s) if _MODULE_STRING.fullmatch(s) or s == PACKAGE else Path(s)
        if p is None or not p.is_file():
            raise FileNotFoundError(s)
        todo.append(p.resolve())
    files: set[Path] = set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        if p.is_relative_to(LIB):
            files.add(p)
            files.update(data_files(p))
        for mod in imported_modules(p):
            f = module_file(mod)
            if f is not None:
                todo.append(f.resolve())
    return sorted(files)


def _rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    target = None
    if "--target" in args:
        i = args.index("--target")
        target = args[i + 1]
        del args[i:i + 2]
    if not args:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    files = [_rel(p) for p in closure(args)]
    if target is None:
        print("\n".join(files))
    else:
        print(f"{target}: " + " \\\n  ".join(files))
        print("".join(f"\n{f}:" for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
