"""Settings for tests: a sweep's design given the old positional way (models, backends, batches, threads,
budget), with the study's plan switched off (every batch on every backend, every model at every thread setting)."""
from overhead.base.settings import Settings
from overhead.experiments import sweep

RUN_KW = {"out_dir", "resume", "max_rows", "progress", "stall_timeout_s", "artifacts", "launch", "model_inputs"}


def bench_settings(models, backends, batches, threads, budget_s, *, machine=None, data_dir=None, **bench) -> Settings:
    bench = {"big_batch_models": None, "big_batch_backends": None, "secondary_backends": [], "threads_models": None,
             "gemm_n": None, **bench}
    bench.update(models=[str(m) for m in models], backends=list(backends), batches=list(batches),
                 threads=list(threads) if threads else None, budget_s=budget_s)
    return Settings.from_dict({"machine": machine, "data_dir": data_dir, "bench": bench})


def run_sweep(models, backends, batches, threads, budget_s, **kw):
    """sweep.run on :func:`bench_settings`; the run's own keywords (out_dir, launch, ...) go to sweep.run."""
    run = {k: kw.pop(k) for k in list(kw) if k in RUN_KW}
    return sweep.run(bench_settings(models, backends, batches, threads, budget_s, **kw), **run)


def loadgen_settings(models, paths=None, *, quick=False, machine=None, data_dir=None, settings=None, **lg) -> Settings:
    """A Loadgen design given the old keyword way (`settings`: LoadGen run lengths over the study's)."""
    lg = dict(lg, models=[str(m) for m in models], paths=None if paths is None else list(paths))
    if settings is not None:
        lg["runs"] = settings
    lg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in lg.items()}
    return Settings.from_dict({"quick": quick, "machine": machine, "data_dir": data_dir, "loadgen": lg})


def run_loadgen(models, paths=None, *, out_dir=None, progress=False, max_items=None, resume=True, **kw):
    """loadgen.run on :func:`loadgen_settings`."""
    from overhead.experiments import loadgen

    return loadgen.run(loadgen_settings(models, paths, **kw), out_dir=out_dir, progress=progress,
                       max_items=max_items, resume=resume)
