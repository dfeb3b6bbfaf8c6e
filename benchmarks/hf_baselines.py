"""The baselines the hf backend's decoder is measured against (bench_eval_sampling.py, scripts/gpu_check.py): the
same HFGenerator (model, prompts, seeds, output columns), decoding with transformers' own `generate`."""
from __future__ import annotations

import torch
from transformers import LogitsProcessorList

from nba_dpo.generation.hf import GumbelTopKSampler, HFGenerator


class GenerateDecoder(HFGenerator):
    """transformers' `generate` with a static cache in place of `decode_compacting`: greedy, or sampling with the
    Gumbel sampler as a logits processor, or (multinomial=True) with transformers' own sampling."""

    def __init__(self, *args, multinomial: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.multinomial = multinomial

    def decode(self, enc: dict[str, torch.Tensor], gumbel: GumbelTopKSampler | None) -> torch.Tensor:
        if self.multinomial and gumbel is not None:
            processors, sampling = [], dict(do_sample=True, temperature=self.temperature, top_p=self.top_p,
                                            top_k=self.top_k)
        else:
            processors, sampling = [gumbel] if gumbel else [], dict(do_sample=False)
        out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, cache_implementation="static",
                                  pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.eos_ids,
                                  logits_processor=LogitsProcessorList(processors), **sampling)
        return out[:, enc["input_ids"].shape[1]:]
