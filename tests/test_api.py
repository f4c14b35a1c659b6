"""The Python API: the examples of the package docstring and of the README run as written, and
``import resm`` stays light."""

import doctest
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ENV, REPO


def test_import_resm_is_light():
    code = "import sys, resm; print(resm.__version__, 'torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=REPO, check=True)
    assert out.stdout.split()[1:] == ["False", "False"]
    assert "load_predictor" in dir(__import__("resm"))


def test_package_exports_exactly_the_api():
    """``import resm`` cannot import ``resm.api`` (it must stay light), so the two name lists are
    kept apart; every public name of the API is one of the package's and each resolves to it."""
    import resm
    import resm.api as api

    assert set(resm.__all__) - {"__version__"} == set(api.__all__)
    for name in api.__all__:
        assert getattr(resm, name) is getattr(api, name)


def test_package_docstring_examples(tmp_path, monkeypatch):
    import resm

    monkeypatch.chdir(tmp_path)  # the example writes emb.safetensors here
    result = doctest.testmod(resm, raise_on_error=False, verbose=False)
    assert result.attempted >= 8 and result.failed == 0
    assert (tmp_path / "emb.safetensors").exists()


def readme_python_blocks() -> list:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)


def test_readme_python_examples_run(tmp_path, monkeypatch):
    """Every python block of the README, in order, in one namespace, in a folder holding what
    the blocks name (a small random backbone under the name they use)."""
    import torch

    from resm.backbone.load import init_model, resm_meta, save_fair_esm, save_hf
    from resm.mapping import get_scheme

    blocks = readme_python_blocks()
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    save_fair_esm(init_model("tiny", seed=0), tmp_path / "esm2_t6_8M_UR50D.pt")
    save_fair_esm(init_model("tiny", seed=1), tmp_path / "esm2_rna_model.pt", companion=True)  # resm export's files
    save_hf(init_model("tiny", seed=1), tmp_path / "rna_model_hf", resm_meta(get_scheme("kdny"), "tiny"))
    namespace: dict = {}
    allowed = torch.serialization.get_safe_globals()
    try:
        for code in blocks:
            exec(compile(code, "README.md", "exec"), namespace)
    finally:  # the fair-esm block allow-lists argparse.Namespace process-wide
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(allowed)
    assert (tmp_path / "emb.safetensors").exists()
    assert (
        namespace["scheme"].to_rna(namespace["best"][0]["sequence"])
        == "GGAC" + namespace["scheme"].to_rna(namespace["best"][0]["token_str"]) + "UCGG"
    )


def test_readme_fold_example_prints_what_the_readme_shows():
    """The README's fold example shows its real output (the shipped model, a real structure):
    the block run alone prints exactly the text block after it."""
    import contextlib
    import io

    text = (REPO / "README.md").read_text()
    m = re.search(
        r"```python\n(import resm\npredictor = resm.load_predictor\(\).*?)```\n\nprints[^\n]*\n\n```text\n(.*?)```",
        text,
        re.S,
    )
    assert m, "the README's fold example and its output block"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(m.group(1), "README.md", "exec"), {})
    assert out.getvalue() == m.group(2)
    assert out.getvalue().count("(") >= 20  # a cloverleaf, not a lone pair


def test_embed_sequences_equals_resm_embed(tmp_path):
    import resm
    from tests.conftest import resm_cli

    seqs = {"a": "GGGGAAACCCCAUAGCGCGAAAGCGCU", "b/2": "ACGUACGUAAAAACCCGGGUUUACGU"}
    (tmp_path / "x.fa").write_text("".join(f">{k}\n{v}\n" for k, v in seqs.items()))
    resm_cli("embed", "default", tmp_path / "x.fa", tmp_path / "e.npz", "--include", "mean", "per_tok", "--nogpu")
    want, want_index = resm.read_embeddings(tmp_path / "e.npz")
    got, index = resm.embed_sequences("default", seqs, include=["mean", "per_tok"], device="cpu")
    assert index == want_index and set(got) == set(want)
    for k in got:
        np.testing.assert_allclose(got[k], want[k], atol=1e-5)


def test_load_predictor_passes_threads_and_prior_cache(tmp_path):
    pytest.importorskip("linearpartition")
    import resm

    seq = "GGGGAAACCCCAUAGCGCGAAAGCGCU"
    plain, _ = resm.load_predictor(device="cpu").fold_one(seq)
    cached = resm.load_predictor(device="cpu", threads=1, bpp_cache=tmp_path / "c")
    s1, _ = cached.fold_one(seq)
    s2, _ = cached.fold_one(seq)
    assert s1.dotbracket == s2.dotbracket == plain.dotbracket
    assert len(list((tmp_path / "c").glob("*.npz"))) == 1
    with pytest.raises(ValueError, match="^bpp_cache stores a structure model's pair priors; a zero-shot probe "):
        resm.load_predictor("default", zero_shot=tmp_path / "p.pt", bpp_cache=tmp_path / "c")


@pytest.mark.parametrize(
    "call",
    [
        lambda resm: resm.load_predictor(device="gpu"),
        lambda resm: resm.load_bundle("no_such_bundle", device="gpu"),
        lambda resm: resm.load_backbone("default", device="gpu"),
        lambda resm: resm.embed_sequences("default", {"a": "GGGAAACCC"}, device="gpu"),
    ],
)
def test_a_bad_device_is_one_line_naming_the_keyword(call):
    """``device=`` is checked as ``--device`` is: it was torch's 'Expected one of cpu, cuda,
    ipu, xpu, ... device type at start of device string: gpu', raised after the model loaded."""
    import resm
    from resm.config import ConfigError

    with pytest.raises(ConfigError) as e:
        call(resm)
    assert str(e.value) == "device: unknown device 'gpu' (auto, cpu, cuda or cuda:N)"


def _scan(**kw):
    """A :class:`resm.tasks.rri_sites.ScanOptions` (what ``Bundle.interact(scan=)`` takes)."""
    from resm.tasks.rri_sites import ScanOptions

    return ScanOptions(**kw)


KCAL = "must be a finite number in [0, 1000] (kcal/mol)"
THREADS = "must be an integer in [0, 1024] (0: every core)"
A_FILE = "a_file"  # made by the test, in its working directory


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda resm: resm.load_predictor("default", turner_scale=-1), f"turner_scale: {KCAL}, got -1"),
        (lambda resm: resm.load_predictor("default", turner_scale=float("nan")), f"turner_scale: {KCAL}, got nan"),
        (lambda resm: resm.load_predictor("default", turner_scale="0.3"), f"turner_scale: {KCAL}, got '0.3'"),
        (lambda resm: resm.load_predictor("default", turner_scale=1e9), f"turner_scale: {KCAL}, got 1000000000.0"),
        (lambda resm: resm.load_predictor("default", threads=-1), f"threads: {THREADS}, got -1"),
        (lambda resm: resm.load_predictor("default", threads=2.0), f"threads: {THREADS}, got 2.0"),
        (lambda resm: resm.load_predictor("default", threads="4"), f"threads: {THREADS}, got '4'"),
        (
            lambda resm: resm.load_predictor("default", scheme=" "),
            "scheme: must name a mapping scheme (codon3, kdny, kerd, nt, protein), got ' '",
        ),
        (
            lambda resm: resm.load_predictor("default", bpp_cache=A_FILE),
            f"{A_FILE}: bpp_cache must be a folder, not a file",
        ),
        (lambda resm: resm.load_predictor("default", bpp_cache=3), "bpp_cache: expected a folder's path, got 3"),
        (
            lambda resm: resm.load_predictor("default", zero_shot="p.pt", bpp_cache="c"),
            "bpp_cache stores a structure model's pair priors; a zero-shot probe (zero_shot) reads none",
        ),
        (
            lambda resm: resm.load_predictor(None, zero_shot="p.pt"),
            "zero_shot needs model, the backbone the probe was fitted on",
        ),
        (
            lambda resm: resm.load_predictor("default", zero_shot="p.pt", turner_scale=0.3),
            "turner_scale sets a pair-head model's decoding; a zero-shot probe (zero_shot) has none",
        ),
        (lambda resm: resm.Bundle("b", None, {}, None).predictor(turner_scale=-2), f"turner_scale: {KCAL}, got -2"),
        (
            lambda resm: resm.Bundle("b", None, {}, None).fold("GGGAAACCC", turner_scale=float("inf")),
            f"turner_scale: {KCAL}, got inf",
        ),
        (
            lambda resm: resm.load_backbone("default", scheme=""),
            "scheme: must name a mapping scheme (codon3, kdny, kerd, nt, protein), got ''",
        ),  # fmt: skip
        (
            lambda resm: resm.embed_sequences("default", ["GGGAAACCC"], toks_per_batch=0),
            "toks_per_batch: must be an integer >= 1, got 0",
        ),  # fmt: skip
        (
            lambda resm: resm.embed_sequences("default", ["GGGAAACCC"], toks_per_batch=float("nan")),
            "toks_per_batch: must be an integer >= 1, got nan",
        ),  # fmt: skip
        (
            lambda resm: resm.embed_sequences("default", ["GGGAAACCC"], toks_per_batch="8"),
            "toks_per_batch: must be an integer >= 1, got '8'",
        ),  # fmt: skip
        (
            lambda resm: resm.Bundle("b", None, {}, None).interact([], scan=_scan(window=float("nan"))),
            "scan.window: must be >= 0 (0: the head's max_length), got nan",
        ),
        (
            lambda resm: resm.Bundle("b", None, {}, None).interact([], scan=_scan(stride=-1)),
            "scan.stride: must be >= 0 (0: half the window), got -1",
        ),
        (
            lambda resm: resm.Bundle("b", None, {}, None).interact([], scan=_scan(max_sites=0)),
            "scan.max_sites: must be >= 1, got 0",
        ),
        (
            lambda resm: resm.Bundle("b", None, {}, None).interact([], scan=_scan(batch_size="8")),
            "scan.batch_size: must be >= 1, got '8'",
        ),
        (
            lambda resm: resm.embed_sequences("default", ["GGGAAACCC"], include=["mean", "cls"]),
            "include: unknown ['cls']; choose from ('mean', 'per_tok', 'bos', 'contacts')",
        ),
    ],
)
def test_a_bad_keyword_is_one_line_naming_the_keyword(call, message, tmp_path, monkeypatch):
    """Every bad keyword value of the API (negative, NaN, infinite, of the wrong type, a file for
    a folder, a combination that means nothing) is one line naming the keyword, not the command
    line's flag: ``load_predictor(turner_scale=-1)`` said '--turner-scale -1: ...',
    ``bpp_cache`` '--bpp-cache ...', ``zero_shot`` '--zero-shot needs --model ...',
    ``include`` 'unknown --include ...', ``Bundle.interact(scan=ScanOptions(stride=-1))``
    '... (--stride) ...'; ``toks_per_batch=0`` or NaN was not checked at all, nor a NaN window. The
    rules are the command line's own (``OPTION_RULES``, through ``option_problem``)."""
    import resm

    monkeypatch.chdir(tmp_path)
    (tmp_path / A_FILE).write_text("x")
    with pytest.raises(ValueError) as e:
        call(resm)
    assert str(e.value) == message and "--" not in message and "\n" not in message


def test_the_api_and_the_command_line_say_one_rule(tmp_path):
    """One rule, two names: ``resm embed --toks-per-batch 0`` and ``embed_sequences(toks_per_batch=0)``
    say the same words, the flag in one and the keyword in the other; the command line's message
    is as it was."""
    import resm
    from tests.conftest import resm_cli

    (tmp_path / "x.fa").write_text(">a\nGGGAAACCC\n")
    p = resm_cli(
        "embed", "default", tmp_path / "x.fa", tmp_path / "e.safetensors", "--toks-per-batch", "0", check=False
    )
    assert p.returncode == 2 and p.stderr == (
        "resm embed: error: argument --toks-per-batch: must be an integer >= 1, got 0 (see resm embed --help)\n"
    )
    with pytest.raises(ValueError) as e:
        resm.embed_sequences("default", {"a": "GGGAAACCC"}, toks_per_batch=0)
    assert str(e.value) == "toks_per_batch: must be an integer >= 1, got 0"
    assert not (tmp_path / "e.safetensors").exists()
    # a pair-head model refuses a dense map's threshold: the flags on the command line
    fold = resm_cli("fold", tmp_path / "x.fa", "--nogpu", "--threshold", "0.3", check=False)
    assert fold.returncode == 1 and fold.stderr.startswith(
        "resm fold: error: --threshold and --method set the greedy decoding of 2-D heads and probes; structure model "
    )
    assert len(fold.stderr.splitlines()) == 1 and not fold.stdout


def test_every_public_name_and_its_methods_have_docstrings():
    """``help()`` on any name of ``resm.__all__``, and on the public methods and properties of
    its classes (and of the predictor classes ``load_predictor`` returns), says something."""
    import inspect

    import resm
    from resm.structure.predictor import MapPredictor, PairPredictor

    missing = [n for n in resm.__all__ if n != "__version__" and not inspect.getdoc(getattr(resm, n))]
    classes = [getattr(resm, n) for n in resm.__all__ if inspect.isclass(getattr(resm, n))]
    for cls in [*classes, PairPredictor, MapPredictor]:
        for name, member in vars(cls).items():
            if name.startswith("_") or not (callable(member) or isinstance(member, property)):
                continue
            if not inspect.getdoc(getattr(cls, name) if callable(member) else member):
                missing.append(f"{cls.__name__}.{name}")
    assert not missing, f"public names without a docstring: {missing}"


def test_predictors_and_bundles_print_in_one_line():
    """Their repr was the dataclass's: every layer of the network, dozens of lines."""
    import torch

    import resm
    from resm.backbone.load import init_model
    from resm.mapping import get_scheme
    from resm.structure.predictor import MapPredictor

    shown = repr(resm.load_predictor(device="cpu"))
    assert "\n" not in shown and shown.startswith("PairPredictor(source='structure model ")
    assert "scheme='kdny', device='cpu', decoding=Decoding(gamma=" in shown and "workers=0, cache=None)" in shown
    probe = MapPredictor(init_model("tiny", seed=0), get_scheme("kdny"), 0.4, source="probe p.pt")
    assert (
        repr(probe) == "MapPredictor(source='probe p.pt', scheme='kdny', device='cpu', threshold=0.4, method='greedy')"
    )
    bundle = resm.Bundle(REPO / "m", torch.nn.Linear(1, 1), {"mrl": {"task": "mrl"}}, get_scheme("kerd"), "cpu")
    assert repr(bundle) == f"Bundle(folder='{REPO / 'm'}', heads={{'mrl': 'mrl'}}, scheme='kerd', device='cpu')"
    # what fold(noncanonical=True) yields: its repr printed the (n, 2) pair array, many lines
    from resm.structure.pairsets import PairRecord, PairSet

    rec = PairRecord("r", "GGGAAACCC" * 10, PairSet(np.array([[i, 89 - i] for i in range(30)]), 90))
    assert repr(rec) == "PairRecord(name='r', length=90, pairs=30, seq='GGGAAACCCGGGAAACCCGGGAAACCCGGGAAACCCG...')"
    assert repr(rec.pairs) == "PairSet(length=90, pairs=30)"


def test_fold_yields_what_the_readme_says():
    """``predictor.fold`` of the shipped model yields a ``resm.Folded`` per record, the type
    ``fold_one`` returns (``fold_one`` gave ``(Structure, dense map)`` where ``fold`` gave
    ``(Structure, (i, j, p))``): its fields as the README lists them, the sparse probabilities
    as decoded, the dense map through ``.dense()``; it still unpacks as ``(structure, probs)``."""
    import resm
    from resm.structure.pair_probs import dense_probs

    readme = (REPO / "README.md").read_text()
    assert "yielding one `resm.Folded` per record" in readme and "`.dense()`" in readme
    seq = "GGGGAAACCCCAUAGCGCGAAAGCGCU"
    predictor = resm.load_predictor(device="cpu")
    (folded,) = predictor.fold({"a": seq})
    assert type(folded) is resm.Folded and isinstance(folded.structure, resm.Structure)
    assert (folded.name, folded.seq, len(folded.pairs)) == ("a", seq, len(seq))
    assert folded.dotbracket == folded.structure.dotbracket and folded.dotbracket.count("(") >= 3
    rec, P = folded
    assert rec is folded.structure and P is folded.probs and isinstance(P, tuple) and len(P) == 3
    i, j, p = P
    assert len(i) == len(j) == len(p) > 0 and (i < j).all() and ((p >= 0) & (p <= 1)).all()
    one = predictor.fold_one(seq, "a")
    assert type(one) is resm.Folded and one.dotbracket == folded.dotbracket
    np.testing.assert_array_equal(one.dense(), dense_probs(P, len(seq)))
    assert one.dense().shape == (len(seq), len(seq))
    np.testing.assert_array_equal(one.sparse()[2], folded.sparse()[2])
    shown = repr(one)
    assert "\n" not in shown and shown.startswith("Folded(structure=Structure(name='a', length=27, ")
    assert shown.endswith(f", probs=<sparse, {len(p)} pairs>)")
    # a list of bare sequences folds as embed_sequences reads one: named seq_1, seq_2...
    assert [f.name for f in predictor.fold([seq, seq[:20]])] == ["seq_1", "seq_2"]


def test_fold_draws_no_progress_bar_unless_asked(capfd):
    """An API prints nothing unasked: ``Predictor.fold`` drew a progress bar on stderr by
    default (``embed_sequences`` and ``Bundle.interact`` draw one only with ``progress=True``)."""
    import resm

    predictor = resm.load_predictor(device="cpu")
    capfd.readouterr()
    list(predictor.fold({"a": "GGGGAAACCCCAUAGCGCGAAAGCGCU"}))
    predictor.fold_one("GGGGAAACCCC")
    assert capfd.readouterr() == ("", "")
    list(predictor.fold({"a": "GGGGAAACCCCAUAGCGCGAAAGCGCU"}, progress=True))
    out, err = capfd.readouterr()
    assert out == "" and "1/1" in err


def test_every_loader_names_the_model_it_loads_model():
    """One name for one concept: the model to load (a file, a name, a bundle folder) is ``model``
    in every loader, as ``--model`` is on the command line (``load_bundle`` called it ``folder``,
    though ``load_predictor(model=DIR)`` takes the same folder)."""
    import inspect

    import resm

    for fn in (resm.load_predictor, resm.load_bundle, resm.load_backbone, resm.embed_sequences):
        assert next(iter(inspect.signature(fn).parameters)) == "model", fn.__name__


def test_a_checkpoint_needing_trust_says_the_keyword(tmp_path):
    """A pickled checkpoint the allow-list refuses said only 'pass --trust-checkpoint (in a
    config: trust_checkpoint: true)' to a caller of the Python API, which has no such flag."""
    import fractions

    import torch

    import resm
    from resm.backbone.load import CheckpointError

    torch.save({"model": {}, "note": fractions.Fraction(1, 2)}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError) as e:
        resm.load_backbone(tmp_path / "odd.pt", device="cpu")
    assert "trust=True" in str(e.value) and "\n" not in str(e.value)


def test_a_lone_sequence_is_told_how_to_pass_it(tmp_path, monkeypatch):
    """``embed_sequences(model, "ACGU...")`` read the sequence as a file name and said only
    'ACGU...: no such file'; ``fold_one`` with a threshold spoke of command-line options alone."""
    import resm
    from resm.structure.io import FoldError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError) as e:
        resm.embed_sequences("default", "GGGGAAACCCCAUAGCGCGAAAGCGCU", device="cpu")
    assert str(e.value) == (
        "sequences: 'GGGGAAACCCCAUAGCGCGA'... is read as a file name and there is no such file; "
        "give a sequence in a list or a mapping: ['ACGU...'] or {'id': 'ACGU...'}"
    )
    (tmp_path / "GGGAAACCC").write_text(">a\nGGGAAACCC\n")  # a file of that name is still read
    assert resm.embed_sequences("default", "GGGAAACCC", device="cpu")[1]["ids"] == ["a"]
    with pytest.raises(FoldError) as e:
        resm.load_predictor(device="cpu").fold_one("GGGGAAACCCC", threshold=0.3)
    assert str(e.value).startswith("threshold and method set the greedy decoding of 2-D heads and probes; ")
    assert "--" not in str(e.value)


def test_embed_sequences_takes_the_dtype_names_of_resm_embed():
    """``dtype="bf16"`` (``resm embed --dtype``'s spelling) was torch's 'set_autocast_dtype():
    argument 'dtype' must be torch.dtype, not str'; the names and the torch dtypes are one thing."""
    import torch

    import resm
    from resm.cli import build_parser
    from resm.embed import AUTOCAST_DTYPES

    seqs = {"a": "GGGGAAACCCCAUAGC"}
    by_name, _ = resm.embed_sequences("default", seqs, dtype="bf16", device="cpu")
    by_dtype, _ = resm.embed_sequences("default", seqs, dtype=torch.bfloat16, device="cpu")
    plain, _ = resm.embed_sequences("default", seqs, dtype="fp32", device="cpu")
    np.testing.assert_array_equal(by_name["a/mean/4"], by_dtype["a/mean/4"])
    np.testing.assert_array_equal(plain["a/mean/4"], resm.embed_sequences("default", seqs, device="cpu")[0]["a/mean/4"])
    assert not np.array_equal(by_name["a/mean/4"], plain["a/mean/4"])  # bf16 did run
    with pytest.raises(ValueError) as e:
        resm.embed_sequences("default", seqs, dtype="fp8", device="cpu")
    assert str(e.value) == "dtype: must be one of fp32, bf16, fp16 (or None: fp32), got 'fp8'"
    embed = next(a for a in build_parser()._actions if a.dest == "command").choices["embed"]
    assert set(next(a for a in embed._actions if a.dest == "dtype").choices) == set(AUTOCAST_DTYPES)


def test_every_parameter_of_the_api_is_described():
    """Each parameter of a public function or method of ``resm.__all__`` is named, as
    ``name``, in its docstring: ``load_predictor``'s ``scheme`` and ``trust`` and
    ``embed_sequences``' ``layers``, ``include``, ... were not."""
    import inspect

    import resm

    missing = []
    for obj in (getattr(resm, n) for n in resm.__all__ if n != "__version__"):
        named = [(obj.__name__, obj)] if inspect.isfunction(obj) else []
        if inspect.isclass(obj):
            named = [
                (f"{obj.__name__}.{m}", getattr(obj, m)) for m, f in vars(obj).items() if m[0] != "_" and callable(f)
            ]
        for where, fn in named:
            doc = inspect.getdoc(fn) or ""
            missing += [
                f"{where}({p})"
                for p in inspect.signature(fn).parameters
                if p not in ("self", "cls") and f"``{p}``" not in doc
            ]
    assert not missing, f"parameters no docstring describes: {missing}"


def test_embed_sequences_takes_one_layer_and_one_kind_bare():
    """``layers=-1`` was "TypeError: 'int' object is not iterable" and ``include="mean"`` was
    "unknown --include ['a', 'e', 'm', 'n']": one of each is the same as a list of one."""
    import resm

    seqs = {"a": "GGGGAAACCCCAUAGC"}
    bare, index = resm.embed_sequences("default", seqs, layers=-1, include="per_tok", device="cpu")
    listed, same = resm.embed_sequences("default", seqs, layers=[-1], include=["per_tok"], device="cpu")
    assert index == same and list(bare) == list(listed) == ["a/per_tok/4"]
    np.testing.assert_array_equal(bare["a/per_tok/4"], listed["a/per_tok/4"])


def test_embed_sequences_takes_trust_as_the_error_asks(tmp_path):
    """A checkpoint the allow-list refuses says 'trust=True', which embed_sequences did not take
    (a TypeError): it takes ``trust`` as load_backbone and load_predictor do (resm embed
    --trust-checkpoint), and without it still refuses the file."""
    import fractions

    import torch

    import resm
    from resm.backbone.load import CheckpointError, init_model, save_fair_esm

    save_fair_esm(init_model("tiny", seed=0), tmp_path / "tiny.pt")
    raw = torch.load(tmp_path / "tiny.pt", weights_only=False)
    torch.save({**raw, "note": fractions.Fraction(1, 2)}, tmp_path / "odd.pt")
    seqs = {"a": "GGGGAAACCCC"}
    with pytest.raises(CheckpointError, match="trust=True"):
        resm.embed_sequences(tmp_path / "odd.pt", seqs, device="cpu")
    trusted, index = resm.embed_sequences(tmp_path / "odd.pt", seqs, device="cpu", trust=True)
    plain, _ = resm.embed_sequences(tmp_path / "tiny.pt", seqs, device="cpu")
    np.testing.assert_array_equal(trusted["a/mean/2"], plain["a/mean/2"])
    assert index["ids"] == ["a"]


def test_a_switch_takes_true_or_false_only(tmp_path):
    """``nested=3`` or ``nested="no"`` was read as true, silently: every on/off keyword of the API
    (``nested``, ``noncanonical``, ``no_lp``, ``progress``, ``trust``) is a one-line TypeError
    naming it unless it is a bool; a numpy bool still counts as one."""
    import resm
    from resm.mapping import get_scheme
    from resm.structure.predictor import MapPredictor

    seq = "GGGGAAACCCCAUAGCGCGAAAGCGCU"
    rng = np.random.default_rng(0)
    P = rng.random((len(seq), len(seq))).astype(np.float32)
    dense = MapPredictor(None, get_scheme("kdny"), 0.3, "greedy", lambda s: P)
    for predictor in (dense, resm.load_predictor(device="cpu")):  # a dense map's and a pair head's
        for key in ("nested", "noncanonical", "no_lp", "progress"):
            for bad in (3, "no", None, 1.0):
                with pytest.raises(TypeError, match=rf"^{key}: expected True or False, got {re.escape(repr(bad))}$"):
                    predictor.fold_one(seq, **{key: bad})
        want = predictor.fold_one(seq, nested=True).dotbracket
        assert predictor.fold_one(seq, nested=np.bool_(True)).dotbracket == want
        assert predictor.fold_one(seq, nested=np.bool_(False)).dotbracket == predictor.fold_one(seq).dotbracket
    calls = {
        "load_predictor": lambda: resm.load_predictor(device="cpu", trust="yes"),
        "load_backbone": lambda: resm.load_backbone(tmp_path / "none.pt", device="cpu", trust="yes"),
        "load_bundle": lambda: resm.load_bundle(tmp_path / "none", device="cpu", trust="yes"),
        "embed_sequences": lambda: resm.embed_sequences(tmp_path / "none.pt", ["ACGU"], device="cpu", trust="yes"),
    }
    for name, call in calls.items():
        with pytest.raises(TypeError, match=r"^trust: expected True or False, got 'yes'$"):
            call()
            pytest.fail(f"{name} took trust='yes'")
    with pytest.raises(TypeError, match=r"^progress: expected True or False, got 2$"):
        resm.embed_sequences(tmp_path / "none.pt", ["ACGU"], device="cpu", progress=2)
