"""The report: pure functions from result tables to analysis, figures, prose and the rendered HTML.

loading (files) → analysis (tables, ``Results``) + latency (models, crossovers) → prose / method / sections /
whopays / advice / claims / optional (markdown) and plots / plots_more (figures) → render (HTML). The one
backend order and colour map: ``style``.
"""
