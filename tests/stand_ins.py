"""Local stand-ins for hub models, built here at small dims with random weights (tests never download): a causal
LM of a hub family with its chat format, and a reward model with ArmoRM's interface."""
from __future__ import annotations

import importlib.util
from pathlib import Path

CORPUS = [f"How many points did Player {i} score in 2023-24?\nReasoning: Sum points.\nSQL: SELECT SUM(points) "
          f"FROM player_box_scores WHERE player_id = {i};" for i in range(200)]

# The chat formats of the hub families, as their tokenizers render them (Llama 3.1 adds its knowledge-date lines to
# the system turn). Both tokenizers are byte-level BPE: a token covers at least one byte, so a prompt's UTF-8 length
# bounds its token count from above without the hub tokenizer, which tests never download.
HUB_CHAT_TEMPLATES = {
    "qwen": "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
    "llama": "<|begin_of_text|>{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
             "{% if m['role'] == 'system' %}Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
             "{% endif %}{{ m['content'] }}<|eot_id|>{% endfor %}"
             "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}",
}


def stand_in_hub_model(family: str, folder: Path) -> Path:
    """A local folder standing in for a hub model: the family's architecture and config fields at small dims, random
    weights, and a byte-level BPE tokenizer with the family's chat format, built here (nothing is downloaded)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer, raw.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    raw.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.chat_template = HUB_CHAT_TEMPLATES[family]
    dims = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=32768 if family == "qwen" else 131072)
    arch = (Qwen2ForCausalLM, Qwen2Config) if family == "qwen" else (LlamaForCausalLM, LlamaConfig)
    arch[0](arch[1](**dims, tie_word_embeddings=family == "qwen")).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


ARMORM_CODE = '''
from dataclasses import dataclass

import torch
from transformers import LlamaModel, LlamaPreTrainedModel
from transformers.utils import ModelOutput


@dataclass
class RewardOutput(ModelOutput):
    score: torch.FloatTensor = None
    rewards: torch.FloatTensor = None


class StandInArmoRM(LlamaPreTrainedModel):
    """ArmoRM's interface: per-objective rewards from the hidden state of the last token before the first pad
    token, mixed by a gate into `.score`."""

    def __init__(self, config):
        super().__init__(config)
        self.model = LlamaModel(config)
        self.regression_layer = torch.nn.Linear(config.hidden_size, config.num_objectives, bias=False)
        self.gating = torch.nn.Linear(config.hidden_size, config.num_objectives)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, **kwargs):
        hidden = self.model(input_ids, attention_mask=attention_mask).last_hidden_state
        last = (torch.eq(input_ids, self.config.pad_token_id).int().argmax(-1) - 1) % input_ids.shape[-1]
        state = hidden[torch.arange(len(input_ids)), last]
        rewards = self.regression_layer(state)
        return RewardOutput(score=(rewards * self.gating(state).softmax(-1)).sum(-1), rewards=rewards)
'''


def stand_in_armorm(folder: Path) -> Path:
    """A reward model with ArmoRM-Llama3-8B's interface (custom code loaded with trust_remote_code, `.score`, the
    Llama-3 chat format, a pad token of its own) at small dims."""
    from transformers import AutoTokenizer, LlamaConfig

    tok = AutoTokenizer.from_pretrained(stand_in_hub_model("llama", folder / "base"))
    tok.add_special_tokens({"pad_token": "<|pad|>"})
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, pad_token_id=tok.pad_token_id,
                         max_position_embeddings=8192)
    config.num_objectives = 4
    config.auto_map = {"AutoModelForSequenceClassification": "modeling_stand_in.StandInArmoRM"}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "modeling_stand_in.py").write_text(ARMORM_CODE)
    spec = importlib.util.spec_from_file_location("modeling_stand_in", folder / "modeling_stand_in.py")
    code = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(code)
    code.StandInArmoRM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
