"""Key conversion between fair-esm and Hugging Face ``EsmForMaskedLM`` state dicts.

resm's backbone uses fair-esm's parameter names, so a fair-esm checkpoint only loses its
``encoder.``/``encoder.sentence_encoder.`` prefixes; a Hugging Face folder is renamed here.
"""

from __future__ import annotations

import re

import torch

from .config import ESM2Config, flag, layer_norm_eps, positive_int

Tensor = torch.Tensor

# (fair-esm name inside layer i, Hugging Face name inside layer i)
LAYER_KEYS = [
    ("self_attn.q_proj", "attention.self.query"),
    ("self_attn.k_proj", "attention.self.key"),
    ("self_attn.v_proj", "attention.self.value"),
    ("self_attn.out_proj", "attention.output.dense"),
    ("self_attn_layer_norm", "attention.LayerNorm"),
    ("fc1", "intermediate.dense"),
    ("fc2", "output.dense"),
    ("final_layer_norm", "LayerNorm"),
]
_GLOBAL_KEYS = [
    ("embed_tokens.weight", "esm.embeddings.word_embeddings.weight"),
    ("emb_layer_norm_after.weight", "esm.encoder.emb_layer_norm_after.weight"),
    ("emb_layer_norm_after.bias", "esm.encoder.emb_layer_norm_after.bias"),
    ("lm_head.dense.weight", "lm_head.dense.weight"),
    ("lm_head.dense.bias", "lm_head.dense.bias"),
    ("lm_head.layer_norm.weight", "lm_head.layer_norm.weight"),
    ("lm_head.layer_norm.bias", "lm_head.layer_norm.bias"),
    ("lm_head.bias", "lm_head.bias"),
    ("contact_head.regression.weight", "esm.contact_head.regression.weight"),
    ("contact_head.regression.bias", "esm.contact_head.regression.bias"),
]

_FAIR_PREFIX = re.compile(r"^(encoder\.sentence_encoder\.|encoder\.)")


def strip_fair_prefixes(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """fair-esm checkpoint keys (``encoder.sentence_encoder.layers...``) -> module keys."""
    return {_FAIR_PREFIX.sub("", k): v for k, v in state.items()}


def add_fair_prefixes(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Module keys -> the key layout of fair-esm's released ``.pt`` files."""
    out = {}
    for k, v in state.items():
        if k.startswith(("lm_head.", "contact_head.")):
            out["encoder." + k] = v
        else:
            out["encoder.sentence_encoder." + k] = v
    return out


def normalise_hf_names(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drop rotary buffers (recomputed) and accept LayerNorm ``gamma``/``beta`` names, which
    older checkpoints and some transformers releases write instead of ``weight``/``bias``."""
    out = {}
    for k, v in state.items():
        if k.endswith("rotary_embeddings.inv_freq"):
            continue
        if "LayerNorm" in k or "layer_norm" in k:
            k = re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", k))
        out[k] = v
    return out


def _layer_keys(i: int) -> list[tuple[str, str]]:
    """``(fair-esm name, Hugging Face name)`` of every weight and bias of layer ``i``."""
    return [
        (f"layers.{i}.{fair}.{p}", f"esm.encoder.layer.{i}.{hf}.{p}")
        for fair, hf in LAYER_KEYS
        for p in ("weight", "bias")
    ]


def hf_to_fair(state: dict[str, Tensor], num_layers: int) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for fair, hf in _GLOBAL_KEYS:
        if hf in state:
            out[fair] = state[hf]
    for i in range(num_layers):
        for fair, hf in _layer_keys(i):
            if hf in state:
                out[fair] = state[hf]
    if "lm_head.weight" not in out:
        out["lm_head.weight"] = state.get("lm_head.decoder.weight", out.get("embed_tokens.weight"))
    return out


def fair_to_hf(state: dict[str, Tensor], num_layers: int) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for fair, hf in _GLOBAL_KEYS:
        if fair in state:
            out[hf] = state[fair]
    for i in range(num_layers):
        for fair, hf in _layer_keys(i):
            out[hf] = state[fair]
        out[f"esm.encoder.layer.{i}.attention.self.rotary_embeddings.inv_freq"] = state[
            f"layers.{i}.self_attn.rot_emb.inv_freq"
        ]
    out["lm_head.decoder.weight"] = state["lm_head.weight"]
    return out


def hf_keys(num_layers: int) -> set:
    """Every weight name an ``EsmForMaskedLM`` of ``num_layers`` layers may hold."""
    keys = {hf for _, hf in _GLOBAL_KEYS} | {"lm_head.decoder.weight"}
    for i in range(num_layers):
        keys |= {hf for _, hf in _layer_keys(i)}
    return keys


def hf_config(cfg: ESM2Config) -> dict:
    """config.json of an ``EsmForMaskedLM`` with this architecture."""
    return {
        "architectures": ["EsmForMaskedLM"],
        "model_type": "esm",
        "attention_probs_dropout_prob": 0.0,
        "hidden_dropout_prob": 0.0,
        "hidden_act": "gelu",
        "hidden_size": cfg.embed_dim,
        "intermediate_size": cfg.ffn_dim,
        "num_attention_heads": cfg.attention_heads,
        "num_hidden_layers": cfg.num_layers,
        "layer_norm_eps": cfg.layer_norm_eps,
        "vocab_size": cfg.vocab_size,
        "max_position_embeddings": 1026,
        "position_embedding_type": "rotary",
        "token_dropout": cfg.token_dropout,
        "emb_layer_norm_before": False,
        "mask_token_id": 32,
        "pad_token_id": 1,
        "is_folding_model": False,
        "initializer_range": 0.02,
        "use_cache": True,
        "torch_dtype": "float32",
    }


def config_from_hf(cfg: dict) -> ESM2Config:
    """The architecture of a Hugging Face ``config.json`` (read as JSON); a ValueError naming
    the key when it is no ESM-2 config or a value has the wrong type or range."""
    if not isinstance(cfg, dict):
        raise ValueError(f"expected a JSON object, got {type(cfg).__name__}")
    if cfg.get("model_type") not in (None, "esm"):
        raise ValueError(f"model_type {cfg.get('model_type')!r} is not an ESM model")
    if cfg.get("position_embedding_type", "rotary") != "rotary":
        raise ValueError("only rotary (ESM-2) models are supported, not ESM-1b/absolute positions")
    if cfg.get("emb_layer_norm_before"):
        raise ValueError("emb_layer_norm_before models (ESM-1b) are not supported")
    for key in ("num_hidden_layers", "hidden_size", "num_attention_heads"):
        if key not in cfg:
            raise ValueError(f"no {key!r}")
    # what resm's ESM-2 computes with, whatever the file says: another activation or token ids
    # gave a model that runs as the file does not describe it
    from ..alphabet import ALPHABET

    for key, value in (
        ("hidden_act", "gelu"),
        ("mask_token_id", ALPHABET.mask_idx),
        ("pad_token_id", ALPHABET.padding_idx),
    ):
        if cfg.get(key) is not None and cfg[key] != value:
            raise ValueError(f"{key} {cfg[key]!r} is not ESM-2's {value!r}")
    return ESM2Config(
        num_layers=positive_int(cfg["num_hidden_layers"], "num_hidden_layers"),
        embed_dim=positive_int(cfg["hidden_size"], "hidden_size"),
        attention_heads=positive_int(cfg["num_attention_heads"], "num_attention_heads"),
        token_dropout=flag(cfg.get("token_dropout", True), "token_dropout"),
        vocab_size=positive_int(cfg.get("vocab_size", 33), "vocab_size"),
        layer_norm_eps=layer_norm_eps(cfg.get("layer_norm_eps", 1e-5)),
    )


def _fast_tokenizer(replacements: dict[str, str]) -> dict:
    """tokenizer.json (the ``tokenizers`` library's format) of ESM-2's 33 tokens that first
    replaces raw RNA letters by the scheme's protein letters, then reads one token per
    character; ``<cls>``/``<eos>`` around a sequence, as ``EsmTokenizer`` does."""
    from ..alphabet import ALPHABET

    special = ["<cls>", "<pad>", "<eos>", "<unk>", "<mask>"]
    idx = ALPHABET.tok_to_idx
    added = [
        {
            "id": idx[t],
            "content": t,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for t in special
    ]
    rules = [{"type": "Replace", "pattern": {"String": a}, "content": b} for a, b in sorted(replacements.items())]

    def seq(name, type_id=0):
        return {"Sequence": {"id": name, "type_id": type_id}}

    def tok(name, type_id=0):
        return {"SpecialToken": {"id": name, "type_id": type_id}}

    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": rules},
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "WhitespaceSplit"},
                {"type": "Split", "pattern": {"Regex": "."}, "behavior": "Isolated", "invert": False},
            ],
        },
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [tok("<cls>"), seq("A"), tok("<eos>")],
            "pair": [tok("<cls>"), seq("A"), tok("<eos>"), seq("B", 1), tok("<eos>", 1)],
            "special_tokens": {t: {"id": t, "ids": [idx[t]], "tokens": [t]} for t in ("<cls>", "<eos>")},
        },
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": dict(idx), "unk_token": "<unk>"},
    }


def hf_tokenizer_files(replacements: dict[str, str] | None = None) -> dict[str, str]:
    """File name -> text of the tokenizer of an ESM-2 Hugging Face folder, so that
    ``transformers.AutoTokenizer.from_pretrained(folder)`` works on a folder resm wrote.

    Without ``replacements`` (a protein or context scheme): ``EsmTokenizer``, ESM-2's 33 tokens
    in id order, reading protein letters. With them (a single-letter RNA scheme,
    ``Scheme.rna_replacements``): a fast tokenizer (``tokenizer.json``) over the same ids that
    maps raw RNA letters (A, C, G, U, T, either case) to the scheme's letters first, so RNA and
    already-mapped text both tokenize right; other letters are read as protein letters."""
    import json

    from ..alphabet import ALPHABET

    special = {
        "cls_token": "<cls>",
        "pad_token": "<pad>",
        "eos_token": "<eos>",
        "unk_token": "<unk>",
        "mask_token": "<mask>",
    }
    cls = "PreTrainedTokenizerFast" if replacements else "EsmTokenizer"
    config = {"tokenizer_class": cls, "model_max_length": 1026, "clean_up_tokenization_spaces": True, **special}
    files = {
        "vocab.txt": "".join(t + "\n" for t in ALPHABET.all_toks),
        "tokenizer_config.json": json.dumps(config, indent=2) + "\n",
        "special_tokens_map.json": json.dumps(special, indent=2) + "\n",
    }
    if replacements:
        files["tokenizer.json"] = json.dumps(_fast_tokenizer(replacements), indent=2) + "\n"
    return files
