"""The evidence script's protocol guard: no test run without the committed protocol, nor of another recipe;
every appended line is time-stamped."""
import importlib.util
import json
from pathlib import Path

import pytest

from reconpatch_nb.benchmark import ResultsFile

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("evidence", ROOT / "benchmarks" / "evidence.py")
evidence = importlib.util.module_from_spec(spec); spec.loader.exec_module(evidence)


def test_committed_protocol_names_a_validated_recipe():
    chosen = json.loads(evidence.PROTOCOL.read_text())["chosen"]
    runs = [json.loads(l) for l in evidence.RESULTS.path.read_text().splitlines()]
    val = {r["method"]: r["recipe"] for r in runs if r["split"] == "val" and r["method"].startswith("reconpatch:")}
    assert val[f"reconpatch:{chosen['name']}"] == chosen["recipe"]


def test_committed_results_read_by_both():
    "The committed file is plain JSON lines: a line-by-line `json.loads` and `ResultsFile` see the same runs."
    plain = [json.loads(l) for l in evidence.RESULTS.path.read_text().splitlines() if l.strip()]
    assert isinstance(evidence.RESULTS, ResultsFile) and len(plain) > 0
    assert [r["key"] for r in evidence.RESULTS.records()] == list({json.dumps(r["key"]): r["key"] for r in plain}.values())


def test_guard(tmp_path):
    proto = tmp_path / "protocol.json"
    with pytest.raises(SystemExit, match="no protocol file"):
        evidence.check_protocol("test", ["patchcore1"], "x", {}, proto)
    evidence.check_protocol("val", ["reconpatch"], "anything", {"lr": 1}, proto)   # validation runs need no protocol
    proto.write_text(json.dumps({"chosen": {"name": "a", "recipe": {"lr": 0.001}}}))
    evidence.check_protocol("test", ["reconpatch"], "a", {"lr": 0.001}, proto)
    evidence.check_protocol("test", ["patchcore10"], "default", {}, proto)
    with pytest.raises(SystemExit, match="refusing a test run of 'b'"):
        evidence.check_protocol("test", ["reconpatch"], "b", {"lr": 0.001}, proto)
    with pytest.raises(SystemExit, match="refusing"):
        evidence.check_protocol("test", ["reconpatch"], "a", {"lr": 0.01}, proto)


def test_append_stamps_time(tmp_path):
    "What `run` appends goes through the package's `ResultsFile`: UTC-stamped, one line each, NaN refused before a write."
    out = ResultsFile(tmp_path / "r.jsonl")
    out.append({"key": [1]}); out.append({"key": [2]})
    rows = [json.loads(l) for l in out.path.read_text().splitlines()]
    assert [r["key"] for r in rows] == [[1], [2]] and all(len(r["time"]) == 20 and r["time"].endswith("Z") for r in rows)
    with pytest.raises(ValueError): out.append({"key": [3], "loss": float("nan")})
    assert out.done() == {"[1]", "[2]"}


def test_round2_choice_follows_its_rule_and_precedes_its_tests():
    "Round 2: the committed choice is what the rule gives on the seed-0 validation runs, and every round-2 test line comes after the choice."
    proto = json.loads(evidence.PROTOCOL.read_text())
    r2 = proto["round2"]
    rows = [json.loads(l) for l in evidence.RESULTS.path.read_text().splitlines() if l.strip()]
    cats = [(d, c) for d, cs in evidence.CATEGORIES.items() for c in cs]
    def val_mean(method):
        got = {(r["dataset"], r["category"]): r["metrics"]["image_auroc"] for r in rows
               if r["split"] == "val" and r["method"] == method and r["seed"] == 0}
        assert set(got) == set(cats), f"{method}: seed-0 validation runs missing for {set(cats) - set(got)}"
        return sum(got.values()) / len(got)
    round1 = {"patchcore": "patchcore10", "reconpatch": f"reconpatch:{proto['chosen']['name']}"}
    for fam, cand in r2["candidates"].items():
        label = f"{'patchcore10' if fam == 'patchcore' else 'reconpatch'}:{cand['name']}"
        wins = val_mean(label) > val_mean(round1[fam])
        assert (fam in (r2["chosen"] or {})) == wins, fam
        if wins: assert r2["chosen"][fam] == cand
    names = {f"{m}:{c['name']}" for fam, c in (r2["chosen"] or {}).items()
             for m in (("patchcore10", "patchcore1") if fam == "patchcore" else ("reconpatch",))}
    tests = [r for r in rows if r["split"] == "test" and r["method"] in names]
    vals = [r for r in rows if r["split"] == "val" and r["method"].split(":", 1)[-1] in {c["name"] for c in r2["candidates"].values()}]
    assert all(r["time"] > r2["written"] for r in vals)                  # the candidates and rule were written first
    assert all(r["time"] >= r2["chosen_at"] > max(v["time"] for v in vals) for r in tests)   # choice after validation, tests after it


def test_guard_round2(tmp_path):
    proto = tmp_path / "protocol.json"
    base = {"chosen": {"name": "a", "recipe": {"lr": 0.001}},
            "round2": {"candidates": {"reconpatch": {"name": "b", "recipe": {"alpha": 0.0}}}, "chosen": None}}
    proto.write_text(json.dumps(base))
    with pytest.raises(SystemExit, match="refusing a test run of 'b'"):   # a candidate, not yet chosen
        evidence.check_protocol("test", ["reconpatch"], "b", {"alpha": 0.0}, proto)
    base["round2"]["chosen"] = {"reconpatch": {"name": "b", "recipe": {"alpha": 0.0}},
                                "patchcore": {"name": "L3", "recipe": {"layers": [3]}}}
    proto.write_text(json.dumps(base))
    evidence.check_protocol("test", ["reconpatch"], "b", {"alpha": 0.0}, proto)
    evidence.check_protocol("test", ["reconpatch"], "a", {"lr": 0.001}, proto)        # round 1's choice stays allowed
    evidence.check_protocol("test", ["patchcore10", "patchcore1"], "L3", {"layers": [3]}, proto)
    with pytest.raises(SystemExit, match="allows patchcore recipes"):
        evidence.check_protocol("test", ["patchcore1"], "L3", {"layers": [2]}, proto)


def test_round1_repeat_made_under_the_protocol():
    "Round 1's test runs were made again after the protocol file was committed: each repeat is time-stamped after it, uses a recipe the file allows, and repeats a key that exists once."
    proto = json.loads(evidence.PROTOCOL.read_text())
    rows = [json.loads(l) for l in evidence.RESULTS.path.read_text().splitlines() if l.strip()]
    repeats = [r for r in rows if r.get("repeat", 1) > 1]
    assert repeats, "no repeat runs in the results file"
    for r in repeats:
        assert r["split"] == "test" and r["time"] > proto["committed"] and r["key"][5] == r["repeat"], r["key"]
        method, _, name = r["method"].partition(":")                 # `method_label` read back: plain PatchCore is "default"
        evidence.check_protocol("test", [method], name or "default", r["recipe"])   # the guard a test run passes (SystemExit if not)
    assert len({json.dumps(r["key"]) for r in repeats}) == len(repeats)


def test_repeat_gets_its_own_key(tmp_path, monkeypatch):
    "`--repeat 2` runs what is already in the results file again under a key ending in 2; without it the run is skipped."
    monkeypatch.setattr(evidence, "RESULTS", ResultsFile(tmp_path / "r.jsonl"))
    import torch
    g = torch.Generator().manual_seed(0)
    cache = tmp_path / "cache"; cache.mkdir()
    for split, n in (("train", 4), ("test", 3)):
        feats = {"p": torch.randn(n, 4, 4, 8, generator=g).half(), "labels": torch.tensor([0] * (n - 1) + [1]), "seconds": 0.0}
        torch.save(feats, cache / f"embedded_brick_{split}.pt")
    run = ["run", "--cache", str(cache), "--datasets", "embedded", "--categories", "brick", "--split", "test",
           "--methods", "patchcore1", "--seeds", "0", "--threads", str(torch.get_num_threads())]   # leaves the session's threads as they are
    evidence.main(run); evidence.main(run)                    # the second call finds the run done
    evidence.main(run + ["--repeat", "2"])
    keys = [r["key"] for r in evidence.RESULTS.records()]
    assert keys == [["embedded", "brick", "test", "patchcore1", 0], ["embedded", "brick", "test", "patchcore1", 0, 2]]
