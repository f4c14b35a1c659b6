"""The masked-language-model task (``mlm``): continued ESM-2 pretraining on mapped RNA
(``resm pretrain``), or pretraining from random weights.

The config has these sections (every option is documented on its dataclass):

* ``model`` (:class:`resm.tasks.base.ModelConfig`: ``init`` or ``arch``, ``init_seed``,
  ``trust_checkpoint``, ``save_hf``): where the weights start;
* ``data`` (:class:`resm.data.pretrain.PretrainDataConfig`): corpus, scheme, filters, split,
  batching;
* ``masking`` (:class:`resm.data.masking.MaskingConfig`): BERT masking, spans, restricted logits;
* ``validation`` (:class:`ValidationConfig`);
* ``optim`` (:class:`resm.train_config.OptimConfig`) and ``train`` (:class:`resm.train_config.TrainConfig`):
  the loop and its engine (plain torch, or DeepSpeed ZeRO with a JSON under
  ``configs/deepspeed/``).

The loop itself is :class:`resm.train.Trainer`; this module only supplies the task. The
finished model is ``out_dir/model.pt`` (fair-esm format; ``model_hf/`` too with ``save_hf``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..alphabet import PAD, pad_batch
from ..backbone.esm2 import ESM2
from ..backbone.load import is_hf_folder, resm_meta, save_fair_esm, save_hf
from ..config import from_dict
from ..data.masking import MaskingConfig, mask_batch, mlm_loss
from ..data.pretrain import PretrainDataConfig, PretrainStream, unigram_entropy, validation_batches
from ..mapping import get_scheme
from ..train import Lockstep, all_sum
from ..utils.seeds import SEED_RULE, seed_ok
from .base import ModelConfig, TaskSpec, load_model_backbone

__all__ = ["ValidationConfig", "MLMTask"]


@dataclass
class ValidationConfig:
    """Validation settings. The validation loss is the mean over every masked position of the
    validation batches (token-weighted, unlike the train loss, a mean of micro-batch means).

    Attributes:
        max_records: cap on validation records (first in file order; None: all).
        mask_seed: fixed seed of validation masks, so values are comparable across steps.
    """

    max_records: int | None = 2000
    mask_seed: int = 12345

    def __post_init__(self):
        # -1 was 'limit must be >= 0' at the first validation, naming no key; 0 warned that
        # data.val_fraction left the validation split empty
        if self.max_records is not None and self.max_records < 1:
            raise ValueError(f"max_records must be >= 1 (null: every validation record), got {self.max_records}")
        if not seed_ok(self.mask_seed):  # past 2**64 torch's generator overflowed mid-run
            raise ValueError(f"mask_seed {SEED_RULE}, got {self.mask_seed!r}")


class MLMTask:
    """Masked-LM on a streamed, mapped corpus."""

    name = "mlm"
    sections = ("model", "data", "masking", "validation")
    output = "model.pt"

    def __init__(self, cfg: dict[str, Any]):
        self.model_cfg = ModelConfig.for_task(cfg.get("model"), "mlm")
        self.data_cfg = from_dict(PretrainDataConfig, cfg.get("data"), "data")
        self.mask_cfg = from_dict(MaskingConfig, cfg.get("masking"), "masking")
        self.val_cfg = from_dict(ValidationConfig, cfg.get("validation"), "validation")
        self.scheme = get_scheme(self.data_cfg.scheme)
        self.hf_folder: str | None = None  # written by save_final with model.save_hf
        self.letter_ids = list(self.scheme.letter_ids)
        self.model, self.arch, _ = load_model_backbone(self.model_cfg, self.scheme)
        # MLM does not train the contact regression; freezing it keeps DDP/ZeRO from waiting
        # for gradients that never come.
        self.model.contact_head.requires_grad_(False)
        self._val: list | None = None
        self.baseline: float | None = None
        self.progress = False  # bars while reading data (set by the loop from train.progress)

    # -------------------------------------------------------------- Task protocol
    def train_stream(self, rank: int, world_size: int) -> PretrainStream:
        stream = PretrainStream(self.data_cfg, rank=rank, world_size=world_size, progress=self.progress and rank == 0)
        stream.say_skipped = rank == 0
        return stream

    def _masked_loss(self, model, inputs: torch.Tensor, labels: torch.Tensor, device):
        logits = model(inputs.to(device))["logits"]
        letters = self.letter_ids if self.mask_cfg.restrict_logits else None
        return mlm_loss(logits, labels.to(device), letters), int((labels != -100).sum())

    def loss(self, model, batch, generator, device):
        toks = pad_batch(batch)
        inputs, labels = mask_batch(toks, self.letter_ids, self.mask_cfg, generator)
        loss, n_masked = self._masked_loss(model, inputs, labels, device)
        return loss, {"tokens": int((toks != PAD).sum()), "masked": n_masked}

    def validate(self, model, device) -> dict[str, float]:
        import torch.distributed as dist

        rank = dist.get_rank() if dist.is_initialized() else 0
        world = dist.get_world_size() if dist.is_initialized() else 1
        if self._val is None:  # every batch of the split (each process scores every world-th one)
            self._val = validation_batches(
                self.data_cfg, self.val_cfg.max_records, progress=self.progress and rank == 0
            )
            self.baseline = unigram_entropy(self._val, self.letter_ids) if self._val else float("nan")
            if not self._val and rank == 0:
                import sys

                print(
                    f"resm: warning: the validation split is empty (data.val_fraction {self.data_cfg.val_fraction}"
                    f" of {self.data_cfg.train}): no validation loss is measured",
                    file=sys.stderr,
                    flush=True,
                )
        gen = torch.Generator().manual_seed(self.val_cfg.mask_seed)
        total, n = 0.0, 0
        lockstep, spare = Lockstep(world), None
        for i, batch in enumerate(self._val):
            # every process draws every batch's masks, so that a batch is masked alike whatever
            # the number of processes, and scores its own share of the batches
            inputs, labels = mask_batch(pad_batch(batch), self.letter_ids, self.mask_cfg, gen)
            spare = spare or (inputs, labels)
            if i % world != rank:
                continue
            lockstep.step()
            loss, k = self._masked_loss(model, inputs, labels, device)
            total += float(loss) * k
            n += k
        if lockstep.multi and spare is not None:  # ZeRO-3: the processes' forward passes in step
            lockstep.finish(lambda: self._masked_loss(model, *spare, device))
        # the mean over every process's masked positions (a process may have none): each one
        # returns that value and its own count (the loop averages the one and sums the other)
        all_total, all_n = all_sum([total, n])
        val = all_total / all_n if all_n else float("nan")  # nothing masked: no loss, not a perfect one
        return {"val_loss": val, "unigram_baseline": self.baseline, "n_masked": n}

    def fingerprint(self) -> dict[str, Any]:
        return {
            "model": self.model_cfg.settings("mlm"),
            "data": asdict(self.data_cfg),
            "masking": asdict(self.mask_cfg),
            "scheme_hash": self.scheme.table_hash,
            "architecture": self.model.cfg.to_dict(),
            "arch": self.arch,
        }

    def outputs(self, out_dir: Path) -> list[tuple[Path, str, Any]]:
        """``model.pt``, and with ``save_hf`` the ``model_hf`` folder (replacing only an earlier one)."""
        hf = [(Path(out_dir) / "model_hf", "dir", is_hf_folder)] if self.model_cfg.save_hf else []
        return [(Path(out_dir) / self.output, "file", None), *hf]

    def save_final(self, model, out_dir: Path, state: dict[str, torch.Tensor]) -> None:
        final = ESM2(self.model.cfg)
        final.load_state_dict({k: v.float().cpu() for k, v in state.items()})
        meta = resm_meta(self.scheme, self.arch, pretrained_from=self.model_cfg.init or "random")
        save_fair_esm(final, out_dir / self.output, meta)
        if self.model_cfg.save_hf:
            save_hf(final, out_dir / "model_hf", meta)
            self.hf_folder = str(out_dir / "model_hf")

    def summary(self) -> dict[str, Any]:
        """``hf_folder``: the Hugging Face folder written beside ``model.pt`` (``model.save_hf``)."""
        return {"hf_folder": self.hf_folder} if self.hf_folder else {}


TASK = TaskSpec("mlm", MLMTask, ("init", "arch", "init_seed", "trust_checkpoint", "save_hf"), finetune=False, order=0)
