"""The seed's entry point: setup() validates and returns the configuration; execute() runs the whole pipeline (tiny
settings, real stages as subprocesses) and returns the summary; a second execute(), and `python -m jobs.pipeline` with
the same overrides, skip every finished stage."""
import json
import subprocess
import sys
import time

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


@pytest.mark.slow
def test_execution(tmp_path):
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
    report = tmp_path / "rec" / "report"
    assert json.loads((report / "summary.json").read_text()) == json.loads(json.dumps(s))
    assert len(list(report.glob("*.png"))) == 4 and "EX Spider" in (report / "report.md").read_text()
    # a rerun finds every stage complete and only rewrites the report
    start = time.monotonic()
    again = job.execute()
    assert again["success"] and time.monotonic() - start < 60
    assert again["summary"]["timings_s"] == s["timings_s"]
    # and from the command line, where jobs.pipeline's @hydra.main holds Hydra while the pipeline composes configs
    proc = subprocess.run([sys.executable, "-m", "jobs.pipeline", *job.pipeline_overrides], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count(", skipped") == 6
    assert json.loads((report / "summary.json").read_text()) == json.loads(json.dumps(again["summary"]))
