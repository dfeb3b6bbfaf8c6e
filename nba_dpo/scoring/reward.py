"""Reward models as a Ray Data actor stage: a plain `*ForSequenceClassification` model (first logit), or an
ArmoRM-style model (custom code with `trust_remote_code`, read from its `.score` output). The completion is scored
as the assistant turn after the user's question (with the database schema when `reward_model.include_schema`), in
the reward model's own chat format (Llama-3's for ArmoRM), `batch_size` rows per forward."""
from __future__ import annotations

import numpy as np
import torch

from nba_dpo import storage
from nba_dpo.models.device import actor_device, torch_dtype


class RewardScorer:
    def __init__(self, model_path: str, kind: str = "sequence_classification", trust_remote_code: bool = False,
                 dtype: str = "float32", max_length: int = 1024, use_gpu: bool = False, schema: str | None = None):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.kind, self.max_length, self.schema = kind, max_length, schema
        self.device = actor_device(use_gpu)
        model_path = storage.local_copy(model_path)  # fetched once per node from an object store
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            model_path, trust_remote_code=trust_remote_code, dtype=torch_dtype(dtype)).to(self.device).eval()
        # Sequence-classification heads (ArmoRM's too) read the last token before the first pad: pad on the right,
        # with the model's own pad token. A sequence over max_length loses the start of its prompt, never the answer
        self.tokenizer.padding_side, self.tokenizer.truncation_side = "right", "left"
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.batched = self.model.config.pad_token_id is not None  # without a pad token, one row per forward
        if self.batched:
            self.tokenizer.pad_token_id = self.model.config.pad_token_id

    def conversation(self, question: str, completion: str) -> list[dict]:
        user = f"Database schema:\n{self.schema}\n\nQuestion: {question}" if self.schema else question
        return [{"role": "user", "content": user}, {"role": "assistant", "content": completion}]

    def scores(self, questions: list[str], completions: list[str]) -> np.ndarray:
        """The reward of each completion, one forward for all of them (or one each, without a pad token)."""
        step = len(questions) if self.batched else 1
        out = []
        for i in range(0, len(questions), step):
            batch = self.tokenizer.apply_chat_template(
                [self.conversation(q, c) for q, c in zip(questions[i:i + step], completions[i:i + step])],
                return_tensors="pt", return_dict=True, padding=self.batched, truncation=True,
                max_length=self.max_length)
            with torch.inference_mode():
                result = self.model(input_ids=batch["input_ids"].to(self.device),
                                    attention_mask=batch["attention_mask"].to(self.device))
            value = result.score if self.kind == "armorm" else result.logits[:, 0]  # ArmoRM: its preference score
            out.append(value.float().reshape(-1).cpu().numpy())
        return np.concatenate(out)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = dict(batch)
        scored = np.array([not (isinstance(e, str) and e.startswith("generation failed")) for e in batch["error"]],
                          dtype=bool)
        out["reward"] = np.full(len(scored), np.nan)
        if scored.any():
            out["reward"][scored] = self.scores([str(q) for q in batch["question"][scored]],
                                                [str(c) for c in batch["completion"][scored]])
        return out


def with_rewards(ds, rm, cluster, db_path: str):
    """Ray Data stage: a `reward` column scored by `rm` (a score.reward_model / eval.reward_model config) for each
    row's question and completion; the schema of the database at `db_path` goes with the question when
    rm.include_schema."""
    import ray

    from nba_dpo.cluster import actor_resources
    from nba_dpo.data.dataset import schema_ddl

    schema = schema_ddl(storage.local_copy(db_path)) if rm.include_schema else None
    return ds.map_batches(RewardScorer, batch_size=rm.batch_size,
                          compute=ray.data.ActorPoolStrategy(size=rm.concurrency),
                          **actor_resources(cluster, num_cpus=0 if rm.num_gpus else 1, num_gpus=rm.num_gpus),
                          fn_constructor_kwargs=dict(model_path=rm.path, kind=rm.kind, dtype=rm.dtype,
                                                     trust_remote_code=rm.trust_remote_code, max_length=rm.max_length,
                                                     use_gpu=rm.num_gpus > 0, schema=schema))
