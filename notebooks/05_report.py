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
# Parameters (papermill): full-size defaults
data_dir = None        # None -> overhead.config.data_dir() ($OVERHEAD_DATA or <repo>/data)
figures_dir = None     # None -> overhead.config.FIGURES
machine = None         # None -> all machines; figures for this machine (envinfo.machine_id()) if present
quick = False          # fewer bootstrap resamples
extra_models = []      # paths of your own .keras models (make MODEL)

# %% [markdown]
# # Is TensorFlow slower than NumPy on a CPU, and when does it stop mattering?
#
# The report of the study. Every number in the text and tables below is computed from the result files of this run; the code that computes them is in the `overhead` package (`analysis`, `claims`, `reporttext`, `plots`).

# %%
# %matplotlib inline
import warnings
warnings.filterwarnings("ignore")
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from overhead import analysis, claims, config, plots
from overhead import reporttext as T

DATA = config.data_dir(data_dir)
FIG = Path(figures_dir) if figures_dir else config.FIGURES
N_BOOT = 50 if quick else 400
pd.set_option("display.max_columns", 40)
pd.set_option("display.precision", 3)

try:  # the machine this notebook runs on, preferred for the figures when it has results
    from overhead import envinfo
    HERE = envinfo.machine_id()
except Exception:
    HERE = None

results = analysis.load_results(DATA / "results")
models = analysis.load_models_meta(DATA / "models")
R = analysis.analyse(results, machine=machine, n_boot=N_BOOT, seed=0, preferred_machine=HERE)
M = R["machine"]
SMALL = T.small_model(R)
EXTRA = [Path(p).stem for p in extra_models]
MISSING = [k for k in ("bench", "gemm", "startup", "pipeline", "breakdown") if results.get(k) is None]

# %% [markdown]
# ## TL;DR

# %%
display(Markdown(T.tldr(R)))
display(T.tldr_table(R))
if EXTRA:
    display(Markdown(T.extra_models_text(R, EXTRA)))

# %%
# the TL;DR also goes to the README (make report copies figures/findings.md into it)
FIG.mkdir(parents=True, exist_ok=True)
_ = (FIG / "findings.md").write_text(
    T.tldr(R) + "\n\n![Latency per call against FLOPs per call, one line per backend](figures/overhead_vs_compute.png)\n\n"
    "The whole report: [reports/report.html](reports/report.html) (self-contained; download and open it).\n")

# %% [markdown]
# ## Method
#
# Each model of the ladder is built in Keras, trained (or seeded), converted once per inference path and checked against the Keras output before it is timed. Every path returns a NumPy array, so each pays its own conversions. Thread counts are set per process before TensorFlow starts.

# %%
display(Markdown(T.method(R, results, N_BOOT)))
display(T.meta_table(results, M))

# %% [markdown]
# ## Parity: does every path compute the same answer?
#
# Only combinations with status *ok* enter the fits and ratios; the others are listed here with the reason.

# %%
display(Markdown(T.parity_text(R)))
display(T.status_view(R))
if len(R["problems"]):
    display(R["problems"])

# %% [markdown]
# ## Overhead versus compute
#
# Latency per call at batch size one against the work per call, on log-log axes. For each backend the line is the robust fit *latency = overhead + FLOPs / throughput*: the flat part on the left is the fixed per-call overhead (the framework tax), the slope on the right the effective throughput. The dashed line is the time the machine's float32 matrix-multiply peak, measured in the same run, would need for the same FLOPs: no backend can run below it.

# %%
if len(R["sweep"]):
    peak = R["fits"].loc[R["fits"]["machine"] == M, "peak_gflops"].max() if "peak_gflops" in R["fits"] else None
    display(plots.publish(plots.fig_overhead_vs_compute(R["sweep"], R["fits"], peak, machine=M),
                          "overhead_vs_compute", FIG))
display(Markdown(T.overhead_text(R)))
display(T.fit_table(R))

# %% [markdown]
# ### Overhead share
#
# The fraction of each call that is fixed overhead, from the fits (lines) and as fitted overhead over measured latency (points). Where a line crosses the dotted levels, the overhead stops dominating and then stops mattering.

# %%
if len(R["fits"]):
    display(plots.publish(plots.fig_overhead_share(R["sweep"], R["fits"], machine=M), "overhead_share", FIG))
pk = R["peak"]
if len(pk):
    display(Markdown("Share of the machine's GEMM peak reached on the largest models:"))
    display(analysis.pivot(pk, "peak_share", backends=plots.order_backends(pk["backend"]), machine=M)
            .map(T.fmt_pct))
else:
    display(Markdown(T.not_measured("GEMM peak (gemm.csv)")))

# %% [markdown]
# ### Speed-up tables
#
# Latency relative to the NumPy engine (above one: slower than NumPy), and speed-up over `keras.predict` (above one: faster than `keras.predict`), at batch size one.

# %%
if len(R["vs_numpy"]):
    vs = R["vs_numpy"]
    display(plots.publish(plots.fig_slowdown(analysis.pivot(vs, "slowdown", plots.order_backends(vs["backend"]), M)),
                          "slowdown_vs_numpy", FIG))
    display(Markdown("**Times slower than the NumPy engine**"))
    display(T.ratio_table(R, "vs_numpy", "slowdown"))
if len(R["vs_predict"]):
    display(Markdown("**Times faster than `keras.predict`**"))
    display(T.ratio_table(R, "vs_predict", "speedup"))

# %% [markdown]
# ## Batch size
#
# Latency per call and throughput against the batch size: a fixed cost per call is shared by more samples as the batch grows.

# %%
if len(R["batch"]) and R["batch"]["batch"].nunique() > 1:
    display(plots.publish(plots.fig_batch(R["batch"], T.batch_models(R), machine=M), "batch_size", FIG))
display(Markdown(T.batch_text(R)))

# %% [markdown]
# ## Threads
#
# Latency with the fewest threads divided by latency with all cores, at batch size one.

# %%
if len(R["scaling"]):
    display(plots.publish(plots.fig_threads(R["scaling"], machine=M), "threads", FIG))
display(Markdown(T.threads_text(R)))

# %% [markdown]
# ### Do runs and machines agree?
#
# Each machine's batch-one latencies are paired with those of the machine shown above, after dividing out the overall speed difference; a pair disagrees when it is off by more than the tolerance and the confidence intervals do not overlap.

# %%
display(Markdown(T.agreement_text(R)))
for other, a in R["agreement"].items():
    bad = a["table"][~a["table"]["agree"]]
    if len(bad):
        display(bad[["model", "backend", "median_us_a", "median_us_b", "rel_ratio"]])

# %% [markdown]
# ## Cold start and memory
#
# Each repetition is a fresh process: import, conversion (where the path needs one), model load and the first call, then resident memory.

# %%
if len(R["startup"]):
    display(plots.publish(plots.fig_cold_start(R["startup"], SMALL, machine=M), "cold_start", FIG))
display(Markdown(T.startup_text(R)))
if len(R["startup"]):
    display(R["startup"][R["startup"]["machine"] == M].drop(columns="machine").set_index(["model", "backend"]))

# %% [markdown]
# ## Pipeline: from PNG to label
#
# A whole request: decode the image, preprocess it, run inference, post-process the scores into a label.

# %%
if len(R["pipeline"]):
    display(plots.publish(plots.fig_pipeline(R["pipeline"], SMALL, machine=M), "pipeline", FIG))
display(Markdown(T.pipeline_text(R)))
if len(R["pipeline"]):
    display(R["pipeline"][R["pipeline"]["machine"] == M].drop(columns="machine").set_index(["model", "backend"]))

# %% [markdown]
# ## Where the time goes: the per-call decomposition
#
# One call split into buckets; the total at the right of each bar is the decomposed time per call.

# %%
if len(R["breakdown"]):
    display(plots.publish(plots.fig_breakdown(R["breakdown"], SMALL, machine=M), "breakdown", FIG))
display(Markdown(T.breakdown_text(R)))

# %% [markdown]
# ## The original claims, checked
#
# The question came from an article (`../shared/seed-article.md`). Below, each of its testable claims is restated in our own words, with a verdict computed from this run's data by the thresholds in `overhead.claims`, the numbers behind it, and where in this report the evidence is.

# %%
display(Markdown(claims.claims_markdown(claims.claims(R))))

# %% [markdown]
# ## Limitations

# %%
display(Markdown(T.limitations(R, results, models, MISSING)))
