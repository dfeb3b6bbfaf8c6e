"""The seed's entry point: setup() validates and returns the configuration; execute() runs the whole pipeline (tiny
settings, real stages as subprocesses) and returns the summary; a second execute() skips every finished stage; and
`python -m jobs.pipeline` with the same overrides and `pipeline.rounds=2` skips round 1 and adds round 2 only.
execute() runs on the two-node cluster of tests/conftest.py with paths.artifacts on S3 (`two_node_pipeline`, which
test_multinode.py checks for where the work ran and what landed in the bucket): the pipeline on one machine is the
same code with a local root, which the stage tests run."""
import json

import pytest

from implement_rec_047 import ImplementCreateAndFinetuneWithPreferenceDatasets
from nba_dpo import storage
from nba_dpo.errors import UserError


def test_setup(tmp_path):
    job = ImplementCreateAndFinetuneWithPreferenceDatasets(artifacts=str(tmp_path / "rec"))
    cfg = job.setup()
    assert cfg.paths.artifacts == str(tmp_path / "rec") and cfg.pipeline.rounds == 1
    assert any(o.startswith("train.max_steps") for o in cfg.pipeline.sft)
    bad = ImplementCreateAndFinetuneWithPreferenceDatasets(artifacts=str(tmp_path / "bad"),
                                                           overrides=['pipeline.sft=["cluster.num_workers=64"]'])
    with pytest.raises(UserError, match="num_workers"):
        bad.setup()


@pytest.mark.timeout(2400)  # its setup, the first test to use two_node_pipeline, runs the whole pipeline
def test_execution(two_nodes, two_node_pipeline):
    job, result, cwd = two_node_pipeline
    assert result["success"], result["error"]
    s = result["summary"]
    for side in ("sft", "dpo"):
        assert set(s[side]) >= {"ex_spider", "ex_bird", "pass_at_8", "mean_completion_tokens", "valid_sql"}
        assert 0 <= s[side]["ex_spider"] <= 1 and 0 <= s[side]["valid_sql"] <= 1
    assert s["sft"]["pass_at_8"] is None  # greedy evaluation only: no pass@8
    assert set(s["heldout_phrasings"]) == {"sft_ex_spider", "dpo_ex_spider"}
    assert s["pairs"]["n"] > 0 and set(s["timings_s"]) >= {"build_data", "sft", "generate", "train_dpo"}
    win = s["win_rate"]["dpo vs sft"]
    assert win["questions"] == 60 and win["wins"]["n"] + win["ties"]["n"] + win["losses"]["n"] == 60
    assert 0 <= win["mcnemar_p"] <= 1 and win["wins"]["ci95"][0] <= win["wins"]["rate"] <= win["wins"]["ci95"][1]
    for side in ("sft", "dpo"):
        assert set(s["reasoning"][side]) >= {"consistent", "correct", "ex_when_correct", "ex_when_wrong"}
        assert set(s["verbosity"][side]) >= {"completion", "reasoning", "sql", "gold_sql"}
        prefs = s["preferences"][side]
        assert prefs["n"] > 0 and 0 <= prefs["prefers_chosen"] <= 1 and 0 <= prefs["prefers_chosen_per_token"] <= 1
    assert s["preferences"]["sft"]["implicit_reward_accuracy"] == 0  # SFT is the reference: no margin at all
    # one round: nothing to choose, so no validation evaluations
    assert (s["chosen"]["round"], s["chosen"]["why"], s["chosen"]["val_ex_spider"]) == (1, "the only round", {})
    root = job.artifacts
    report = f"{root}/report"
    assert storage.read_json(f"{report}/summary.json") == json.loads(json.dumps(s))
    text = storage.read_text(f"{report}/report.md")
    assert "EX Spider" in text and "McNemar" in text and "pass_at_k.png" not in text  # greedy only: no pass@k plot
    assert len(storage.list_files(report, ".png")) == 5
    # a rerun finds every stage complete (no stage's timing changes) and only rewrites the report
    with two_nodes.driver(cwd):
        again = job.execute()
    assert again["success"] and again["summary"]["timings_s"] == s["timings_s"]
    assert storage.read_json(f"{report}/summary.json") == json.loads(json.dumps(again["summary"]))
    # a second round on the finished run, from the command line (where jobs.pipeline's @hydra.main holds Hydra while
    # the pipeline composes configs): the six stages of round 1 are skipped (and its models evaluated on the
    # validation split now that there is a choice), round 2 goes to folders of its own, and the reported round is the
    # better one on that split
    proc = two_nodes.job("pipeline", *job.pipeline_overrides, "pipeline.rounds=2", cwd=cwd, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count(", skipped") == 6, proc.stdout
    assert "train_dpo: complete" in proc.stdout and "train_dpo_r2: python -m jobs.train_dpo" in proc.stdout
    assert storage.exists(f"{root}/prefs_r2/summary.json") and storage.is_published(f"{root}/models/dpo_r2")
    two = storage.read_json(f"{report}/summary.json")
    val = two["chosen"]["val_ex_spider"]
    assert set(val) == {"sft", "dpo", "dpo_r2"}
    best = 2 if val["dpo_r2"] > val["dpo"] else 1
    assert [r["round"] for r in two["rounds"]] == [1, 2] and two["chosen"]["round"] == best
    chosen_eval = storage.read_json(f"{root}/eval/{'dpo' if best == 1 else 'dpo_r2'}/metrics.json")
    assert two["dpo"]["ex_spider"] == chosen_eval["ex_spider"] and "dpo_r2 vs dpo" in two["win_rate"]
