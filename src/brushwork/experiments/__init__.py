"""Experiments built on the toolkit: the content/style separation study ("The Cow of Rembrandt").

Modules: :mod:`.grid` (the prompt grid), :mod:`.words` (template words → text positions),
:mod:`.metrics` (masks, IoU and baselines in one vectorised pass), :mod:`.store` (the
resumable SQLite store of a run), :mod:`.runner` (local and Ray engines), :mod:`.stats`
and :mod:`.report` (statistics, tables, plots, HTML).
"""
