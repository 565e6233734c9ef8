"""The registry of result tables: every file a stage writes under ``data/results/<machine>/``, declared once.

Each entry names the file, how the report reads it (``loader``, a key of ``overhead.report.loading.LOADERS``),
the report section that renders it (its heading and the ``module:function`` that writes the section's text
from an ``analysis.Results``), and whether a run must have it. Loading, analysis and the end-to-end test of the
report read this list; nothing else keeps a list of result files. This module imports nothing of the package
(the renderers are named, not imported), so every layer may read it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResultTable:
    stem: str            # file name without ``.csv``; also the key in ``load_results`` and ``Results.mine``
    section: str         # heading of the report section that renders it
    renderer: str        # ``module:function`` (R) -> markdown of that section's finding
    required: bool       # a run without it is incomplete (the report lists it under Limitations)
    loader: str = "csv"  # how ``overhead.report.loading`` reads it
    stage: str = ""      # the notebook or experiment that writes it

    @property
    def file(self) -> str:
        return f"{self.stem}.csv"


TABLES = (
    ResultTable("bench", "The answer (TL;DR)", "overhead.report.sections.tldr:tldr", True, stage="02_benchmark"),
    ResultTable("gemm", "Ceilings", "overhead.report.sections.ceilings:text", True, stage="02_benchmark"),
    ResultTable("startup", "Cold start and memory", "overhead.report.sections.startup:startup_text", True,
                stage="03_startup"),
    ResultTable("pipeline", "Pipeline: from PNG to label", "overhead.report.sections.pipeline:pipeline_text", True,
                stage="04_pipeline"),
    ResultTable("breakdown", "Where the time goes", "overhead.report.sections.breakdown:breakdown_text", True,
                stage="04_pipeline"),
    ResultTable("idle_gap", "Sparse traffic: calls after an idle gap", "overhead.report.sections.idle_gap:idle_gap_text",
                False, stage="02_benchmark"),
    ResultTable("memory_loop", "Memory in a loop", "overhead.report.sections.memory_loop:memory_loop_text", False,
                stage="03_startup"),
    ResultTable("distortion", "Distortion check", "overhead.report.sections.distortion:distortion_text", False,
                stage="02_benchmark"),
    ResultTable("ceilings", "Ceilings", "overhead.report.sections.ceilings:text", False, stage="02_benchmark"),
    ResultTable("blas_ab", "Ceilings (NumPy's BLAS setting)", "overhead.report.sections.ceilings:blas_text", False,
                stage="02_benchmark"),
    ResultTable("loadgen", "Under load: MLPerf LoadGen", "overhead.report.sections.loadgen:loadgen_text", False,
                stage="05_loadgen"),
    ResultTable("loadgen_repeat", "Under load: MLPerf LoadGen (a rerun of the stage)",
                "overhead.report.sections.loadgen:repeat_text", False,
                stage="05_loadgen (an earlier full run of the stage on the same machine, kept as a rerun)"),
    ResultTable("spread", "How stable are the measurements? Why TF's fresh processes disagree",
                "overhead.report.spread:section_text", False, stage="make spread"),
    ResultTable("versions", "Across TensorFlow releases", "overhead.report.versions:section_text", False,
                stage="07_versions"),
    ResultTable("apps", "The architectures people ship: every path on the Keras Applications families",
                "overhead.report.sections.architectures:families_text", False, stage="make apps"),
    ResultTable("enginebench", "The architectures people ship: the NumPy engine against LiteRT and tf.function",
                "overhead.report.sections.architectures:engine_text", False, stage="make bench"),
    ResultTable("models", "Appendix: the models", "overhead.report.sections.appendix:models_text", False,
                loader="models", stage="02_benchmark"),
)

BY_STEM = {t.stem: t for t in TABLES}
REQUIRED = tuple(t.stem for t in TABLES if t.required)
OPTIONAL = tuple(t.stem for t in TABLES if not t.required)
MERGED = tuple(t.stem for t in TABLES if t.loader == "csv")   # tables merged over machines by load_results


def get(stem: str) -> ResultTable:
    """The entry of ``stem``; a ``KeyError`` naming the declared stems when there is none."""
    try:
        return BY_STEM[stem]
    except KeyError:
        raise KeyError(f"no result table {stem!r} is declared in overhead.base.tables "
                       f"(declared: {', '.join(BY_STEM)})") from None
