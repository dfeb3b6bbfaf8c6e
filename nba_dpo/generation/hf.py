"""The `hf` generation backend: a callable class for Ray Data's actor pool running a `transformers` model.

Each actor loads the model once, on the GPU Ray gave it (`use_gpu`) or on the CPU. A batch comes in with a `prompt`
column; out come `completion` (greedy, when asked), `samples` (num_samples sampled completions, when asked) and their
token counts. Sampling is seeded per batch from the seed and the batch's first prompt id, so a rerun with the same
config gives the same samples.

Decoding (`decode_compacting`) is a short loop over the model's forward with a preallocated KV cache whose attention
reads only the filled positions, and it drops finished rows from the batch as it goes: `generate` keeps stepping
every row until the batch's longest one ends, which spent half its steps on rows already finished here
(benchmarks/bench_eval_sampling.py). Sampling is greedy decoding over Gumbel-noised top-k logits
(`GumbelTopKSampler`): transformers' distribution at a fraction of `torch.multinomial`'s cost on CPU. Attention on
CPUs (`sdpa_grouped_kv`) keeps grouped-query KV heads grouped.
"""
from __future__ import annotations

import numpy as np
import torch
from transformers import (AttentionInterface, AttentionMaskInterface, AutoModelForCausalLM, AutoTokenizer,
                          LogitsProcessor, PreTrainedModel)
from transformers.cache_utils import Cache, StaticLayer
from transformers.masking_utils import sdpa_mask

from nba_dpo import storage
from nba_dpo.data.columns import object_column
from nba_dpo.models.device import actor_device, torch_dtype
from nba_dpo.seeds import stable_seed


def sdpa_grouped_kv(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                    attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                    is_causal: bool | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    """transformers' "sdpa" attention, with grouped-query keys and values passed to torch as they are (`enable_gqa`).
    Given a padding mask, transformers first copies each KV head to every query head of its group, as CUDA's fused
    kernels need; torch's CPU kernel takes groups and a mask together, and the copy (of the whole filled cache, every
    layer and step) dominated decoding on grouped-query models (docs/architecture.md, "Library internals")."""
    is_causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling,
        is_causal=bool(query.shape[2] > 1 and attention_mask is None and is_causal), enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


def use_grouped_kv_attention(model: PreTrainedModel) -> None:
    """`sdpa_grouped_kv` in place of transformers' "sdpa" (registered with transformers' attention registry)."""
    AttentionInterface.register("sdpa_grouped_kv", sdpa_grouped_kv)
    AttentionMaskInterface.register("sdpa_grouped_kv", sdpa_mask)
    model.set_attn_implementation("sdpa_grouped_kv")


class HFGenerator:
    """Greedy completions and samples of a batch of prompts with `decode_compacting`; on CPUs with `sdpa_grouped_kv`
    attention (a GPU keeps transformers' own, whose fused kernels its copy of the KV heads is for)."""

    def __init__(self, model_path: str, max_new_tokens: int, greedy: bool = True, num_samples: int = 0,
                 temperature: float = 1.0, top_p: float = 1.0, top_k: int = 50, seed: int = 0,
                 dtype: str = "float32", threads: int = 1, sample_chunk: int = 32, use_gpu: bool = False):
        torch.set_num_threads(threads)
        model_path = storage.local_copy(model_path)  # fetched once per node from an object store
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = actor_device(use_gpu)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype(dtype)).to(self.device)
        self.model.eval()
        if self.device.type == "cpu" and self.model.config._attn_implementation == "sdpa":
            # only in place of sdpa: a model whose default is another attention (eager, flex) keeps it
            use_grouped_kv_attention(self.model)
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = sorted({self.tokenizer.eos_token_id, *(eos if isinstance(eos, list) else [eos])} - {None})
        self.max_new_tokens, self.greedy, self.num_samples = max_new_tokens, greedy, num_samples
        self.temperature, self.top_p, self.top_k = temperature, top_p, top_k
        self.seed, self.sample_chunk = seed, sample_chunk

    def decode(self, enc: dict[str, torch.Tensor], gumbel: GumbelTopKSampler | None) -> torch.Tensor:
        """The new tokens of a tokenized, left-padded batch: greedy, or drawn by `gumbel`."""
        return decode_compacting(self.model, enc["input_ids"], enc["attention_mask"], self.max_new_tokens,
                                 self.eos_ids, self.tokenizer.pad_token_id, gumbel)

    def _generate(self, prompts: list[str], copies: int = 1,
                  gumbel: GumbelTopKSampler | None = None) -> tuple[list[str], list[int]]:
        """Completions of each prompt `copies` times, prompt-major (those of prompt i at i*copies .. +copies-1):
        greedy, or drawn by `gumbel`."""
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.repeat_interleave(copies, dim=0).to(self.device) for k, v in enc.items()}
        with torch.inference_mode():
            new = self.decode(enc, gumbel).cpu()
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        ended = (new == self.tokenizer.pad_token_id) | torch.isin(new, torch.tensor(self.eos_ids))
        return texts, [int(n) for n in (~ended).sum(dim=1)]

    def _sample(self, prompts: list[str], n: int) -> tuple[list[str], list[int]]:
        """n sampled completions per prompt, prompt-major (those of prompt i at i*n .. i*n+n-1)."""
        return self._generate(prompts, copies=n, gumbel=GumbelTopKSampler(self.temperature, self.top_k, self.top_p))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        prompts = [str(p) for p in batch["prompt"]]
        out = dict(batch)
        if self.greedy:
            texts, lengths = self._generate(prompts)
            out["completion"], out["n_tokens"] = np.array(texts, dtype=object), np.array(lengths)
        if self.num_samples:
            torch.manual_seed(stable_seed(self.seed, batch["id"][0], len(prompts)))
            # Prompts are sampled a chunk at a time, those with the shortest greedy answers together (when there are
            # greedy answers): a generate call runs until its longest sequence ends, so a chunk of short answers
            # stops early instead of waiting for the batch's longest.
            order = np.argsort(out["n_tokens"], kind="stable") if self.greedy else np.arange(len(prompts))
            samples, sample_tokens = [None] * len(prompts), [None] * len(prompts)
            n = self.num_samples
            for start in range(0, len(prompts), self.sample_chunk):
                chunk = order[start:start + self.sample_chunk]
                texts, lengths = self._sample([prompts[i] for i in chunk], n)
                for j, i in enumerate(chunk):
                    samples[i], sample_tokens[i] = texts[j * n:(j + 1) * n], lengths[j * n:(j + 1) * n]
            out["samples"] = object_column(samples)
            out["sample_tokens"] = object_column(sample_tokens)
        return out


def decode_compacting(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      max_new_tokens: int, eos_ids: list[int], pad_id: int,
                      sampler: LogitsProcessor | None = None, drop_at: float = 0.25) -> torch.Tensor:
    """Greedy decoding (of `sampler`-processed logits, when given) of a left-padded batch with `kv_cache`; returns the
    new tokens, [batch, max_new_tokens], padded with `pad_id` after each row's end of sequence.

    Rows that reached an end-of-sequence token leave the batch, KV cache included (`Cache.reorder_cache`, as beam
    search uses it), once they are `drop_at` of the rows still stepping: each step then costs what the unfinished
    rows need. Positions follow the attention mask, as in `generate`."""
    (batch, prompt_len), device = input_ids.shape, input_ids.device
    cache = kv_cache(model.config, max_cache_len=prompt_len + max_new_tokens)
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, past_key_values=cache,
                   cache_position=torch.arange(prompt_len, device=device), logits_to_keep=1).logits[:, -1]
    new = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
    rows = torch.arange(batch, device=device)  # the batch row of each row still stepping
    position = positions[:, -1:] + 1
    ended = torch.zeros(batch, dtype=torch.bool, device=device)
    eos = torch.tensor(eos_ids, device=device)
    for step in range(max_new_tokens):
        # the sampler reads logits only (GumbelTopKSampler), so no token history is passed
        token = (sampler(None, logits) if sampler else logits).argmax(-1).masked_fill(ended, pad_id)
        new[rows, step] = token
        ended |= torch.isin(token, eos)
        if step == max_new_tokens - 1 or ended.all():
            break
        if ended.sum() >= drop_at * len(rows):
            keep = (~ended).nonzero().squeeze(1)
            cache.reorder_cache(keep)
            rows, attention_mask, token, position, ended = (x[keep] for x in (rows, attention_mask, token, position,
                                                                              ended))
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(len(rows), 1)], dim=1)
        logits = model(input_ids=token[:, None], attention_mask=attention_mask, position_ids=position,
                       past_key_values=cache, cache_position=torch.tensor([prompt_len + step], device=device),
                       logits_to_keep=1).logits[:, -1]
        position = position + 1
    return new


class FilledPrefixLayer(StaticLayer):
    """A `StaticLayer` (preallocated, written in place) whose attention reads only the filled positions: attention
    over every preallocated slot was a third of a decoding call, most of it on slots not yet written."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        keys, values = super().update(key_states, value_states, *args, **kwargs)
        filled = int(self.cumulative_length)
        return keys[:, :, :filled], values[:, :, :filled]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return int(self.cumulative_length) + query_length, 0


def kv_cache(config, max_cache_len: int) -> Cache:
    """The KV cache of `decode_compacting`: one `FilledPrefixLayer` per layer (faster decoding than `StaticCache`
    on the tiny model). Sliding-window models get full layers too: their attention masks apply the window."""
    return Cache(layers=[FilledPrefixLayer(max_cache_len)
                         for _ in range(config.get_text_config(decoder=True).num_hidden_layers)])


class GumbelTopKSampler(LogitsProcessor):
    """Sampling as greedy decoding (the Gumbel-max trick): argmax(logits / T + Gumbel noise) is a draw from
    softmax(logits / T). Noising only the top-k logits and masking the rest draws from the same distribution as
    transformers' temperature + top-k + top-p sampling, with k random numbers per row where `torch.multinomial`
    draws one per vocabulary entry."""

    def __init__(self, temperature: float = 1.0, top_k: int = 50, top_p: float = 1.0):
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        k = min(self.top_k or scores.shape[-1], scores.shape[-1])
        logits, tokens = (scores / self.temperature).topk(k, dim=-1)  # sorted, most likely first
        if self.top_p < 1.0:  # keep the smallest head whose mass reaches top_p (always the first token)
            probs = logits.softmax(dim=-1)
            logits = logits.masked_fill(probs.cumsum(dim=-1) - probs >= self.top_p, -float("inf"))
        gumbel = -torch.empty_like(logits).exponential_().log()
        return torch.full_like(scores, -float("inf")).scatter_(1, tokens, logits + gumbel)


class HFCandidates(HFGenerator):
    """One output row per (prompt, sample): the candidate rows of the generate stage. A batch that fails to
    generate comes back as error rows with the reason, so every prompt still appears once per sample index."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = self.num_samples
        try:
            out = super().__call__(batch)
            completions, tokens, errors = out["samples"], out["sample_tokens"], [None] * len(batch["prompt"])
        except (RuntimeError, ValueError) as e:
            completions = [[""] * n for _ in batch["prompt"]]
            tokens = [[0] * n for _ in batch["prompt"]]
            errors = [f"generation failed: {e}"] * len(batch["prompt"])
        rows = {k: np.repeat(np.asarray(v), n, axis=0) for k, v in batch.items()}
        rows["candidate_idx"] = np.tile(np.arange(n), len(batch["prompt"]))
        rows["completion"] = np.array([c for cs in completions for c in cs], dtype=object)
        rows["n_tokens"] = np.array([t for ts in tokens for t in ts])
        rows["error"] = np.array([e for e in errors for _ in range(n)], dtype=object)
        return rows
