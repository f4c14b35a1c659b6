"""Shards that prove their contents, a prior cache that is only a cache, and the Python API's
messages, table-driven.

* Shards: a sharded run (in process: ``--shard-size 1`` makes two shards of the workspace's
  two records) is stopped before its merge, a shard or its manifest is spoiled, and the run is
  resumed: the merge refuses in one line naming the shard file, and writes nothing.
* Caches: a ``--bpp-cache`` entry is spoiled; the fold still succeeds with the structures of an
  uncached fold, byte for byte, and one warning naming the entry, which is stored again.
* The API: each call fails with its error type and a message naming the caller's id or path.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from resm.cli import main as cli_main
from resm.utils.shards import ShardRun
from tests.robustness.cases import Case, check_one_line, then
from tests.robustness.conftest import said

# ----------------------------------------------------------------------------- shards
FOLD_SHARD = "{t}/o.dbn.shards/shard-00000%d-of-000002.jsonl"
EMBED_SHARD = "{t}/e.npz.shards/shard-00000%d-of-000002.npz"
FOLD_ARGS = ["fold", "{fa}", "-o", "{t}/o.dbn", "--shard-size", "1", "--threads", "1"]
EMBED_ARGS = ["embed", "{tiny}", "{fa}", "{t}/e.npz", "--shard-size", "1"]


def _unmerged(argv: list[str]):
    """Run a sharded job to the end of its shards, but stop it before the merge (as a job killed
    there would be)."""

    def setup(p: dict) -> None:
        from tests.robustness.cases import fill

        with mock.patch.object(ShardRun, "merge", lambda self, combine: False):
            assert cli_main([fill(a, p) for a in argv]) == 0

    return setup


def _shard(p: dict, pattern: str, k: int) -> Path:
    return Path(pattern.replace("{t}", p["t"]) % k)


def _manifest(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _copy_shard(pattern: str, src: int, dst: int, with_manifest: bool = False):
    def spoil(p: dict) -> None:
        shutil.copy(_shard(p, pattern, src), _shard(p, pattern, dst))
        if with_manifest:
            shutil.copy(_manifest(_shard(p, pattern, src)), _manifest(_shard(p, pattern, dst)))

    return spoil


def _rewrite(pattern: str, k: int, change: Callable[[bytes, dict], bytes], reseal: bool = False):
    """Change shard k's bytes (``change(data, p)``); with ``reseal`` its manifest's checksum
    is updated too, so that only the readers' own checks stand in the way."""

    def spoil(p: dict) -> None:
        path = _shard(p, pattern, k)
        path.write_bytes(change(path.read_bytes(), p))
        if reseal:
            man = json.loads(_manifest(path).read_text())
            man["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
            _manifest(path).write_text(json.dumps(man))

    return spoil


def _edit_manifest(pattern: str, k: int, text: str | None = None, **changes):
    def spoil(p: dict) -> None:
        man = _manifest(_shard(p, pattern, k))
        if text is not None:
            man.write_text(text)
        else:
            d = json.loads(man.read_text())
            d.update(changes)
            man.write_text(json.dumps(d))

    return spoil


def _npz(**arrays) -> Callable[[bytes, dict], bytes]:
    def make(data: bytes, p: dict) -> bytes:
        import io

        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    return make


def _other_shard(pattern: str, k: int) -> Callable[[bytes, dict], bytes]:
    return lambda data, p: _shard(p, pattern, k).read_bytes()


F0, F1, E0 = FOLD_SHARD % 0, FOLD_SHARD % 1, EMBED_SHARD % 0
FOLD_UNMERGED, EMBED_UNMERGED = _unmerged(FOLD_ARGS), _unmerged(EMBED_ARGS)
AGAIN = "re-run the command to recompute"

SHARD_CASES = [
    Case(
        "shards/fold-copied-over-another",
        FOLD_ARGS,
        1,
        [F0, "SHA-256 differs", AGAIN],
        then(FOLD_UNMERGED, _copy_shard(FOLD_SHARD, 1, 0)),
    ),
    Case(
        "shards/fold-copied-with-its-manifest",
        FOLD_ARGS,
        1,
        [F0, "says shard 1 of 2, this is shard 0 of 2"],
        then(FOLD_UNMERGED, _copy_shard(FOLD_SHARD, 1, 0, with_manifest=True)),
    ),
    Case(
        "shards/fold-emptied",
        FOLD_ARGS,
        1,
        [F1, "SHA-256 differs"],
        then(FOLD_UNMERGED, _rewrite(FOLD_SHARD, 1, lambda d, p: b"")),
    ),
    Case(
        "shards/fold-emptied-and-resealed",
        FOLD_ARGS,
        1,
        [F1, "lacks 'r2'"],
        then(FOLD_UNMERGED, _rewrite(FOLD_SHARD, 1, lambda d, p: b"", reseal=True)),
    ),
    Case(
        "shards/fold-damaged-and-resealed",
        FOLD_ARGS,
        1,
        [F0, "damaged shard"],
        then(FOLD_UNMERGED, _rewrite(FOLD_SHARD, 0, lambda d, p: b'{"name": "r1", "struct', reseal=True)),
    ),
    Case(
        "shards/fold-other-records-resealed",
        FOLD_ARGS,
        1,
        [F0, "lacks 'r1'"],
        then(FOLD_UNMERGED, _rewrite(FOLD_SHARD, 0, _other_shard(FOLD_SHARD, 1), reseal=True)),
    ),
    Case(
        "shards/fold-a-record-twice-resealed",
        FOLD_ARGS,
        1,
        [F0, "twice"],
        then(FOLD_UNMERGED, _rewrite(FOLD_SHARD, 0, lambda d, p: d + d, reseal=True)),
    ),
    Case(
        "shards/fold-a-line-not-a-record-resealed",
        FOLD_ARGS,
        1,
        [F0, "damaged shard", "not a record"],
        then(FOLD_UNMERGED, _rewrite(FOLD_SHARD, 0, lambda d, p: d + b"[1, 2]\n", reseal=True)),
    ),
    Case(
        "shards/fold-manifest-not-json",
        FOLD_ARGS,
        1,
        [F0, "its manifest", "cannot be read"],
        then(FOLD_UNMERGED, _edit_manifest(FOLD_SHARD, 0, text='{"shard": 0,')),
    ),
    Case(
        "shards/fold-manifest-a-list",
        FOLD_ARGS,
        1,
        [F0, "not a JSON object"],
        then(FOLD_UNMERGED, _edit_manifest(FOLD_SHARD, 0, text="[0]")),
    ),
    Case(
        "shards/fold-manifest-of-another-job",
        FOLD_ARGS,
        1,
        [F1, "written by another job"],
        then(FOLD_UNMERGED, _edit_manifest(FOLD_SHARD, 1, job_sha256="0" * 64)),
    ),
    Case(
        "shards/fold-manifest-other-ids",
        FOLD_ARGS,
        1,
        [F0, "ids differ"],
        then(FOLD_UNMERGED, _edit_manifest(FOLD_SHARD, 0, ids=["r9"])),
    ),
    Case(
        "shards/fold-manifest-other-count",
        FOLD_ARGS,
        1,
        [F0, "says shard 0 of 3"],
        then(FOLD_UNMERGED, _edit_manifest(FOLD_SHARD, 0, n_shards=3)),
    ),
    Case(
        "shards/embed-copied-over-another",
        EMBED_ARGS,
        1,
        [E0, "SHA-256 differs"],
        then(EMBED_UNMERGED, _copy_shard(EMBED_SHARD, 1, 0)),
    ),
    Case(
        "shards/embed-copied-with-its-manifest",
        EMBED_ARGS,
        1,
        [E0, "says shard 1 of 2"],
        then(EMBED_UNMERGED, _copy_shard(EMBED_SHARD, 1, 0, with_manifest=True)),
    ),
    Case(
        "shards/embed-emptied",
        EMBED_ARGS,
        1,
        [E0, "SHA-256 differs"],
        then(EMBED_UNMERGED, _rewrite(EMBED_SHARD, 0, lambda d, p: b"")),
    ),
    Case(
        "shards/embed-truncated-and-resealed",
        EMBED_ARGS,
        1,
        [E0, "damaged shard"],
        then(EMBED_UNMERGED, _rewrite(EMBED_SHARD, 0, lambda d, p: d[:200], reseal=True)),
    ),
    Case(
        "shards/embed-pickled-and-resealed",
        EMBED_ARGS,
        1,
        [E0, "pickled Python objects, which resm never loads"],
        then(
            EMBED_UNMERGED,
            _rewrite(
                EMBED_SHARD,
                0,
                _npz(__index__=np.array(['{"ids": ["r1"]}']), x=np.array([{"a": 1}], dtype=object)),
                reseal=True,
            ),
        ),
    ),
    Case(
        "shards/embed-index-without-arrays-resealed",
        EMBED_ARGS,
        1,
        [E0, "no arrays for 'r1'"],
        then(EMBED_UNMERGED, _rewrite(EMBED_SHARD, 0, _npz(__index__=np.array('{"ids": ["r1"]}')), reseal=True)),
    ),
    Case(
        "shards/embed-other-records-resealed",
        EMBED_ARGS,
        1,
        [E0, "lacks 'r1'"],
        then(EMBED_UNMERGED, _rewrite(EMBED_SHARD, 0, _other_shard(EMBED_SHARD, 1), reseal=True)),
    ),
    Case(
        "shards/embed-manifest-not-json",
        EMBED_ARGS,
        1,
        [E0, "cannot be read"],
        then(EMBED_UNMERGED, _edit_manifest(EMBED_SHARD, 0, text="\x00")),
    ),
    Case(
        "shards/fold-to-a-stream",
        ["fold", "{fa}", "-o", "/dev/stdout", "--shard-size", "1"],
        1,
        ["2 shards) needs an output file for its work folder, not the stream /dev/stdout"],
    ),
    Case("shards/embed-to-a-stream", ["embed", "{tiny}", "{fa}", "-", "--shard-size", "1"], 2, ["output must end in"]),
]


@pytest.mark.parametrize("case", SHARD_CASES, ids=[c.id for c in SHARD_CASES])
def test_a_wrong_shard_is_refused_naming_it(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


def test_an_unspoiled_resumed_shard_run_merges_what_one_run_writes(ws, tmp_path, capfd):
    from tests.robustness.cases import fill

    p = {**{k: str(v) for k, v in ws.files.items()}, "t": str(tmp_path)}
    _unmerged(FOLD_ARGS)(p)
    capfd.readouterr()
    assert cli_main([fill(a, p) for a in FOLD_ARGS]) == 0
    assert "(2 finished shards reused)" in capfd.readouterr().out
    assert cli_main(["fold", str(ws["fa"]), "-o", str(tmp_path / "one.dbn"), "--threads", "1"]) == 0
    assert (tmp_path / "o.dbn").read_text() == (tmp_path / "one.dbn").read_text()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["o.dbn", "one.dbn"]


# ----------------------------------------------------------------------------- caches
@dataclass
class CacheCase:
    id: str
    spoil: Callable[[Path, Path], None]  # (the entry of record r1, the entry of record r2)
    why: str | None  # in the warning; None: no warning (the entry is good)


def _arrays(entry: Path) -> dict:
    with np.load(entry, allow_pickle=False) as d:
        return {k: d[k] for k in d.files}


def _set(**changes):
    def spoil(entry: Path, other: Path) -> None:
        d = _arrays(entry)
        for k, v in changes.items():
            d[k] = v(d) if callable(v) else v
        with open(entry, "wb") as fh:
            np.savez(fh, **d)

    return spoil


def _drop(key: str):
    def spoil(entry: Path, other: Path) -> None:
        d = _arrays(entry)
        del d[key]
        with open(entry, "wb") as fh:
            np.savez(fh, **d)

    return spoil


def _p(value):
    return lambda d: np.where(np.arange(len(d["p"])) == 0, value, d["p"]).astype(d["p"].dtype)


CACHE_CASES = [
    CacheCase("cache/empty-entry", lambda e, o: e.write_bytes(b""), None),
    CacheCase("cache/truncated-entry", lambda e, o: e.write_bytes(e.read_bytes()[:100]), None),
    CacheCase("cache/text-entry", lambda e, o: e.write_text("not an npz\n"), None),
    CacheCase("cache/wrong-length", _set(length=np.asarray(5)), "stored for a length of 5"),
    CacheCase("cache/nan-probability", _set(p=_p(np.nan)), "not finite"),
    CacheCase("cache/inf-probability", _set(p=_p(np.inf)), "not finite"),
    CacheCase("cache/probability-7", _set(p=_p(7.0)), "outside [0, 1]"),
    CacheCase("cache/negative-probability", _set(p=_p(-0.5)), "outside [0, 1]"),
    CacheCase("cache/entry-of-another-sequence", lambda e, o: shutil.copy(o, e), "stored for another sequence"),
    CacheCase("cache/hash-of-another-sequence", _set(seq_sha256=np.array("0" * 64)), "stored for another sequence"),
    CacheCase("cache/pair-beyond-the-end", _set(j=lambda d: d["j"] + 100), "pairs must satisfy"),
    CacheCase("cache/pair-reversed", _set(i=lambda d: d["j"], j=lambda d: d["i"]), "pairs must satisfy"),
    CacheCase("cache/ragged-arrays", _set(p=lambda d: d["p"][:-1]), "one length"),
    CacheCase("cache/no-probabilities", _drop("p"), "KeyError"),
    CacheCase(
        "cache/pickled-objects",
        _set(p=np.array([{"a": 1}], dtype=object)),
        "pickled Python objects, which resm never loads",
    ),
    CacheCase("cache/old-entry-without-hash-is-used", _drop("seq_sha256"), None),
]
GOOD_ENTRY = "cache/old-entry-without-hash-is-used"


@pytest.fixture(scope="module")
def cache(ws, tmp_path_factory):
    """A prior cache filled by folding the workspace's FASTA, and that fold's structures and
    probabilities (the same as an uncached fold's: tests/structure test it)."""
    d = tmp_path_factory.mktemp("cache")
    argv = ["fold", str(ws["fa"]), "-o", str(d / "s.dbn"), "--bpp", str(d / "s.bpp"), "--threads", "1"]
    assert cli_main(argv) == 0
    expected = ((d / "s.dbn").read_bytes(), (d / "s.bpp").read_bytes())
    assert cli_main([*argv, "--bpp-cache", str(d / "c")]) == 0
    assert ((d / "s.dbn").read_bytes(), (d / "s.bpp").read_bytes()) == expected
    entries = {}
    for e in (d / "c").iterdir():
        with np.load(e, allow_pickle=False) as z:
            entries[int(z["length"])] = e.name
    return d / "c", entries[13], entries[22], expected


@pytest.mark.parametrize("case", CACHE_CASES, ids=[c.id for c in CACHE_CASES])
def test_a_bad_cache_entry_is_computed_again_with_one_warning(case: CacheCase, ws, cache, tmp_path, capfd):
    folder, r1, r2, expected = cache
    c = tmp_path / "c"
    shutil.copytree(folder, c)
    case.spoil(c / r1, c / r2)
    capfd.readouterr()
    argv = [
        "fold",
        str(ws["fa"]),
        "-o",
        str(tmp_path / "s.dbn"),
        "--bpp",
        str(tmp_path / "s.bpp"),
        "--threads",
        "1",
        "--bpp-cache",
        str(c),
    ]
    assert cli_main(argv) == 0
    err = said(capfd.readouterr().err)
    assert ((tmp_path / "s.dbn").read_bytes(), (tmp_path / "s.bpp").read_bytes()) == expected
    if case.id == GOOD_ENTRY:
        assert err == []
        return
    assert len(err) == 1 and err[0].startswith(f"resm: warning: {c / r1}: prior cache entry not used ("), err
    assert err[0].endswith("); computed again") and (case.why is None or case.why in err[0]), err
    assert cli_main(argv) == 0 and said(capfd.readouterr().err) == []  # stored again, good this time
    assert _arrays(c / r1)["seq_sha256"] == hashlib.sha256(b"GGGAAACCCAUGC").hexdigest()


def test_a_bad_dense_cache_entry_is_computed_again(tmp_path, capfd):
    from resm.heads.pair_map import StructureHeadConfig
    from resm.structure.priors import cached_dense_prior, head_pair_prior

    cfg, seq = StructureHeadConfig(), "GGGGAAAACCCCAUGCAUGC"
    good = head_pair_prior(seq, cfg).astype(np.float16)
    first = cached_dense_prior(tmp_path, seq, cfg)
    (entry,) = tmp_path.iterdir()
    digest = np.array(hashlib.sha256(seq.encode()).hexdigest())
    for bad in (np.full((3, 3), 0.1, np.float16), np.where(good > 0, np.nan, good), good + 2, b""):
        if isinstance(bad, bytes):
            entry.write_bytes(bad)
        else:
            with open(entry, "wb") as fh:
                np.savez(fh, bpp=bad, seq_sha256=digest)
        capfd.readouterr()
        assert np.array_equal(cached_dense_prior(tmp_path, seq, cfg), first)
        err = capfd.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(entry) in err[0] and "computed again" in err[0]
    assert np.array_equal(first, good)


# ----------------------------------------------------------------------------- the API
@dataclass
class ApiCase:
    id: str
    call: Callable[[object, Path], object]  # (workspace, case folder)
    error: type
    names: list[str] = field(default_factory=list)  # "{t}": the case folder, "{key}": a workspace file


_LOADED: dict = {}  # predictors loaded once for the table


def _predictor(ws):
    import resm

    if "shipped" not in _LOADED:
        _LOADED["shipped"] = resm.load_predictor(device="cpu", threads=1)
    return _LOADED["shipped"]


def _zero_shot(ws):
    import resm

    key = ("zero-shot", str(ws["probe"]))
    if key not in _LOADED:
        _LOADED[key] = resm.load_predictor(ws["tiny"], zero_shot=ws["probe"], device="cpu")
    return _LOADED[key]


def _pickled_npz(t: Path) -> Path:
    np.savez(t / "p.npz", __index__=np.array("{}"), x=np.array([{"a": 1}], dtype=object))
    return t / "p.npz"


def _api_cases() -> list:
    import resm
    from resm.backbone.load import CheckpointError
    from resm.mapping import MappingError
    from resm.structure.io import FoldError

    return [
        ApiCase(
            "api/predictor-fold-names-the-id",
            lambda ws, t: _predictor(ws).fold([("my-id", "ACGUJ")]),
            MappingError,
            ["record 'my-id'", "'J'"],
        ),
        ApiCase(
            "api/predictor-fold-checks-every-record-first",
            lambda ws, t: _predictor(ws).fold([("ok", "ACGU"), ("second", "ACG!")]),
            MappingError,
            ["record 'second'"],
        ),
        ApiCase(
            "api/predictor-fold-one-names-the-name",
            lambda ws, t: _predictor(ws).fold_one("ACGU!", name="x1"),
            MappingError,
            ["record 'x1'"],
        ),
        ApiCase(
            "api/zero-shot-fold-names-the-id",
            lambda ws, t: _zero_shot(ws).fold([("z9", "ACGU!")]),
            MappingError,
            ["record 'z9'"],
        ),
        ApiCase(
            "api/zero-shot-fold-one-names-the-name",
            lambda ws, t: _zero_shot(ws).fold_one("ACGUZ", name="q"),
            MappingError,
            ["record 'q'"],
        ),
        ApiCase(
            "api/embed-names-the-id",
            lambda ws, t: resm.embed_sequences(ws["tiny"], {"e1": "ACGUJ"}, device="cpu"),
            MappingError,
            ["record 'e1'"],
        ),
        ApiCase(
            "api/embed-pairs-name-the-id",
            lambda ws, t: resm.embed_sequences(ws["tiny"], [("p1", "ACGU"), ("p2", "AC-GU")], device="cpu"),
            MappingError,
            ["record 'p2'"],
        ),
        ApiCase(
            "api/embed-duplicate-ids",
            lambda ws, t: resm.embed_sequences(ws["tiny"], [("a", "ACGU"), ("a", "GGCC")], device="cpu"),
            ValueError,
            ["duplicate id 'a' (records 1 and 2)"],
        ),
        ApiCase(
            "api/embed-no-records",
            lambda ws, t: resm.embed_sequences(ws["tiny"], {}, device="cpu"),
            MappingError,
            ["no records"],
        ),
        ApiCase(
            "api/embed-file-missing-named-in-full",
            lambda ws, t: resm.embed_sequences(ws["tiny"], t / "nowhere" / "x.fa", device="cpu"),
            Exception,
            ["{t}/nowhere/x.fa"],
        ),
        ApiCase(
            "api/predictor-model-missing",
            lambda ws, t: resm.load_predictor(t / "none.pt", device="cpu"),
            Exception,
            ["{t}/none.pt"],
        ),
        ApiCase(
            "api/predictor-model-is-text",
            lambda ws, t: resm.load_predictor(ws["text"], device="cpu"),
            Exception,
            ["{text}"],
        ),
        ApiCase(
            "api/predictor-cache-with-zero-shot",
            lambda ws, t: resm.load_predictor(ws["tiny"], zero_shot=ws["probe"], bpp_cache=t / "c", device="cpu"),
            ValueError,
            ["bpp_cache", "zero_shot"],
        ),
        ApiCase(
            "api/backbone-is-text",
            lambda ws, t: resm.load_backbone(ws["text"], device="cpu"),
            CheckpointError,
            ["{text}"],
        ),
        ApiCase(
            "api/read-embeddings-pickled",
            lambda ws, t: resm.read_embeddings(_pickled_npz(t)),
            ValueError,
            ["{t}/p.npz", "pickled Python objects, which resm never loads"],
        ),
        ApiCase(
            "api/read-embeddings-missing",
            lambda ws, t: resm.read_embeddings(t / "none.npz"),
            ValueError,
            ["{t}/none.npz: no such file"],
        ),
        ApiCase(
            "api/read-embeddings-truncated",
            lambda ws, t: (t / "e.npz").write_bytes(b"PK\x03\x04broken") and resm.read_embeddings(t / "e.npz"),
            ValueError,
            ["{t}/e.npz: not a readable embeddings file"],
        ),
        ApiCase(
            "api/read-embeddings-safetensors-text",
            lambda ws, t: (t / "e.safetensors").write_text("x") and resm.read_embeddings(t / "e.safetensors"),
            ValueError,
            ["{t}/e.safetensors"],
        ),
        ApiCase(
            "api/fold-pair-model-rejects-threshold",
            lambda ws, t: _predictor(ws).fold([("a", "ACGU")], threshold=0.5),
            FoldError,
            ["threshold and method set the greedy decoding"],  # the keywords: the API has no --threshold
        ),
    ]


API_CASES = _api_cases()


@pytest.mark.parametrize("case", API_CASES, ids=[c.id for c in API_CASES])
def test_the_api_names_the_callers_id_or_path(case: ApiCase, ws, tmp_path):
    with pytest.raises(case.error) as info:
        case.call(ws, tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and "<sequence>" not in msg, msg
    for name in case.names:
        want = name.replace("{t}", str(tmp_path))
        for k, v in ws.files.items():
            want = want.replace("{" + k + "}", str(v))
        assert want in msg, (want, msg)
