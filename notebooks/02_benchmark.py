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
# How a number is made (all of it in `overhead.sweep` / `overhead.worker`):
# * one **fresh worker process per thread setting and model**: threads are fixed before TensorFlow starts,
#   and a crash in a native library costs one row (`status=failed`), not the sweep;
# * every runner is first **compared with the Keras reference on real digits** (max abs error, top-1
#   agreement, accuracy on the same held-out digits); a runner outside its tolerance is still timed but
#   marked `failed` with the reason;
# * the runners of one (model, batch) are **timed interleaved in rounds** (`timing.interleaved`): one
#   sample per call, warm-up discarded, GC off; unstable ones (std ≥ 10 % of the mean) are re-measured once;
# * every finished row is appended to `bench.csv` at once, so an interrupted run **resumes** where it stopped.

# %%
# %load_ext autoreload
# %autoreload 2

# %% tags=["parameters"]
# parameters
models = None             # None -> overhead.models.LADDER (plus extra_models)
extra_models = []         # paths of your own .keras models
backends = None           # None -> every backend
batch_sizes = [1, 4, 16, 64, 256]
threads = None            # None -> [1, all cores]
budget_s = 0.1            # timing budget per configuration (per backend, per batch size, per thread setting)
max_flops_per_call = 8e9  # skip (and say why) configurations above this many FLOPs per call
quick = False             # 3 small models, batch 1 and 16, one thread, tiny budget
data_dir = None
machine = None            # None -> envinfo.machine_id()
distortion_check = True   # NumPy engine timed alone vs alongside the TF/LiteRT/ORT runners

# %%
import os
import pandas as pd
from overhead import config, envinfo, models as zoo, stages, sweep
from overhead.report import tables
from overhead.report.style import order_backends

if data_dir:
    os.environ['OVERHEAD_DATA'] = str(data_dir)
parity_max_s, gemm_n = 0.5, 2048
if quick:
    models = models or list(zoo.LADDER[:3])
    batch_sizes, threads = [1, 16], threads or [1]
    budget_s, parity_max_s, gemm_n = min(budget_s, 0.03), 0.3, 512
threads = threads or sorted({1, os.cpu_count()})
machine = machine or envinfo.machine_id()
out_dir = config.results_dir(machine)
plan = sweep.resolve_models(models, extra_models)
pd.set_option('display.width', 200, 'display.max_columns', 30)

print(f'machine {machine}; results in {out_dir}')
print(f'backends: {backends or "all"}; batch sizes {batch_sizes}; threads {threads}; budget {budget_s} s per configuration')
pd.DataFrame([{'model': name, **stages.describe(path)} for name, path in plan])

# %% [markdown]
# ## The sweep
#
# Rows already in `bench.csv` for the same model content are kept and skipped (delete the file, or call
# `sweep.run(..., resume=False)`, to start over). Worker logs go to `logs/` beside it.

# %%
bench = sweep.run(models, backends, batch_sizes, threads, budget_s, extra_models=extra_models,
                  out_dir=out_dir, machine=machine, max_flops_per_call=max_flops_per_call,
                  parity_max_s=parity_max_s, gemm_n=gemm_n)
print(f'{len(bench)} rows in {out_dir / "bench.csv"}')

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
lit = bench[bench.backend.str.startswith('litert') & (bench.batch == min(batch_sizes)) & (bench.threads == min(threads))]
lit.pivot_table(index='model', columns='backend', values='kernels', aggfunc='first').reindex(columns=order_backends(lit.backend))

# %% [markdown]
# ## Latency per call at batch 1, one thread (median, µs)

# %%
tables.latency_pivot(bench, batch=min(batch_sizes), threads=min(threads)).style.format('{:.4g}', na_rep='')

# %% [markdown]
# The same, as a multiple of the NumPy engine's latency (above 1: slower than NumPy):

# %%
tables.ratio_to(bench, 'numpy', batch=min(batch_sizes), threads=min(threads)).style.format('{:.3g}', na_rep='')

# %%
# the largest batch that ran, all threads: throughput in inferences per second
ok = bench[bench.status == 'ok']
big = ok.batch.max()
t = tables.latency_pivot(bench, batch=big, threads=max(threads))
(big / t * 1e6).style.format('{:.4g}', na_rep='')

# %% [markdown]
# ## How steady were the measurements?
#
# Share of configurations flagged unstable (std ≥ 10 % of the mean) after the one re-measure, and the timer's
# own overhead per sample (a floor under every latency).

# %%
stages.stability(bench[bench.status == 'ok'], order=order_backends(bench.backend))

# %% [markdown]
# ## This machine's float32 GEMM rate, measured in the same run

# %%
pd.read_csv(out_dir / 'gemm.csv')

# %% [markdown]
# ## Does sharing a process distort the numbers?
#
# The sweep runs all backends of a model in one worker, interleaved. To check that TensorFlow, LiteRT and ORT
# living in the same process (their thread pools, allocators, caches) do not slow the others down, the NumPy
# engine is timed in a worker of its own and again alongside the TF/LiteRT/ORT runners, on the smallest
# model. A ratio near 1, with overlapping confidence intervals, means sharing the process does not distort.

# %%
if distortion_check:
    smallest = stages.smallest(plan)
    companions = ('keras.call', 'tf.function', 'litert', 'onnxruntime')
    dist = sweep.distortion_check(smallest[1], batch=1, threads=min(threads), budget_s=max(budget_s, 0.2),
                                  companions=companions)
    r = float(dist.ratio.iloc[0])
    print(f'NumPy engine on {smallest[0]}: alongside / alone = {r:.3f} '
          f'({"within" if abs(r - 1) < 0.1 else "outside"} ±10 %)')
    display(dist)

# %% [markdown]
# ## Files written

# %%
for p in sorted(out_dir.glob('*.csv')) + sorted(out_dir.glob('*.meta.json')):
    print(p, f'{p.stat().st_size:,} bytes')
print(len(list((out_dir / 'samples').rglob('*.npz'))), 'raw sample files under', out_dir / 'samples')
