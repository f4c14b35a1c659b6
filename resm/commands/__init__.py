"""The ``resm`` subcommands, one module per command (or per small group sharing arguments).

Each module declares its :class:`resm.commands.common.Command`: the argparse definition
(``add_arguments``), the handler (``run``: parse the arguments, build the options dataclass
with :func:`resm.config.options`, call the library, print a summary) and the outputs and
inputs :mod:`resm.cli` checks before any work. A new command is a new module here and one
entry in :data:`COMMANDS`. The modules import torch and the library inside their handlers
only, so ``resm --help`` stays fast."""

from __future__ import annotations

from .common import Command
from .compare import COMPARE
from .embed import EMBED
from .evaluate import EVALUATE
from .export import EXPORT
from .fold import FOLD
from .init_checkpoint import INIT_CHECKPOINT
from .predict import INTERACT, PREDICT
from .probe import PROBE
from .schemes import SCHEMES
from .training import FINETUNE, PRETRAIN

# in the order `resm --help` lists them
COMMANDS: tuple[Command, ...] = (
    INIT_CHECKPOINT,
    EMBED,
    PRETRAIN,
    EXPORT,
    PROBE,
    FOLD,
    FINETUNE,
    INTERACT,
    PREDICT,
    EVALUATE,
    COMPARE,
    SCHEMES,
)
BY_NAME: dict[str, Command] = {c.name: c for c in COMMANDS}
