"""``resm compare``: every backbone on the same tasks, data, heads and budgets.

:mod:`~resm.compare.config` (the sections and :func:`~resm.compare.config.parse_config`),
:mod:`~resm.compare.backends` (every backbone behind one interface),
:mod:`~resm.compare.data` (the records, drawn once), :mod:`~resm.compare.measure` (time and
memory), :mod:`~resm.compare.training` (heads on cached embeddings through the one training
loop), :mod:`~resm.compare.harness` (the run, :func:`~resm.compare.harness.run_compare`),
:mod:`~resm.compare.report` and :mod:`~resm.compare.plots` (the outputs); and each task's part,
named in its :class:`resm.tasks.base.CompareSpec`: :mod:`~resm.compare.structure`,
:mod:`~resm.compare.rri` and :mod:`~resm.compare.mrl` (sections, data, the run for one backend,
the report). The package stands above :mod:`resm.tasks` and :mod:`resm.structure`: it imports
them, they never import it.
"""
