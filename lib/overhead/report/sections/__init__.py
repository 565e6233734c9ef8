"""The report's sections, one module each, in the order ``notebooks/06_report.py`` renders them. Each holds its
section's analysis glue, tables, finding sentences and the figures only it shows; the prose lives in
``report/templates/*.md.j2`` and in the notebook's markdown cells.

tldr           The answer (TL;DR), the hero figure, your own models
advice_effort  What should you do? (the effort ladder)
advice         What should you do? (the table per situation)
whopays        Who pays for predict?
fits           Where does overhead stop mattering? (the fitted latency models)
architectures  The architectures people ship (MobileNet, EfficientNet against plain nets of their FLOPs)
slowdown       How much slower than NumPy?
batch          Batch size
threads        Threads
idle_gap       Sparse traffic: calls after an idle gap
startup        Cold start and memory
memory_loop    Memory in a loop
loadgen        Under load: MLPerf LoadGen (tables and figures: ``report.underload``, ``report.underload_http``)
pipeline       Pipeline: from PNG to label
breakdown      Where the time goes: the per-call decomposition
ceilings       Ceilings (the float32 ceiling, NumPy's BLAS setting, the roofline)
stability      How stable are the measurements?
(spread)       Why do the TF paths' fresh processes disagree? ``report.spread_runs`` and ``report.spread``
reconcile      One call, several sections
(versions)     Across TensorFlow releases: ``report.versions``
claims         The original claims, checked
method         Limitations; Appendix: Method
parity         Appendix: Parity
key_numbers    Appendix: Key numbers per path
distortion     Appendix: Distortion check
appendix       Appendix: Raw tables, the code of each path (and the models, for the registry)

The sections in parentheses live beside the stage notebooks that print them too (``report.spread``: 03_startup,
``report.versions``: 07_versions; ``report.spread_runs`` is also a command). ``report.plots`` holds the figures
the stage notebooks share with their sections (cold start, pipeline, breakdown).
"""
