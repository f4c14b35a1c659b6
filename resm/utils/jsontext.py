"""Reading JSON text: :func:`load_json`, the one reader of every JSON file resm reads (bundle
manifests, probe records, trainer states, DeepSpeed configs, shard manifests, adapter and model
configs): ``json.loads`` that says a document nested too deep and an object naming one key
twice as a ``JSONDecodeError`` (a ValueError), which each reader names its file with."""

from __future__ import annotations

import json
import json.decoder
import json.scanner

__all__ = ["load_json"]


class _RepeatedKey(Exception):
    """A JSON object that names one key twice (found by :func:`_unique_pairs`)."""


def _unique_pairs(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _RepeatedKey
    return out


def _repeated_key_error(text: str | bytes) -> json.JSONDecodeError:
    """The error of a document an object of which names one key twice: parsed again with
    json's pure-Python scanner, whose object parser knows where each object starts, so the
    error names the key and the line of its object."""
    doc = text.decode(json.detect_encoding(text), "surrogatepass") if isinstance(text, bytes) else text
    decoder = json.JSONDecoder(object_pairs_hook=list)

    def parse_object(s_and_end, *args):
        pairs, end = json.decoder.JSONObject(s_and_end, *args)
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise json.JSONDecodeError(f"key {key!r} given twice in one object", s_and_end[0], s_and_end[1] - 1)
            seen.add(key)
        return pairs, end

    decoder.parse_object = parse_object
    decoder.scan_once = json.scanner.py_make_scanner(decoder)
    try:
        decoder.decode(doc)
    except json.JSONDecodeError as e:
        return e
    return json.JSONDecodeError("a key given twice in one object", doc, 0)  # not reached


def load_json(text: str | bytes):
    """``json.loads``, with a document nested too deep for Python's recursion (``[[[[...``
    200,000 deep) said as json's own error, a ``JSONDecodeError`` (a ValueError), which every
    reader of a JSON file names the file with: it was a RecursionError naming nothing. So is an
    object that names one key twice (``json`` kept the last in silence, so a hand-edited
    manifest, DeepSpeed config or probe record setting one value twice was half ignored), said
    with the key and the line of its object, as a config's YAML is (:class:`resm.config._UniqueKeyLoader`)."""
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text if isinstance(text, str) else "", 0) from None
    except _RepeatedKey:
        raise _repeated_key_error(text) from None
