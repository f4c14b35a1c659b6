"""Task heads on top of the backbone, and the registry of all of them.

``HEADS`` maps a task name to its builder, ``build(head_config, embed_dim) -> (head, apply)``:
``apply(head, h, mask, batch)`` reads an encoder's residue embeddings ``h`` (B, L, E) and mask
for that head (:class:`resm.tasks.base.TaskModel`). Saved models name their heads by task, and
:func:`resm.tasks.base.load_bundle` rebuilds each one through this registry.
"""

from .mrl import build_mrl_head
from .rri import build_rri_head
from .pair_map import build_structure_head

HEADS = {"structure": build_structure_head, "rri": build_rri_head, "mrl": build_mrl_head}

__all__ = ["HEADS"]
