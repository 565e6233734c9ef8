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
# # 04 — The whole pipeline, and where a call's time goes
#
# *This file is the notebook's source (jupytext percent format; `make lab` opens it as a notebook). The executed copy with outputs is `build/full/executed/04_pipeline.ipynb` after `make report` (`build/quick/executed/` with `QUICK=1`).*
#
# **Pipeline.** The task end to end: one image as PNG bytes → decode → resize / normalise → inference → argmax and top probability, for every backend, on real MNIST test digits, each stage timed per call (median over many single-image calls, backends interleaved in rounds). Pre- and post-processing are written the way a user of the backend would: Pillow + NumPy for NumPy / LiteRT / ONNX Runtime, `tf.io.decode_png` + `tf.image.resize` eager ops for the Keras / TF paths (their tensor is fed to the model directly). The ladder models end in a softmax, so post-processing is argmax + top probability (no second softmax). For the ResNet input sizes the digit is upscaled once, offline, to the model's size and stored as an RGB PNG, so decoding costs what an image of that size costs.
#
# **Decomposition.** Not *that* `keras.predict` is slow at batch 1, but *where* its time goes (method below the results).

# %%
# %load_ext autoreload
# %autoreload 2

# %% tags=["parameters"]
study = {}               # the study design: params/full.yaml (make; quick.yaml with QUICK=1); {} -> the defaults
data_dir = None          # None -> overhead.base.config.data_dir()
machine = None           # None -> envinfo.machine_id()
extra_models = []        # paths of your own .keras models (make MODEL=...)

# %%
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow's C++ info logs, before it is imported
import pandas as pd
from IPython.display import Markdown, display

from overhead import backends as registry
from overhead.base.settings import Settings, cores
from overhead.experiments import breakdown, breakdown_buckets, pipeline
from overhead.report import stages, stagetext

S = Settings.from_dict(study, data_dir=data_dir, machine=machine, extra_models=extra_models)
P = S.pipeline           # this stage's settings: models, backends, calls, budgets, the breakdown's models
threads = int(P.threads or cores())
registry.set_threads(threads)  # before TensorFlow starts
import tensorflow as tf  # noqa: E402,F401  (imported here so TF starts after the thread setting)

registry.set_threads(threads)  # and TF's own pools, before its first op
breakdown_backends = list(P.breakdown_backends or breakdown.DEFAULT_BACKENDS)
models = stages.present(list(P.models), S.data_dir)          # missing models are named and skipped
breakdown_models = stages.present(list(P.breakdown_models), S.data_dir)
extra_models = stages.present(list(S.extra_models), S.data_dir) if S.extra_models else []
pd.set_option('display.width', 200)

# %% [markdown]
# ## From PNG bytes to a label

# %%
prow, pstatus = pipeline.run(models, P.backends, calls=P.calls, budget_s=P.budget_s, threads=threads,
                             extra_models=extra_models, data_dir=S.data_dir, machine=S.machine)
# label accuracy means nothing for seeded-init weights, so say which models have them
pstatus['weights'] = pstatus['model'].map(lambda m: stages.weights(m, S.data_dir))
pstatus

# %%
us, share, table = stages.pipeline_pivots(prow, pipeline.STAGES)
table

# %%
display(Markdown(stagetext.pipeline(us, share)))

# %%
from overhead.report import plots
from overhead.report.analysis import pipeline_table

ptab = pipeline_table(prow)
for model in ptab['model'].unique():
    plots.fig_pipeline(ptab, model=model)

# %% [markdown]
# ## Where a batch-1 call's time goes

# %%
brow, bsummary, btop = breakdown.run(breakdown_models, breakdown_backends, threads=threads,
                                     budget_s=P.breakdown_budget_s, data_dir=S.data_dir, machine=S.machine)
bsummary.round(2)

# %%
pivot = stages.breakdown_pivot(brow, breakdown_buckets.BUCKETS)
pivot.round(1)

# %%
display(Markdown(stagetext.breakdown(bsummary, pivot)))

# %%
from overhead.report.analysis import breakdown_table

btab = breakdown_table(brow)
for model in btab['model'].unique() if len(btab) else []:
    plots.fig_breakdown(btab, model=model)

# %% [markdown]
# ### Method
#
# 1. **Sampling**: the call runs many times while a periodic `SIGALRM` (every 3.1 ms, wall clock) interrupts it; the handler records the main thread's whole Python stack. Each timer expiration is a sample worth one interval, and expirations that queued while the thread was inside a long C call (a TF op, a tf.data iterator being built) all count for that call site. The handler's own time is taken out of the calls, and so is the slowdown a sample causes its call (signal delivery; measured as the difference between the median sampled and unsampled call). cProfile is not used for the times: its per-call hooks, and Python 3.11's de-specialised bytecode while any profiler is set, slow the Python parts of these calls down by more than a calibration on synthetic calls predicts (corrected cProfile sums missed the median by 30-250 % while this method was developed); the sampler's cost is measured in the run itself. cProfile only counts the Python calls per inference (`cprofile_us` is the call's time under it).
# 2. **Buckets** come from each sample's stack, outermost frame first, by module-path / function-name rules (`overhead.experiments.breakdown_buckets.RULES`): Keras' data adapters and `tf.data` → *data adapter & tf.data*; `tf.function` tracing (`_create_concrete_function`, `func_graph`, autograph, tf.data's function wrapper) → *tracing & graph building*; Keras callbacks → *callbacks*; `polymorphic_function` and `core/function` → *tf.function call & arguments*; the rest of Keras → *Keras Python*; TF's Python op wrappers and `execute.py` → *eager op dispatch (Python)*; `convert_to_tensor`, `constant_op`, `.numpy()` → *tensor↔NumPy conversion*. The innermost frame a rule names decides (stdlib, `nest`, `tensor_shape`, … take the bucket of their caller); tracing and callbacks absorb everything they call. A sample sitting on a `TFE_Py_Execute` / `TFE_Py_FastPathExecute` line is in *TF C++ runtime*, unless it runs a tf.data op (then it is tf.data's work).
# 3. **Kernels**: for graph paths the TensorFlow profiler's host events of the op kernels (per op, median duration × count per call) are moved out of *TF C++ runtime*. Eager ops have no separate kernel events, so `keras.call` keeps *TF C++ runtime + kernels* as one bucket.
# 4. **Check**: plain rounds (no sampling) alternate with the sampled ones, so the measured median comes from the same minutes. Calls slower than 2× the median (preempted) are left out of both. The buckets' sum is compared with the median (the 10 % target) and with the mean of the plain calls; nothing rescales the buckets to either.
#
# The functions holding most of each bucket's samples (innermost frame):

# %%
btop.round(1).groupby(['model', 'backend', 'bucket'], sort=False).head(3) if len(btop) else print('no decomposition')
