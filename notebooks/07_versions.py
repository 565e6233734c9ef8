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
# # 07 — Across TensorFlow releases 2.12 … 2.21
#
# *This file is the notebook's source (jupytext percent format; `make lab` opens it as a notebook). The executed copy with outputs is `build/full/executed/07_versions.ipynb` after `make report` (`build/quick/executed/` with `QUICK=1`).*
#
# Has the per-call overhead grown from one release to the next? Every `tensorflow-cpu` release from 2.12 to 2.21 has a Python 3.11 wheel; this stage builds one environment per minor release (latest patch, with uv, into the git-ignored `data/envs/`, reused once built), rebuilds the same models inside each from the NumPy engine's `.npz` (version-neutral weights: Keras files and SavedModels do not travel between releases), checks every path's outputs against the NumPy engine's logits with the study's parity rule, and times every path at batch 1 on one thread in fresh processes. From 2.16, Keras 3 is what `tf.keras` gives and Keras 2 is `tf_keras` (`TF_USE_LEGACY_KERAS=1`): both are measured. oneDNN is switched off (`TF_ENABLE_ONEDNN_OPTS=0`) for `tf.function` as well. A release that does not install or import is a row with its reason; a stopped run resumes from `versions.runs.jsonl`.
#
# QUICK (`make report QUICK=1`) and the tests measure the current environment as the only release, on one model: nothing is downloaded.

# %%
# %load_ext autoreload
# %autoreload 2

# %% tags=["parameters"]
study = {}                     # the study design: params/full.yaml (make; quick.yaml with QUICK=1); {} -> the defaults
data_dir = None                # None -> overhead.base.config.data_dir()
machine = None                 # None -> envinfo.machine_id()
extra_models = []              # paths of your own .keras models (make MODEL=...)

# %%
import os
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
import pandas as pd
from IPython.display import Markdown, display
from overhead.base.settings import Settings
from overhead.experiments import versions, versions_env
from overhead.report import stages
from overhead.report import versions as vreport

S = Settings.from_dict(study, data_dir=data_dir, machine=machine, extra_models=extra_models)
V, quick = S.versions, S.quick   # this stage's settings; quick: the current environment only, no download
models = stages.present(list(V.models), S.data_dir)   # missing models are named and skipped
pd.set_option('display.width', 200)

# %% [markdown]
# ## The environments

# %%
if quick:   # the Keras the release installs (3), to keep QUICK short; the full run adds tf_keras from 2.16
    REL = [versions.study_release()]
    REL[0].kerases = REL[0].kerases[:1]
else:
    REL = [versions.built_release(m, versions_env.envs_dir(S.data_dir)) for m in (V.releases or versions_env.RELEASES)]
display(pd.DataFrame([{'release': r.label, 'env': r.env, 'tensorflow': r.info.get('tensorflow', ''),
                       'keras': ', '.join(r.kerases), 'install_s': r.info.get('install_s'),
                       'GB': (r.info.get('bytes') or 0) / 1e9, 'reason': r.reason} for r in REL]))
if not quick:   # every file once: uv hard-links the environments' files from its cache beside them
    print(f"data/envs/ holds {versions_env.dir_bytes(versions_env.envs_dir(S.data_dir)) / 1e9:.3g} GB")

# %% [markdown]
# ## The runs

# %%
df = versions.run(REL, models, runs=V.runs, paths=V.paths or versions.PATHS,
                  onednn_off_paths=versions.ONEDNN_OFF_PATHS if V.onednn_off_paths is None else V.onednn_off_paths,
                  onednn_off_models=versions.ONEDNN_OFF_MODELS if V.onednn_off_models is None else V.onednn_off_models,
                  budget_s=V.budget_s, rss_calls=V.rss_calls, data_dir=S.data_dir, machine=S.machine)
display(df[['release', 'keras', 'model', 'path', 'onednn', 'status', 'parity', 'median_us', 'ci_lo_us', 'ci_hi_us',
            'first_call_s', 'rss_1_mb', 'rss_n_mb', 'reason']])

# %% [markdown]
# ## What changed

# %%
display(Markdown(vreport.finding(df)))
display(vreport.table(df))
