"""What should you do? Per situation, the fastest path that passed parity in this run, its runner-up and the
least-overhead path that keeps you in TensorFlow/Keras, with the one-line change that gets you there; and the
code appendix, taken from the backends' own source with ``inspect`` so it cannot drift from what was timed.
"""
from __future__ import annotations

import ast
import functools
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from overhead.report.fmt import code, fmt_flops, fmt_us, primary, small_model
from overhead.report.style import NO_TF, TF_KERAS

ONE_LINE = {  # backend: the change from `model.predict(x)` that gets you onto this path
    "numpy": "`overhead export model.keras model.npz`, then `overhead.engine.load('model.npz')(x)` (NumPy only)",
    "numpy.plain": "write the forward pass as a page of NumPy (`np.matmul`, im2col) — see the appendix",
    "keras.predict": "`model.predict(x, verbose=0)` (the default)",
    "keras.predict_on_batch": "`model.predict_on_batch(x)` instead of `model.predict(x)`",
    "keras.call": "`model(x, training=False)` instead of `model.predict(x)`",
    "tf.function": "`f = tf.function(model, input_signature=[tf.TensorSpec(x.shape, tf.float32)])`; call `f(x)`",
    "tf.function.xla": "the same `tf.function(..., jit_compile=True)`",
    "tf.savedmodel": "`model.export('m/')`; `tf.saved_model.load('m/').signatures['serving_default']`",
    "tf1.session": "freeze the graph (`convert_variables_to_constants_v2`) and run it with "
                   "`tf.compat.v1.Session(...).make_callable(...)`",
    "tf_keras.predict": "Keras 2 (`import tf_keras`) `model.predict(x)`",
    "tf_keras.predict_on_batch": "Keras 2 `model.predict_on_batch(x)`",
    "tf_keras.call": "Keras 2 `model(x, training=False)`",
    "keras.jax.predict": "`KERAS_BACKEND=jax` before `import keras`, then `model.predict(x)`",
    "keras.jax.call": "`KERAS_BACKEND=jax`, then `model(x, training=False)`",
    "jax.jit": "`KERAS_BACKEND=jax`; `jax.jit(model.stateless_call)` with the weights passed as arrays",
    "keras.numpy.predict": "`KERAS_BACKEND=numpy` before `import keras`, then `model.predict(x)`",
    "litert": "`tf.lite.TFLiteConverter.from_keras_model(model).convert()`, run with "
              "`ai_edge_litert.interpreter.Interpreter`",
    "litert.builtin": "the LiteRT conversion with XNNPACK off (`BUILTIN_WITHOUT_DEFAULT_DELEGATES`)",
    "litert.fp16": "the LiteRT conversion with float16 weights (`target_spec.supported_types=[tf.float16]`)",
    "litert.dynamic_int8": "the LiteRT conversion with `optimizations=[tf.lite.Optimize.DEFAULT]`",
    "litert.int8": "the LiteRT conversion, full-integer int8 with a representative dataset",
    "onnxruntime": "export to ONNX (`tf2onnx`), run `onnxruntime.InferenceSession('m.onnx').run(...)`",
    "openvino": "export to ONNX, `openvino.Core().compile_model('m.onnx', 'CPU')`",
}
SITUATIONS = ("small model, single requests", "large model, batch 1", "batch throughput",
              "cold start (serverless)", "memory-constrained", "no TensorFlow at serving time")


def one_line(backend: str) -> str:
    return ONE_LINE.get(backend, f"see the appendix for {code(backend)}")


def _rank(values: pd.Series, higher_better=False) -> list:
    v = values.dropna()
    return list((v.sort_values(ascending=not higher_better)).index)


def _startup_mem(R, model):
    st = primary(R, "startup")
    if not len(st):
        return {}, {}
    s = st[st["model"] == (model if model in set(st["model"]) else st["model"].iloc[0])].set_index("backend")
    return (s["start_to_first_pred_s"].to_dict() if "start_to_first_pred_s" in s else {},
            s["rss_after_first_call_mb"].to_dict() if "rss_after_first_call_mb" in s else {})


def _row(situation, metric, ranked, value, fmt, start, mem, note=""):
    """One advice row: best, runner-up and best TF/Keras path from a ranked list of backends."""
    if not ranked:
        return {"situation": situation, "metric": metric, "best": "not measured in this run", "value": "",
                "start-up": "", "memory": "", "runner-up": "", "best in TF/Keras": "", "one-line change": "",
                "_best": None}
    best = ranked[0]
    tfk = [b for b in ranked if b in TF_KERAS]
    s, mm = start.get(best, np.nan), mem.get(best, np.nan)
    return {"situation": situation, "metric": metric + note, "best": code(best), "value": fmt(value[best]),
            "start-up": f"{s:.2g} s" if np.isfinite(s) else "n/a", "memory": f"{mm:.0f} MB" if np.isfinite(mm) else "n/a",
            "runner-up": f"{code(ranked[1])} ({fmt(value[ranked[1]])})" if len(ranked) > 1 else "—",
            "best in TF/Keras": f"{code(tfk[0])} ({fmt(value[tfk[0]])})" if tfk else "none ran ok",
            "one-line change": one_line(best), "_best": best}


def advice(R) -> pd.DataFrame:
    """One row per situation of ``SITUATIONS``, all from this run's ok rows (parity passed)."""
    sw = primary(R, "sweep")
    m = small_model(R)
    start, mem = _startup_mem(R, m)
    rows = []
    lat = (lambda model: sw[sw["model"] == model].set_index("backend")["median_us"]) if len(sw) else None
    small = lat(m) if lat and m else pd.Series(dtype=float)
    rows.append(_row(SITUATIONS[0], f"latency per call, {m}, measured", _rank(small), small, fmt_us, start, mem))
    big_m = sw.sort_values("flops")["model"].iloc[-1] if len(sw) else None
    big = lat(big_m) if big_m else pd.Series(dtype=float)
    rows.append(_row(SITUATIONS[1], f"latency per call, {big_m}", _rank(big), big, fmt_us, start, mem))
    b = primary(R, "batch")
    if len(b):
        multi = b.groupby("model")["batch"].nunique()
        bm = b[b["model"].isin(multi[multi > 1].index)]
        bm = bm[bm["flops"] == bm["flops"].max()] if len(bm) else bm
        tp = bm.groupby("backend")["throughput_sps"].max() if len(bm) else pd.Series(dtype=float)
        what = f"best samples/s over batch sizes, {bm['model'].iloc[0]}" if len(bm) else "samples/s"
        rows.append(_row(SITUATIONS[2], what, _rank(tp, True), tp, lambda v: f"{v:,.0f} /s", start, mem))
    else:
        rows.append(_row(SITUATIONS[2], "samples/s", [], None, str, start, mem))
    cs, mms = pd.Series(start, dtype=float), pd.Series(mem, dtype=float)
    rows.append(_row(SITUATIONS[3], "process start to first prediction", _rank(cs), cs, lambda v: f"{v:.2g} s",
                     start, mem))
    rows.append(_row(SITUATIONS[4], "resident memory after the first call", _rank(mms), mms,
                     lambda v: f"{v:.0f} MB", start, mem))
    no_tf = small[[x for x in small.index if x in NO_TF]] if len(small) else small
    rows.append(_row(SITUATIONS[5], f"latency per call, {m}, without TensorFlow", _rank(no_tf), no_tf, fmt_us,
                     start, mem))
    return pd.DataFrame(rows)


def advice_markdown(table: pd.DataFrame) -> str:
    if table is None or not len(table):
        return "*Not measured:* no results to advise from."
    t = table.drop(columns="_best")
    cols = list(t.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in t.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def summary(table: pd.DataFrame, n: int = 3) -> str:
    """The first ``n`` situations in one line each (for the README)."""
    out = []
    for r in table.head(n).to_dict("records"):
        if r["_best"] is None:
            continue
        out.append(f"- **{r['situation']}:** {r['best']} ({r['value']}); staying in TF/Keras: "
                   f"{r['best in TF/Keras']}. Change: {r['one-line change']}.")
    return "\n".join(out)


# ---------------------------------------------------------------- code appendix ------------------------
BACKENDS_DIR = Path(__file__).resolve().parents[1] / "backends"


@functools.lru_cache(maxsize=1)
def _prepare_sources() -> dict:
    """backend name -> [(qualified name, source)] of the functions that prepare it, read from the backends'
    source files with ast (the report imports no backend: it shows the code, it runs none of it)."""
    found = {}
    for path in sorted(BACKENDS_DIR.glob("*.py")):
        text = path.read_text()
        tree = ast.parse(text)
        funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        module = f"overhead.backends.{path.stem}"
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Backend" and len(node.args) >= 4
                    and isinstance(node.args[0], ast.Constant)):
                continue
            prep = node.args[3]
            names = [prep.id] if isinstance(prep, ast.Name) else [
                n.func.id for n in ast.walk(prep) if isinstance(n, ast.Call) and getattr(n.func, "id", None) in funcs]
            found[node.args[0].value] = [(f"{module}.{n}", ast.get_source_segment(text, funcs[n]))
                                         for n in names if n in funcs]
    return found


def source_of(backend: str) -> tuple[str, str]:
    """``(where, source)`` of the function(s) that prepare ``backend``; a sentence saying why when unavailable."""
    funcs = _prepare_sources().get(backend)
    if not funcs:
        return "", "not available in this installation (no registered preparing function found)"
    where = ", ".join(f"`{q}`" for q, _ in funcs)
    return where, "\n\n".join(textwrap.dedent(src) for _, src in funcs)


def code_appendix(names) -> str:
    """Markdown: for each backend, its one-line change and the code that was timed (from the package source)."""
    out = []
    for b in names:
        where, src = source_of(b)
        out.append(f"#### {b}\n\nOne-line change: {one_line(b)}.\n")
        if where:
            out.append(f"Timed code ({where}):\n\n```python\n{src.rstrip()}\n```\n")
        else:
            out.append(f"The source of {code(b)} is {src}.\n")
    return "\n".join(out)


def flops_note(R) -> str:
    sw = primary(R, "sweep")
    if not len(sw):
        return ""
    lo, hi = sw.sort_values("flops").iloc[[0, -1]]["flops"]
    return (f"Advice holds for models between {fmt_flops(lo)} and {fmt_flops(hi)} per call on this machine "
            "(the measured range).")
