"""Writes notebooks/01_train.ipynb (kept as code so the notebook's cells are reviewable in diffs)."""
import nbformat as nbf

cells = [
    nbf.v4.new_markdown_cell(
        "# 01 — Train the model ladder\n\n"
        "Builds every model of `overhead.models.LADDER`, trains it on real MNIST digits (brought to the "
        "model's input shape) and saves `data/models/<name>.keras` + `<name>.json`. Models whose forward pass "
        "costs more than `max_train_flops` keep their seeded initialisation: timing does not depend on the "
        "weights' values, and the metadata and the report say which models these are."),
    nbf.v4.new_code_cell("%load_ext autoreload\n%autoreload 2"),
    nbf.v4.new_code_cell(
        "# parameters\n"
        "models = None            # None -> the whole ladder\n"
        "epochs = 6               # epochs for the MNIST-sized plain models\n"
        "resnet_epochs = 3        # epochs for the ResNets that are trained\n"
        "batch_size = 64\n"
        "seed = 0\n"
        "max_train_flops = 3e8    # forward FLOPs per image above which a model keeps its seeded init\n"
        "max_train_samples = 10000\n"
        "augment_max_flops = 2e6  # models up to this size also see one-pixel shifts of the digits (9x data)\n"
        "quick = False\n"
        "data_dir = None\n"
        "extra_models = []        # user models are used as given, never trained here",
        metadata={"tags": ["parameters"]}),
    nbf.v4.new_code_cell(
        "import pandas as pd\n"
        "from tqdm.auto import tqdm\n"
        "from overhead import config, data, models as zoo, train\n\n"
        "if quick:\n"
        "    models = models or ['logreg', 'mlp_tiny', 'cnn_seed']\n"
        "    epochs, resnet_epochs = min(epochs, 2), min(resnet_epochs, 1)\n"
        "names = list(models or zoo.LADDER)\n"
        "splits = data.load_mnist(data_dir)\n"
        "print(f'MNIST source: {splits.source}; train {splits.x_train.shape}, test {splits.x_test.shape}')\n"
        "print(f'models go to {config.models_dir(data_dir)}')"),
    nbf.v4.new_code_cell(
        "rows = []\n"
        "for name in tqdm(names, desc='train'):\n"
        "    n_epochs = resnet_epochs if name.startswith('resnet') else epochs\n"
        "    rows.append(train.train_one(name, splits, epochs=n_epochs, batch_size=batch_size, seed=seed,\n"
        "                                max_train_flops=max_train_flops, max_train_samples=max_train_samples,\n"
        "                                augment_max_flops=augment_max_flops,\n"
        "                                data_dir=data_dir))\n"
        "table = pd.DataFrame(rows)[['name', 'params', 'flops', 'input_shape', 'weights', 'epochs',\n"
        "                           'augmentation',\n"
        "                           'accuracy', 'train_s', 'data_source']]\n"
        "table"),
    nbf.v4.new_markdown_cell("The FLOPs axis the benchmark spans (decades between the smallest and largest model):"),
    nbf.v4.new_code_cell(
        "import numpy as np\n"
        "print(f\"{np.log10(table.flops.max() / table.flops.min()):.2f} decades of FLOPs, \"\n"
        "      f\"{table.flops.min():.3g} to {table.flops.max():.3g}\")"),
]
nb = nbf.v4.new_notebook(cells=cells, metadata={
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"}})
nbf.write(nb, "notebooks/01_train.ipynb")
