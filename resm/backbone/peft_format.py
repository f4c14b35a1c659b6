"""LoRA adapters in PEFT's own on-disk format, so they move between resm and the Hugging Face
ecosystem.

A PEFT adapter folder holds ``adapter_config.json`` (a ``peft.LoraConfig``) and
``adapter_model.safetensors``, whose keys name the modules of the model the adapter was made on:
here the Hugging Face ``EsmForMaskedLM`` that ``resm export --hf`` writes
(``base_model.model.esm.encoder.layer.0.attention.self.query.lora_A.weight``). resm's adapters
sit on the same Linear layers under fair-esm names (``layers.0.self_attn.q_proj``); this module
renames between the two, so that

* a bundle's adapter, written here as ``peft-<name>/``, loads with
  ``peft.PeftModel.from_pretrained(EsmForMaskedLM.from_pretrained(hf_export), "bundle/peft-<name>")``;
* an adapter folder trained with PEFT on that model loads into resm's backbone
  (:func:`load_peft_adapter`), for ``resm interact``/``resm predict --adapter DIR``.

Only what resm's adapters can express is read: plain LoRA (no DoRA, rsLoRA, per-module ranks,
bias or extra trained modules) on the attention and feed-forward Linears of whole layers;
anything else is a one-line error naming the file and field. Both files are JSON and
safetensors, so reading one runs no code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from ..utils.jsontext import load_json
from ..utils.paths import file_problem, no_such
from .adapters import (
    TARGETS,
    AdapterConfig,
    AdapterError,
    adapter_state_dict,
    add_adapter,
    load_adapter_state_dict,
    set_active_adapter,
    target_modules,
)
from .convert import LAYER_KEYS
from .esm2 import ESM2
from .load import non_finite

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
_PREFIX = "base_model.model."
# resm target -> the module inside a Hugging Face EsmLayer (the layer names' one home is
# resm.backbone.convert; the LoRA targets are its linear layers, not the layer norms)
_HF_MODULE = {fair.rpartition(".")[2]: hf for fair, hf in LAYER_KEYS if "norm" not in fair}
_HF_KEY = re.compile(r"^(?:base_model\.model\.)?esm\.encoder\.layer\.(\d+)\.(.+)\.(lora_[AB])\.weight$")
# fields of LoraConfig whose non-default values resm's adapters cannot honour
_UNSUPPORTED = {
    "use_dora": False,
    "use_rslora": False,
    "fan_in_fan_out": False,
    "modules_to_save": None,
    "rank_pattern": {},
    "alpha_pattern": {},
    "layer_replication": None,
    "lora_bias": False,
    "target_parameters": None,
    "trainable_token_indices": None,
}


# PEFT's numeric fields -> AdapterConfig's, with PEFT's defaults
_NUMBERS = (("r", "r", 8), ("lora_alpha", "alpha", 8), ("lora_dropout", "dropout", 0.0))


def _hf_module(resm_module: str) -> str:
    """``layers.3.self_attn.q_proj`` / ``layers.3.fc1`` -> the EsmForMaskedLM module name."""
    parts = resm_module.split(".")
    return f"esm.encoder.layer.{parts[1]}.{_HF_MODULE[parts[-1]]}"


def save_peft_adapter(folder, model: ESM2, name: str, cfg: AdapterConfig) -> Path:
    """Write adapter ``name`` of ``model`` as a PEFT adapter folder (written whole, atomically)
    for the Hugging Face export of the same backbone."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    from ..utils.io import atomic_dir

    targets = [_hf_module(m) for m in target_modules(model, cfg)]
    state = {}
    for key, value in adapter_state_dict(model, name).items():  # layers.0.self_attn.q_proj.lora_A.weight
        module, rest = key.split(".lora_", 1)
        state[f"{_PREFIX}{_hf_module(module)}.lora_{rest}"] = value.detach().cpu().contiguous()
    lcfg = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets, bias="none")
    folder = Path(folder)
    with atomic_dir(folder, replaces=lambda p: (p / CONFIG).is_file()) as tmp:
        lcfg.save_pretrained(str(tmp))
        # PEFT writes target_modules from a set, in an order that changes from one process to
        # the next: sorted, the same adapter makes the same file
        written = json.loads((tmp / CONFIG).read_text(encoding="utf-8"))
        written["target_modules"] = sorted(written["target_modules"])
        (tmp / CONFIG).write_text(json.dumps(written, indent=2, sort_keys=True), encoding="utf-8")
        save_file(state, str(tmp / WEIGHTS), metadata={"format": "pt"})
    return folder


def read_peft_adapter(folder) -> tuple[AdapterConfig, dict[str, torch.Tensor]]:
    """(resm adapter config, adapter tensors under resm's portable keys) of a PEFT LoRA folder."""
    folder = Path(folder)
    cfg_file, weights = folder / CONFIG, folder / WEIGHTS
    if not folder.is_dir():  # a file was 'no such PEFT adapter folder'
        there = f"is a file, not a PEFT adapter folder ({CONFIG} and {WEIGHTS})"
        raise AdapterError(f"{folder}: {there if folder.exists() else no_such(folder, 'PEFT adapter folder')}")
    for f in (cfg_file, weights):
        if not f.is_file():
            raise AdapterError(f"{f}: missing (a PEFT adapter folder holds {CONFIG} and {WEIGHTS})")
    try:
        pc = load_json(cfg_file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise AdapterError(f"{cfg_file}: not readable JSON ({e})") from None
    kind = pc.get("peft_type") if isinstance(pc, dict) else None
    if kind != "LORA":
        raise AdapterError(f"{cfg_file}: field 'peft_type' is {kind!r}; only LoRA adapters are read")
    if pc.get("bias", "none") != "none":
        raise AdapterError(f"{cfg_file}: field 'bias' is {pc['bias']!r}; resm's adapters train no biases (need 'none')")
    for k, default in _UNSUPPORTED.items():
        v = pc.get(k, default)
        if v is not None and v != default:
            raise AdapterError(f"{cfg_file}: field {k!r} is {pc[k]!r}; resm's LoRA supports only {default!r}")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if (problem := file_problem(weights)) is not None:
        raise AdapterError(f"{weights}: {problem}, not a safetensors file")
    try:
        raw = load_file(str(weights))
    except (SafetensorError, OSError) as e:
        raise AdapterError(f"{weights}: unreadable safetensors file ({e})") from None
    inverse = {v: k for k, v in _HF_MODULE.items()}
    state: dict[str, torch.Tensor] = {}
    layers, targets = set(), set()
    for key, value in raw.items():
        m = _HF_KEY.match(key.replace(".default.", "."))
        if not m or m.group(2) not in inverse:
            raise AdapterError(f"{weights}: weight {key!r} is not a LoRA of an ESM-2 attention or feed-forward layer")
        i, target, ab = int(m.group(1)), inverse[m.group(2)], m.group(3)
        layers.add(i)
        targets.add(target)
        attn = target in ("q_proj", "k_proj", "v_proj", "out_proj")
        module = f"layers.{i}.self_attn.{target}" if attn else f"layers.{i}.{target}"
        state[f"{module}.{ab}.weight"] = value
    if not state:
        raise AdapterError(f"{weights}: holds no LoRA weights")
    if (bad := non_finite(raw)) is not None:  # scored every pair NaN: 'Input contains NaN.', naming nothing
        raise AdapterError(f"{weights}: weight {bad} holds NaN or infinite values")
    per_module = {k.rsplit(".lora_", 1)[0] for k in state}
    if len(per_module) != len(layers) * len(targets):
        raise AdapterError(
            f"{weights}: the adapted modules are not the same in every adapted layer, which resm's adapters require"
        )
    values = {}
    for key, field_, default in _NUMBERS:  # r 4.5 was read as 4, lora_alpha true as 1.0, null was a traceback
        v = pc.get(key, default)
        whole = isinstance(v, int) or (isinstance(v, float) and v.is_integer() and field_ == "r")
        if isinstance(v, bool) or not (whole if field_ == "r" else isinstance(v, (int, float))):
            want = "a whole number" if field_ == "r" else "a number"
            raise AdapterError(f"{cfg_file}: field {key!r} is {v!r}; expected {want}")
        values[field_] = int(v) if field_ == "r" else float(v)
    for key, value in raw.items():  # lora_A is (r, in), lora_B (out, r): a field 'r' the weights do not have
        rank = value.shape[0 if key.endswith("lora_A.weight") else -1] if value.dim() == 2 else None
        if rank != values["r"]:
            shape = tuple(value.shape)
            raise AdapterError(
                f"{cfg_file}: field 'r' is {values['r']}, but {weights.name} holds {key} of shape {shape}"
            )
    try:
        cfg = AdapterConfig(**values, targets=[t for t in TARGETS if t in targets], layers=sorted(layers))
    except AdapterError as e:
        raise AdapterError(f"{cfg_file}: {e}") from None
    return cfg, state


def load_peft_adapter(folder, model: ESM2, name: str) -> AdapterConfig:
    """Inject adapter ``name`` into ``model`` from a PEFT LoRA folder, load it and make it active."""
    cfg, state = read_peft_adapter(folder)
    if cfg.layers and max(cfg.layers) >= len(model.layers):
        raise AdapterError(f"{folder}: adapts layer {max(cfg.layers)}, the backbone has {len(model.layers)}")
    add_adapter(model, name, cfg)
    try:
        load_adapter_state_dict(model, name, state)
    except AdapterError as e:
        raise AdapterError(f"{folder}: {e} (made for another backbone size?)") from None
    set_active_adapter(model, name)
    return cfg


def peft_folder_name(name: str) -> str:
    """The sub-folder of a bundle that holds adapter ``name`` in PEFT's format."""
    return f"peft-{name}"
