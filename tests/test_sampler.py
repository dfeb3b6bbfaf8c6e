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


@pytest.mark.parametrize("kind", ["llama", "qwen2_sliding", "llama_gqa"])
def test_compacting_decoder_matches_generate(kind):
    """Greedy decoding that drops finished rows and attends over the filled KV positions only, with the hf backend's
    attention (`sdpa_grouped_kv`), gives what transformers' generate gives with its own, row for row, on a
    left-padded batch whose rows end at different steps: for a Llama, a Qwen2 whose layers attend to a sliding window
    of 4 tokens, and a Llama with two query heads per KV head."""
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    from nba_dpo.generation.hf import decode_compacting, use_grouped_kv_attention

    torch.manual_seed(0)
    sizes = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=2, initializer_range=0.3)  # large weights: position-sensitive
    config = {"llama": lambda: LlamaConfig(**sizes),
              "qwen2_sliding": lambda: Qwen2Config(**sizes, use_sliding_window=True, sliding_window=4,
                                                   max_window_layers=0),
              "llama_gqa": lambda: LlamaConfig(**sizes | dict(num_attention_heads=4))}[kind]()
    model = AutoModelForCausalLM.from_config(config).eval()
    ids = torch.randint(3, 64, (16, 10))
    mask = torch.ones_like(ids)
    for row in range(16):
        mask[row, :row % 5] = 0  # left padding of 0-4 tokens
    ids[mask == 0] = 0
    steps, pad = 24, 0
    with torch.inference_mode():
        free = model.generate(ids, attention_mask=mask, max_new_tokens=steps, do_sample=False, pad_token_id=pad,
                              eos_token_id=None)[:, 10:]
        # the end-of-sequence token: the one that first appears at the most different steps across rows
        first = {t: {int((r == t).nonzero()[0]) for r in free if (r == t).any()} for t in free.unique().tolist()}
        eos = max(first, key=lambda t: len(first[t]))
        expected = model.generate(ids, attention_mask=mask, max_new_tokens=steps, do_sample=False, pad_token_id=pad,
                                  eos_token_id=eos, cache_implementation="static")[:, 10:]
        use_grouped_kv_attention(model)
        got = decode_compacting(model, ids, mask, steps, [eos], pad)
    assert len(first[eos]) >= 3  # rows leave the batch at three or more different steps
    assert torch.equal(got[:, :expected.shape[1]], expected)
    assert torch.all(got[:, expected.shape[1]:] == pad)
