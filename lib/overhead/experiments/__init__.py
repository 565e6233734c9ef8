"""Experiments run on top of the harness: each a parent driving fresh child processes, writing one tidy table.

- :mod:`overhead.experiments.loadgen`: every path under MLPerf LoadGen's Single-Stream and Server scenarios
  (its System Under Test in :mod:`~overhead.experiments.loadgen_sut`, the HTTP service in
  :mod:`~overhead.experiments.loadgen_http`) -> ``loadgen.csv``.
"""
