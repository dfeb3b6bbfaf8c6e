"""Reward models as a Ray Data actor stage: a plain `*ForSequenceClassification` model (first logit), or an
ArmoRM-style model (custom code with `trust_remote_code`, read from its `.score` output). The completion is scored
as the assistant turn after the user's question, in the reward model's own chat format (Llama-3's for ArmoRM)."""
from __future__ import annotations

import numpy as np
import torch

from nba_dpo import storage
from nba_dpo.models.device import actor_device, torch_dtype


class RewardScorer:
    def __init__(self, model_path: str, kind: str = "sequence_classification", trust_remote_code: bool = False,
                 dtype: str = "float32", max_length: int = 1024, use_gpu: bool = False):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.kind, self.max_length = kind, max_length
        self.device = actor_device(use_gpu)
        model_path = storage.local_copy(model_path)  # fetched once per node from an object store
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            model_path, trust_remote_code=trust_remote_code, dtype=torch_dtype(dtype)).to(self.device).eval()

    def score(self, question: str, completion: str) -> float:
        messages = [{"role": "user", "content": question}, {"role": "assistant", "content": completion}]
        ids = self.tokenizer.apply_chat_template(messages, return_tensors="pt", return_dict=True, truncation=True,
                                                 max_length=self.max_length)["input_ids"].to(self.device)
        with torch.inference_mode():
            out = self.model(input_ids=ids)
        value = out.score if self.kind == "armorm" else out.logits[:, 0]  # ArmoRM: preference score head
        return float(value.float().reshape(-1)[0])

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = dict(batch)
        failed = [isinstance(e, str) and e.startswith("generation failed") for e in batch["error"]]
        out["reward"] = np.array([np.nan if f else self.score(str(q), str(c))
                                  for q, c, f in zip(batch["question"], batch["completion"], failed)])
        return out


def with_rewards(ds, rm, cluster):
    """Ray Data stage: a `reward` column scored by `rm` (a score.reward_model / eval.reward_model config) for each
    row's question and completion."""
    import ray

    from nba_dpo.cluster import actor_resources

    return ds.map_batches(RewardScorer, batch_size=rm.batch_size,
                          compute=ray.data.ActorPoolStrategy(size=rm.concurrency),
                          **actor_resources(cluster, num_cpus=0 if rm.num_gpus else 1, num_gpus=rm.num_gpus),
                          fn_constructor_kwargs=dict(model_path=rm.path, kind=rm.kind, dtype=rm.dtype,
                                                     trust_remote_code=rm.trust_remote_code, max_length=rm.max_length,
                                                     use_gpu=rm.num_gpus > 0))
