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
# # 03 — Cold start and memory
#
# *This file is the notebook's source (jupytext percent format; `make lab` opens it as a notebook). The executed copy with outputs is `build/full/executed/03_startup.ipynb` after `make report` (`build/quick/executed/` with `QUICK=1`).*
#
# What a user pays before the first prediction: every backend is started in a **fresh process** per repetition (`python -m overhead.experiments.startup child`), which measures
#
# - **import**: importing the backend's runtime (NumPy + the NumPy engine, `tensorflow` + `keras`, `ai_edge_litert`, `onnxruntime`); NumPy's own import is part of every runtime's cost;
# - **load**: building a callable from the *cached* artifact (reading the `.keras` file, tracing the `tf.function`, loading the SavedModel, building the LiteRT interpreter / ORT session, unpickling the NumPy engine's converted program) — artifacts are built beforehand, so no conversion happens here;
# - **convert**: producing that artifact from the `.keras` file, as recorded when it was built (SavedModel export, + TFLite conversion for LiteRT, ONNX export, the NumPy engine's conversion); 0 for paths that run the `.keras` file itself;
# - **first call**: the first inference on one real digit (Keras builds its predict function here, XLA compiles here);
# - **start to first prediction**: wall time from just before the process was spawned (interpreter start included) to the end of the first call;
# - **steady median**: later calls in the same process, for contrast;
# - **memory**: peak resident set size (`VmHWM`, the process's own high-water mark; `ru_maxrss` would include the parent's size after fork + exec) after import, after load and after the first call.
#
# Repetitions are interleaved (each round starts every backend once, in a rotated order). Files are read once beforehand, so this is a *process*-cold start with a warm OS page cache, not a disk-cold one.

# %%
# %load_ext autoreload
# %autoreload 2

# %% tags=["parameters"]
study = {}               # the study design: params/full.yaml (make; quick.yaml with QUICK=1); {} -> the defaults
data_dir = None          # None -> overhead.base.config.data_dir()
machine = None           # None -> envinfo.machine_id()
extra_models = []        # paths of your own .keras models (make MODEL=...)

# %%
import pandas as pd
from IPython.display import Markdown, display

from overhead.base.settings import Settings
from overhead.experiments import memloop, startup
from overhead.report import analysis, stages, stagetext

S = Settings.from_dict(study, data_dir=data_dir, machine=machine, extra_models=extra_models)
T = S.startup            # this stage's settings: models, backends, repeats, calls, spread runs
models = stages.present(list(T.models), S.data_dir)          # missing models are named and skipped
extra_models = stages.present(list(S.extra_models), S.data_dir) if S.extra_models else []
pd.set_option('display.width', 200)

# %%
df = startup.run(models, T.backends, repeats=T.repeats, steady_calls=T.steady_calls, threads=T.threads,
                 extra_models=extra_models, data_dir=S.data_dir, machine=S.machine, timeout_s=T.timeout_s)
print(f"{(df.status == 'ok').sum()} of {len(df)} cold starts ok")

# %% [markdown]
# ## Median over repetitions
#
# Seconds for the phases, µs for the steady call, MB of peak resident memory.

# %%
summary = analysis.startup_summary(df)
cols = ['model', 'backend', 'reps', 'import_s', 'convert_s', 'load_s', 'first_call_s',
        'start_to_first_pred_s', 'steady_median_us', 'cold_over_steady', 'rss_after_import_mb',
        'rss_after_load_mb', 'rss_after_first_call_mb']
summary[[c for c in cols if c in summary]].round(3)

# %%
display(Markdown(stagetext.startup(summary)))

# %% [markdown]
# ## Spread over repetitions and failures

# %%
ok = df[df.status == 'ok']
ok.groupby(['model', 'backend'])['start_to_first_pred_s'].agg(['min', 'median', 'max']).round(3)

# %%
failed = df[df.status != 'ok'][['model', 'backend', 'rep', 'status', 'reason']]
failed if len(failed) else print('no failures')

# %%
from overhead.report import plots

for model in df['model'].unique():
    plots.fig_cold_start(summary, model=model)

# %% [markdown]
# ## Memory in a loop
#
# Users report `predict` in a loop growing without bound. Resident memory after 1, 1 000 and 2 000 calls (`startup.memory_loop_calls` in params/full.yaml) of each
# path on the seed CNN at batch 1, each path in a fresh process (`overhead.experiments.memloop`).

# %%
if T.memory_loop:
    mem = memloop.run('cnn_seed', T.memory_loop_backends or memloop.BACKENDS, quick=S.quick,
                      calls=T.memory_loop_calls, threads=1,
                      data_dir=S.data_dir, machine=S.machine)
    display(mem.pivot_table(index='backend', columns='calls', values='rss_mb').round(1))

# %% [markdown]
# ## Why do the TF paths' fresh processes disagree? (the between-run spread)
#
# Fresh processes of `tf.function`, `keras.predict_on_batch` and `tf1.session` on the seed CNN at batch 1 and
# one thread, each under one variant of its start-up (as is, oneDNN off, pinned to one core, jemalloc or tcmalloc
# via `LD_PRELOAD`, glibc's huge-page tunable, no ASLR), variants interleaved in time
# (`overhead.experiments.spread`, `make spread`). The report's section reads `spread.csv`.

# %%
from overhead.experiments import spread as spread_exp
from overhead.report import spread as spread_section

spread_df = spread_exp.run(quick=S.quick, runs=T.spread_runs, budget_s=T.spread_budget_s,
                           names=T.spread_variants or spread_exp.VARIANTS, data_dir=S.data_dir, machine=S.machine)
display(Markdown(spread_section.text(spread_section.summary(spread_df))))
display(spread_section.table(spread_section.summary(spread_df)))
