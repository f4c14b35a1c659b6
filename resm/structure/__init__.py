"""RNA secondary structure: files, data sets, decoding, metrics, the classical folders, the
zero-shot probe, the supervised structure model, and the ``resm fold`` / ``resm evaluate``
pipelines built on them (see the modules)."""
