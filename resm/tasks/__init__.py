"""Fine-tuning tasks for the shared loop (:mod:`resm.train`): sequence-level heads.

``structure`` lives in :mod:`resm.finetune` (with its 2-D head and tiled inference); ``rri``
(:mod:`resm.tasks.rri`), ``mrl`` (:mod:`resm.tasks.mrl`) and ``joint`` (several heads on one
encoder/adapter, :mod:`resm.tasks.multi`) live here and share :mod:`resm.tasks.base`.
"""
