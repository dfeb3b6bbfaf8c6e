"""Summed log-probabilities of chosen and rejected completions under the reference model (RefLogProbs), or under
the model being evaluated with their token counts (PairLogProbs), as Ray Data stages.

Tokenised exactly as TRL's DPOTrainer does (prompt alone vs prompt + completion + EOS, the completion being the
tail after their common prefix, truncated to max_length keeping the start), so that DPO can train from the stored
`ref_chosen_logps`/`ref_rejected_logps` with no reference model in memory.
"""
from __future__ import annotations

import numpy as np
import torch

from nba_dpo import storage
from nba_dpo.models.device import actor_device, torch_dtype


def completion_ids(tokenizer, prompt: str, completion: str, max_length: int) -> tuple[list[int], list[int]]:
    eos = tokenizer.eos_token or ""
    text = completion if completion.endswith(eos) else completion + eos
    prompt_ids = tokenizer(text=prompt)["input_ids"]
    full = tokenizer(text=prompt + text)["input_ids"]
    n = 0
    while n < min(len(prompt_ids), len(full)) and prompt_ids[n] == full[n]:
        n += 1
    full = full[:max_length]
    return full[:n], full[n:]


class RefLogProbs:
    def __init__(self, model_path: str, max_length: int, dtype: str = "float32", batch_size: int = 16,
                 use_gpu: bool = False):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(1)
        self.device = actor_device(use_gpu)
        model_path = storage.local_copy(model_path)  # fetched once per node from an object store
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype(dtype)).to(self.device)
        self.model.eval()
        self.max_length, self.batch_size = max_length, batch_size

    def logps(self, prompts: list[str], completions: list[str]) -> tuple[list[float], list[int]]:
        """The summed log-probability of each completion after its prompt, and its number of tokens."""
        seqs = [completion_ids(self.tokenizer, p, c, self.max_length) for p, c in zip(prompts, completions)]
        out = []
        pad = self.tokenizer.pad_token_id or 0
        for i in range(0, len(seqs), self.batch_size):
            chunk = seqs[i:i + self.batch_size]
            width = max(len(p) + len(c) for p, c in chunk)
            ids = torch.full((len(chunk), width), pad)
            mask = torch.zeros_like(ids)
            labels_mask = torch.zeros_like(ids, dtype=torch.bool)
            for j, (p, c) in enumerate(chunk):  # right padding: positions stay those of an unpadded sequence
                ids[j, :len(p) + len(c)] = torch.tensor(p + c)
                mask[j, :len(p) + len(c)] = 1
                labels_mask[j, len(p):len(p) + len(c)] = True
            with torch.inference_mode():
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
            logp = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, ids[:, 1:, None].to(self.device))
            out += (logp.squeeze(-1).cpu() * labels_mask[:, 1:]).sum(dim=1).tolist()
        return out, [len(c) for _, c in seqs]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        prompts = [str(p) for p in batch["prompt"]]
        out = dict(batch)
        out["ref_chosen_logps"] = np.array(self.logps(prompts, [str(c) for c in batch["chosen"]])[0])
        out["ref_rejected_logps"] = np.array(self.logps(prompts, [str(r) for r in batch["rejected"]])[0])
        return out


class PairLogProbs(RefLogProbs):
    """The evaluated model's `chosen_logps`/`rejected_logps` and `chosen_tokens`/`rejected_tokens` of each pair."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        prompts = [str(p) for p in batch["prompt"]]
        out = dict(batch)
        for side in ("chosen", "rejected"):
            logps, tokens = self.logps(prompts, [str(c) for c in batch[side]])
            out[f"{side}_logps"], out[f"{side}_tokens"] = np.array(logps), np.array(tokens)
        return out
