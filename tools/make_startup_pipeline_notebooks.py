"""Writes notebooks/03_startup.ipynb and notebooks/04_pipeline.ipynb (kept as code so the cells are reviewable)."""
import nbformat as nbf

META = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}}
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell


def params(text):
    return code(text, metadata={"tags": ["parameters"]})


MODELS_PRESENT = (
    "from pathlib import Path\n"
    "def present(names):\n"
    "    '''Ladder names whose .keras exists (and user model paths); missing ones are reported, not run.'''\n"
    "    keep = []\n"
    "    for m in names:\n"
    "        p = Path(m) if str(m).endswith('.keras') else config.models_dir(data_dir) / f'{m}.keras'\n"
    "        (keep.append(m) if p.exists() else print(f'skipped: {m} (no {p})'))\n"
    "    if not keep:\n"
    "        raise SystemExit('none of the requested models exists: run notebooks/01_train.ipynb first')\n"
    "    return keep\n")

startup_cells = [
    md("# 03 — Cold start and memory\n\n"
       "What a user pays before the first prediction: every backend is started in a **fresh process** per "
       "repetition (`python -m overhead.startup child`), which measures\n\n"
       "- **import**: importing the backend's runtime (NumPy + the NumPy engine, `tensorflow` + `keras`, "
       "`ai_edge_litert`, `onnxruntime`); NumPy's own import is part of every runtime's cost;\n"
       "- **load**: building a callable from the *cached* artifact (reading the `.keras` file, tracing the "
       "`tf.function`, loading the SavedModel, building the LiteRT interpreter / ORT session, unpickling the "
       "NumPy engine's converted program) — artifacts are built beforehand, so no conversion happens here;\n"
       "- **convert**: producing that artifact from the `.keras` file, as recorded when it was built "
       "(SavedModel export, + TFLite conversion for LiteRT, ONNX export, the NumPy engine's conversion); "
       "0 for paths that run the `.keras` file itself;\n"
       "- **first call**: the first inference on one real digit (Keras builds its predict function here, "
       "XLA compiles here);\n"
       "- **start to first prediction**: wall time from just before the process was spawned (interpreter "
       "start included) to the end of the first call;\n"
       "- **steady median**: later calls in the same process, for contrast;\n"
       "- **memory**: peak resident set size (`VmHWM`, the process's own high-water mark; `ru_maxrss` would include the parent's size after fork + exec) after import, after load and after the first call.\n\n"
       "Repetitions are interleaved (each round starts every backend once, in a rotated order). Files are read "
       "once beforehand, so this is a *process*-cold start with a warm OS page cache, not a disk-cold one."),
    code("%load_ext autoreload\n%autoreload 2"),
    params("models = ['cnn_seed', 'resnet18_imagenet']\n"
           "backends = None          # None -> every registered backend\n"
           "repeats = 5              # fresh processes per model x backend\n"
           "steady_calls = 200       # calls for the steady-state median (at most ~0.5 s per child)\n"
           "threads = None           # None -> all cores\n"
           "timeout_s = 600\n"
           "quick = False\n"
           "data_dir = None\n"
           "machine = None\n"
           "extra_models = []"),
    code("import pandas as pd\n"
         "from IPython.display import Markdown, display\n"
         "from overhead import analysis, config, startup\n\n"
         "if quick:\n"
         "    repeats, steady_calls = min(repeats, 2), min(steady_calls, 20)\n"
         + MODELS_PRESENT +
         "models = present(models)\n"
         "extra_models = present(extra_models) if extra_models else []\n"
         "pd.set_option('display.width', 200)"),
    code("df = startup.run(models, backends, repeats=repeats, steady_calls=steady_calls, threads=threads,\n"
         "                 extra_models=extra_models, data_dir=data_dir, machine=machine, timeout_s=timeout_s)\n"
         "print(f\"{(df.status == 'ok').sum()} of {len(df)} cold starts ok\")"),
    md("## Median over repetitions\n\nSeconds for the phases, µs for the steady call, MB of peak resident memory."),
    code("summary = analysis.startup_summary(df)\n"
         "cols = ['model', 'backend', 'reps', 'import_s', 'convert_s', 'load_s', 'first_call_s',\n"
         "        'start_to_first_pred_s', 'steady_median_us', 'cold_over_steady', 'rss_after_import_mb',\n"
         "        'rss_after_load_mb', 'rss_after_first_call_mb']\n"
         "summary[[c for c in cols if c in summary]].round(3)"),
    code("lines = []\n"
         "for model, g in summary.groupby('model'):\n"
         "    s = g.set_index('backend')\n"
         "    fastest = s['start_to_first_pred_s'].idxmin()\n"
         "    lines.append(f'**{model}**: the quickest first prediction is {fastest} '\n"
         "                 f\"({s.loc[fastest, 'start_to_first_pred_s']:.2f} s after process start, \"\n"
         "                 f\"{s.loc[fastest, 'rss_after_first_call_mb']:.0f} MB).\")\n"
         "    for b in ('keras.predict', 'tf.function', 'litert', 'onnxruntime'):\n"
         "        if b in s.index and 'numpy' in s.index and b != fastest:\n"
         "            r = s.loc[b, 'start_to_first_pred_s'] / s.loc['numpy', 'start_to_first_pred_s']\n"
         "            lines.append(f\"- {b}: {s.loc[b, 'start_to_first_pred_s']:.2f} s ({r:.1f}x numpy's \"\n"
         "                         f\"{s.loc['numpy', 'start_to_first_pred_s']:.2f} s), of which import \"\n"
         "                         f\"{s.loc[b, 'import_s']:.2f} s, load {s.loc[b, 'load_s']:.2f} s, first call \"\n"
         "                         f\"{s.loc[b, 'first_call_s']:.3f} s; {s.loc[b, 'rss_after_first_call_mb']:.0f} MB \"\n"
         "                         f\"vs {s.loc['numpy', 'rss_after_first_call_mb']:.0f} MB; the first prediction \"\n"
         "                         f\"costs {s.loc[b, 'cold_over_steady']:,.0f} steady calls.\")\n"
         "display(Markdown('\\n'.join(lines)))"),
    md("## Spread over repetitions and failures"),
    code("ok = df[df.status == 'ok']\n"
         "ok.groupby(['model', 'backend'])['start_to_first_pred_s'].agg(['min', 'median', 'max']).round(3)"),
    code("failed = df[df.status != 'ok'][['model', 'backend', 'rep', 'status', 'reason']]\n"
         "failed if len(failed) else print('no failures')"),
    code("from overhead import plots\n"
         "for model in df['model'].unique():\n"
         "    plots.fig_cold_start(summary, model=model)"),
]

pipeline_cells = [
    md("# 04 — The whole pipeline, and where a call's time goes\n\n"
       "**Pipeline.** The task end to end: one image as PNG bytes → decode → resize / normalise → inference → "
       "argmax and top probability, for every backend, on real MNIST test digits, each stage timed per call "
       "(median over many single-image calls, backends interleaved in rounds). Pre- and post-processing are "
       "written the way a user of the backend would: Pillow + NumPy for NumPy / LiteRT / ONNX Runtime, "
       "`tf.io.decode_png` + `tf.image.resize` eager ops for the Keras / TF paths (their tensor is fed to the "
       "model directly). The ladder models end in a softmax, so post-processing is argmax + top probability "
       "(no second softmax). For the ResNet input sizes the digit is upscaled once, offline, to the model's "
       "size and stored as an RGB PNG, so decoding costs what an image of that size costs.\n\n"
       "**Decomposition.** Not *that* `keras.predict` is slow at batch 1, but *where* its time goes (method "
       "below the results)."),
    code("%load_ext autoreload\n%autoreload 2"),
    params("models = ['cnn_seed', 'resnet18_cifar', 'resnet18_imagenet']\n"
           "backends = None                # None -> every registered backend\n"
           "calls = 200                    # pipeline calls per model x backend (at most)\n"
           "budget_s = 1.5                 # ... and at most this many seconds each\n"
           "breakdown_models = ['cnn_seed', 'resnet18_imagenet']\n"
           "breakdown_backends = None      # None -> keras.predict, keras.predict_on_batch, keras.call, tf.function\n"
           "breakdown_budget_s = 4.0       # sampled seconds per model x backend\n"
           "threads = None                 # None -> all cores\n"
           "quick = False\n"
           "data_dir = None\n"
           "machine = None\n"
           "extra_models = []"),
    code("import os\n"
         "os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow's C++ info logs, before it is imported\n"
         "import pandas as pd\n"
         "from IPython.display import Markdown, display\n"
         "from overhead import backends as registry, breakdown, config, pipeline\n\n"
         "threads = int(threads or os.cpu_count())\n"
         "registry.set_threads(threads)  # before TensorFlow starts\n"
         "import tensorflow as tf  # noqa: E402\n"
         "registry.set_threads(threads)  # and TF's own pools, before its first op\n"
         "if quick:\n"
         "    calls, budget_s = min(calls, 20), min(budget_s, 0.3)\n"
         "    breakdown_budget_s = min(breakdown_budget_s, 1.0)\n"
         "breakdown_backends = list(breakdown_backends or breakdown.DEFAULT_BACKENDS)\n"
         + MODELS_PRESENT +
         "models = present(models)\n"
         "breakdown_models = present(breakdown_models)\n"
         "extra_models = present(extra_models) if extra_models else []\n"
         "pd.set_option('display.width', 200)"),
    md("## From PNG bytes to a label"),
    code("prow, pstatus = pipeline.run(models, backends, calls=calls, budget_s=budget_s, threads=threads,\n"
         "                             extra_models=extra_models, data_dir=data_dir, machine=machine)\n"
         "from overhead import models as zoo\n"
         "def weights(m):\n"
         "    try:\n"
         "        return zoo.load_meta(m if str(m).endswith('.keras') else zoo.model_path(m, data_dir)).get('weights')\n"
         "    except OSError:\n"
         "        return 'unknown'\n"
         "pstatus['weights'] = pstatus['model'].map(weights)  # label accuracy means nothing for seeded-init weights\n"
         "pstatus"),
    code("stages = list(pipeline.STAGES)\n"
         "us = prow.pivot_table(index=['model', 'backend'], columns='stage', values='median_us', sort=False)[stages]\n"
         "share = prow.pivot_table(index=['model', 'backend'], columns='stage', values='share', sort=False)[stages]\n"
         "table = us.round(1).join((100 * share).round(1), rsuffix=' %')\n"
         "table['total_us'] = us.sum(axis=1).round(1)\n"
         "table"),
    code("lines = []\n"
         "for model in us.index.get_level_values(0).unique():\n"
         "    u, s = us.loc[model], share.loc[model]\n"
         "    outside = 1 - s['inference']\n"
         "    lines.append(f'**{model}**: decode + preprocess + postprocess take {outside.min():.0%}–{outside.max():.0%} '\n"
         "                 f'of the whole call depending on the backend.')\n"
         "    for b in [b for b in ('numpy', 'keras.predict', 'tf.function', 'litert') if b in u.index]:\n"
         "        lines.append(f\"- {b}: {u.loc[b].sum():,.0f} µs in total, inference {s.loc[b, 'inference']:.0%}, \"\n"
         "                     f\"decode {u.loc[b, 'decode']:,.0f} µs, preprocess {u.loc[b, 'preprocess']:,.0f} µs, \"\n"
         "                     f\"postprocess {u.loc[b, 'postprocess']:,.1f} µs\")\n"
         "display(Markdown('\\n'.join(lines)))"),
    code("from overhead import plots\n"
         "from overhead.analysis import pipeline_table\n"
         "ptab = pipeline_table(prow)\n"
         "for model in ptab['model'].unique():\n"
         "    plots.fig_pipeline(ptab, model=model)"),
    md("## Where a batch-1 call's time goes"),
    code("brow, bsummary, btop = breakdown.run(breakdown_models, breakdown_backends, threads=threads,\n"
         "                                     budget_s=breakdown_budget_s, data_dir=data_dir, machine=machine)\n"
         "bsummary.round(2)"),
    code("pivot = brow.pivot_table(index=['model', 'backend'], columns='bucket', values='us_per_call', sort=False)\n"
         "pivot = pivot[[b for b in breakdown.BUCKETS if b in pivot.columns]]\n"
         "pivot['sum'] = pivot.sum(axis=1)\n"
         "pivot['measured median'] = brow.groupby(['model', 'backend'], sort=False)['measured_median_us'].first()\n"
         "pivot.round(1)"),
    code("lines = []\n"
         "ok = bsummary[bsummary.status == 'ok'] if len(bsummary) else bsummary\n"
         "for r in ok.itertuples():\n"
         "    p = pivot.loc[(r.model, r.backend)].drop(['sum', 'measured median']).dropna().sort_values(ascending=False)\n"
         "    top = ', '.join(f'{b} {v:,.0f} µs ({v / r.sum_us:.0%})' for b, v in p.head(3).items())\n"
         "    verdict = 'within' if r.within_10pct else '**outside**'\n"
         "    lines.append(f'- **{r.backend}** on {r.model}: median {r.measured_median_us:,.0f} µs per call; the buckets sum '\n"
         "                 f'to {r.sum_us:,.0f} µs ({r.discrepancy_pct:+.1f} %, {verdict} the 10 % target; '\n"
         "                 f'{r.discrepancy_vs_mean_pct:+.1f} % against the mean of the plain calls). Largest: {top}. '\n"
         "                 f'One call runs {r.python_calls:,.0f} Python functions and {r.builtin_calls:,.0f} builtins; '\n"
         "                 f'under cProfile it takes {r.cprofile_us / r.measured_median_us:.1f}x as long.')\n"
         "bad = ok[~ok.within_10pct] if len(ok) else ok\n"
         "if len(bad):\n"
         "    lines.append(f'\\n{len(bad)} decomposition(s) miss the 10 % target against the median. Where the sum is '\n"
         "                 'close to the *mean* of the plain calls, the gap is this machine\\'s noise (preemptions make '\n"
         "                 'the mean exceed the median, and a sample weighs the time of the call it lands in, so the '\n"
         "                 'buckets estimate a mean); elsewhere it is what the method did not account for. Read '\n"
         "                 'these rows for their shares rather than their absolute values.')\n"
         "display(Markdown('\\n'.join(lines)))"),
    code("from overhead.analysis import breakdown_table\n"
         "btab = breakdown_table(brow)\n"
         "for model in btab['model'].unique() if len(btab) else []:\n"
         "    plots.fig_breakdown(btab, model=model)"),
    md("### Method\n\n"
       "1. **Sampling**: the call runs many times while a periodic `SIGALRM` (every 3.1 ms, wall clock) "
       "interrupts it; the handler records the main thread's whole Python stack. Each timer expiration is a "
       "sample worth one interval, and expirations that queued while the thread was inside a long C call "
       "(a TF op, a tf.data iterator being built) all count for that call site. The handler's own time is "
       "taken out of the calls, and so is the slowdown a sample causes its call (signal delivery; measured as "
       "the difference between the median sampled and unsampled call). cProfile is not used for the times: "
       "its per-call hooks, and Python 3.11's de-specialised bytecode while any profiler is set, slow the "
       "Python parts of these calls down by more than a calibration on synthetic calls predicts (corrected "
       "cProfile sums missed the median by 30-250 % while this method was developed); the sampler's cost is "
       "measured in the run itself. cProfile only counts the Python calls per inference (`cprofile_us` is "
       "the call's time under it).\n"
       "2. **Buckets** come from each sample's stack, outermost frame first, by module-path / function-name "
       "rules (`overhead.breakdown.RULES`): Keras' data adapters and `tf.data` → *data adapter & tf.data*; "
       "`tf.function` tracing (`_create_concrete_function`, `func_graph`, autograph, tf.data's function "
       "wrapper) → *tracing & graph building*; Keras callbacks → *callbacks*; `polymorphic_function` and "
       "`core/function` → *tf.function call & arguments*; the rest of Keras → *Keras Python*; TF's Python op "
       "wrappers and `execute.py` → *eager op dispatch (Python)*; `convert_to_tensor`, `constant_op`, "
       "`.numpy()` → *tensor↔NumPy conversion*. The innermost frame a rule names decides (stdlib, `nest`, "
       "`tensor_shape`, … take the bucket of their caller); tracing and callbacks absorb everything they call. "
       "A sample sitting on a `TFE_Py_Execute` / `TFE_Py_FastPathExecute` line is in *TF C++ runtime*, unless "
       "it runs a tf.data op (then it is tf.data's work).\n"
       "3. **Kernels**: for graph paths the TensorFlow profiler's host events of the op kernels (per op, "
       "median duration × count per call) are moved out of *TF C++ runtime*. Eager ops have no separate "
       "kernel events, so `keras.call` keeps *TF C++ runtime + kernels* as one bucket.\n"
       "4. **Check**: plain rounds (no sampling) alternate with the sampled ones, so the measured median comes "
       "from the same minutes. Calls slower than 2× the median (preempted) are left out of both. The buckets' "
       "sum is compared with the median (the 10 % target) and with the mean of the plain calls; nothing "
       "rescales the buckets to either.\n\n"
       "The functions holding most of each bucket's samples (innermost frame):"),
    code("btop.round(1).groupby(['model', 'backend', 'bucket'], sort=False).head(3)"
         " if len(btop) else print('no decomposition')"),
]

for name, cells in (("03_startup", startup_cells), ("04_pipeline", pipeline_cells)):
    nbf.write(nbf.v4.new_notebook(cells=cells, metadata=META), f"notebooks/{name}.ipynb")
