"""The report: pure functions from result tables to analysis, figures, sentences and the rendered HTML.

loading (files) → analysis (tables, ``Results``) + latency (models, crossovers) → ``sections`` (one module per
report section, in reading order: its tables, findings and figures) → render (HTML). Shared by the sections:
fmt (numbers and words), sentences (templates), captions, plotkit / style (figures, the one backend order and
colour map), layout, wins, crossing, identify. Shared with the stage notebooks: stages, stagetext, tables
(bench rows), plots (cold start, pipeline, breakdown), idle, underload, underload_http, spread, versions.
"""
