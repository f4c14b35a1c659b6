"""The configs shipped with resm, installed as the package data ``resm._configs`` (found by name:
:func:`resm.config.find_config`)."""
