"""The one rule for naming a winner, applied wherever the report names one (TL;DR, advice, claims, cold start,
memory), and the tally of the comparisons it made.

A beats B only if, on every published machine that measured both, A's run-level 95 % interval clears B's
(``ci_lo_us``/``ci_hi_us`` of bench.csv, ``overhead.harness.interval.median_ci``) AND the relative gap between
their medians exceeds the between-run spread of both (``run_spread``: largest run median / smallest − 1).
The co-winners are the candidates no other candidate beats; one co-winner is a win, several are a tie and the
report names them all. A candidate that wins on one machine and loses on another is a tie, and the machines
are named.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

RULE = ("a path wins only if its run-level 95 % interval clears the runner-up's and the gap exceeds the "
        "between-run spread of both, on every machine that measured both; otherwise the paths are printed as tied")
COLUMNS = ("machine", "name", "value", "lo", "hi", "spread")


def _num(x) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return np.nan
    return v


def beats_on(a: dict, b: dict, higher_better: bool = False) -> bool:
    """Does ``a`` beat ``b`` on one machine? (``value, lo, hi, spread`` each; no interval: no win)."""
    va, vb, la, ha, lb, hb = (_num(a["value"]), _num(b["value"]), _num(a["lo"]), _num(a["hi"]), _num(b["lo"]),
                              _num(b["hi"]))
    if not np.all(np.isfinite([va, vb, la, ha, lb, hb])) or va <= 0 or vb < 0 or (vb == 0 and not higher_better):
        return False
    spread = max(np.nan_to_num(_num(a.get("spread")), nan=0.0), np.nan_to_num(_num(b.get("spread")), nan=0.0))
    if higher_better:  # a capacity of 0 (no load held: below hi) loses to any that held more than its hi
        return bool(la > hb and (vb == 0 or va / vb - 1 > spread))
    return bool(ha < lb and vb / va - 1 > spread)


@dataclass
class Decision:
    """The outcome of one winner question: ``winners`` (co-winners, best point estimate first), the
    ``candidates``, the point-best per machine, and the machines where a winner loses."""
    context: str
    winners: list
    candidates: list
    values: dict = field(default_factory=dict)          # {machine: {name: value}}
    per_machine: dict = field(default_factory=dict)     # {machine: co-winners on that machine alone}
    higher_better: bool = False

    @property
    def tie(self) -> bool:
        return len(self.winners) > 1

    @property
    def leader(self):
        return self.winners[0] if self.winners else None

    @property
    def n_comparisons(self) -> int:
        return max(len(self.candidates) - 1, 0)

    @property
    def n_ties(self) -> int:
        return max(len(self.winners) - 1, 0)

    def machines_won(self, name) -> list:
        """Machines on which ``name`` is the only co-winner."""
        return [m for m, w in self.per_machine.items() if w == [name]]


def _table(frame: pd.DataFrame) -> dict:
    """{machine: {name: row dict}}."""
    out = {}
    for r in frame.to_dict("records"):
        if np.isfinite(_num(r.get("value"))):
            out.setdefault(str(r["machine"]), {})[r["name"]] = r
    return out


def _winners(by_m: dict, names: list, higher_better: bool) -> list:
    def beats(a, b):
        shared = [m for m, rows in by_m.items() if a in rows and b in rows]
        return bool(shared) and all(beats_on(by_m[m][a], by_m[m][b], higher_better) for m in shared)
    return [x for x in names if not any(beats(y, x) for y in names if y != x)]


def _order(by_m: dict, names: list, higher_better: bool) -> list:
    """Names by their mean rank over the machines that measured them (best first)."""
    ranks = {n: [] for n in names}
    for rows in by_m.values():
        vals = sorted(((r["value"], n) for n, r in rows.items() if n in ranks), reverse=higher_better)
        for i, (_, n) in enumerate(vals):
            ranks[n].append(i)
    return sorted(names, key=lambda n: (np.mean(ranks[n]) if ranks[n] else np.inf, n))


def decide(frame: pd.DataFrame, context: str = "", higher_better: bool = False, R=None) -> Decision:
    """The co-winners of ``frame`` (``COLUMNS``: one row per machine × candidate). ``R`` (an
    ``analysis.Results``) records the decision for :func:`tally`."""
    by_m = _table(frame) if frame is not None and len(frame) else {}
    names = _order(by_m, sorted({n for rows in by_m.values() for n in rows}), higher_better)
    d = Decision(context, _winners(by_m, names, higher_better), names,
                 {m: {n: float(r["value"]) for n, r in rows.items()} for m, rows in by_m.items()},
                 {m: _winners({m: rows}, [n for n in names if n in rows], higher_better) for m, rows in by_m.items()},
                 higher_better)
    if R is not None and context:
        if not isinstance(getattr(R, "decisions", None), dict):
            R.decisions = {}
        R.decisions[context] = d
    return d


def tally(R) -> dict:
    """How many comparisons the report's winner statements made (each named winner against every other
    candidate) and how many of them the intervals or the spread could overturn (printed as ties)."""
    ds = list((getattr(R, "decisions", None) or {}).values())
    return {"n": sum(d.n_comparisons for d in ds), "ties": sum(d.n_ties for d in ds), "questions": len(ds),
            "tied_questions": sum(d.tie for d in ds)}


def names(d: Decision, fmt=None, limit: int = 4) -> str:
    """The winner, or "a tie: `A`, `B` and `C`" (with the per-machine winners where they differ)."""
    def c(n):
        return f"`{n}`" + (f" ({fmt(n)})" if fmt else "")
    if not d.winners:
        return "not measured"
    if not d.tie:
        return c(d.leader)
    shown = d.winners[:limit]
    more = len(d.winners) - len(shown)
    out = "a tie between " + ", ".join(c(n) for n in shown[:-1]) + f" and {c(shown[-1])}"
    if more:
        out = "a tie between " + ", ".join(c(n) for n in shown) + f" and {more} more"
    solo = {m: w[0] for m, w in d.per_machine.items() if len(w) == 1}
    if solo and (len(set(solo.values())) > 1 or len(solo) < len(d.per_machine)):  # a win on some machines only
        out += " (" + "; ".join(f"`{w}` wins on `{m}`" for m, w in solo.items()) + ")"
    return out


# ---------------------------------------------------------------- frames from the result tables -------------
def from_bench(rows: pd.DataFrame, key: str = "backend", per: float = 1.0) -> pd.DataFrame:
    """Bench/sweep rows as a ``decide`` frame: the median and its run-level interval, the between-run spread
    (``per`` divides the latency, e.g. by the batch for per-sample cost)."""
    if rows is None or not len(rows):
        return pd.DataFrame(columns=COLUMNS)
    div = rows["batch"].astype(float) if per == "batch" else float(per)
    spread = pd.to_numeric(rows["run_spread"], errors="coerce") if "run_spread" in rows else np.nan
    return pd.DataFrame({"machine": rows["machine"].astype(str), "name": rows[key],
                         "value": pd.to_numeric(rows["median_us"], errors="coerce") / div,
                         "lo": pd.to_numeric(rows["ci_lo_us"], errors="coerce") / div,
                         "hi": pd.to_numeric(rows["ci_hi_us"], errors="coerce") / div,
                         "spread": spread}).reset_index(drop=True)


def from_repetitions(rows: pd.DataFrame, column: str, key: str = "backend") -> pd.DataFrame:
    """Repeated fresh-process measurements (startup.csv) as a ``decide`` frame: the median, the range of the
    repetitions as the interval, and that range relative to the smallest as the between-run spread."""
    if rows is None or not len(rows) or column not in rows:
        return pd.DataFrame(columns=COLUMNS)
    r = rows.assign(_v=pd.to_numeric(rows[column], errors="coerce")).dropna(subset=["_v"])
    g = r.groupby(["machine", key])["_v"]
    t = pd.DataFrame({"value": g.median(), "lo": g.min(), "hi": g.max()}).reset_index()
    t["spread"] = np.where(t["lo"] > 0, t["hi"] / t["lo"] - 1, np.nan)
    # one repetition has no interval: it cannot win
    t.loc[g.size().to_numpy() < 2, ["lo", "hi"]] = np.nan
    return t.rename(columns={key: "name"})[list(COLUMNS)]
