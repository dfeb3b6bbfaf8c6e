"""The seed's entry point: setup() validates and returns the configuration; execute() runs the whole pipeline (tiny
settings, real stages as subprocesses) and returns the summary; a second execute() skips every finished stage; and
`python -m jobs.pipeline` with the same overrides and `pipeline.rounds=2` skips round 1 and adds round 2 only."""
import json
import subprocess
import sys

import pytest

from implement_rec_047 import ImplementCreateAndFinetuneWithPreferenceDatasets
from nba_dpo.errors import UserError
from tests.conftest import ROOT


def test_setup(tmp_path):
    job = ImplementCreateAndFinetuneWithPreferenceDatasets(artifacts=str(tmp_path / "rec"))
    cfg = job.setup()
    assert cfg.paths.artifacts == str(tmp_path / "rec") and cfg.pipeline.rounds == 1
    assert any(o.startswith("train.max_steps") for o in cfg.pipeline.sft)
    bad = ImplementCreateAndFinetuneWithPreferenceDatasets(artifacts=str(tmp_path / "bad"),
                                                           overrides=["cluster.num_workers=64"])
    with pytest.raises(UserError, match="num_workers"):
        bad.setup()


@pytest.fixture
def own_ray():
    """The pipeline starts Ray in this process for its stages: stopped after the test, not left running beside the
    tests that follow on this pytest worker."""
    yield
    import ray

    ray.shutdown()


@pytest.mark.slow
@pytest.mark.xdist_group("pipeline")  # a unit of its own, scheduled before the two-node group (tests/conftest.py)
def test_execution(tmp_path, own_ray):
    job = ImplementCreateAndFinetuneWithPreferenceDatasets(artifacts=str(tmp_path / "rec"))
    job.setup()
    result = job.execute()
    assert result["success"], result["error"]
    s = result["summary"]
    for side in ("sft", "dpo"):
        assert set(s[side]) >= {"ex_spider", "ex_bird", "pass_at_8", "mean_completion_tokens", "valid_sql"}
        assert 0 <= s[side]["ex_spider"] <= 1 and 0 <= s[side]["valid_sql"] <= 1
    assert s["sft"]["pass_at_8"] is None  # the tiny run samples 4 completions, so there is no pass@8
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
    report = tmp_path / "rec" / "report"
    assert json.loads((report / "summary.json").read_text()) == json.loads(json.dumps(s))
    text = (report / "report.md").read_text()
    assert len(list(report.glob("*.png"))) == 6 and "EX Spider" in text and "McNemar" in text
    # a rerun finds every stage complete (no stage's timing changes) and only rewrites the report
    again = job.execute()
    assert again["success"] and again["summary"]["timings_s"] == s["timings_s"]
    assert json.loads((report / "summary.json").read_text()) == json.loads(json.dumps(again["summary"]))
    # a second round on the finished run, from the command line (where jobs.pipeline's @hydra.main holds Hydra while
    # the pipeline composes configs): the six stages of round 1 are skipped (and its models evaluated on the
    # validation split now that there is a choice), round 2 goes to folders of its own, and the reported round is the
    # better one on that split
    proc = subprocess.run([sys.executable, "-m", "jobs.pipeline", *job.pipeline_overrides, "pipeline.rounds=2"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count(", skipped") == 6, proc.stdout
    assert "train_dpo: complete" in proc.stdout and "train_dpo_r2: python -m jobs.train_dpo" in proc.stdout
    root = tmp_path / "rec"
    assert (root / "prefs_r2" / "summary.json").exists() and (root / "models" / "dpo_r2" / "_SUCCESS").exists()
    two = json.loads((report / "summary.json").read_text())
    val = two["chosen"]["val_ex_spider"]
    assert set(val) == {"sft", "dpo", "dpo_r2"}
    best = 2 if val["dpo_r2"] > val["dpo"] else 1
    assert [r["round"] for r in two["rounds"]] == [1, 2] and two["chosen"]["round"] == best
    chosen_eval = json.loads((root / "eval" / ("dpo" if best == 1 else "dpo_r2") / "metrics.json").read_text())
    assert two["dpo"]["ex_spider"] == chosen_eval["ex_spider"] and "dpo_r2 vs dpo" in two["win_rate"]
