"""The embedded default model: a byte-level BPE tokenizer and a small Llama, both built from scratch offline.

Saved with `save_pretrained`, so `AutoTokenizer`/`AutoModelForCausalLM` and vLLM load the folder like any hub
model. Deterministic for a seed: the tokenizer trains on the corpus in a fixed order, the weights are drawn
after `torch.manual_seed`.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

PAD, EOS = "<|pad|>", "<|end|>"
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]
# A minimal chat format: <|user|>\n{question}<|end|>\n<|assistant|>\n{completion}<|end|>
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def save_atomically(model, tokenizer, out_dir: Path) -> Path:
    """save_pretrained both into a temporary folder, then rename it into place."""
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir


def build_tokenizer(corpus: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, EOS, *ROLE_TOKENS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(corpus), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS,
                                   additional_special_tokens=ROLE_TOKENS)
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"  # decoder-only generation pads on the left
    return fast


def build_tiny_model(corpus: Iterable[str], out_dir: str | os.PathLike, *, vocab_size: int, hidden_size: int,
                     num_layers: int, num_heads: int, intermediate_size: int, max_position_embeddings: int,
                     seed: int, num_kv_heads: int | None = None) -> Path:
    """Train the tokenizer on `corpus`, initialise the model, save both to `out_dir` (atomically). `num_kv_heads`
    below `num_heads` makes a grouped-query model, as Llama 3 and Qwen2.5 are."""
    out_dir = Path(out_dir)
    tokenizer = build_tokenizer(corpus, vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads or num_heads,
        max_position_embeddings=max_position_embeddings, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
        torch_dtype="float32")
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id, do_sample=False)
    return save_atomically(model, tokenizer, out_dir)


def build_tiny_reward_model(tokenizer_dir: str | os.PathLike, out_dir: str | os.PathLike, seed: int,
                            hidden_size: int = 64, num_layers: int = 1) -> Path:
    """A small `LlamaForSequenceClassification` (one score) on the tiny tokenizer: proves the reward-model path
    offline. Its scores are random features, not judgements; a cluster uses ArmoRM or a trained reward model."""
    from transformers import AutoTokenizer, LlamaForSequenceClassification

    out_dir = Path(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=num_layers, num_attention_heads=2, num_key_value_heads=2, num_labels=1,
                         max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(config)
    return save_atomically(model, tokenizer, out_dir)
