"""Sharded inference: ``resm embed`` and ``resm fold`` under torchrun with 2 CPU processes give
the file a one-process run writes, and a re-run reuses the shards a killed job finished."""

import hashlib
import json
import os

import numpy as np
import pytest

from resm.backbone.load import init_model, save_fair_esm
from resm.embed import read_embeddings
from resm.utils.shards import ShardError, ShardRun
from tests.conftest import ENV, REPO, resm_cli

SEQS = [
    "GGGGAAACCCCAUAGCGCGAAAGCGCU",
    "ACGGCAUUCGUGCCGUAAAGGGCUAAAGCCCA",
    "GCGCUUCGGCGCAAAGGAUCCGAAAGGAUCC",
    "GGACUUCGGUCCAAAGCAGCGAAAGCUGCA",
    "ACGUACGUAAAAACCCGGGUUUACGU",
]


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    d = tmp_path_factory.mktemp("shards")
    (d / "in.fa").write_text("".join(f">r{k}\n{s}\n" for k, s in enumerate(SEQS)))
    save_fair_esm(init_model("tiny", seed=1), d / "tiny.pt")
    return d


def test_the_plan_is_deterministic_and_covers_every_record(monkeypatch, tmp_path):
    seen = []
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "3")
        run = ShardRun(tmp_path / "o.dbn", 10, 2, {}, ".jsonl")
        assert run.sharded and run.n_shards == 5 and run.work == tmp_path / "o.dbn.shards"
        seen += [k for s in run.mine() for k in run.block(s)]
        assert run.mine() == list(range(rank, 5, 3))
    assert sorted(seen) == list(range(10))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not ShardRun(None, 10, 10, {}, ".jsonl").sharded  # one process, one shard: no folder
    with pytest.raises(ShardError, match="needs an output file"):
        ShardRun(None, 10, 2, {}, ".jsonl")


def test_embed_on_two_processes_equals_one_process(job, tmp_path):
    one, two = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    args = ["--include", "mean", "per_tok", "--shard-size", "2", "--nogpu"]
    resm_cli("embed", job / "tiny.pt", job / "in.fa", one, *args)
    p = resm_cli("embed", job / "tiny.pt", job / "in.fa", two, *args, procs=2)
    assert p.stdout.count("wrote") == 1  # rank 0 alone reports
    assert two.read_bytes() == one.read_bytes()
    arrays, index = read_embeddings(two)
    assert index["ids"] == [f"r{k}" for k in range(5)] and arrays["r4/per_tok/2"].shape == (26, 64)
    # a single shard (the default size here) computes the same numbers
    resm_cli("embed", job / "tiny.pt", job / "in.fa", tmp_path / "whole.npz", "--include", "mean", "per_tok")
    whole, _ = read_embeddings(tmp_path / "whole.npz")
    assert set(whole) == set(arrays)
    for k in whole:
        np.testing.assert_allclose(whole[k], arrays[k], atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.safetensors", "two.safetensors", "whole.npz"]


def test_fold_on_two_processes_equals_one_process_and_resumes(job, tmp_path):
    one, two = tmp_path / "one.dbn", tmp_path / "two.dbn"
    args = ["--shard-size", "2", "--noLP"]
    resm_cli("fold", job / "in.fa", "-o", one, "--bpp", tmp_path / "one.bpp", *args)
    resm_cli("fold", job / "in.fa", "-o", two, "--bpp", tmp_path / "two.bpp", *args, procs=2)
    assert two.read_bytes() == one.read_bytes() and len(one.read_text().splitlines()) == 15
    assert (tmp_path / "two.bpp").read_bytes() == (tmp_path / "one.bpp").read_bytes()

    # a killed job: only rank 1 of 2 ran to the end (shard 1 holds records r2, r3)
    out = tmp_path / "resumed.dbn"
    env = {**ENV, "RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}
    resm_cli("fold", job / "in.fa", "-o", out, *args, env=env)
    work = tmp_path / "resumed.dbn.shards"
    assert not out.exists() and sorted(p.name for p in work.iterdir()) == [
        "job.json",
        "shard-000001-of-000003.jsonl",
        "shard-000001-of-000003.jsonl.json",
    ]
    # mark the finished shard, so that its reuse shows in the output: changed behind its manifest's
    # back it is refused, naming it; with its manifest's checksum updated too, it is merged
    shard = work / "shard-000001-of-000003.jsonl"
    shard.write_text(shard.read_text().replace(">r2\\n", ">r2 (from the finished shard)\\n"))
    p = resm_cli("fold", job / "in.fa", "-o", out, *args, check=False)
    assert p.returncode == 1 and not out.exists()  # refused before any work: no other shard computed
    assert sorted(p.name for p in work.iterdir()) == [
        "job.json",
        "shard-000001-of-000003.jsonl",
        "shard-000001-of-000003.jsonl.json",
    ]
    assert p.stderr.strip().splitlines()[-1] == (
        f"resm fold: error: {shard}: its contents changed since it was written (SHA-256 differs from its "
        f"manifest's); remove it (and {shard.name}.json) and re-run the command to recompute that shard"
    )
    manifest = json.loads((work / f"{shard.name}.json").read_text())
    manifest["sha256"] = hashlib.sha256(shard.read_bytes()).hexdigest()
    (work / f"{shard.name}.json").write_text(json.dumps(manifest))
    p = resm_cli("fold", job / "in.fa", "-o", out, *args)  # re-run: one process takes the rest
    assert "(1 finished shards reused)" in p.stdout
    assert out.read_text() == one.read_text().replace(">r2\n", ">r2 (from the finished shard)\n")
    assert not work.exists()

    # another job's folder is refused, and nothing is written
    resm_cli("fold", job / "in.fa", "-o", out, *args, env=env)
    p = resm_cli("fold", job / "in.fa", "-o", out, "--shard-size", "2", check=False)
    assert p.returncode == 1 and "holds the shards of another job" in p.stderr.strip().splitlines()[-1]
    assert out.read_text().startswith(">r0")  # the earlier output is untouched


def test_readme_documents_the_sharded_commands():
    readme = (REPO / "README.md").read_text()
    assert "torchrun --standalone --nproc_per_node" in readme and "-m resm embed" in readme and "-m resm fold" in readme
    assert os.path.exists(REPO / "resm" / "utils" / "shards.py")


def test_another_jobs_folder_is_refused_naming_what_differs(monkeypatch, tmp_path):
    """The refusal names the job.json entries that differ (input, an option, one the found job
    lacks; one only the found job has is counted, not named: that file may hold anything); a
    job.json that is no JSON object is still refused, in the same line without the list."""
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    first = ShardRun(tmp_path / "o.dbn", 4, 2, {"input": "a", "turner_scale": None, "nested": False}, ".jsonl")
    first.prepare()
    work = tmp_path / "o.dbn.shards"
    tail = "; remove it, or re-run the command that made it"
    for job, what in (
        ({"input": "a", "turner_scale": 0.3, "nested": False}, ": turner_scale differs"),
        ({"input": "b", "turner_scale": 0.3, "nested": False}, ": input, turner_scale differ"),
        ({"input": "b", "turner_scale": None}, ": input differs; it holds entries this job has none of"),
        ({"input": "a", "turner_scale": None, "nested": False, "x": 1}, ": x differs"),
    ):
        with pytest.raises(ShardError) as e:
            ShardRun(tmp_path / "o.dbn", 4, 2, job, ".jsonl").prepare()
        assert str(e.value) == f"{work} holds the shards of another job (other input or options{what}){tail}"
    (work / "job.json").write_bytes(b"\xff[1, 2]")
    with pytest.raises(ShardError) as e:
        first.prepare()
    assert str(e.value) == f"{work} holds the shards of another job (other input or options){tail}"
