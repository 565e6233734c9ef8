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
# # 01 — Train the model ladder
#
# *This file is the notebook's source (jupytext percent format; `make lab` opens it as a notebook). The executed copy with outputs is `build/full/executed/01_train.ipynb` after `make report` (`build/quick/executed/` with `QUICK=1`).*
#
# Builds every model of `overhead.ladder.models.LADDER`, trains it on real MNIST digits (brought to the model's input shape) and saves `data/models/<name>.keras` + `<name>.json`. Every model is trained, so that its outputs are decisive and the parity check that follows can fail: the large ResNets see as many digits as `train_flops_budget` affords (at least `min_train_samples`), followed by a BatchNorm recalibration; each model's json records its held-out accuracy, how decisive its outputs are, how many digits it saw and how long it took. (`max_train_flops`, off by default, keeps the seeded initialisation above a size; quick runs use it.)

# %%
# %load_ext autoreload
# %autoreload 2

# %% tags=["parameters"]
study = {}               # the study design: params/full.yaml (make; quick.yaml with QUICK=1); {} -> the defaults
data_dir = None          # None -> overhead.base.config.data_dir()
extra_models = []        # user models are used as given, never trained here

# %%
import pandas as pd
from tqdm.auto import tqdm

from overhead.base import config, data
from overhead.base.settings import Settings
from overhead.ladder import models as zoo
from overhead.ladder import train
from overhead.report import stages

S = Settings.from_dict(study, data_dir=data_dir, extra_models=extra_models)
T = S.train              # this stage's settings: models, epochs, training budgets
names = list(T.models or zoo.LADDER)
splits = data.load_mnist(data_dir)
print(f'MNIST source: {splits.source}; train {splits.x_train.shape}, test {splits.x_test.shape}')
print(f'models go to {config.models_dir(data_dir)}')

# %%
rows = []
for name in tqdm(names, desc='train'):
    n_epochs = T.resnet_epochs if name.startswith('resnet') else T.epochs
    rows.append(train.train_one(name, splits, epochs=n_epochs, batch_size=T.batch_size, seed=T.seed,
                                max_train_flops=T.max_train_flops, max_train_samples=T.max_train_samples,
                                augment_max_flops=T.augment_max_flops, train_flops_budget=T.train_flops_budget,
                                min_train_samples=T.min_train_samples, data_dir=data_dir))
columns = ['name', 'params', 'flops', 'input_shape', 'weights', 'epochs', 'train_samples', 'augmentation',
           'accuracy', 'decisive_share', 'median_logit_margin', 'train_s', 'eval_s', 'training_note', 'data_source']
table = pd.DataFrame(rows).reindex(columns=columns)
table

# %% [markdown]
# The FLOPs axis the benchmark spans (decades between the smallest and largest model):

# %%
print(stages.flops_span(table.flops))
