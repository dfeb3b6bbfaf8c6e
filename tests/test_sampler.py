"""The hf backend's sampler draws from the same distribution as transformers' temperature/top-k/top-p sampling."""
import pytest
import torch
from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from nba_dpo.generation.hf import GumbelTopKSampler


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 5, 1.0), (0.7, 10, 0.8), (1.3, 0, 0.9)])
def test_gumbel_sampler_matches_transformers_sampling(temperature, top_k, top_p):
    torch.manual_seed(0)
    logits = torch.randn(1, 64) * 2
    expected = logits.clone()
    for warper in (TemperatureLogitsWarper(temperature), TopKLogitsWarper(top_k or 64), TopPLogitsWarper(top_p)):
        expected = warper(None, expected)
    expected = expected.softmax(dim=-1)[0]
    draws = GumbelTopKSampler(temperature, top_k, top_p)(None, logits.repeat(40_000, 1)).argmax(dim=-1)
    observed = torch.bincount(draws, minlength=64) / len(draws)
    assert torch.all(observed[expected == 0] == 0)  # nothing outside top-k / top-p is ever drawn
    assert torch.allclose(observed, expected, atol=0.01)  # 4 standard errors of a frequency at 40k draws
