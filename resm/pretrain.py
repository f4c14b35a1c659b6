"""Continued masked-language-model pretraining of ESM-2 on mapped RNA (``resm pretrain``).

The config has these sections (every option is documented on its dataclass):

* ``model``  (``ModelConfig``): where the weights start;
* ``data``   (``resm.data.pretrain.PretrainDataConfig``): corpus, scheme, filters, split, batching;
* ``masking`` (``resm.data.masking.MaskingConfig``): BERT masking, spans, restricted logits;
* ``optim``  (``resm.train.OptimConfig``) and ``train`` (``resm.train.TrainConfig``): the loop
  and its engine (plain torch, or DeepSpeed ZeRO with a JSON under ``configs/deepspeed/``).

The loop itself is ``resm.train.Trainer``; this module only supplies the MLM task.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from .alphabet import PAD, pad_batch
from .data.masking import MaskingConfig, mask_batch, mlm_loss
from .data.pretrain import PretrainDataConfig, PretrainStream, unigram_entropy, validation_batches
from .mapping import get_scheme
from .model.esm2 import ESM2
from .model.load import init_model, load_backbone, resm_meta, save_fair_esm, save_hf
from .config import ConfigError, from_dict
from .train import run_task


@dataclass
class ModelConfig:
    """Where the weights start.

    Attributes:
        init: a fair-esm ``.pt`` path, a Hugging Face folder or an ESM-2 name to continue from.
        arch: instead of ``init``, a named architecture (``esm2_t6_8M_UR50D``, ...) to start
            from random weights.
        init_seed: seed of the random initialisation.
        trust_checkpoint: allow unpickling arbitrary objects from ``init`` (trusted files only).
        save_hf: also write the final model as a Hugging Face folder.
    """

    init: Optional[str] = None
    arch: Optional[str] = None
    init_seed: int = 0
    trust_checkpoint: bool = False
    save_hf: bool = False

    def __post_init__(self):
        if bool(self.init) == bool(self.arch):
            raise ConfigError("model: give exactly one of init (checkpoint) or arch (random init)")


@dataclass
class ValidationConfig:
    """Validation settings.

    Attributes:
        max_records: cap on validation records (first in file order; None: all).
        mask_seed: fixed seed of validation masks, so values are comparable across steps.
    """

    max_records: Optional[int] = 2000
    mask_seed: int = 12345


class MLMTask:
    """Masked-LM on a streamed, mapped corpus."""

    def __init__(self, cfg: Dict[str, Any]):
        self.model_cfg = from_dict(ModelConfig, cfg.get("model"), "model")
        self.data_cfg = from_dict(PretrainDataConfig, cfg.get("data"), "data")
        self.mask_cfg = from_dict(MaskingConfig, cfg.get("masking"), "masking")
        self.val_cfg = from_dict(ValidationConfig, cfg.get("validation"), "validation")
        self.scheme = get_scheme(self.data_cfg.scheme)
        self.letter_ids = list(self.scheme.letter_ids)
        m = self.model_cfg
        if m.init:
            loaded = load_backbone(m.init, self.scheme, trust=m.trust_checkpoint)
            self.model: ESM2 = loaded.model
            self.arch = loaded.meta.get("arch")
        else:
            self.model = init_model(m.arch, seed=m.init_seed)
            self.arch = m.arch
        # MLM does not train the contact regression; freezing it keeps DDP/ZeRO from waiting
        # for gradients that never come.
        self.model.contact_head.requires_grad_(False)
        self._val: Optional[list] = None
        self.baseline: Optional[float] = None

    # -------------------------------------------------------------- Task protocol
    def train_stream(self, rank: int, world_size: int) -> PretrainStream:
        return PretrainStream(self.data_cfg, rank=rank, world_size=world_size)

    def _forward_loss(self, model, toks: torch.Tensor, generator, device):
        inputs, labels = mask_batch(toks, self.letter_ids, self.mask_cfg, generator)
        logits = model(inputs.to(device))["logits"]
        letters = self.letter_ids if self.mask_cfg.restrict_logits else None
        return mlm_loss(logits, labels.to(device), letters), int((labels != -100).sum())

    def loss(self, model, batch, generator, device):
        toks = pad_batch(batch)
        loss, n_masked = self._forward_loss(model, toks, generator, device)
        return loss, {"tokens": int((toks != PAD).sum()), "masked": n_masked}

    def validate(self, model, device) -> Dict[str, float]:
        import torch.distributed as dist

        if self._val is None:
            rank = dist.get_rank() if dist.is_initialized() else 0
            world = dist.get_world_size() if dist.is_initialized() else 1
            self._val = validation_batches(self.data_cfg, self.val_cfg.max_records, rank, world)
            self.baseline = unigram_entropy(self._val) if self._val else float("nan")
        gen = torch.Generator().manual_seed(self.val_cfg.mask_seed)
        total, n = 0.0, 0
        for batch in self._val:
            loss, k = self._forward_loss(model, pad_batch(batch), gen, device)
            total += float(loss) * k
            n += k
        val = total / max(n, 1)
        return {"val_loss": val, "unigram_baseline": self.baseline, "n_masked": n}

    def fingerprint(self) -> Dict[str, Any]:
        return {
            "model": asdict(self.model_cfg),
            "data": asdict(self.data_cfg),
            "masking": asdict(self.mask_cfg),
            "scheme_hash": self.scheme.table_hash,
            "architecture": self.model.cfg.to_dict(),
            "arch": self.arch,
        }

    def save_final(self, model, out_dir: Path, state: Dict[str, torch.Tensor]) -> None:
        final = ESM2(self.model.cfg)
        final.load_state_dict({k: v.float().cpu() for k, v in state.items()})
        meta = resm_meta(self.scheme, self.arch, pretrained_from=self.model_cfg.init or "random")
        save_fair_esm(final, out_dir / "model.pt", meta)
        if self.model_cfg.save_hf:
            save_hf(final, out_dir / "model_hf", meta)


def run_pretrain(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Build the MLM task and the shared loop from a loaded config and train."""
    result, _ = run_task(MLMTask, cfg, {"model", "data", "masking", "validation"})
    return result
