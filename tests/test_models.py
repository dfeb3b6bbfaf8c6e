"""The tiny model and the hub model configs (validated, never downloaded)."""
import dataclasses
import hashlib
import importlib
import inspect
import re
import subprocess
import sys
import time
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import MISSING
from transformers import AutoModelForCausalLM, AutoTokenizer

from nba_dpo import config
from nba_dpo.config import GROUP_SCHEMAS, _typed, validate
from nba_dpo.errors import UserError
from nba_dpo.models.prompts import PromptBuilder, build_prompt
from nba_dpo.models.tiny import build_tiny_model
from tests.conftest import ROOT, compose_cfg
from tests.stand_ins import CORPUS, HUB_CHAT_TEMPLATES, stand_in_hub_model

BUILD = dict(vocab_size=400, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
             max_position_embeddings=128)


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def test_tiny_model_is_deterministic_and_loads(tmp_path):
    a = build_tiny_model(CORPUS, tmp_path / "a", seed=0, **BUILD)
    b = build_tiny_model(CORPUS, tmp_path / "b", seed=0, **BUILD)
    c = build_tiny_model(CORPUS, tmp_path / "c", seed=1, **BUILD)
    assert digest(a) == digest(b) != digest(c)
    tok = AutoTokenizer.from_pretrained(a)
    model = AutoModelForCausalLM.from_pretrained(a)
    assert model.config.model_type == "llama" and model.config.vocab_size == len(tok)
    prompt = build_prompt(tok, "How many teams?", None, include_schema=False)
    assert prompt == "<|user|>\nHow many teams?<|end|>\n<|assistant|>\n"
    ids = tok(prompt, return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] > ids.shape[1]


@pytest.mark.parametrize("name", ["qwen2_5_coder_0_5b", "qwen2_5_coder_1_5b", "qwen2_5_coder_7b", "llama3_8b"])
def test_hub_model_configs_compose_without_download(name, tmp_path):
    cfg = compose_cfg("sft", [f"model={name}", "train=sft_lora", f"paths.artifacts={tmp_path}"])
    model = _typed(cfg.model, GROUP_SCHEMAS["model"], "model")
    assert model.include_schema and model.build is None and "/" in model.path
    assert set(model.lora.target_modules) >= {"q_proj", "v_proj"}
    with pytest.raises(UserError, match="not a local model folder"):
        validate(cfg)  # offline: a hub id that is not on disk stops before any download
    local = tmp_path / "weights"
    local.mkdir()
    assert validate(compose_cfg("sft", [f"model={name}", f"model.path={local}", f"paths.artifacts={tmp_path}"]))


def all_schemas() -> set[type]:
    """Every schema a config group is checked against, and the schemas nested in them."""
    found, todo = set(), [*GROUP_SCHEMAS.values(), *(s for _, by in config.SCHEMAS_BY_KEY.values() for s in by.values())]
    while todo:
        schema = todo.pop()
        if schema in found:
            continue
        found.add(schema)
        todo += [t for f in dataclasses.fields(schema) for t in typing.get_args(typing.get_type_hints(schema)[f.name])
                 + (typing.get_type_hints(schema)[f.name],) if dataclasses.is_dataclass(t)]
    return found


def test_schemas_carry_no_defaults():
    """conf/ is the one source of defaults: a schema field with a default of its own would be a second one."""
    schemas = all_schemas()
    assert {config.Model, config.TinyBuild, config.RewardModel, config.SFTTrain, config.VLLMGenerate} <= schemas
    defined_twice = [f"{s.__name__}.{f.name}" for s in schemas for f in dataclasses.fields(s)
                     if f.default is not MISSING or f.default_factory is not dataclasses.MISSING]
    assert defined_twice == []


@pytest.mark.parametrize("stage,overrides", [("sft", []), ("sft", ["train=sft_lora"]), ("train_dpo", ["train=dpo_lora"]),
                                             ("generate", ["generate=vllm", "score=armorm", "pairs=margin"]),
                                             # a CPU reward scorer beside 2 generators: 4 CPUs leave Ray Data one
                                             ("generate", ["score=composite", "pairs=all_pairs", "cluster.num_cpus=4"]),
                                             ("evaluate", []),
                                             ("evaluate", ["eval=vllm"]),
                                             ("config", ["data=byo", "data.db_path=x", "data.questions=y"])])
def test_every_preset_names_every_setting(stage, overrides, tmp_path):
    """With no defaults in the schemas, a preset that leaves a setting out fails here, naming it."""
    assert validate(compose_cfg(stage, [f"paths.artifacts={tmp_path}", *overrides]))


def test_dpo_losses_come_from_trl():
    from trl import DPOTrainer

    branches = set(re.findall(r'loss_type == "(\w+)"', inspect.getsource(DPOTrainer)))
    assert {"sigmoid", "ipo", "sft", "apo_zero"} <= config.dpo_loss_types() == branches


def test_schema_prompt_for_real_models(tmp_path):
    """A hub model's prompt carries the schema's DDL; the generate stage's PromptBuilder consumes the schema column,
    and without the schema in the prompt (the tiny model) it needs no such column at all."""
    model = build_tiny_model(CORPUS, tmp_path / "t", seed=0, **BUILD)
    tok = AutoTokenizer.from_pretrained(model)
    ddl = "CREATE TABLE teams (id INTEGER);"
    prompt = build_prompt(tok, "How many teams?", ddl, include_schema=True)
    assert "CREATE TABLE teams" in prompt and prompt.index("<|system|>") < prompt.index("<|user|>")
    batch = {"id": np.array(["q1"]), "question": np.array(["How many teams?"], dtype=object)}
    with_schema = PromptBuilder(str(model), include_schema=True)({**batch, "schema": np.array([ddl], dtype=object)})
    assert "schema" not in with_schema and list(with_schema["prompt"]) == [prompt]
    longest = PromptBuilder(str(model), include_schema=True).longest({**batch, "schema": np.array([ddl], dtype=object)})
    assert longest == len(tok(prompt, add_special_tokens=False).input_ids)
    plain = PromptBuilder(str(model), include_schema=False)(batch)
    assert list(plain["prompt"]) == [build_prompt(tok, "How many teams?", None, include_schema=False)]


def test_ray_run_name_follows_the_training_config():
    """A rerun with the same config resumes the same Ray Train run; another config never picks up its checkpoints."""
    from nba_dpo.training.common import ray_run_name

    name = lambda *o: ray_run_name("dpo", compose_cfg("train_dpo", ["run_name=x", *o]))  # noqa: E731
    assert name() == name() and name().startswith("dpo-x-")
    assert len({name(), name("train.learning_rate=1e-3"), name("train.output_dir=/tmp/other"),
                name("deepspeed=zero3")}) == 4


def test_qlora_on_cpu_stops_before_ray(tmp_path):
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "jobs.sft", "train=sft_qlora", f"paths.artifacts={tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: QLoRA needs a CUDA GPU") and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "ray_results").exists()
    assert time.monotonic() - start < 60


@pytest.mark.parametrize("job", ["build_data", "sft", "train_dpo", "generate", "evaluate", "pipeline"])
def test_jobs_import_the_ml_stack_only_once_the_config_is_valid(job):
    """So that `--help` and a config error answer in about a second, not after TRL's 4 s import; `--help` opens with
    the job's docstring (what it does, example commands)."""
    code = f"import sys, jobs.{job}; print(sorted({{'torch', 'transformers', 'trl', 'vllm'}} & set(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
    help_text = subprocess.run([sys.executable, "-m", f"jobs.{job}", "--help"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout
    doc = importlib.import_module(f"jobs.{job}").__doc__.strip()
    assert help_text.startswith(doc + "\n") and "== Configuration groups ==" in help_text


def test_cpu_sft_trainer_loss_matches_trl(tmp_path):
    """The CPU trainer's loss (the model's own) equals TRL's fused-head completion-only loss on the same batch."""
    import datasets
    from trl import SFTConfig, SFTTrainer

    from nba_dpo.training.sft import CPUSFTTrainer

    path = build_tiny_model(CORPUS, tmp_path / "m", seed=0, **BUILD)
    tok = AutoTokenizer.from_pretrained(path)
    rows = [{"prompt": build_prompt(tok, line.split("\n")[0], None, include_schema=False),
             "completion": line.split("\n", 1)[1]} for line in CORPUS[:16]]
    losses = []
    for cls in (SFTTrainer, CPUSFTTrainer):
        args = SFTConfig(output_dir=str(tmp_path / cls.__name__), use_cpu=True, report_to=[], max_length=128,
                         completion_only_loss=True, per_device_train_batch_size=8, dataset_num_proc=None, seed=0)
        trainer = cls(model=AutoModelForCausalLM.from_pretrained(path), args=args, processing_class=tok,
                      train_dataset=datasets.Dataset.from_list(rows))
        batch = next(iter(trainer.get_train_dataloader()))
        assert (batch["labels"] == -100).any() and (batch["labels"] != -100).any()  # prompt masked, completion kept
        losses.append(trainer.compute_loss(trainer.model, dict(batch)).item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_packed_batches_keep_the_loss_and_gradients(tmp_path):
    """train.pack_batches: the same examples packed into fewer rows give the padded batch's loss and gradients
    (attention stays within each example)."""
    import datasets
    from trl import SFTConfig

    from nba_dpo.training.sft import CPUSFTTrainer, pack_rows

    path = build_tiny_model(CORPUS, tmp_path / "m", seed=0, **BUILD)
    tok = AutoTokenizer.from_pretrained(path)
    rows = [{"prompt": build_prompt(tok, line.split("\n")[0], None, include_schema=False),
             "completion": line.split("\n", 1)[1][:20 + 3 * i]} for i, line in enumerate(CORPUS[:16])]
    results = []
    for packed in (False, True):
        args = SFTConfig(output_dir=str(tmp_path / "out"), use_cpu=True, report_to=[], max_length=128,
                         completion_only_loss=True, per_device_train_batch_size=16, dataset_num_proc=None, seed=0)
        trainer = CPUSFTTrainer(model=AutoModelForCausalLM.from_pretrained(path).train(), args=args,
                                processing_class=tok, train_dataset=datasets.Dataset.from_list(rows))
        if packed:
            pack_rows(trainer, max_length=128)
        batch = next(iter(trainer.get_train_dataloader()))
        loss = trainer.compute_loss(trainer.model, dict(batch))
        loss.backward()
        results.append((batch["input_ids"].shape, loss.item(), trainer.model.model.embed_tokens.weight.grad))
    (padded_shape, padded_loss, padded_grad), (packed_shape, packed_loss, packed_grad) = results
    assert packed_shape[0] < padded_shape[0] / 2 and packed_shape[1] <= 128  # several examples per row
    assert packed_loss == pytest.approx(padded_loss, rel=1e-5)
    torch.testing.assert_close(packed_grad, padded_grad, rtol=1e-4, atol=1e-6)


def test_compose_inside_a_running_hydra_job():
    """jobs.pipeline composes the generate stage's config while its own @hydra.main holds Hydra initialised."""
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        assert compose_cfg("generate", ["generate.limit=7"]).generate.limit == 7


@pytest.mark.parametrize("config,override,message", [("sft", "+train.sampler=batch_rebalance", "Key 'sampler' not in"),
                                                      ("train_dpo", "+train.pack_batches=true", "Key 'pack_batches' not in 'DPOTrain'")])
def test_bad_batching_is_one_clear_error(config, override, message):
    with pytest.raises(UserError, match=message):
        validate(compose_cfg(config, [override]))


@pytest.mark.parametrize("overrides,message", [
    (["deepspeed=zero2", "deepspeed.max_live_parameters=1000"], "a ZeRO-3 setting: set it to null"),
    (["deepspeed=zero3", "deepspeed.max_live_parameters=0"], "max_live_parameters=0 is not allowed")])
def test_zero3_settings_are_checked(overrides, message):
    with pytest.raises(UserError, match=message):
        validate(compose_cfg("train_dpo", overrides))


def test_zero3_config_sizes_from_the_model():
    """ZeRO-3's buckets are left to transformers to size from the model ("auto"), and the gathered-parameter limit
    comes from the deepspeed group."""
    from nba_dpo.training.deepspeed_config import deepspeed_config

    cfg = validate(compose_cfg("train_dpo", ["deepspeed=zero3", "deepspeed.max_live_parameters=10000000"]))
    zero = deepspeed_config(cfg.deepspeed, use_gpu=False)["zero_optimization"]
    assert zero["stage3_max_live_parameters"] == zero["stage3_max_reuse_distance"] == 10_000_000
    assert all(zero[k] == "auto" for k in ("reduce_bucket_size", "stage3_prefetch_bucket_size",
                                           "stage3_param_persistence_threshold"))


def test_cpu_dpo_scoring_completion_tokens_only_keeps_the_loss(tmp_path, monkeypatch):
    """DPO's loss and log-probs on CPU are the same whether TRL's fused head scores every position or only the
    completion tokens (`score_completion_tokens_only`, what the CPU workers use)."""
    import datasets
    import trl.trainer.utils as trl_utils
    from trl import DPOConfig

    from nba_dpo.training.dpo import StoredReferenceDPOTrainer, score_completion_tokens_only

    monkeypatch.setattr(trl_utils, "_use_triton", trl_utils._use_triton)  # restored after the test
    path = build_tiny_model(CORPUS, tmp_path / "m", seed=0, **BUILD)
    tok = AutoTokenizer.from_pretrained(path)
    rows = [{"prompt": build_prompt(tok, line.split("\n")[0], None, include_schema=False),
             "chosen": line.split("\n", 1)[1], "rejected": other.split("\n", 1)[1][:20 + 7 * i],
             "ref_chosen_logps": -5.0 - i, "ref_rejected_logps": -9.0 + i}
            for i, (line, other) in enumerate(zip(CORPUS[:8], CORPUS[8:16]))]
    args = DPOConfig(output_dir=str(tmp_path / "dpo"), use_cpu=True, report_to=[], max_length=128, beta=1.0,
                     loss_type=["sigmoid", "sft"], precompute_ref_log_probs=True, per_device_train_batch_size=8,
                     dataset_num_proc=None, seed=0)
    trainer = StoredReferenceDPOTrainer(model=AutoModelForCausalLM.from_pretrained(path), ref_model=None, args=args,
                                        processing_class=tok, train_dataset=datasets.Dataset.from_list(rows))
    batch = dict(next(iter(trainer.get_train_dataloader())))
    assert (batch["completion_mask"] == 0).any()  # prompt and padding positions exist
    results = []
    for patched in (False, True):
        if patched:
            score_completion_tokens_only()
        assert trl_utils._use_triton(torch.device("cpu")) == patched  # which path TRL's fused head takes
        loss = trainer.compute_loss(trainer.model, batch)
        loss.backward()
        grad = trainer.model.lm_head.weight.grad.clone()
        trainer.model.zero_grad()
        results.append((loss.item(), grad))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-6)


@pytest.mark.parametrize("experiment,family", [("qwen_coder_7b_lora_8gpu", "qwen"), ("llama3_8b_full_zero3", "llama")])
def test_hub_experiments_fit_every_pool_prompt(experiment, family, built_data):
    """Every prompt of the preference pool, built by the project's prompt builder with the schema in the system turn,
    fits the experiment's vLLM max_model_len with generate.max_new_tokens to spare, and every training example
    (prompt + gold completion) fits model.max_length."""
    import pyarrow.parquet as pq
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    from nba_dpo.data.dataset import completion_text

    pipeline = compose_cfg("pipeline", [f"experiment={experiment}"]).pipeline
    gen = compose_cfg("generate", [*pipeline.common, *pipeline.generate]).generate
    model = compose_cfg("sft", [*pipeline.common, *pipeline.sft]).model
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE()))
    tok.chat_template = HUB_CHAT_TEMPLATES[family]
    data = Path(built_data[0].paths.data)
    pool = pq.read_table(data / "pref_prompts.parquet").to_pylist()
    longest_prompt = max(len(build_prompt(tok, r["question"], r["schema"], model.include_schema).encode())
                         for r in pool)
    assert model.include_schema and longest_prompt > 2000  # the schema's DDL is in every prompt
    assert longest_prompt + gen.max_new_tokens <= gen.max_model_len
    train = pq.read_table(data / "sft" / "train.parquet").to_pylist()
    longest_example = max(len((build_prompt(tok, r["question"], r["schema"], True)
                               + completion_text(r["reasoning"], r["sql"])).encode()) for r in train)
    assert longest_example <= model.max_length


@pytest.mark.parametrize("experiment,family", [("qwen_coder_7b_lora_8gpu", "qwen"), ("llama3_8b_full_zero3", "llama")])
def test_hub_experiments_carry_hub_recipes(experiment, family, tmp_path):
    """Each hub experiment's stages pass the project's validation against a stand-in of its model, with the settings
    of published 7-8B recipes rather than the tiny model's: bf16, gradient checkpointing, DPO at lr 5e-7 to 5e-6 for
    1-2 epochs with beta about 0.1, and lengths that fit the model's context."""
    model = stand_in_hub_model(family, tmp_path / "model")
    pipeline = compose_cfg("pipeline", [f"experiment={experiment}"]).pipeline
    stage = lambda name, config: validate(compose_cfg(config, [  # noqa: E731
        f"paths.artifacts={tmp_path}", *pipeline.common, f"model.path={model}", *pipeline[name]]))
    sft, dpo, gen = stage("sft", "sft"), stage("train_dpo", "train_dpo"), stage("generate", "generate")
    evaluation = stage("evaluate", "evaluate").eval
    for cfg in (sft, dpo):
        assert cfg.train.bf16 and cfg.train.gradient_checkpointing and cfg.model.dtype == "bfloat16"
        assert 1 <= cfg.train.epochs <= 2
    assert 5e-7 <= dpo.train.learning_rate <= 5e-6 and 0.05 <= dpo.train.beta <= 0.2
    assert list(dpo.train.loss_type) == ["sigmoid"]
    if dpo.train.method == "lora":
        assert 16 <= dpo.model.lora.r <= 64
    context = AutoModelForCausalLM.from_pretrained(model).config.max_position_embeddings
    assert sft.model.max_length <= context and gen.generate.max_model_len <= context
    assert evaluation.backend == "vllm" and evaluation.max_model_len == gen.generate.max_model_len
    assert AutoTokenizer.from_pretrained(model).apply_chat_template([{"role": "user", "content": "q"}], tokenize=False,
                                                                    add_generation_prompt=True)
