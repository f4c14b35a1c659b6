"""Expression (``task: mrl``): mean ribosome load of 5'UTRs, and variant effects.

Config sections: ``model`` (:class:`resm.tasks.base.ModelConfig`), ``head`` (fields of
:class:`resm.heads.mrl.ExpressionHeadConfig` except ``embed_dim``; or, with ``head.kind:
optimus``, of :class:`resm.heads.mrl.OptimusConfig`, the one-hot CNN baseline that needs no
encoder), ``data`` (:class:`MRLDataConfig`), ``optim`` / ``train``.

Targets are standardised with the training mean and standard deviation (saved with the head);
predictions are returned in MRL units. Metrics: R^2 (scikit-learn) and Spearman's rho (SciPy).
The variant effect of a (wild type, variant) pair is ``pred(var) - pred(wt)``, correlated with
the observed ``mrl(var) - mrl(wt)`` (:func:`variant_effect`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..config import ConfigError, from_dict
from ..data.mrl import UTR, VariantPair, read_mrl, split_utrs
from ..heads.mrl import (
    MAX_UTR,
    ExpressionHead,
    ExpressionHeadConfig,
    OptimusCNN,
    OptimusConfig,
    mrl_apply,
    optimus_apply,
)
from .base import (
    BACKEND_COLUMNS,
    BUNDLE_DIR,
    SEQUENCE_KEYS,
    BundleError,
    BundleHeadTask,
    CompareSpec,
    ItemStream,
    ModelConfig,
    TaskModel,
    TaskSpec,
    bundle_config,
    check_item_data,
    counted_once,
    encode_batch,
    head_for,
    no_validation,
    on_device,
    one_label,
    open_bundle,
    seeded_head,
    subset,
)

__all__ = [
    "MRLDataConfig",
    "MRLTask",
    "mrl_metrics",
    "predict_mrl",
    "variant_effect",
    "load_mrl_model",
    "MAX_UTR",
]

OPTIMUS_FILE = "optimus-mrl.pt"  # the Optimus baseline's one file, in out_dir/model


@dataclass
class MRLDataConfig:
    """UTRs for the ``mrl`` task.

    Attributes:
        train: CSV of UTRs with a target column (e.g. ``{data_dir}/mrl/Smart5UTR_...20k.csv``),
            split train / validation / test by ``fractions`` (fixed, seeded). The test part is
            never used in training or model selection.
        fractions: train / validation / test shares of ``train``.
        target: target column (None: ``rl``, else ``hrl``).
        max_train / max_val: optional caps (a seeded random subset) for quick runs.
        batch_size: UTRs per batch.
        seed: seed of the split and the batch order.
    """

    train: str = ""
    fractions: list[float] | None = None
    target: str | None = None
    max_train: int | None = None
    max_val: int | None = None
    batch_size: int = 128
    seed: int = 0

    def __post_init__(self):
        check_item_data(self, "UTR")
        self.fractions = list(self.fractions or [0.8, 0.1, 0.1])
        if len(self.fractions) != 3 or abs(sum(self.fractions) - 1) > 1e-6 or min(self.fractions) < 0:
            raise ConfigError(f"data.fractions must be three shares summing to 1, got {self.fractions}")


class _NoEncoder(torch.nn.Module):
    """Encoder stand-in for heads that read the batch themselves (the Optimus baseline)."""

    mode, embed_dim = "full", 0

    def forward(self, batch):
        return None, batch["mask"]


def correlations(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Spearman's rho and Pearson's r of ``a`` and ``b``: NaN, without a warning, where they
    are undefined (fewer than two values, or one side constant)."""
    from scipy.stats import pearsonr, spearmanr

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return {"spearman": float("nan"), "pearson": float("nan")}
    return {"spearman": float(spearmanr(a, b).statistic), "pearson": float(pearsonr(a, b).statistic)}


def mrl_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """R^2 and Spearman's rho (and Pearson's r) of predictions against targets (NaN where
    undefined: :func:`correlations`; R^2 needs two values)."""
    from sklearn.metrics import r2_score

    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    r2 = float(r2_score(y, pred)) if len(y) >= 2 else float("nan")
    return {"r2": r2, **correlations(y, pred), "n": int(len(y))}


def variant_effect(pred: np.ndarray, utrs: Sequence[UTR], pairs: Sequence[VariantPair]) -> dict[str, float]:
    """Correlation of predicted and observed MRL changes (variant minus wild type)."""
    obs = np.array([utrs[p.var].mrl - utrs[p.wt].mrl for p in pairs])
    dp = np.array([pred[p.var] - pred[p.wt] for p in pairs])
    return {**correlations(obs, dp), "n_pairs": int(len(pairs))}


class MRLTask(BundleHeadTask):
    """MRL regression through the shared loop."""

    name = head_name = "mrl"
    sections = ("model", "head", "data")
    output = BUNDLE_DIR

    def __init__(self, cfg: dict[str, Any], encoder=None):
        head_section = dict(cfg.get("head") or {})
        kind = head_section.pop("kind", "mlp")
        if kind not in ("mlp", "optimus"):
            raise ConfigError(f"head.kind must be mlp (on an encoder) or optimus (one-hot CNN baseline), not {kind!r}")
        self.data_cfg = d = from_dict(MRLDataConfig, cfg.get("data"), "data")
        if kind == "optimus":
            from ..mapping import get_scheme

            self.model_cfg = ModelConfig.for_task(cfg.get("model"), "mrl", encoder="onehot")
            encoder, self.scheme, self.source = _NoEncoder(), get_scheme(self.model_cfg.scheme), "none"
            head_cls, self.head_cfg = OptimusCNN, from_dict(OptimusConfig, head_section, "head")
        else:
            self.model_cfg = ModelConfig.for_task(cfg.get("model"), "mrl")
            encoder = self._encoder(encoder)
            head_cls, self.head_cfg = ExpressionHead, self._head_config(ExpressionHeadConfig, head_section, encoder)
        self.kind = kind
        head = seeded_head(lambda: head_cls(self.head_cfg), d.seed)
        apply = optimus_apply if kind == "optimus" else mrl_apply
        self.model = TaskModel(encoder, {self.head_name: head}, {self.head_name: apply})
        utrs = read_mrl(d.train, target_column=d.target)
        limit = self.head_cfg.length if kind == "optimus" else self.head_cfg.max_length
        for u in utrs:
            if len(u.seq) > limit:
                raise ConfigError(
                    f"{d.train} line {u.line}: UTR {u.name!r} has {len(u.seq)} nt, "
                    f"longer than the {limit} nt this head supports"
                )
        self.train_utrs, self.val_utrs, self.test_utrs = split_utrs(utrs, tuple(d.fractions), d.seed)
        self.train_utrs = subset(self.train_utrs, d.max_train, d.seed)
        self.val_utrs = subset(self.val_utrs, d.max_val, d.seed)
        self._notes = no_validation(
            self.val_utrs, f"data.fractions {d.fractions} of the {len(utrs)} UTR(s) of {d.train}"
        )
        y = np.array([u.mrl for u in self.train_utrs])
        self._notes += one_label(y, f"data.train ({d.train})", "UTR(s)", "val_spearman")
        self.mean, self.std = float(y.mean()), float(y.std() or 1.0)
        self.final_metrics: dict[str, float] = {}

    def _batch(self, utrs: Sequence[UTR], device) -> dict[str, Any]:
        b = encode_batch([u.seq for u in utrs], self.scheme, [f"{u.name} (line {u.line})" for u in utrs])
        b["y"] = torch.tensor([(u.mrl - self.mean) / self.std for u in utrs], dtype=torch.float32)
        return on_device(b, device)

    # ---- Task protocol
    def train_stream(self, rank: int, world_size: int) -> ItemStream:
        return ItemStream(self.train_utrs, self.data_cfg.batch_size, self.data_cfg.seed, rank, world_size)

    def loss(self, model, batch: list[UTR], generator, device):
        b = self._batch(batch, device)
        pred = model(b, [self.head_name])[self.head_name]
        return F.mse_loss(pred.float(), b["y"]), {"tokens": int(b["mask"].sum())}

    def validate(self, model, device) -> dict[str, float]:
        if not self.val_utrs:
            return {}
        pred = predict_mrl(
            model,
            self.scheme,
            [u.seq for u in self.val_utrs],
            self.mean,
            self.std,
            self.data_cfg.batch_size,
            device,
            self.head_name,
        )
        y = np.array([u.mrl for u in self.val_utrs])
        m = mrl_metrics(y, pred)
        return {
            "val_loss": float(np.mean(((pred - y) / self.std) ** 2)),
            "val_r2": m["r2"],
            "val_spearman": m["spearman"],
            "n_val": counted_once(m["n"]),
        }

    def fingerprint(self) -> dict[str, Any]:
        """:meth:`BundleHeadTask.fingerprint` with the kind of head (mlp or optimus) after the task."""
        (key, task), *rest = super().fingerprint().items()
        return {key: task, "kind": self.kind, **dict(rest)}

    def head_spec(self) -> dict[str, Any]:
        cfg = bundle_config(self.head_cfg)
        if self.kind == "optimus":
            cfg["kind"] = "optimus"
        return {
            "task": "mrl",
            "config": cfg,
            "extra": {"mean": self.mean, "std": self.std, "val_metrics": self.final_metrics},
        }

    def outputs(self, out_dir: Path) -> list[tuple[Path, str, Any]]:
        """The bundle folder, or for the Optimus baseline its one file in ``out_dir/model``."""
        if self.kind != "optimus":
            return super().outputs(out_dir)
        return [(Path(out_dir) / BUNDLE_DIR / OPTIMUS_FILE, "file", None)]

    def save_final(self, module, out_dir: Path, state: dict[str, torch.Tensor]) -> None:
        """The bundle (:meth:`BundleHeadTask.save_final`), or for the Optimus baseline (no
        encoder) one ``optimus-mrl.pt`` file."""
        if self.kind != "optimus":
            super().save_final(module, out_dir, state)
            return
        spec = self.bundle_head(module, next(iter(state.values())).device)
        from ..utils.io import atomic_path, torch_save

        path = Path(out_dir) / BUNDLE_DIR / OPTIMUS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch_save(
                {
                    "format": "resm-optimus",
                    "config": self.head_cfg.to_dict(),
                    "extra": spec["extra"],
                    "scheme": self.scheme.name,
                    "state": module.heads[self.head_name].state_dict(),
                },
                tmp,
            )


ENCODER_WINDOW = 512  # at inference, longer UTRs reach the backbone in overlapping windows of this length
TOKENS_PER_BATCH = 32768  # a prediction batch holds at most this many (padded) nucleotides


def _batches(seqs: Sequence[str], batch_size: int, tokens: int = TOKENS_PER_BATCH):
    """Consecutive ``(start, end)`` chunks of at most ``batch_size`` sequences and ``tokens``
    padded nucleotides (a sequence longer than ``tokens`` goes alone)."""
    s = 0
    while s < len(seqs):
        e, width = s, 0
        while e < len(seqs) and e - s < batch_size:
            w = max(width, len(seqs[e]))
            if e > s and (e - s + 1) * w > tokens:
                break
            width, e = w, e + 1
        yield s, e
        s = e


@torch.no_grad()
def predict_mrl(
    model: TaskModel,
    scheme,
    seqs: Sequence[str],
    mean: float,
    std: float,
    batch_size: int = 128,
    device="cpu",
    head: str = "mrl",
    progress: bool = False,
) -> np.ndarray:
    """Predicted MRL (in the training target's units) of each sequence; with ``progress``, a
    bar on stderr counting UTRs against their total.

    The expression head pools its positions (masked mean and max, and the 3'-most ``anchor``
    positions), so it reads any length; UTRs longer than :data:`ENCODER_WINDOW` reach a
    backbone encoder through overlapping windows (:func:`resm.backbone.encoder.window_hidden`;
    shorter ones exactly as before), and batches are capped at :data:`TOKENS_PER_BATCH`
    nucleotides, so memory stays bounded up to :data:`MAX_UTR` nt."""
    was = model.training
    model.eval()
    enc = model.encoder
    old_window = getattr(enc, "window", None)
    if old_window is not None:
        enc.window = ENCODER_WINDOW
    out = []
    from tqdm.auto import tqdm

    bar = tqdm(total=len(seqs), desc="predict mrl", unit="UTR", disable=not progress)
    try:
        for s, e in _batches(seqs, batch_size):
            chunk = list(seqs[s:e])
            b = on_device(encode_batch(chunk, scheme), device)
            out.append(model(b, [head])[head].double().cpu().numpy() * std + mean)
            bar.update(e - s)
    finally:
        bar.close()
        model.train(was)
        if old_window is not None:
            enc.window = old_window
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def mrl_scale(entry: dict, where: str | Path) -> tuple[float, float]:
    """``(mean, std)`` of the MRL the head was trained on (its manifest entry's ``extra``),
    which de-standardise its output; one line naming ``where`` (the model) unless both are
    finite numbers and the std is positive."""
    extra = entry.get("extra") if isinstance(entry.get("extra"), dict) else {}
    try:
        mean, std = float(extra["mean"]), float(extra["std"])
    except (KeyError, TypeError, ValueError):
        got = {k: extra.get(k) for k in ("mean", "std")}
        raise BundleError(f"{where}: the mrl head's extra.mean and extra.std must be numbers, got {got}") from None
    if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
        raise BundleError(f"{where}: the mrl head's extra.mean {mean} and extra.std {std} must be finite, the std > 0")
    return mean, std


def load_mrl_model(folder, backbone: str | None = None, trust: bool = False, adapter: Path | None = None):
    """``(TaskModel, head name, manifest entry, scheme)`` from ``out_dir/model``; ``adapter``: a
    PEFT folder in place of the bundle's adapter."""
    folder = Path(folder)
    optimus = folder / OPTIMUS_FILE
    if optimus.exists():
        if adapter is not None:
            raise ConfigError(f"{folder}: an Optimus model has no backbone, so no adapter ({adapter})")
        from ..backbone.load import reading, safe_load
        from ..mapping import get_scheme

        d = safe_load(optimus)
        with reading(optimus, "Optimus model"):
            head = OptimusCNN(OptimusConfig.from_saved(d["config"]))
            head.load_state_dict(d["state"])
            model = TaskModel(_NoEncoder(), {"mrl": head}, {"mrl": optimus_apply}).eval()
            entry = {"task": "mrl", "config": dict(d["config"], kind="optimus"), "extra": d["extra"]}
        mrl_scale(entry, optimus)
        return model, "mrl", entry, get_scheme(d["scheme"])
    model, entries, scheme = open_bundle(
        folder, backbone=backbone, trust=trust, adapter=adapter
    )  # a joint bundle holds other heads too
    name = head_for(folder, entries, "mrl")
    mrl_scale(entries[name], folder / "manifest.json")
    return model, name, entries[name], scheme


# the columns of the mrl table of ``resm compare`` (resm.compare.mrl)
MRL_COLUMNS = (
    *BACKEND_COLUMNS,
    ("r2", "test R²"),
    ("spearman", "test Spearman"),
    ("val_r2", "val R²"),
    ("embed_s", "embed s (test)"),
    ("train_s", "head train s"),
)


TASK = TaskSpec(
    "mrl",
    MRLTask,
    SEQUENCE_KEYS,
    head="mrl",
    config="mrl",
    joint=True,
    predict="resm.predict:predict_mrl",
    compare=CompareSpec(
        run="resm.compare.mrl:run_backend",
        load="resm.compare.mrl:load",
        sections=(("mrl", "resm.compare.mrl:MRLSection", True),),
        columns=MRL_COLUMNS,
        csv="results_mrl.csv",
        report="resm.compare.mrl:report",
    ),
    order=30,
)
