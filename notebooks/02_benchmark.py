# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 — Benchmark every inference path
#
# *This file is the notebook's source (jupytext percent format; `make lab` opens it as a notebook). The executed copy with outputs is `build/full/executed/02_benchmark.ipynb` after `make report` (`build/quick/executed/` with `QUICK=1`).*
#
# Times each backend of `overhead.backends` on every model of the ladder, at several batch sizes and thread
# settings, into the tidy `bench.csv` of this machine (`data/results/<machine>/`), with raw samples
# (`samples/*.npz`), `gemm.csv` (the float32 GEMM rate of this machine, measured in the same run) and the
# metadata of both.
#
# How a number is made (all of it in `overhead.experiments.sweep` / `overhead.experiments.worker`):
# * every configuration is measured in **`runs` fresh worker processes** (one per model × run × thread setting ×
#   process kind; Keras on JAX / NumPy needs its own), thread settings interleaved in time; threads are fixed
#   before any framework starts, and a crash in a native library costs one row (`status=failed`), not the sweep;
# * every runner is first **compared with the Keras reference on real digits, on logits** (centred
#   log-probabilities: relative error, cosine, top-1 agreement on decisive inputs; `overhead.harness.parity`); a runner
#   outside its tolerance is marked `failed` with the reason and kept out of every fit and ratio;
# * the runners of one (model, batch) are **timed interleaved in rounds**: one value per call, warm-ups
#   discarded, GC on as users run it (collected between rounds), at least 20 values per run for slow paths and
#   200 (or 0.5 s) for fast ones; the median's 95 % interval is at the run level (a hierarchical bootstrap over
#   the runs, then the calls within each: `overhead.harness.interval.median_ci`);
# * a configuration is **unstable** when its runs disagree (two run medians more than 5 % apart with disjoint
#   intervals); the remedy is more runs (up to `max_runs`), all kept. Per-call spread is reported as jitter, and
#   pyperf's old check is kept beside it (`unstable_pyperf`);
# * every run is logged at once (`runs.jsonl`), so an interrupted sweep **resumes** where it stopped.

# %%
# %load_ext autoreload
# %autoreload 2

# %% tags=["parameters"]
study = {}                # the study design: params/full.yaml (make; quick.yaml with QUICK=1); {} -> the defaults
data_dir = None           # None -> overhead.base.config.data_dir()
machine = None            # None -> envinfo.machine_id()
extra_models = []         # paths of your own .keras models (make MODEL=...)

# %%
import pandas as pd
from IPython.display import display

from overhead import backends as bk
from overhead.base import atomic, config, envinfo
from overhead.base.settings import Settings
from overhead.experiments import blasab, ceilings as ceil
from overhead.experiments import distortion, idlegap, sweep
from overhead.report import loading, stages, tables
from overhead.report.idle import verdict as idle_verdict
from overhead.report.style import order_backends

S = Settings.from_dict(study, data_dir=data_dir, machine=machine, extra_models=extra_models)
B = S.bench  # this stage's settings (batches, threads, budget, runs, ...)
S = S.replace(machine=S.machine or envinfo.machine_id())
threads = sweep.thread_settings(B.threads)
out_dir = config.results_dir(S.machine, S.data_dir)
plan = sweep.resolve_models(B.models, S.extra_models, S.data_dir)
pd.set_option('display.width', 200, 'display.max_columns', 30)

print(f'machine {S.machine}; results in {out_dir}')
print(f'backends: {B.backends or "all"}; batch sizes {list(B.batches)}; threads {threads}; budget {B.budget_s} s per configuration')
pd.DataFrame([{'model': name, **stages.describe(path)} for name, path in plan])

# %% [markdown]
# ## The sweep
#
# Rows already in `bench.csv` for the same model content are kept and skipped (delete the file, or call
# `sweep.run(S, resume=False)`, to start over). Worker logs go to `logs/` beside it.

# %%
bench = sweep.run(S, out_dir=out_dir)
print(f'{len(bench)} rows in {out_dir / "bench.csv"}')
loading.save_models_meta(config.models_dir(S.data_dir), out_dir)  # the report re-renders without the trained models

# %% [markdown]
# ## What ran
#
# Configurations per backend and status. `skipped` rows are over the per-call FLOPs cap; `failed` rows could
# not be prepared, crashed, or disagreed with Keras beyond their tolerance (the reasons follow).

# %%
tables.status_counts(bench)

# %%
tables.not_ok(bench)

# %% [markdown]
# ## Do they compute the same thing?
#
# Worst case over every model, batch size and thread setting. Float paths are judged by the max abs error
# against Keras, quantised ones by top-1 agreement and by accuracy on the same held-out digits (only where
# the model is trained: on seeded-init weights accuracy on digits means nothing). `kernels` records what
# really ran, e.g. how many ops XNNPACK took over in each LiteRT graph.

# %%
tables.parity_summary(bench)

# %%
# which kernels ran for the LiteRT variants, per model
lit = bench[bench.backend.str.startswith('litert') & (bench.batch == min(B.batches)) & (bench.threads == min(threads))]
lit.pivot_table(index='model', columns='backend', values='kernels', aggfunc='first').reindex(columns=order_backends(lit.backend))

# %% [markdown]
# ## Latency per call at batch 1, one thread (median, µs)

# %%
tables.latency_pivot(bench, batch=min(B.batches), threads=min(threads)).style.format('{:.4g}', na_rep='')

# %% [markdown]
# The same, as a multiple of the NumPy engine's latency (above 1: slower than NumPy):

# %%
tables.ratio_to(bench, 'numpy', batch=min(B.batches), threads=min(threads)).style.format('{:.3g}', na_rep='')

# %%
# the largest batch that ran, all threads: throughput in inferences per second
ok = bench[bench.status == 'ok']
big = ok.batch.max()
t = tables.latency_pivot(bench, batch=big, threads=max(threads))
(big / t * 1e6).style.format('{:.4g}', na_rep='')

# %% [markdown]
# ## How steady were the measurements?
#
# Share of configurations that pyperf's checks flag unstable after the extra runs, and the timer's own
# overhead per sample (a floor under every latency).

# %%
stages.stability(bench[bench.status == 'ok'], order=order_backends(bench.backend))

# %% [markdown]
# ## This machine's float32 GEMM rate, measured in the same run

# %%
pd.read_csv(out_dir / 'gemm.csv')

# %% [markdown]
# ## Ceilings: the best measured GEMM per library, and the CPU's theoretical peak
#
# `overhead.experiments.ceilings` times float32 GEMMs of several sizes in NumPy/OpenBLAS, TensorFlow (oneDNN) and ONNX
# Runtime (MLAS), each in a fresh process per thread setting, and derives the theoretical float32 peak from the
# CPU's vector ISA, core count and clock (the derivation, and which parts of it are assumptions, are printed).

# %%
if B.ceilings:
    ceil_frame, ceil_summary = ceil.run(out_dir, quick=S.quick)
    display(ceil_frame.pivot_table(index=['library', 'threads'], columns='n', values='gflops').round(1))
    display(ceil_summary)


# %% [markdown]
# ## The BLAS environment
#
# Some machines set `OPENBLAS_CORETYPE` (here it is recorded in every `.meta.json`), which makes OpenBLAS run
# one micro-architecture's kernels whatever the CPU. `overhead.experiments.blasab` times NumPy's float32 GEMM
# with the variable as set and unset, each in fresh processes (this process's environment is never changed).

# %%
if B.blas_ab:
    blas = blasab.run(out_dir, quick=S.quick, machine=S.machine, threads=threads)
    display(blas)

# %% [markdown]
# ## Does the NumPy engine disturb its neighbours?
#
# Each backend is timed alone, and again interleaved call by call with the NumPy engine, at 1 and all threads, on
# a small and a large model (`overhead.experiments.distortion`). A ratio near 1 means the engine's thread pool leaves nothing
# behind that slows the next path down.

# %%
if B.distortion:
    dist = distortion.measure(quick=S.quick, data_dir=S.data_dir)
    atomic.atomic_write_csv(dist, out_dir / 'distortion.csv', index=False)
    envinfo.write_meta(out_dir / 'distortion.csv', {'machine': S.machine, 'stage': 'distortion'})
    display(dist)

# %% [markdown]
# ## Sparse traffic: latency after idleness
#
# A server answering single requests sees its thread pools asleep and its caches cold. Each path is called at
# batch 1 after 0, 1, 10 and 100 ms of idleness (`overhead.experiments.idlegap`), at 1 and all threads, on a small and a
# larger model, each in fresh processes. The secondary paths (variants measured on four models only) are left out.

# %%
if B.idle_gap:
    idle_backends = [b for b in (B.backends or bk.NAMES) if b not in B.secondary_backends]
    idle = idlegap.run(B.idle_models, idle_backends, threads=threads, quick=S.quick, data_dir=S.data_dir,
                       out_dir=out_dir, machine=S.machine)
    display(idle.pivot_table(index=['model', 'backend'], columns=['threads', 'gap_ms'], values='median_us').round(1))
    display(idle_verdict(idle))

# %% [markdown]
# ## Files written

# %%
for p in sorted(out_dir.glob('*.csv')) + sorted(out_dir.glob('*.meta.json')):
    print(p, f'{p.stat().st_size:,} bytes')
print(len(list((out_dir / 'samples').rglob('*.npz'))), 'raw sample files under', out_dir / 'samples')
