# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %%
# %load_ext autoreload
# %autoreload 2

# %% tags=["parameters"]
# Parameters (papermill): the study design (params/full.yaml; quick.yaml: fewer bootstrap resamples) and paths
study = {}             # {} -> overhead.base.settings.Settings' defaults
data_dir = None        # None -> overhead.base.config.data_dir() ($OVERHEAD_DATA or <repo>/data)
figures_dir = None     # None -> overhead.base.config.FIGURES
machine = None         # None -> all machines; figures for this machine (envinfo.machine_id()) if present
extra_models = []      # paths of your own .keras models (make MODEL)

# %% [markdown]
# # Is TensorFlow slower than NumPy on a CPU, and when does it stop mattering?

# %%
# %matplotlib inline
import warnings

warnings.filterwarnings("ignore")
from pathlib import Path

import pandas as pd
from IPython.display import HTML, Markdown, display

from overhead.base import config
from overhead.base.settings import Settings
from overhead.report import analysis, layout, loading, plotkit, plots, style, underload, underload_http, wins
from overhead.report.fmt import fmt_pct, small_model
from overhead.report.sections import (
    advice,
    advice_effort,
    appendix,
    architectures,
    batch,
    breakdown,
    ceilings,
    claims,
    distortion,
    fits,
    idle_gap,
    key_numbers,
    loadgen,
    memory_loop,
    method,
    parity,
    pipeline,
    reconcile,
    slowdown,
    stability,
    startup,
    threads,
    tldr,
    whopays,
)

DATA = config.data_dir(data_dir)
FIG = Path(figures_dir) if figures_dir else config.FIGURES
N_BOOT = 50 if Settings.from_dict(study).quick else 400
pd.set_option("display.max_columns", 40)
pd.set_option("display.precision", 3)
pd.set_option("display.max_colwidth", None)

try:  # the machine this notebook runs on, preferred for the figures when it has results
    from overhead.base import envinfo
    HERE = envinfo.machine_id()
except Exception:
    HERE = None

results = loading.load_results(DATA / "results")
models = loading.load_models_meta(DATA / "models")
if models.empty:  # a re-render from committed results: the trained models are not in the repository
    models = loading.models_from_results(DATA / "results", prefer=HERE)
R = analysis.analyse(results, models, machine=machine, n_boot=N_BOOT, seed=0, preferred_machine=HERE)
M = R.machine
EXTRA = [Path(p).stem for p in extra_models]
MISSING = [k for k in loading.REQUIRED_FILES if results.get(k) is None]
ADVICE = advice.advice(R)
TLDR = tldr.tldr(R)
SMALL = small_model(R)
LADDER = advice_effort.effort_ladder(R, SMALL)
CLAIMS = claims.by_machine(R)  # every winner question is asked before the stability section tallies them

# %%
display(Markdown(TLDR))
if len(R.sweep):
    display(plotkit.publish(tldr.fig_hero(R.sweep, R.fits, tldr.fastest(R, SMALL)[0], machine=M), "hero", FIG))
if EXTRA:  # `make report MODEL=…`: what ran on your model, what was skipped and why
    display(Markdown(tldr.extra_models_text(R, EXTRA)))
    display(tldr.user_model_outcomes(results.get("bench"), EXTRA, machine=M))

# %%
# the TL;DR and the advice also go to the README (make report copies figures/findings.md into it)
FIG.mkdir(parents=True, exist_ok=True)
_ = (FIG / "findings.md").write_text(
    TLDR + "\n\n**What should you do?** " + advice_effort.ladder_lead(LADDER, SMALL) + "\n\n" + advice.summary(ADVICE) + "\n\n"
    "![Measured latency and overhead share of predict, model(x) and tf.function](figures/hero.png)\n\n"
    "The whole report: [reports/report.html](reports/report.html) (self-contained; download and open it).\n")

# %% [markdown]
# Every number below is computed from this run's result files by `overhead.report`: *measured* numbers come straight from the timings, *fitted* ones from a latency model, and a fit the data cannot pin down is shown as *not identifiable*.
#
# ## What should you do?

# %%
display(Markdown(advice_effort.ladder_lead(LADDER, SMALL)))
display(HTML(advice_effort.ladder_markdown(LADDER)))
display(Markdown(advice.lead(ADVICE)))
display(HTML(advice.advice_markdown(ADVICE)))
display(Markdown(advice.flops_note(R)))

# %% [markdown]
# ## Who pays for predict?

# %%
WALK = whopays.walk(R)
display(Markdown(whopays.text(R)))
if len(WALK) >= 2:
    display(layout.table(whopays.table(WALK)))
    display(plotkit.publish(whopays.fig_who_pays(WALK, branches=whopays.branches(R)), "who_pays", FIG))
    display(layout.details("Side branches: Keras 2, a TF1 session, JAX, eager model(x)", whopays.branches_text(R)))

# %% [markdown]
# ## Where does overhead stop mattering?

# %%
display(Markdown(fits.fits_lead(R)))
if len(R.sweep):
    display(plotkit.publish(fits.fig_overhead_vs_compute(R.sweep, R.fits, ceilings.ceiling(R, R.threads.get(M, 1))["gflops"],
                                                        machine=M), "overhead_vs_compute", FIG))
display(layout.details("The fitted latency models, path by path", fits.overhead_text(R), fits.fit_table(R)))
display(Markdown(fits.misses_text(R)))
display(layout.details("Every measured point a fitted model misses by more than 25 %", fits.misses_table(R)))

# %% [markdown]
# ### The architectures people ship: MobileNet and EfficientNet

# %%
display(Markdown(architectures.text(R)))
display(layout.details("Each application model and path against plain nets of its FLOPs", architectures.reader_table(R)))
display(Markdown(architectures.families_text(R)))
if len(R.every("apps")):
    display(layout.details("Every path on each Keras Applications family (overhead check, batch 1)",
                           architectures.families_table(R)))
display(Markdown(architectures.engine_text(R)))
if len(R.every("enginebench")):
    display(layout.details("The NumPy engine on each family against LiteRT and tf.function (make bench)",
                           architectures.engine_table(R)))

# %% [markdown]
# ## How much slower than NumPy?

# %%
display(Markdown(slowdown.slowdown_text(R)))
if len(R.vs_numpy):
    vs = R.mine("vs_numpy")
    display(plotkit.publish(slowdown.fig_slowdown(analysis.pivot(vs, "slowdown", style.order_backends(vs["backend"]))),
                          "slowdown_vs_numpy", FIG))
    display(layout.details("Times slower than the NumPy engine, every path and model", slowdown.ratio_table(R, "vs_numpy", "slowdown")))
if len(R.vs_predict):
    display(layout.details("Times faster than keras.predict, every path and model", slowdown.ratio_table(R, "vs_predict", "speedup")))

# %% [markdown]
# ## Batch size

# %%
display(Markdown(batch.batch_text(R)))
if len(R.batch) and R.batch["batch"].nunique() > 1:
    display(plotkit.publish(batch.fig_batch(R.batch, batch.batch_models(R), machine=M), "batch_size", FIG))
display(layout.details("Throughput gain per path", batch.batch_table(R)))

# %% [markdown]
# ## Threads

# %%
display(Markdown(threads.threads_text(R)))
if len(R.scaling):
    display(plotkit.publish(threads.fig_threads(R.scaling, machine=M), "threads", FIG))

# %% [markdown]
# ### Sparse traffic: calls after an idle gap

# %%
display(Markdown(idle_gap.idle_gap_text(R)))
if len(R.mine("idle_gap")):
    display(plotkit.publish(idle_gap.fig_idle_gap(R.mine("idle_gap")), "idle_gap", FIG))

# %% [markdown]
# ## Cold start and memory

# %%
display(Markdown(startup.startup_text(R)))
if len(R.startup):
    display(plotkit.publish(plots.fig_cold_start(R.startup, SMALL, machine=M), "cold_start", FIG))
    ST = startup.startup_table(R)
    display(layout.details("Start-up and memory, every path", startup.startup_finding(R, ST), ST))

# %% [markdown]
# ### Memory in a loop

# %%
display(Markdown(memory_loop.memory_loop_text(R)))
display(layout.table(memory_loop.memory_loop_table(R)))

# %% [markdown]
# ## Under load: MLPerf LoadGen, in process and over HTTP

# %%
display(Markdown(loadgen.loadgen_text(R)))
LG_MACHINES = loadgen.loadgen_machines(R)
for LG_M, LG in LG_MACHINES:
    TAG = "" if LG_M == LG_MACHINES[0][0] else "_" + LG_M
    if len(LG_MACHINES) > 1:
        display(Markdown(loadgen.machine_heading(LG_M, LG)))
    display(Markdown("**The MLPerf-style table:** each configuration with a Server bisection (one worker thread); "
                     "Single-Stream p50/p99 at 1 thread, and the Server QPS that held p99 under the bound."))
    display(layout.table(underload.mlperf_reader_table(LG)))
    display(plotkit.publish(underload.fig_hockey_stick(LG), "hockey_stick" + TAG, FIG))
    SHARE = underload_http.http_share(LG)
    if len(SHARE):
        display(plotkit.publish(underload_http.fig_http_share(SHARE), "http_share" + TAG, FIG))
    HTTP = underload_http.http_table(LG)
    if len(HTTP):
        display(Markdown("**The HTTP floor:** the no-op model behind FastAPI/uvicorn per payload and worker count, "
                         "LoadGen's client beside wrk's. " + underload_http.http_cross_check(HTTP)))
        display(layout.table(underload_http.http_reader_table(LG)))
    display(layout.details("Concurrency strategies and dynamic batching", underload.strategy_reader_table(LG),
                           underload.batching_reader_table(LG)))
    LG_META = R.meta_all.get(LG_M, {}).get("loadgen", {})
    display(Markdown("**Method and deviations from MLPerf.** " + str(LG_META.get("method", "not recorded")) + " "
                     + str(LG_META.get("client_and_server", ""))))
if len(R.every("loadgen_repeat")):
    display(Markdown("**A rerun of the stage.** " + loadgen.repeat_text(R)))

# %% [markdown]
# ## Pipeline: from PNG to label

# %%
display(Markdown(pipeline.pipeline_text(R)))
if len(R.pipeline):
    display(plotkit.publish(plots.fig_pipeline(R.pipeline, SMALL, machine=M), "pipeline", FIG))
    PT = pipeline.pipeline_table(R)
    display(layout.details("Stage times, every path", pipeline.pipeline_finding(R, PT), PT))

# %% [markdown]
# ## Where the time goes: the per-call decomposition

# %%
display(Markdown(breakdown.breakdown_text(R)))
if len(R.breakdown):
    display(plotkit.publish(plots.fig_breakdown(R.breakdown, SMALL, machine=M), "breakdown", FIG))
display(layout.details("The largest bucket of each decomposition", breakdown.breakdown_table(R)))

# %% [markdown]
# ## Ceilings

# %%
display(Markdown(ceilings.text(R)))
display(Markdown(ceilings.blas_text(R)))
if len(R.sweep):
    display(plotkit.publish(ceilings.fig_roofline(R.bench, R.mine("ceilings") if len(R.mine("ceilings")) else None,
                                                ceilings.summary(R) or None, machine=M),
                          "roofline", FIG))
display(layout.table(ceilings.table(R)))
pk = R.mine("peak")
pk = pk[~pk["backend"].map(ceilings.is_reduced_precision)] if len(pk) else pk  # int8/fp16: not bounded by it
if len(pk):
    display(layout.details("Share of the float32 ceiling reached by the float32 paths on "
                           + " and ".join(pk.drop_duplicates("model")["model"]),
                           analysis.pivot(pk, "peak_share", backends=style.order_backends(pk["backend"])).map(fmt_pct)))

# %% [markdown]
# ## How stable are the measurements?

# %%
STAB = stability.summary(R.mine("sweep"), DATA / "results")
display(Markdown(stability.text(STAB, wins.tally(R))))
display(layout.details("Stability and jitter per path", stability.table(R.mine("sweep"), DATA / "results")))

# %%
# NEW SECTIONS near the stability discussion (e.g. the between-run spread): append their cells right below this one.

# %% [markdown]
# ### Why do the TF paths' fresh processes disagree?
#
# First what the published sweeps' own runs say (their per-run samples, `overhead.report.spread_runs`), then fresh processes of the TF paths on the seed CNN, one image per call, each under one variant of its start-up, interleaved in time (`overhead.experiments.spread`; `spread.csv`).

# %%
from overhead.report import spread as spread_section, spread_runs

display(Markdown(spread_runs.text(DATA / "results")))
SPREAD = R.raw.get("spread", pd.DataFrame())  # read once, by the registry (overhead.base.tables)
display(Markdown(spread_section.text(spread_section.summary(SPREAD))))
if len(SPREAD):
    _fig, _alt = spread_section.figure(SPREAD)
    display(plotkit.publish(_fig, "spread", FIG, alt=_alt))
    display(layout.details("Between-run spread per variant and path", spread_section.table(spread_section.summary(SPREAD))))

# %% [markdown]
# ### One call, several sections

# %%
RC = reconcile.contexts(R)
display(Markdown(reconcile.text(RC) or "*Only the timing sweep timed this call.*"))
display(layout.details("The same call as each section times it", reconcile.table(RC)))

# %% [markdown]
# ## Across TensorFlow releases
#
# The same models rebuilt inside every tensorflow-cpu release the stage lists (`overhead.experiments.versions_env.RELEASES`, one environment each, `make versions`), checked against the NumPy engine, then timed one image per call on one thread (`versions.csv`).

# %%
from overhead.report import versions as vreport

VERSIONS = R.raw.get("versions", pd.DataFrame())  # read once, by the registry
display(Markdown(vreport.finding(VERSIONS)))
if len(VERSIONS) and (VERSIONS["status"] == "ok").any():
    _fig, _alt = vreport.fig_latency(VERSIONS, HERE)
    display(plotkit.publish(_fig, "versions", FIG, alt=_alt))
    display(layout.details("Median latency per release (µs; oneDNN on, the Keras each release installs)",
                           vreport.table(VERSIONS)))

# %% [markdown]
# ## The original claims, checked
#
# Each testable claim of the article that prompted the question, in our own words, with a verdict computed from this run by the thresholds in `overhead.report.sections.claims`.

# %%
display(Markdown(f"Article: {claims.ARTICLE}"))
display(Markdown(claims.by_machine_lead(CLAIMS)))
display(Markdown(claims.by_machine_markdown(CLAIMS)))
for _m, _t in CLAIMS.attrs.get("numbers", {}).items():
    display(layout.details(f"The numbers behind each verdict on {_m}", claims.claims_markdown(_t)))

# %% [markdown]
# ## Limitations

# %%
display(Markdown(method.limitations(R, results, models, MISSING)))

# %% [markdown]
# ## Appendix
#
# ### Method

# %%
display(Markdown(method.method(R, results, N_BOOT)))
display(layout.details("Machine and software metadata", method.meta_table(results, M)))

# %% [markdown]
# ### Parity: does every path compute the same answer?

# %%
display(Markdown(parity.parity_text(R)))
display(layout.details("Failed or skipped combinations, and parity per path", parity.failed_paths_text(R),
                       parity.status_view(R), R.mine("problems") if len(R.problems) else None))

# %% [markdown]
# ### Key numbers per path

# %%
display(layout.details("Key numbers per path", key_numbers.key_numbers_finding(R), key_numbers.key_numbers(R)))

# %% [markdown]
# ### Distortion check

# %%
display(Markdown(distortion.distortion_text(R)))
if len(R.mine("distortion")):
    display(layout.details("Distortion measurements", distortion.distortion_finding(R), distortion.distortion_table(R)))

# %% [markdown]
# ### Raw tables

# %%
display(Markdown(appendix.raw_links(DATA / "results", config.REPORTS)))

# %% [markdown]
# ### The code of each path
#
# As the sweep recorded it with the results (`timed_code` in bench.meta.json), so it is the code that was timed;
# a run from before source recording shows the catalogue's user code instead, and says so.

# %%
display(layout.details("The timed code of every path",
                       appendix.code_appendix(style.order_backends(R.sweep["backend"]) if len(R.sweep) else [],
                                            (R.meta.get("bench") or {}).get("timed_code"))))
