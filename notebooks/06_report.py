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
# Every number in the text, tables and figures below is computed from this run's result files by the `overhead.report` package; measured numbers are called *measured*, numbers from a fitted latency model *fitted*. The executed copy of this notebook, with its outputs, lands in `build/full/executed/` after `make report`.

# %%
# %matplotlib inline
import warnings
warnings.filterwarnings("ignore")
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from overhead import config
from overhead.report import (advice, analysis, claims, loading, method, optional, plots, plots_more, prose,
                             roofline, sections, tables, whopays)

DATA = config.data_dir(data_dir)
FIG = Path(figures_dir) if figures_dir else config.FIGURES
N_BOOT = 50 if quick else 400
pd.set_option("display.max_columns", 40)
pd.set_option("display.precision", 3)
pd.set_option("display.max_colwidth", None)

try:  # the machine this notebook runs on, preferred for the figures when it has results
    from overhead import envinfo
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

# %% [markdown]
# ## TL;DR

# %%
display(Markdown(prose.tldr(R)))
if EXTRA:  # `make report MODEL=…`: what ran on your model, what was skipped and why
    display(Markdown(prose.extra_models_text(R, EXTRA)))
    display(tables.user_model_outcomes(results.get("bench"), EXTRA, machine=M))
if len(R.sweep):
    peak = R.fits.loc[R.fits["machine"] == M, "peak_gflops"].max() if "peak_gflops" in R.fits else None
    display(plots.publish(plots.fig_overhead_vs_compute(R.sweep, R.fits, peak, machine=M), "overhead_vs_compute", FIG))

# %%
# the TL;DR and the first advice lines also go to the README (make report copies figures/findings.md into it)
FIG.mkdir(parents=True, exist_ok=True)
_ = (FIG / "findings.md").write_text(
    prose.tldr(R) + "\n\n**What should you do?**\n\n" + advice.summary(ADVICE) + "\n\n"
    "![Latency per call against FLOPs per call, one panel per backend family](figures/overhead_vs_compute.png)\n\n"
    "The whole report: [reports/report.html](reports/report.html) (self-contained; download and open it).\n")

# %% [markdown]
# ## What should you do?
#
# For each situation: the fastest path that passed the parity check in this run, its start-up and memory, the runner-up, the least-overhead path that keeps you in TensorFlow or Keras, and the change from `model.predict(x)` that gets you there. The code each path runs is in the appendix, taken from the package's source.

# %%
display(Markdown(advice.advice_markdown(ADVICE)))
display(Markdown(advice.flops_note(R)))

# %% [markdown]
# ## Who pays for predict?
#
# A walk from the NumPy engine through Keras on NumPy, JAX and TensorFlow, Keras two (`tf_keras`), a bare `tf.function`, a TF1 session and `jax.jit`: each step adds or removes one layer of the stack, so the difference between neighbours is what that layer costs.

# %%
WALK = whopays.walk(R)
if len(WALK) >= 2:
    display(plots.publish(plots_more.fig_who_pays(WALK), "who_pays", FIG))
display(Markdown(whopays.text(R)))

# %% [markdown]
# ## Overhead versus compute: the latency model
#
# Each backend's latency is modelled from its measured batch-one medians over the ladder of models, either as a fixed overhead plus FLOPs over a throughput, or with an extra cost per layer where the data need it. The figure above shows the measured points and the fitted lines; the residual figure shows how far each fitted value is from each measured one.

# %%
display(Markdown(prose.overhead_text(R)))
display(tables.fit_table(R))
if len(R.resid):
    display(plots.publish(plots_more.fig_residuals(R.resid, machine=M), "residuals", FIG))

# %% [markdown]
# ### Overhead share
#
# The fitted fixed cost of a call divided by its measured latency. Where a family's lines cross the dotted levels, the overhead stops dominating and then stops mattering; crossovers are reported only inside the measured range.

# %%
if len(R.fits):
    display(plots.publish(plots.fig_overhead_share(R.sweep, R.fits, machine=M), "overhead_share", FIG))
pk = R.mine("peak")
if len(pk):
    display(Markdown("Share of the float32 GEMM rate measured in the same run, reached on the largest models:"))
    display(analysis.pivot(pk, "peak_share", backends=plots.order_backends(pk["backend"])).map(prose.fmt_pct))
else:
    display(Markdown(prose.not_measured("GEMM rate (gemm.csv)")))

# %% [markdown]
# ### Speed-up tables
#
# Measured latency relative to the NumPy engine (above one: slower than NumPy), and speed-up over `keras.predict` (above one: faster than `keras.predict`), at batch size one.

# %%
if len(R.vs_numpy):
    vs = R.mine("vs_numpy")
    display(plots.publish(plots.fig_slowdown(analysis.pivot(vs, "slowdown", plots.order_backends(vs["backend"]))),
                          "slowdown_vs_numpy", FIG))
    display(Markdown("**Times slower than the NumPy engine**"))
    display(tables.ratio_table(R, "vs_numpy", "slowdown"))
if len(R.vs_predict):
    display(Markdown("**Times faster than `keras.predict`**"))
    display(tables.ratio_table(R, "vs_predict", "speedup"))

# %% [markdown]
# ## Batch size
#
# Throughput against the batch size, one row per backend family: a fixed cost per call is shared by more samples as the batch grows.

# %%
if len(R.batch) and R.batch["batch"].nunique() > 1:
    display(plots.publish(plots.fig_batch(R.batch, tables.batch_models(R), machine=M), "batch_size", FIG))
display(Markdown(sections.batch_text(R)))

# %% [markdown]
# ## Threads
#
# Latency with the fewest threads divided by latency with all cores, at batch size one.

# %%
if len(R.scaling):
    display(plots.publish(plots.fig_threads(R.scaling, machine=M), "threads", FIG))
display(Markdown(sections.threads_text(R)))

# %% [markdown]
# ### Sparse traffic: calls after an idle gap
#
# Back-to-back calls keep thread pools awake and caches warm; a server answering sparse requests does not. Batch-one latency after an idle gap, relative to back-to-back calls.

# %%
if len(R.mine("idle_gap")):
    display(plots.publish(plots_more.fig_idle_gap(R.mine("idle_gap")), "idle_gap", FIG))
display(Markdown(optional.idle_gap_text(R)))

# %% [markdown]
# ### Do runs and machines agree?
#
# Each machine's batch-one latencies are paired with those of the machine shown above, after dividing out the overall speed difference; a pair disagrees when it is off by more than the tolerance and the intervals do not overlap.

# %%
display(Markdown(sections.agreement_text(R)))
for other, a in R.agreement.items():
    bad = a["table"][~a["table"]["agree"]]
    if len(bad):
        display(bad[["model", "backend", "median_us_a", "median_us_b", "rel_ratio"]])

# %% [markdown]
# ## Cold start and memory
#
# Each repetition is a fresh process: import, conversion (where the path needs one), model load and the first call, then resident memory.

# %%
SMALL = prose.small_model(R)
if len(R.startup):
    display(plots.publish(plots_more.fig_cold_start(R.startup, SMALL, machine=M), "cold_start", FIG))
display(Markdown(sections.startup_text(R)))
if len(R.startup):
    display(R.mine("startup").drop(columns="machine").set_index(["model", "backend"]))

# %% [markdown]
# ### Memory in a loop

# %%
if len(R.mine("memory_loop")):
    display(plots.publish(plots_more.fig_memory_loop(R.mine("memory_loop")), "memory_loop", FIG))
display(Markdown(optional.memory_loop_text(R)))

# %% [markdown]
# ## Pipeline: from PNG to label
#
# A whole request: decode the image, preprocess it, run inference, post-process the scores into a label.

# %%
if len(R.pipeline):
    display(plots.publish(plots_more.fig_pipeline(R.pipeline, SMALL, machine=M), "pipeline", FIG))
display(Markdown(sections.pipeline_text(R)))
if len(R.pipeline):
    display(R.mine("pipeline").drop(columns="machine").set_index(["model", "backend"]))

# %% [markdown]
# ## Where the time goes: the per-call decomposition
#
# One call split into buckets; the total at the right of each bar is the decomposed time per call.

# %%
if len(R.breakdown):
    display(plots.publish(plots_more.fig_breakdown(R.breakdown, SMALL, machine=M), "breakdown", FIG))
display(Markdown(sections.breakdown_text(R)))

# %% [markdown]
# ## Ceilings
#
# The CPU's theoretical float32 peak and the best measured matrix multiply across libraries; reduced-precision paths are not bounded by the float ceiling.

# %%
display(Markdown(optional.ceilings_text(R)))
if len(R.sweep):
    display(plots.publish(roofline.fig_roofline(R.bench, R.mine("ceilings") if len(R.mine("ceilings")) else None,
                                                optional.ceilings(R)["summary"] or None, machine=M),
                          "roofline", FIG))

# %% [markdown]
# ## The original claims, checked
#
# The question came from an article; each of its testable claims is restated in our own words, with a verdict computed from this run's data by the thresholds in `overhead.report.claims`, the numbers behind it, and where in this report the evidence is.

# %%
display(Markdown(f"Article: {claims.ARTICLE}"))
display(Markdown(claims.claims_markdown(claims.claims(R))))

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
display(method.meta_table(results, M))

# %% [markdown]
# ### Parity: does every path compute the same answer?
#
# Only combinations with status *ok* enter the fits and ratios; the others are listed here with the reason.

# %%
display(Markdown(prose.parity_text(R)))
display(Markdown(prose.failed_paths_text(R)))
display(tables.status_view(R))
if len(R.problems):
    display(R.mine("problems"))

# %% [markdown]
# ### Key numbers per path

# %%
display(tables.key_numbers(R))

# %% [markdown]
# ### Distortion check

# %%
display(Markdown(optional.distortion_text(R)))
if len(R.mine("distortion")):
    display(R.mine("distortion"))

# %% [markdown]
# ### The code of each path
#
# Taken from the package's source when this report was rendered, so it is the code that was timed.

# %%
display(Markdown(advice.code_appendix(plots.order_backends(R.sweep["backend"]) if len(R.sweep) else [])))
