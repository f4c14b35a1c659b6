"""Configs: YAML files with ``key.sub=value`` overrides, and the one validator of their sections.

* :func:`load_config` reads a YAML file, applies command-line overrides and expands
  ``{data_dir}`` (:func:`default_data_dir`), remembering which strings it expanded and where
  the folder came from in an entry of the config (:data:`DATA_DIR_ORIGIN`, which every copy
  keeps and :func:`config_sections` leaves out of what is validated and written):
  :func:`check_inputs_outside`, run by every training command and ``resm compare`` before any
  work, says a missing data file with both;
  a data file named as given (a key of :data:`INPUT_FILE_KEYS`) that is missing is refused
  there too, naming the key.
* :func:`find_config` finds a config by path or by the name of one shipped with the package
  (``--config structure``: ``configs/finetune/structure.yaml``; ``train.deepspeed_config=zero2``:
  ``configs/deepspeed/zero2.json``), from any working directory.
* :func:`from_dict` turns one section (a mapping) into its dataclass. Every config section of
  the package goes through it: pretraining, every fine-tuning task and the comparison harness.
  An unknown key is a one-line :class:`ConfigError` naming ``section`` and the key; each value
  is coerced to the type its dataclass field declares (``optim.lr=1e-3`` arrives from YAML as
  the string ``"1e-3"`` and becomes a float; ``train.max_steps=abc`` is
  ``train.max_steps: expected an integer, got 'abc'``). Range checks stay on the dataclasses
  (``__post_init__``); a ``ValueError`` they raise is reported as ``section: message``.
  A key naming a file or a folder is declared :data:`PathText`: it takes a string only
  (``out_dir: 3`` is ``out_dir: expected a path, got 3``, never a folder named ``3``), and
  so does ``data_dir`` in every config (:func:`load_config`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import numbers
import os
import re
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ConfigError",
    "from_dict",
    "options",
    "flag",
    "keyword",
    "StoredConfig",
    "check_embed_dim",
    "check_sizes",
    "check_kernel",
    "check_dropout",
    "coerce",
    "PathText",
    "check_device",
    "load_config",
    "DATA_DIR_ORIGIN",
    "config_sections",
    "data_dir_origin",
    "apply_override",
    "default_data_dir",
    "find_config",
    "CONFIG_KINDS",
    "format_version_problem",
]


class ConfigError(ValueError):
    """A bad or mismatched configuration (reported in one line)."""


class UsageError(ValueError):
    """A command line wrong whatever the files it names: no mode picked, an option its mode
    needs left out, options that do not go together (``resm interact --probe`` without
    ``--zero-shot``), a value the option cannot take (``-`` where standard input is not read).
    The command line says it in one line with exit code 2, as argparse's own errors
    (:mod:`resm.cli`); the Python API sees a ValueError. What the files decide (a bad record, an option the model
    file refuses, as a pair-head model refuses ``--threshold``) is another error, exit code 1."""


# ----------------------------------------------------------------------------- validation
UNIT_RULE = "must be a number in [0, 1]"
"""What a probability setting must be (``resm fold --threshold`` and ``--bpp-min``; the API's
``Predictor.fold(threshold=)`` and ``Folded.sparse(min_p=)``), as errors say it (``..., got
VALUE`` follows)."""


def unit_ok(v) -> bool:
    """``v`` keeps :data:`UNIT_RULE`: a real number in [0, 1] (not NaN; not a bool, which the
    API may be handed)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and 0 <= v <= 1


# a config key naming a file or a folder (a dataclass field's type, read by :func:`coerce`): a
# string as given, where ``str`` writes a number out (``out_dir: 3`` would be a folder ``3``)
PathText = typing.NewType("PathText", str)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def coerce(tp: Any, value: Any, where: str) -> Any:
    """``value`` as type ``tp`` (a field annotation), or a :class:`ConfigError` naming ``where``.

    int: an integer or a string of one; float: a finite number or a string of one (YAML reads
    ``1e-3`` as a string); bool: true or false only; str: a string (numbers are written out);
    :data:`PathText` (a file or a folder): a string only;
    ``Optional[T]``: null or a T; ``List[T]`` / ``Tuple[T, ...]`` / ``tuple`` / ``list``: a
    list or tuple, item by item; ``Dict``: a mapping; anything else is passed through.
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        arms = [a for a in args if a is not type(None)]
        if value is None:
            if len(arms) < len(args):
                return None
            raise ConfigError(f"{where}: a value is required, got null")
        errors = []
        for arm in arms:
            try:
                return coerce(arm, value, where)
            except ConfigError as e:
                errors.append(e)
        raise errors[0]
    if tp is Any or tp is object:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp in (int, float):
        got = None
        if _is_number(value) and (tp is float or isinstance(value, int)):
            got = tp(value)
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                got = tp(value.strip())
        if got is None:
            raise ConfigError(f"{where}: expected {'an integer' if tp is int else 'a number'}, got {value!r}")
        if tp is float and not math.isfinite(got):  # no setting is a NaN or an infinity (.nan passes "<= 0")
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return got
    if tp is PathText:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a path, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if _is_number(value):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    container = origin or tp
    if container in (list, tuple, list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if container is tuple and len(args) == 2 and args[1] is Ellipsis:
            item_types = [args[0]] * len(value)
        elif container is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected a list of {len(args)} values, got {value!r}")
            item_types = list(args)
        else:
            item_types = [args[0] if args else Any] * len(value)
        items = [coerce(t, v, f"{where}[{k}]") for k, (t, v) in enumerate(zip(item_types, value))]
        return tuple(items) if container is tuple else items
    if container in (dict, dict, Mapping):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return value


def from_dict(
    cls,
    d: Mapping[str, Any] | None,
    where: str,
    *,
    fixed: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
):
    """Build dataclass ``cls`` from the config section ``d`` (None: all defaults).

    ``where`` names the section in messages (``"train"``, ``"rri.head"``). ``fixed`` maps
    fields the config may not set to the reason (they come from elsewhere, e.g. a head's
    ``embed_dim`` from the backbone); ``extra`` supplies such values. Unknown keys, values
    that do not fit their field's type and ``ValueError``s of the dataclass itself are one-line
    :class:`ConfigError`\\ s naming the section (and the key)."""
    if d is None:
        d = {}
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {d!r}")
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    fixed = dict(fixed or {})
    for k in d:
        if k in fixed:
            raise ConfigError(f"{where}.{k} cannot be set here ({fixed[k]})")
        if k not in names:
            known = ", ".join(n for n in names if n not in fixed)
            raise ConfigError(f"{where}: unknown key {k!r}; known: {known}")
    hints = typing.get_type_hints(cls)
    values = {k: coerce(hints.get(k, Any), v, f"{where}.{k}") for k, v in d.items()}
    values.update(extra or {})
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None


def options(cls, values, renamed: Mapping[str, str] | None = None):
    """The keyword-only options dataclass ``cls`` of a command (e.g.
    :class:`resm.structure.pipeline.FoldOptions`), built the same way from the command line and
    from the Python API: each field takes the entry of ``values`` (a mapping, or an
    ``argparse.Namespace``) of its name, or of the name ``renamed`` gives it; fields without an
    entry keep their defaults, and entries that are no field are ignored (a command line holds
    more than one command's options)."""
    if not isinstance(values, Mapping):
        values = vars(values)
    renamed = dict(renamed or {})
    got = {}
    for f in dataclasses.fields(cls):
        key = renamed.get(f.name, f.name)
        if f.init and key in values:
            got[f.name] = values[key]
    return cls(**got)


def check_switches(given: Mapping[str, object]) -> None:
    """Keywords of the Python API that turn something on or off (``nested``, ``noncanonical``,
    ``no_lp``, ``progress``, ``trust``): each True or False (a numpy bool too), else a one-line
    TypeError naming the keyword (``nested=3`` or ``nested="no"`` was read as true, silently).
    The command line's switches are argparse flags, always bools."""
    for key, value in given.items():
        if isinstance(value, bool):
            continue
        dtype = getattr(value, "dtype", None)  # numpy.bool_ (numpy is not imported here)
        if getattr(dtype, "kind", None) == "b" and getattr(value, "shape", None) == ():
            continue
        raise TypeError(f"{key}: expected True or False, got {value!r}")


def flag(key: str) -> str:
    """How the command line names option ``key`` (a field of an options dataclass, or the
    argparse dest of its flag) in its errors: ``turner_scale`` -> ``--turner-scale``. A check
    the command line and the Python API share takes the namer to report with, this one or
    :func:`keyword`."""
    return "--" + key.replace("_", "-")


def keyword(key: str) -> str:
    """How the Python API names option ``key`` in its errors: the keyword argument itself
    (``turner_scale``); the command line's namer is :func:`flag`."""
    return key


def first_given(values: Mapping[str, object]) -> str | None:
    """The first key of ``values`` (option -> value; None: not given, the default of an option
    that only shapes another's output or input) that was given, or None: the option a check
    refuses when the option it comes with is absent (``resm fold --dpi 300`` without ``--plot``,
    ``resm interact --probe P`` without ``--zero-shot``), where it was passed over in silence."""
    return next((key for key, value in values.items() if value is not None), None)


class StoredConfig:
    """What a config dataclass stored in a model file shares (every head's config, e.g.
    :class:`resm.heads.pairs.PairHeadConfig`): :meth:`to_dict` for the file, and
    :meth:`from_dict` to read the stored entry back (through :func:`options`: keys that are no
    field are passed over), each value held to its field's type by :func:`coerce`, as a
    config's are: a file's ``embed_window: true`` or ``max_length: 40.5`` is a
    :class:`ConfigError` naming the key, where it was read as the number 1 or a fraction and
    changed every prediction without a word."""

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, object]):
        if not isinstance(d, Mapping):
            raise ConfigError(f"expected a mapping of settings, got {type(d).__name__}")
        hints = typing.get_type_hints(cls)
        return options(cls, {k: coerce(hints[k], v, str(k)) if k in hints else v for k, v in d.items()})

    @classmethod
    def from_saved(cls, d: Mapping[str, object], embed_dim: int | None = None):
        """A head's config as a model file stores it, held to the rules of a training config's
        ``head`` section (:func:`from_dict`): a key that is no field or a value out of its
        field's range (hand-edited, damaged) is a :class:`ConfigError` naming ``config`` and the
        key, where :meth:`from_dict` passed an unknown key over. ``embed_dim`` is the encoder's:
        a file may repeat it (a structure model's does), not set another."""
        if embed_dim is None:
            return from_dict(cls, d, "config")
        if isinstance(d, Mapping) and d.get("embed_dim") == embed_dim:
            d = {k: v for k, v in d.items() if k != "embed_dim"}
        fixed = {"embed_dim": "taken from the encoder"}
        return from_dict(cls, d, "config", fixed=fixed, extra={"embed_dim": embed_dim})


def check_embed_dim(embed_dim: int) -> None:
    """The rule of a head config's ``embed_dim`` (filled in from the encoder): >= 1; else a
    ValueError."""
    if embed_dim < 1:
        raise ValueError("embed_dim must be >= 1")


def check_sizes(cfg: Any, keys: Sequence[str]) -> None:
    """The rule of a head config's sizes (widths, counts) ``keys`` of ``cfg``: each in
    [1, 2**31 - 1] (0 or less crashed building the model; past 2**63 torch took no such size,
    a TypeError said as unexpected); else a ValueError naming the first that is not."""
    for k in keys:
        if getattr(cfg, k) < 1:
            raise ValueError(f"{k} must be >= 1, got {getattr(cfg, k)}")
        if getattr(cfg, k) >= 2**31:
            raise ValueError(f"{k} must be <= 2**31 - 1, got {getattr(cfg, k)}")


def check_kernel(kernel: int) -> None:
    """The rule of a head config's convolution width ``kernel``: odd and positive (-1 is odd,
    and crashed building the convolutions); else a ValueError."""
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel must be odd and positive, got {kernel}")


def check_dropout(dropout: float) -> None:
    """The rule of a head config's ``dropout`` rate: in [0, 1) (NaN fails too); else a ValueError."""
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


def check_device(name: str, key: str) -> str:
    """``name`` if it is ``auto``, the CPU or a CUDA device (and CUDA is present for a cuda one);
    else a ConfigError naming ``key``. Another device torch can name (``meta``, ``mps``, ``xpu``)
    is refused as unknown to resm: it was taken, and the command failed once at work with
    torch's words ('Tensor.item() cannot be called on meta tensors', 'PyTorch is not linked with
    support for mps devices'), said as unexpected."""
    if name == "auto":
        return name
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"{key}: unknown device {name!r} (auto, cpu, cuda or cuda:N)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key}: {name!r} asked for, but CUDA is not available here")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"{key}: {name!r} asked for, but there are {torch.cuda.device_count()} CUDA devices")
    return name


# ----------------------------------------------------------------------------- files
def default_data_dir() -> str:
    """``$RESM_DATA``, else ``../shared/data`` (the development layout). An empty ``RESM_DATA``
    is unset, as most tools read an empty variable (``RESM_DATA= resm evaluate`` clears it): it
    was the current folder, where the data sets were then looked for."""
    return os.environ.get("RESM_DATA") or "../shared/data"


def apply_override(cfg: dict[str, Any], item: str) -> None:
    """Apply one ``section.key=value`` override (the value is read as YAML)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not key=value")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(p.strip() for p in parts):
        raise ConfigError(f"override {item!r}: {key!r} is not a key (section.key)")
    try:
        value = yaml.load(raw, Loader=_UniqueKeyLoader) if raw != "" else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: the value is not valid YAML ({_first_line(e)})") from None
    except RecursionError:
        raise ConfigError(f"override {item!r}: the value is not valid YAML (nested too deeply)") from None
    node = cfg
    for p in parts[:-1]:
        if not isinstance(node.setdefault(p, {}), dict):
            raise ConfigError(f"override {item!r}: {p} is not a section")
        node = node[p]
    node[parts[-1]] = value


def _first_line(e: BaseException) -> str:
    """A YAML error in a few words: where, and what is wrong."""
    mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
    if mark is not None and problem:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return " ".join(str(e).split())[:160] or type(e).__name__


def _substitute(x: Any, data_dir: str) -> Any:
    if isinstance(x, str):
        return x.replace("{data_dir}", data_dir)
    if isinstance(x, list):
        return [_substitute(v, data_dir) for v in x]
    if isinstance(x, dict):
        return {k: _substitute(v, data_dir) for k, v in x.items()}
    return x


def _named_paths(x: Any, key: str) -> Iterator[tuple[str, str]]:
    """``(key, text)`` for every string of a config, lists and mappings walked (``data.train[1].file``)."""
    if isinstance(x, str):
        yield key, x
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _named_paths(v, f"{key}[{i}]")
    elif isinstance(x, dict):
        for k, v in x.items():
            yield from _named_paths(v, f"{key}.{k}" if key else str(k))


DATA_DIR_ORIGIN = "_data_dir_origin"
"""The entry :func:`load_config` adds to the config it returns: where its data folder came from
(``source``: ``$RESM_DATA``, the config's ``data_dir``, ...) and which of its strings were
written with ``{data_dir}`` (``templated``: keys as ``data.train[0]``), so that a missing data
file is said with the folder's origin (:func:`check_inputs_outside`). An entry of the mapping,
plain strings, it survives every copy (``dict(cfg)``, ``copy.deepcopy``, a JSON round trip);
:func:`config_sections` leaves it out of what is validated and written."""


def config_sections(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` without :data:`DATA_DIR_ORIGIN`: the sections a validator checks and a run
    writes (its ``config.json``)."""
    return {k: v for k, v in cfg.items() if k != DATA_DIR_ORIGIN}


def data_dir_origin(cfg: Mapping[str, Any]) -> tuple[str, frozenset]:
    """``(where the data folder came from, keys written with {data_dir})`` of a config from
    :func:`load_config` (``("", frozenset())`` for one built otherwise)."""
    origin = cfg.get(DATA_DIR_ORIGIN)
    if not isinstance(origin, Mapping):
        return "", frozenset()
    return str(origin.get("source") or ""), frozenset(origin.get("templated") or ())


INPUT_FILE_KEYS = frozenset({"train", "val", "test", "families", "split", "clusters", "file", "val_sets"})
"""Names of the config keys that hold data files a run reads (at any depth: ``data.train[0]``,
``tasks.rri.data.val``, ``data.train[1].file``, ``data.val_sets.vl1``): each must exist before
any work (:func:`_missing_inputs`). Model and checkpoint keys are not among them: they also take
names (``default``, ``random:small``, a hub id)."""


def _is_input_file(key: str) -> bool:
    names = [n for n in re.sub(r"\[\d+\]", "", key).split(".") if n]
    return bool(names) and (names[-1] in INPUT_FILE_KEYS or "val_sets" in names[:-1])


def _missing_inputs(cfg: dict[str, Any], named: list[tuple[str, str]], optional: Sequence[str] = ()) -> None:
    """Refuse, naming the key and the path, a data file that does not exist: one named by a key
    of :data:`INPUT_FILE_KEYS`, or any string written with ``{data_dir}`` (:data:`DATA_DIR_ORIGIN`),
    which the error says with where the data folder came from and how to set it (the folder
    unset or wrong). Such a file was found only once reading started, after the progress bars.
    Keys in the sections ``optional`` are left to their reader (``resm compare`` skips a
    backend whose weights are missing)."""
    from .utils.paths import no_such

    source, templated = data_dir_origin(cfg)
    for key, text in named:
        if not text or "cache" in key.lower() or (key not in templated and not _is_input_file(key)):
            continue
        if re.split(r"[.\[]", key, maxsplit=1)[0] in optional:
            continue
        try:
            if os.path.exists(text):
                continue
        except (OSError, ValueError):  # a NUL byte: the reader says it
            continue
        where = ""
        if key in templated:
            data_dir = str(cfg.get("data_dir") or "")
            source = source or "data_dir"
            gone = "" if os.path.isdir(data_dir) else " and does not exist"
            how = "give data_dir=DIR" if "data_dir" in source else "set RESM_DATA or give data_dir=DIR"
            where = f" (the data folder {data_dir} is {source}{gone}; {how})"
        raise ConfigError(f"{key}: {text}: {no_such(text, 'file')}{where}")


def check_inputs_outside(
    cfg: dict[str, Any], folder: str | os.PathLike, what: str, files: dict | None = None, optional: Sequence[str] = ()
) -> None:
    """Refuse, naming the key, a config whose inputs lie in ``folder`` (the ``what`` key, a run
    folder the run fills with its config, log, checkpoints and model, which would replace
    them): every string of ``cfg`` that names an existing file or folder (as given, or under
    ``data_dir``), and ``files`` (``{label: path}``, e.g. the config file itself). Keys
    naming ``folder`` itself, ``data_dir`` and caches (written to, never replaced) are
    skipped. First, a data file that does not exist is refused (:func:`_missing_inputs`),
    with where the data folder came from when it was written with ``{data_dir}``, except in the
    sections ``optional``."""
    sections = config_sections(cfg)
    named = [(k, t) for k, t in _named_paths(sections, "") if k != what and k != "data_dir"]
    _missing_inputs(cfg, named, optional)
    root = os.path.realpath(folder)
    data_dir = str(cfg.get("data_dir") or "")
    named = list(_named_paths({k: v for k, v in sections.items() if k != "data_dir"}, ""))
    named += [(label, os.fspath(p)) for label, p in (files or {}).items() if p is not None]
    for key, text in named:
        if key == what or "cache" in key.lower() or not text or "\n" in text or len(text) > 4096:
            continue
        for p in (text, os.path.join(data_dir, text)) if data_dir else (text,):
            try:
                if not os.path.lexists(p):
                    continue
            except (OSError, ValueError):
                continue
            real = os.path.realpath(p)
            if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
                raise ConfigError(
                    f"{key}: {p} lies in {what} {folder}, which the run writes into; an output may not "
                    f"replace an input (give another {what})"
                )
            break


YAML_MAX_VALUES = 100_000  # values a config may expand to through its aliases (*name)


def _expanded_size(node, seen: dict, limit: int) -> int:
    """How many values ``node`` stands for once its aliases are expanded (more than ``limit``
    for a recursive one), counted without expanding them."""
    if id(node) in seen:
        return seen[id(node)]
    seen[id(node)] = limit + 1  # met again before it is counted: a recursive alias
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    else:
        children = []
    total = 1
    for child in children:
        total += _expanded_size(child, seen, limit)
        if total > limit:
            break
    seen[id(node)] = total
    return total


def format_version_problem(version: Any, reads: int) -> str | None:
    """What keeps a reader of format versions 1 to ``reads`` from reading a file that records
    ``version`` (its ``"version"`` entry; absent, None: the first), or None when it reads it.
    Every resm file that records a format version is held to this rule (structure models,
    probe records, bundle manifests, non-canonical scorers, trainer states): a newer file was
    read as if current, its new entries passed over."""
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return f"its format version is {version!r}, not a whole number from 1"
    if version > reads:
        return f"written by a newer resm (format version {version}; this resm reads up to {reads})"
    return None


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last
    in silence, so a setting written twice would be half ignored), and a document whose
    aliases expand past :data:`YAML_MAX_VALUES` values (nine nested lists of nine aliases are
    387 million values: reading the config ran out of memory) or into themselves."""

    def get_single_data(self):
        node = self.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}, YAML_MAX_VALUES) > YAML_MAX_VALUES:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"its aliases expand to more than {YAML_MAX_VALUES:,} values, or into themselves",
                node.start_mark,
            )
        return self.construct_document(node)

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<': merged keys may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} given twice (first on line {seen[key]})", key_node.start_mark
                    )
                seen[key] = key_node.start_mark.line + 1
            except TypeError:  # an unhashable key: PyYAML's own error follows
                break
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | os.PathLike, overrides: list[str] = ()) -> dict[str, Any]:
    """Read a YAML config, apply overrides, and expand ``{data_dir}`` in strings (``data_dir``:
    a path, :data:`PathText`; null or empty: :func:`default_data_dir`), recording where the
    folder came from and what was expanded in :data:`DATA_DIR_ORIGIN` (one the file gives is
    replaced)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; --config takes a YAML file")
    try:
        cfg = yaml.load(path.read_text(encoding="utf-8-sig"), Loader=_UniqueKeyLoader) or {}
    except FileNotFoundError:
        from .utils.paths import no_such

        raise ConfigError(f"{path}: {no_such(path, 'config file')}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({_first_line(e)})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML (nested too deeply)") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections")
    given = cfg.get("data_dir")
    for item in overrides:
        apply_override(cfg, item)
    data_dir = coerce(PathText | None, cfg.pop("data_dir", None), "data_dir")
    if data_dir:
        source = "the config's data_dir" if data_dir == given else "data_dir= on the command line"
    else:
        source = "$RESM_DATA" if os.environ.get("RESM_DATA") else "the default (RESM_DATA is unset)"
        data_dir = default_data_dir()
    cfg = config_sections(cfg)
    templated = sorted(k for k, t in _named_paths(cfg, "") if "{data_dir}" in t)
    cfg = _substitute(cfg, data_dir)
    cfg["data_dir"] = data_dir
    cfg[DATA_DIR_ORIGIN] = {"source": source, "templated": templated}
    return cfg


# ----------------------------------------------------------------------------- shipped configs
CONFIG_KINDS = {"pretrain": ".yaml", "finetune": ".yaml", "compare": ".yaml", "deepspeed": ".json"}


def _config_roots() -> list[Path]:
    """Where shipped configs live: the package data ``resm._configs`` (an installed package),
    and the repository's ``configs/`` folder beside the package (a source checkout)."""
    roots = []
    try:
        from importlib import resources

        roots.append(Path(str(resources.files("resm._configs"))))
    except (ModuleNotFoundError, TypeError):
        pass
    roots.append(Path(__file__).resolve().parents[1] / "configs")
    return [r for r in roots if r.is_dir()]


def find_config(spec: str | os.PathLike, kind: str) -> Path:
    """The config file ``spec`` names: a path that exists, else a shipped config of ``kind``
    (a folder of ``configs/``: pretrain, finetune, compare, deepspeed) given by name
    (``structure``, ``zero2.json``) or by its path in the repository (``configs/deepspeed/zero2.json``).
    A ConfigError lists the shipped ones otherwise."""
    ext = CONFIG_KINDS[kind]
    p = Path(spec).expanduser()
    if p.is_file():
        return p
    parts = [x for x in p.parts if x not in (".", "configs")]
    if parts[:1] == [kind]:
        parts = parts[1:]
    rel = Path(*parts) if parts else Path(str(spec))
    if not rel.suffix:
        rel = rel.with_suffix(ext)
    roots = _config_roots()
    for root in roots:
        if (root / kind / rel).is_file():
            return root / kind / rel
    if p.is_dir():
        raise ConfigError(f"{spec}: is a folder, not a config file")
    if p.exists():  # /dev/zero, a pipe, a socket: there, but no file to read a config from
        raise ConfigError(f"{spec}: is not a regular file (a device or a pipe), not a config file")
    from .utils.paths import broken_link

    if (why := broken_link(p)) is not None:  # a link to nothing: no shipped config is meant
        raise ConfigError(f"{spec}: {why}")
    raise ConfigError(
        f"{spec}: no such config file, nor a shipped {kind} config of that name "
        f"(shipped: {', '.join(shipped_configs(kind)) or 'none'})"
    )


def shipped_configs(kind: str) -> list[str]:
    """The names of the shipped configs of ``kind`` (what ``--config NAME`` finds), sorted."""
    return sorted({f.stem for r in _config_roots() for f in (r / kind).glob(f"*{CONFIG_KINDS[kind]}")})
