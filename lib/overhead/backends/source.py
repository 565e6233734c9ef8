"""The code a path times, as text: what the sweep records in bench.meta.json for the report's appendix.

A path's registered ``prepare`` is a function of its family module, or a lambda that calls one with its
settings (``lambda *a: _prep_keras(*a, how="call")``): then the lambda's line and the module functions it
calls are recorded, so the appendix shows the settings and the code they select.
"""
from __future__ import annotations

import inspect
import textwrap


def _called(fn) -> list:
    """The module-level functions a lambda calls by name (its globals)."""
    return [fn.__globals__[n] for n in fn.__code__.co_names if inspect.isfunction(fn.__globals__.get(n))]


def timed_code(backend) -> dict:
    """``{"where": "module.function, ...", "source": text}`` of `backend`'s prepare (a Backend); a
    ``{"where": "", "source": "", "reason": ...}`` when the source cannot be read (e.g. a frozen install)."""
    fn = backend.prepare
    if not inspect.isfunction(fn):
        return {"where": "", "source": "", "reason": f"its prepare is not a Python function ({type(fn).__name__})"}
    funcs = ([fn] + _called(fn)) if fn.__name__ == "<lambda>" else [fn]
    try:
        parts = [textwrap.dedent(inspect.getsource(f)).strip() for f in funcs]
    except (OSError, TypeError) as exc:
        return {"where": "", "source": "", "reason": f"{type(exc).__name__}: {exc}"}
    where = ", ".join(f"{f.__module__}.{f.__name__}" for f in funcs if f.__name__ != "<lambda>")
    return {"where": where or f"{fn.__module__}.<lambda>", "source": "\n\n".join(dict.fromkeys(parts))}
