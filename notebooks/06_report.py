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
from overhead.report import (
    advice,
    analysis,
    answer,
    claims,
    effort,
    hero,
    layout,
    loading,
    method,
    optional,
    peak,
    plots,
    plots_more,
    prose,
    reconcile,
    roofline,
    sections,
    sectiontables,
    stability,
    tables,
    underload,
    underload_http,
    whopays,
    wins,
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
TLDR = answer.tldr(R)
SMALL = prose.small_model(R)
LADDER = effort.effort_ladder(R, SMALL)
CLAIMS = claims.by_machine(R)  # every winner question is asked before the stability section tallies them

# %%
display(Markdown(TLDR))
if len(R.sweep):
    display(plots.publish(hero.fig_hero(R.sweep, R.fits, answer.fastest(R, SMALL)[0], machine=M), "hero", FIG))
if EXTRA:  # `make report MODEL=…`: what ran on your model, what was skipped and why
    display(Markdown(prose.extra_models_text(R, EXTRA)))
    display(tables.user_model_outcomes(results.get("bench"), EXTRA, machine=M))

# %%
# the TL;DR and the advice also go to the README (make report copies figures/findings.md into it)
FIG.mkdir(parents=True, exist_ok=True)
_ = (FIG / "findings.md").write_text(
    TLDR + "\n\n**What should you do?** " + effort.ladder_lead(LADDER, SMALL) + "\n\n" + advice.summary(ADVICE) + "\n\n"
    "![Measured latency and overhead share of predict, model(x) and tf.function](figures/hero.png)\n\n"
    "The whole report: [reports/report.html](reports/report.html) (self-contained; download and open it).\n")

# %% [markdown]
# Every number below is computed from this run's result files by `overhead.report`: *measured* numbers come straight from the timings, *fitted* ones from a latency model, and a fit the data cannot pin down is shown as *not identifiable*.
#
# ## What should you do?

# %%
display(Markdown(effort.ladder_lead(LADDER, SMALL)))
display(HTML(effort.ladder_markdown(LADDER)))
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
    display(plots.publish(plots_more.fig_who_pays(WALK, branches=whopays.branches(R)), "who_pays", FIG))
    display(layout.details("Side branches: Keras 2, a TF1 session, JAX, eager model(x)", whopays.branches_text(R)))

# %% [markdown]
# ## Where does overhead stop mattering?

# %%
display(Markdown(prose.fits_lead(R)))
if len(R.sweep):
    display(plots.publish(plots.fig_overhead_vs_compute(R.sweep, R.fits, peak.ceiling(R, R.threads.get(M, 1))["gflops"],
                                                        machine=M), "overhead_vs_compute", FIG))
display(layout.details("The fitted latency models, path by path", prose.overhead_text(R), tables.fit_table(R)))
display(Markdown(prose.misses_text(R)))
display(layout.details("Every measured point a fitted model misses by more than 25 %", prose.misses_table(R)))

# %% [markdown]
# ## How much slower than NumPy?

# %%
display(Markdown(sections.slowdown_text(R)))
if len(R.vs_numpy):
    vs = R.mine("vs_numpy")
    display(plots.publish(plots.fig_slowdown(analysis.pivot(vs, "slowdown", plots.order_backends(vs["backend"]))),
                          "slowdown_vs_numpy", FIG))
    display(layout.details("Times slower than the NumPy engine, every path and model", tables.ratio_table(R, "vs_numpy", "slowdown")))
if len(R.vs_predict):
    display(layout.details("Times faster than keras.predict, every path and model", tables.ratio_table(R, "vs_predict", "speedup")))

# %% [markdown]
# ## Batch size

# %%
display(Markdown(sections.batch_text(R)))
if len(R.batch) and R.batch["batch"].nunique() > 1:
    display(plots.publish(plots.fig_batch(R.batch, tables.batch_models(R), machine=M), "batch_size", FIG))
display(layout.details("Throughput gain per path", sections.batch_table(R)))

# %% [markdown]
# ## Threads

# %%
display(Markdown(sections.threads_text(R)))
if len(R.scaling):
    display(plots.publish(plots.fig_threads(R.scaling, machine=M), "threads", FIG))

# %% [markdown]
# ### Sparse traffic: calls after an idle gap

# %%
display(Markdown(optional.idle_gap_text(R)))
if len(R.mine("idle_gap")):
    display(plots.publish(plots_more.fig_idle_gap(R.mine("idle_gap")), "idle_gap", FIG))

# %% [markdown]
# ## Cold start and memory

# %%
display(Markdown(sections.startup_text(R)))
if len(R.startup):
    display(plots.publish(plots_more.fig_cold_start(R.startup, SMALL, machine=M), "cold_start", FIG))
    ST = sectiontables.startup_table(R)
    display(layout.details("Start-up and memory, every path", sectiontables.startup_finding(R, ST), ST))

# %% [markdown]
# ### Memory in a loop

# %%
display(Markdown(optional.memory_loop_text(R)))
display(layout.table(optional.memory_loop_table(R)))

# %% [markdown]
# ## Under load: MLPerf LoadGen, in process and over HTTP

# %%
LG = R.mine("loadgen")
display(Markdown(optional.loadgen_text(R)))
if len(LG):
    display(underload.mlperf_table(LG))
    display(plots.publish(underload.fig_hockey_stick(LG), "hockey_stick", FIG))
    SHARE = underload_http.http_share(LG)
    if len(SHARE):
        display(plots.publish(underload_http.fig_http_share(SHARE), "http_share", FIG))
    HTTP = underload_http.http_table(LG)
    if len(HTTP):
        display(Markdown("**The HTTP floor:** the no-op model behind FastAPI/uvicorn per payload and worker count, "
                         "LoadGen's client beside wrk's."))
        display(layout.table(underload_http.http_reader_table(LG)))
    display(layout.details("Concurrency strategies and dynamic batching", underload.strategy_table(LG),
                           underload.batching_table(LG)))
    LG_META = R.meta.get("loadgen", {})
    display(Markdown("**Method and deviations from MLPerf.** " + str(LG_META.get("method", "not recorded")) + " "
                     + str(LG_META.get("client_and_server", ""))))

# %% [markdown]
# ## Pipeline: from PNG to label

# %%
display(Markdown(sections.pipeline_text(R)))
if len(R.pipeline):
    display(plots.publish(plots_more.fig_pipeline(R.pipeline, SMALL, machine=M), "pipeline", FIG))
    PT = sectiontables.pipeline_table(R)
    display(layout.details("Stage times, every path", sectiontables.pipeline_finding(R, PT), PT))

# %% [markdown]
# ## Where the time goes: the per-call decomposition

# %%
display(Markdown(sections.breakdown_text(R)))
if len(R.breakdown):
    display(plots.publish(plots_more.fig_breakdown(R.breakdown, SMALL, machine=M), "breakdown", FIG))
display(layout.details("The largest bucket of each decomposition", sections.breakdown_table(R)))

# %% [markdown]
# ## Ceilings

# %%
display(Markdown(peak.text(R)))
display(Markdown(optional.blas_text(R)))
if len(R.sweep):
    display(plots.publish(roofline.fig_roofline(R.bench, R.mine("ceilings") if len(R.mine("ceilings")) else None,
                                                optional.ceilings(R)["summary"] or None, machine=M),
                          "roofline", FIG))
display(layout.table(peak.table(R)))
pk = R.mine("peak")
pk = pk[~pk["backend"].map(roofline.is_reduced_precision)] if len(pk) else pk  # int8/fp16: not bounded by it
if len(pk):
    display(layout.details("Share of the float32 ceiling reached by the float32 paths on "
                           + " and ".join(pk.drop_duplicates("model")["model"]),
                           analysis.pivot(pk, "peak_share", backends=plots.order_backends(pk["backend"])).map(prose.fmt_pct)))

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
    display(plots.publish(_fig, "spread", FIG, alt=_alt))
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
    display(plots.publish(_fig, "versions", FIG, alt=_alt))
    display(layout.details("Median latency per release (µs; oneDNN on, the Keras each release installs)",
                           vreport.table(VERSIONS)))

# %% [markdown]
# ## The original claims, checked
#
# Each testable claim of the article that prompted the question, in our own words, with a verdict computed from this run by the thresholds in `overhead.report.claims`.

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
display(Markdown(prose.parity_text(R)))
display(layout.details("Failed or skipped combinations, and parity per path", prose.failed_paths_text(R),
                       tables.status_view(R), R.mine("problems") if len(R.problems) else None))

# %% [markdown]
# ### Key numbers per path

# %%
display(layout.details("Key numbers per path", tables.key_numbers_finding(R), tables.key_numbers(R)))

# %% [markdown]
# ### Distortion check

# %%
display(Markdown(optional.distortion_text(R)))
if len(R.mine("distortion")):
    display(layout.details("Distortion measurements", sectiontables.distortion_finding(R), sectiontables.distortion_table(R)))

# %% [markdown]
# ### Raw tables

# %%
display(Markdown(sectiontables.raw_links(DATA / "results", config.REPORTS)))

# %% [markdown]
# ### The code of each path
#
# As the sweep recorded it with the results (`timed_code` in bench.meta.json), so it is the code that was timed;
# a run from before source recording shows the catalogue's user code instead, and says so.

# %%
display(layout.details("The timed code of every path",
                       advice.code_appendix(plots.order_backends(R.sweep["backend"]) if len(R.sweep) else [],
                                            (R.meta.get("bench") or {}).get("timed_code"))))
