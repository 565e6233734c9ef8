"""Model names claim no data set the model was not trained on (every ladder model learns MNIST digits), and
the committed results, written under the old names, are read under the new ones."""
from __future__ import annotations

import pandas as pd

from overhead.base import config, modelnames
from overhead.ladder import models
from overhead.report import loading

CLAIMS = ("imagenet", "cifar")


def test_no_ladder_name_claims_a_data_set():
    assert not [n for n in models.LADDER if any(c in n.lower() for c in CLAIMS)]


def test_every_old_name_maps_into_the_ladder():
    assert set(modelnames.RENAMED.values()) <= set(models.LADDER)
    assert models.model_path("resnet18_imagenet").name == "resnet18_224px.keras"


def test_rename_replaces_values_not_file_paths():
    df = pd.DataFrame({"model": ["resnet18_imagenet", "cnn_seed"], "samples_file": ["samples/resnet18_imagenet/x.npz"] * 2,
                       "description": ["ResNet-18, ImageNet form", "CNN"]})
    out = modelnames.rename(df, models.DESCRIPTIONS)
    assert list(out["model"]) == ["resnet18_224px", "cnn_seed"]
    assert list(out["samples_file"]) == list(df["samples_file"])
    assert "trained on resized MNIST" in out["description"].iloc[0] and out["description"].iloc[1] == "CNN"
    assert df["model"].iloc[0] == "resnet18_imagenet"        # the input frame is left alone


def test_committed_results_load_under_honest_names():
    root = config.data_dir(None) / "results"
    res = loading.load_results(root)
    seen = set()
    for stem in loading.RESULT_FILES:
        df = res.get(stem)
        if df is not None and "model" in df:
            seen |= set(df["model"].astype(str))
    assert seen, "no committed results to read"
    assert not [m for m in seen if any(c in m.lower() for c in CLAIMS)]
    meta = loading.models_from_results(root)
    assert not [n for n in meta["name"] if any(c in n.lower() for c in CLAIMS)]
    assert not meta["description"].str.contains("ImageNet form|CIFAR form").any()
