"""The catalogue of inference paths (overhead.base.paths) is well formed; every per-path table derives from it."""
import re

from overhead.base import paths
from overhead.harness.child import KERAS_BACKEND_OF


def test_every_entry_is_complete_and_names_are_unique():
    assert len(paths.NAMES) == len(set(paths.NAMES)) == len(paths.CATALOGUE)
    for e in paths.CATALOGUE:
        assert e.shown_in in paths.FAMILIES and e.process in KERAS_BACKEND_OF, e
        assert re.fullmatch(r"#[0-9a-f]{6}", e.colour) and e.description and e.change and e.runtime and e.needs, e
        assert not e.note or e.snippet, f"{e.name}: a note explains a snippet"
        assert e.quantized == (e.min_top1 is not None), f"{e.name}: quantized paths are judged on top-1"
    assert len({e.colour for e in paths.CATALOGUE}) == len(paths.CATALOGUE)  # one shade per path


def test_families_group_the_catalogue_in_display_order():
    shown = paths.in_family(*paths.FAMILIES)
    assert sorted(shown) == sorted(paths.NAMES)
    assert paths.in_family(paths.NUMPY) == ("numpy", "numpy.plain")  # members keep the catalogue's order
    assert paths.entry("no.such.path") is None


def test_paths_in_another_process_kind_have_no_snippet():
    # snippets run in a Keras-on-TensorFlow process (tests/test_report_snippets.py)
    assert not [e.name for e in paths.CATALOGUE if e.process != "tf" and e.snippet]


def test_precision_and_effort_are_declared_where_the_report_reads_them():
    for e in paths.CATALOGUE:
        assert e.precision in ("fp32", "fp16", "int8"), e.name
        assert (e.precision == "int8") == e.quantized, f"{e.name}: a quantised path serves int8 and vice versa"
        assert e.precision == "fp32" or e.effort == paths.EFFORT_STEPS.index(
            "4. reduced precision (an option: it changes answers)"), f"{e.name}: reduced precision is step 4"
        assert e.effort is None or 0 <= e.effort < len(paths.EFFORT_STEPS), e.name
    ladder = dict(paths.effort_ladder())
    assert all(ladder.values()), "every step of the effort ladder has a path"
    assert ladder[paths.EFFORT_STEPS[0]][0] == "keras.predict_on_batch", "the smallest change comes first"
    assert not paths.reduced_precision("litert") and paths.reduced_precision("litert.fp16")
    assert paths.int8("onnxruntime.int8") and not paths.int8("litert.fp16")
    assert paths.reduced_precision("my.bf16") and not paths.reduced_precision("mine"), "outside the catalogue: the tag"
