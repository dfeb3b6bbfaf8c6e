"""DPO on Ray Train for real, tiny sizes: 2 workers, ZeRO-2 full and ZeRO-3 LoRA; ZeRO-3 full with a worker killed
mid-run, which resumes from its checkpoint; pairs over model.max_length stop before a step; the stored-reference path
loads no reference model; QLoRA without CUDA stops early."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from transformers import AutoModelForCausalLM

from nba_dpo.config import validate
from nba_dpo.errors import UserError
from nba_dpo.training.common import ray_run_name, scratch_dir
from nba_dpo.training.dpo import train_dpo
from tests.conftest import ROOT, TINY_MODEL, compose_cfg

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pairs(tiny_prefs):
    """Pairs with stored reference log-probs from the tiny SFT model."""
    return Path(tiny_prefs[0].generate.output_dir) / "pairs" / "train.parquet"


def dpo_cfg(artifacts: Path, pairs: Path, name: str, *overrides: str):
    return validate(compose_cfg("train_dpo", [f"paths.artifacts={artifacts}", f"run_name={name}", f"train.pairs={pairs}",
                                              f"train.eval_pairs={pairs.parent / 'test.parquet'}",
                                              "train.max_steps=4", "train.save_steps=2", "train.logging_steps=1",
                                              "train.per_device_batch_size=4",
                                              f"train.output_dir=${{paths.artifacts}}/models/dpo_{name}"]
                                + TINY_MODEL + list(overrides)))


def dpo(artifacts: Path, pairs: Path, name: str, *overrides: str):
    cfg = dpo_cfg(artifacts, pairs, name, *overrides)
    return cfg, train_dpo(cfg)


@pytest.mark.parametrize("stage,method", [("zero2", "dpo_full"), ("zero3", "dpo_lora")])
def test_dpo_deepspeed(tiny_artifacts, pairs, stage, method):
    held_out = stage == "zero3"  # the ZeRO-2 run trains without held-out pairs
    cfg, out = dpo(tiny_artifacts, pairs, f"{stage}_{method}", f"deepspeed={stage}", f"train={method}",
                   *([] if held_out else ["train.eval_pairs=null"]))
    assert out["steps"] == 4 and out["reference"] == "stored"
    logged = [h for h in out["log_history"] if "rewards/accuracies" in h]
    assert logged and all(k in logged[-1] for k in ("rewards/chosen", "rewards/rejected", "rewards/margins"))
    if held_out:  # the generate stage's held-out pairs, scored after the epoch
        assert 0 <= out["heldout_reward_accuracy"] <= 1
    else:
        assert out["heldout_reward_accuracy"] is None
    folder = Path(cfg.train.output_dir)
    assert not (folder / "adapter_config.json").exists()
    AutoModelForCausalLM.from_pretrained(folder)
    run = Path(cfg.paths.artifacts, "ray_results", ray_run_name("dpo", cfg))
    assert list(run.glob("checkpoint_*"))
    # the metrics in TensorBoard, in the run's folder; the node's HF checkpoints are gone once Ray Train holds them
    events = EventAccumulator(str(run / "tensorboard")).Reload()
    assert {"train/loss", "train/rewards/accuracies", "train/rewards/margins"} <= set(events.Tags()["scalars"])
    assert len(events.Scalars("train/loss")) == 4  # logging_steps=1
    assert not (scratch_dir(run.name) / "hf").exists()


def test_stored_reference_loads_no_reference_model(tiny_artifacts, pairs):
    """With ref_*_logps in the pairs, TRL builds no reference model and computes no reference log-probs."""
    import datasets
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer
    from trl import DPOConfig

    from nba_dpo.training.dpo import StoredReferenceDPOTrainer

    model_path = str(tiny_artifacts / "models" / "sft")
    rows = pq.read_table(pairs).to_pylist()
    ds = datasets.Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected", "ref_chosen_logps",
                                                        "ref_rejected_logps")} for r in rows])

    def refuse(*args, **kwargs):
        raise AssertionError("reference log-probs were recomputed")

    StoredReferenceDPOTrainer.compute_ref_log_probs = refuse
    trainer = StoredReferenceDPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_path), ref_model=None,
        args=DPOConfig(output_dir=str(tiny_artifacts / "ref_check"), use_cpu=True, bf16=False, report_to=[],
                       precompute_ref_log_probs=True, max_steps=1, per_device_train_batch_size=2, max_length=256),
        train_dataset=ds, processing_class=AutoTokenizer.from_pretrained(model_path))
    assert trainer.ref_model is None
    trainer.train()
    del StoredReferenceDPOTrainer.compute_ref_log_probs


def test_killed_worker_resumes(tiny_artifacts, pairs, tmp_path):
    """ZeRO-3 full: rank 0 killed after step 3; Ray Train restarts the group, which resumes from the step-2
    checkpoint (DeepSpeed's partitioned optimizer state included) and finishes the 6 steps."""
    folder = tmp_path / "kill"
    cfg = dpo_cfg(tiny_artifacts, pairs, "killed", "deepspeed=zero3", "train=dpo_full", "train.max_steps=6",
                  f"train.callbacks=[{{_target_:tests.faults.KillRank0Once,step:2,folder:{folder}}}]")
    shutil.rmtree(scratch_dir(ray_run_name("dpo", cfg)), ignore_errors=True)
    out = train_dpo(cfg)
    assert (folder / "fired").read_text() == "3"  # killed after step 3, checkpoint at 2
    # Ray Train restarted the workers (FailureConfig) and they resumed from the step-2 checkpoint
    assert (folder / "attempts").read_text().split() == ["0", "2"]
    assert out["steps"] == 6 and out["reference"] == "stored" and 0 <= out["heldout_reward_accuracy"] <= 1
    AutoModelForCausalLM.from_pretrained(cfg.train.output_dir)


def test_qlora_without_cuda_stops_before_ray(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "jobs.train_dpo", "train=dpo_qlora", f"paths.artifacts={tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: QLoRA needs a CUDA GPU")
    assert not (tmp_path / "ray_results").exists()


def test_pairs_longer_than_max_length_stop_before_training(tiny_artifacts, pairs):
    """TRL would truncate them (and drop a pair whose prompt alone fills max_length) without a word: the job stops
    instead, with the numbers and the setting to change, before a step is taken and with no model written."""

    cfg = dpo_cfg(tiny_artifacts, pairs, "too_long", "model.max_length=48")
    with pytest.raises(UserError, match=r"of the \d+ training examples of worker \d are longer than "
                                        r"model.max_length=48 tokens \(the longest has \d+\): raise "
                                        r"model.max_length \(the model takes up to \d+\)"):
        train_dpo(cfg)
    assert not Path(cfg.train.output_dir).exists()


def test_reward_models_new_head_starts_from_the_seed(tmp_path, monkeypatch):
    """from_pretrained draws a reward model's value head afresh, before the trainer seeds anything: init_worker seeds
    the worker first, so the head starts the same whatever the process drew before (unseeded, two runs of
    jobs.train_reward on the same pairs ended 58% and 65% right on held-out pairs)."""
    import torch
    from omegaconf import OmegaConf
    from transformers import AutoModelForSequenceClassification

    from nba_dpo.training.common import init_worker, load_model_for_training
    from tests.stand_ins import stand_in_hub_model

    model_path = str(stand_in_hub_model("llama", tmp_path / "llama"))
    config = {"cfg": OmegaConf.to_container(compose_cfg("train_reward", [f"paths.artifacts={tmp_path}"]), resolve=True),
              "tensorboard": str(tmp_path / "tensorboard"), "run_name": "seeded"}
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", "")  # init_worker sets it: put back after the test
    threads = torch.get_num_threads()
    heads = []
    for earlier_draws in (1, 1000):
        torch.rand(earlier_draws)
        cfg = init_worker(config)
        model = load_model_for_training(cfg, model_path, None, AutoModelForSequenceClassification, num_labels=1)
        heads.append(model.score.weight.detach())
    torch.set_num_threads(threads)
    assert torch.equal(heads[0], heads[1])


def test_reward_model_learns_the_pairs_and_scores_candidates(tiny_artifacts, pairs):
    """jobs.train_reward on the tiny SFT model: a one-score head trained with TRL's RewardTrainer on 2 Ray Train
    workers; the generate stage's RewardScorer then loads it and ranks the training pairs' chosen answers above their
    rejected ones (it learned them), as score=learned will rank candidates."""
    import pyarrow.parquet as pq

    from nba_dpo.scoring.reward import RewardScorer
    from nba_dpo.training.reward import train_reward

    cfg = validate(compose_cfg("train_reward", [
        f"paths.artifacts={tiny_artifacts}", "run_name=reward", f"train.pairs={pairs}",
        f"train.eval_pairs={pairs.parent / 'test.parquet'}", "train.epochs=6", "train.learning_rate=1e-3",
        "train.per_device_batch_size=4", "train.logging_steps=1", "train.save_steps=100"] + TINY_MODEL
        + ["model.max_length=512"]))  # the chat-formatted question and answer of a pair
    out = train_reward(cfg)
    assert out["steps"] > 0 and out["final_loss"] is not None
    assert out["heldout_accuracy"] is None or 0 <= out["heldout_accuracy"] <= 1
    rows = pq.read_table(pairs).to_pylist()
    scorer = RewardScorer(cfg.train.output_dir, max_length=cfg.model.max_length)
    questions = [r["question"] for r in rows]
    chosen = scorer.scores(questions, [r["chosen"] for r in rows])
    rejected = scorer.scores(questions, [r["rejected"] for r in rows])
    assert (chosen > rejected).mean() >= 0.8
    with pytest.raises(UserError, match="a reward model trains all its parameters"):
        validate(compose_cfg("train_reward", [f"paths.artifacts={tiny_artifacts}", "train.method=lora"]))
