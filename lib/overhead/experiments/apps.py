"""Every inference path on the Keras Applications families, as a new user meets them (issue 25).

Each family of :data:`overhead.ladder.families.FAMILIES` is built offline (``weights=None``, a small input,
BatchNorm statistics from one batch so that its outputs are not degenerate), saved once under
``<data>/apps/``, and checked the way ``overhead check`` does: one worker per process kind runs every path at
batch 1 and one thread and compares its outputs with Keras' own. ``apps.csv`` holds one row per family x
path: status, parity, the largest error against its tolerance, top-1 agreement, and the reason a path could
not run (a converter's error, a layer the engine refuses), which the report prints. Families already in the
file are kept, so an interrupted run resumes.

    python -m overhead.experiments.apps [--families A,B] [--backends a,b] [--out DIR]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from overhead import backends
from overhead.base import atomic, config, envinfo
from overhead.experiments import sweep
from overhead.ladder.families import FAMILIES, build as build_family

COLUMNS = ["machine", "family", "input_px", "backend", "process", "status", "parity", "max_abs_err", "tolerance",
           "top1_agree", "reason", "seconds"]
CHECK = {"mode": "check", "parity_n": 256, "parity_max_s": 5.0, "max_flops_per_call": float("inf")}


def model_file(family: str, folder: Path) -> Path:
    """The family's .keras file under `folder`, built (:func:`overhead.ladder.families.build`) and saved once."""
    path = folder / f"{family}.keras"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp.keras")
        build_family(family).save(tmp)
        tmp.replace(path)
    return path


def check_family(family: str, path: Path, names, artifacts: Path, collect=sweep.collect_rows) -> list[dict]:
    """`overhead check` on one family: every path in `names`, one worker per process kind."""
    kinds: dict[str, list] = {}
    for b in names:
        kinds.setdefault(backends.get(b).process, []).append(b)
    rows = []
    for kind, group in kinds.items():
        t0 = time.perf_counter()
        job = sweep._job_for(family, path, 1, [(b, 1) for b in group], {**CHECK, "artifacts": str(artifacts)},
                             process=kind)
        got, _ = collect(job)
        seen = {r.get("backend") for r in got}
        got += [{"backend": b, "status": "failed", "reason": "the worker wrote no row (crashed or stalled)"}
                for b in group if b not in seen]
        got.sort(key=lambda r: group.index(r["backend"]) if r.get("backend") in group else len(group))
        per = (time.perf_counter() - t0) / max(1, len(group))
        rows += [{**r, "process": kind, "seconds": per} for r in got]
    size = FAMILIES[family][1]
    return [{"family": family, "input_px": size, **{k: r.get(k) for k in COLUMNS if k not in ("family", "input_px")}}
            for r in rows]


def run(out_dir=None, families=None, names=None, collect=sweep.collect_rows):
    """Check every family (default: every one of FAMILIES) on every path (default: all) into ``<out_dir>/apps.csv``, one
    family at a time, keeping the families the file already holds."""
    import pandas as pd

    machine = envinfo.machine_id()
    out = Path(out_dir) if out_dir else config.results_dir(machine)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "apps.csv"
    done = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=COLUMNS)
    folder = config.data_dir() / "apps"
    names = list(names or backends.NAMES)
    for family in families or list(FAMILIES):
        if family in set(done["family"]):
            print(f"{family}: kept from {path}", flush=True)
            continue
        t0 = time.perf_counter()
        rows = check_family(family, model_file(family, folder), names, folder / "artifacts", collect)
        frame = pd.DataFrame(rows, columns=COLUMNS).assign(machine=machine)
        done = frame if not len(done) else pd.concat([done, frame], ignore_index=True)
        atomic.atomic_write_csv(done[COLUMNS], path, index=False)
        passed = int((frame["parity"] == "pass").sum())
        print(f"{family}: {passed} of {len(frame)} paths pass parity ({time.perf_counter() - t0:.0f} s)", flush=True)
    envinfo.write_meta(path, {"stage": "apps", "what": "overhead check (parity only) of every path on each Keras "
                              "Applications family, built offline with weights=None and BatchNorm statistics from "
                              "one batch; batch 1, one thread", "families": {f: list(FAMILIES[f][:2])
                                                                             for f in FAMILIES}}, threads=1)
    return done


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m overhead.experiments.apps", description=__doc__.splitlines()[0])
    ap.add_argument("--families", default=None, help="comma-separated, from: " + ", ".join(FAMILIES))
    ap.add_argument("--backends", default=None, help="comma-separated paths (default: every path)")
    ap.add_argument("--out", default=None, help="results folder (default data/results/<machine>)")
    args = ap.parse_args(argv)
    families = [f.strip() for f in args.families.split(",")] if args.families else None
    names = [b.strip() for b in args.backends.split(",")] if args.backends else None
    bad = [f for f in families or [] if f not in FAMILIES] + [b for b in names or [] if b not in backends.NAMES]
    if bad:
        print(f"error: unknown family or path {bad[0]!r}; families: {', '.join(FAMILIES)}; paths: "
              "`overhead backends`", file=sys.stderr)
        return 2
    frame = run(args.out, families, names)
    print(frame.pivot_table(index="family", columns="parity", values="backend", aggfunc="count", fill_value=0)
          .to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
