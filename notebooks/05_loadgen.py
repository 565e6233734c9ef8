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
# # 05 — Serving under load (MLPerf LoadGen)
#
# *This file is the notebook's source (jupytext percent format; `make lab` opens it as a notebook). The executed copy with outputs is `build/full/executed/05_loadgen.ipynb` after `make report` (`build/quick/executed/` with `QUICK=1`).*
#
# Every other latency in the study comes from one Python loop calling a path back to back. A service is different: requests arrive at random, several may wait at once, and each one crosses an HTTP stack. MLPerf Inference's LoadGen measures exactly that, and this stage drives every path through it:
#
# - **Single-Stream**: one query at a time, the next when the last is answered; LoadGen reports p50/p90/p99 (MLPerf's metric is p90).
# - **Server**: Poisson arrivals at a target QPS; a run is VALID when LoadGen finds p99 under the bound with its early-stopping estimate. The highest VALID QPS is found by bisection.
# - **Concurrency strategies** (one worker thread, N threads sharing a runner or one each, N processes) and **dynamic batching** (wait at most D ms or B queries) on the paths that show what the GIL does.
# - **A real HTTP service**: the same SUT behind FastAPI on uvicorn (127.0.0.1 only) with one and two worker processes and three payloads (pydantic JSON as in the tutorial service, plain JSON, binary float32), with a no-op model through the same stack, so a request's time splits into framework, model and HTTP; a C load generator (`wrk`) cross-checks LoadGen's client.
#
# A Server maximum is published only when it held for a long run: short runs steer the bisection, the maximum and the first failing point above it run again for at least 10 s, a run whose queue grows (latency of the last third against the first) counts as INVALID, and a maximum above workers × batch / service time (measured in the same process) is flagged as impossible. Each model × thread setting × process kind runs in a fresh child process; every finished LoadGen run is kept in `loadgen.points.jsonl`, so a stopped run resumes where it was. The deviations from MLPerf's rules are printed below (Method).

# %%
# %load_ext autoreload
# %autoreload 2

# %% tags=["parameters"]
study = {}                     # the study design: params/full.yaml (make; quick.yaml with QUICK=1); {} -> the defaults
data_dir = None                # None -> overhead.base.config.data_dir()
machine = None                 # None -> envinfo.machine_id()
extra_models = []              # paths of your own .keras models (make MODEL=...)

# %%
from dataclasses import replace

import pandas as pd
from IPython.display import Markdown, display
from overhead.base.settings import Settings
from overhead.report import stages
from overhead.experiments import loadgen
from overhead.report import underload, underload_http

S = Settings.from_dict(study, data_dir=data_dir, machine=machine, extra_models=extra_models)
L = S.loadgen                  # this stage's settings: models, paths, threads, bounds, LoadGen run lengths
models = stages.present(list(L.models) + list(S.extra_models), S.data_dir)   # missing models are named and skipped
S = S.replace(loadgen=replace(L, models=tuple(models)))
pd.set_option('display.width', 200)
display(Markdown('**Method.** ' + loadgen.method_text(S.quick, L.runs)))

# %% [markdown]
# ## The runs

# %%
frame = loadgen.run(S)
display(Markdown('**Finding.** ' + underload_http.lead_sentence(frame)))
frame[['scenario', 'model', 'path', 'transport', 'payload', 'strategy', 'workers', 'batching', 'threads', 'phase',
       'target_qps', 'achieved_qps', 'p50_us', 'p90_us', 'p99_us', 'validity', 'stationary', 'parity',
       'status']].round(1)

# %%
failed = frame[frame['status'] != 'ok']
failed[['scenario', 'model', 'path', 'strategy', 'status', 'reason']] if len(failed) else print('every run passed parity under load and the capacity bound')

# %% [markdown]
# ## The MLPerf-style table
#
# Single-Stream p90 (1 thread, and at the most threads measured) and the Server scenario's maximum at the bound (one worker thread): the highest QPS that held for a run of at least 10 s; `max_qps` 0 means no offered load kept p99 under the bound, and a configuration that held only in short runs shows its `upper_bound_qps` instead (`max_kind` says which).

# %%
underload.mlperf_table(frame).round(1)

# %%
display(Markdown(underload.under_load_sentence(frame)))

# %% [markdown]
# ## Latency against offered load (the hockey stick)

# %%
for model in frame.loc[frame['scenario'] == 'Server', 'model'].unique():
    display(underload.fig_hockey_stick(frame, model))

# %% [markdown]
# ## Concurrency strategies and dynamic batching
#
# Server max QPS per strategy: N threads share one runner where the runtime allows it (TF, ORT, the NumPy engine's calls are serialised by its own lock) or hold one each (LiteRT interpreters, OpenVINO infer requests); N processes each load the model. Dynamic batching pads a collected batch to the next power of two up to B.

# %%
underload.strategy_table(frame).round(0)

# %%
underload.batching_table(frame).round(1)

# %% [markdown]
# ## Behind HTTP: the floor per payload and worker count, LoadGen beside wrk
#
# The no-op model behind uvicorn: LoadGen's Single-Stream p50/p99 and Server maximum (with the p50/p99 at the VALID run nearest half of it), and wrk's p50 with one connection and its requests/s, p50 and p99 with several (closed loop). LoadGen's client (one client thread driving keep-alive connections over raw sockets, each sample's request built before the run), wrk and the uvicorn server share this machine's cores; `client_cpu_us` and `server_cpu_us` are each process's CPU time per query.

# %%
underload_http.http_table(frame).round(1)

# %% [markdown]
# ## Behind HTTP: what share of a request is framework, model and HTTP stack (pydantic JSON)

# %%
shares = underload_http.http_share(frame)
display(underload_http.fig_http_share(shares))
shares.round(3)

# %%
frame.loc[frame['transport'] == 'http', ['scenario', 'path', 'payload', 'server_workers', 'client', 'clients',
                                         'phase', 'target_qps', 'achieved_qps', 'p50_us', 'p99_us', 'validity',
                                         'client_cpu_us', 'server_cpu_us']].round(1)
