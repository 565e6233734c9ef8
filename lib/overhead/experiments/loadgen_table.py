"""The LoadGen stage's table: its columns, the rows of one item's runs (which run is the published maximum),
and ``loadgen.points.jsonl``, the log of finished runs a stopped stage resumes from."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from overhead.base import atomic
from overhead.experiments import loadgen_rules as rules
from overhead.experiments.loadgen_core import sharing

COLUMNS = ["machine", "scenario", "model", "model_sha", "path", "transport", "client", "payload", "server_workers",
           "clients", "strategy", "workers", "sharing", "threads", "batching", "batch_wait_ms", "batch_max",
           "bound_ms", "role", "phase", "target_qps", "achieved_qps", "n_queries", "p50_us", "p90_us", "p99_us",
           "mean_us", "validity", "loadgen_validity", "max_valid", "invalid_reason", "early_stopping_ok",
           "stationary", "lat_first_us", "lat_last_us", "lat_growth", "capacity_qps", "parity", "parity_n",
           "logit_rel_err", "status", "reason", "service_us", "batch_hist", "client_cpu_us", "server_cpu_us",
           "duration_s", "date", "conn_split"]  # conn_split: HTTP connections per server process ("2+2")


# --------------------------------------------------------------------------- the points log (resume)

class PointLog:
    """``loadgen.points.jsonl``: one line per finished LoadGen run or item; a torn last line is dropped."""

    def __init__(self, path):

        self.path, self.records = Path(path), []
        if self.path.exists():
            raw = self.path.read_text(encoding="utf-8")
            for line in raw.splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and "key" in rec:
                    self.records.append(rec)
            if raw and (not raw.endswith("\n") or len(self.records) != raw.count("\n")):
                atomic.atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in self.records))

    def append(self, rec: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.records.append(rec)

    def points(self, key: str) -> list[dict]:
        return [r["point"] for r in self.records if r["key"] == key and "point" in r]

    def finished(self, key: str) -> dict | None:
        return next((r for r in self.records if r["key"] == key and r.get("end")), None)


# --------------------------------------------------------------------------- rows

def rows_of(item: dict, points: list[dict], failed: str | None, base: dict) -> list[dict]:
    """The table rows of one item: one per LoadGen run; `max_valid` marks the bisection's published answer:
    the highest VALID long run (:mod:`~overhead.experiments.loadgen_rules`) within the capacity bound."""

    bt = item.get("batching") or {}
    common = dict(base, scenario=item["scenario"], model=item["model"], path=item["path"],
                  transport=item["transport"], client=item.get("client", "loadgen"), payload=item.get("payload", ""),
                  server_workers=item.get("server_workers"), clients=item.get("clients"),
                  strategy=item["strategy"], workers=item["workers"],
                  sharing=sharing(item["path"], item["strategy"]), threads=item["threads"],
                  batching=(f"D={bt['wait_ms']:g}ms,B={bt['max_batch']}" if bt else ""),
                  batch_wait_ms=bt.get("wait_ms"), batch_max=bt.get("max_batch"), bound_ms=item.get("bound_ms"),
                  role=("single-stream" if item["scenario"] == "SingleStream" else "wrk"
                        if item.get("client") == "wrk" else "points" if item.get("qps") else "bisection"))
    if not points:
        missing = bool(failed and "wrk is not installed" in failed)
        return [dict(common, status="skipped" if missing else "failed", reason=failed or "no run finished")]
    out = []
    for p in points:
        problems, flags = [], []
        if p.get("parity") == "fail":
            problems.append(f"parity under load: {p.get('parity_reason')}")
        if p.get("errors"):
            problems.append("errors while serving: " + "; ".join(p["errors"]))
        bound = None
        if item["scenario"] == "Server" and item.get("client") != "wrk":
            bound = rules.capacity_bound((p.get("service_us") or 0) / 1e6,
                                         workers=item.get("clients") or item["workers"], batch=bt.get("max_batch", 1))
            if bound and p.get("validity") == "VALID" and p.get("target_qps") and p["target_qps"] > bound:
                flags.append(f"capacity bound broken: VALID at {p['target_qps']:,.4g} QPS > {bound:,.4g} QPS "
                             f"({rules.CAPACITY_SLACK:g} x workers x batch / service time {p['service_us']:.4g} us): "
                             "not published")
        status = "failed" if problems else "flagged" if flags else "ok"
        notes = problems + flags + ([failed] if failed else [])
        out.append(dict(common, **{k: p.get(k) for k in (
            "target_qps", "achieved_qps", "n_queries", "p50_us", "p90_us", "p99_us", "mean_us", "validity",
            "invalid_reason", "early_stopping_ok", "parity", "parity_n", "logit_rel_err", "service_us",
            "client_cpu_us", "server_cpu_us", "duration_s", "date", "loadgen_validity", "stationary",
            "lat_first_us", "lat_last_us", "lat_growth", "conn_split")},
            clients=p.get("clients", common["clients"]), phase=p.get("phase") or ("single-stream" if item["scenario"] == "SingleStream" else "steer"),
            capacity_qps=bound, batch_hist=json.dumps(p.get("batch_hist") or {}, sort_keys=True),
            status=status, reason="; ".join(notes)))
    best = max([r["target_qps"] for r in out if r["role"] == "bisection" and publishable(r)], default=None)
    for r in out:
        r["max_valid"] = bool(best is not None and r["role"] == "bisection" and publishable(r)
                              and math.isclose(r["target_qps"], best))
    return out


def publishable(row) -> bool:
    """A Server run whose QPS may be published as held: VALID (LoadGen and stationary), long, within the bound."""
    dur = row.get("duration_s")
    return (row.get("validity") == "VALID" and row.get("status") == "ok" and row.get("target_qps") is not None
            and (row.get("phase") == "confirm" or (dur is not None and dur >= rules.CONFIRM_MIN_S)))


def table(items, log: PointLog, base: dict):
    import pandas as pd

    rows = []
    for it in items:
        end = log.finished(it["key"])
        pts = log.points(it["key"])
        if end is None and not pts:
            continue
        rows += rows_of(it, pts, (end or {}).get("error"), base)
    return pd.DataFrame(rows).reindex(columns=COLUMNS)
