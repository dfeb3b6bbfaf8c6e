"""SFT and DPO steps (TRL + DeepSpeed ZeRO-2, bf16) of a randomly initialised Qwen2.5-0.5B-shaped model on one GPU,
printing tokens/s and MFU for each; then the hf backend's decoder (nba_dpo.generation.hf, as the evaluate stage runs
it on a GPU cluster) against transformers' `generate` on the same model. Run through gpu_check.sh."""
import argparse
import json
import os
import time

import numpy as np
import torch
from datasets import Dataset
from transformers import (LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config,
                          Qwen2ForCausalLM, TrainerCallback)
from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10G": 125.0}


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times = []

    def on_step_begin(self, args, state, control, **kw):
        torch.cuda.synchronize()
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self._t)


def tokenizer(vocab: int):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab_map = {f"t{i}": i for i in range(vocab - 2)} | {"<pad>": vocab - 2, "<eos>": vocab - 1}
    tok = Tokenizer(models.WordLevel(vocab_map, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


def zero2() -> dict:
    return {"train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
            "gradient_clipping": "auto", "bf16": {"enabled": True}, "zero_optimization": {"stage": 2}}


def decode_check(config, tok, words, prompts: int = 64, new_tokens: int = 128) -> dict:
    """The hf backend's decoder on the GPU, in bf16: greedy completions of `prompts` prompts against transformers'
    `generate` (tokens/s, rows identical), then 8 samples per prompt, as the evaluate stage's shards do for pass@8.
    The model is a Llama of `config`'s shape, as the project's own models are: AutoTokenizer would read a Qwen2
    folder's tokenizer as Qwen's BPE, not as the word-level one saved here."""
    from benchmarks.hf_baselines import GenerateDecoder
    from nba_dpo.generation.hf import HFGenerator

    path = "/tmp/gpu_check/decode_model"
    shape = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
             "num_key_value_heads", "max_position_embeddings", "tie_word_embeddings", "pad_token_id", "eos_token_id")
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**{k: getattr(config, k) for k in shape})).to(torch.bfloat16).save_pretrained(path)
    tok.save_pretrained(path)
    batch = {"id": np.arange(prompts), "prompt": np.array([words(64) for _ in range(prompts)], dtype=object)}
    warm = {k: v[:4] for k, v in batch.items()}
    timed = {}
    for decoder, samples in (("generate", 0), ("compact", 0), ("compact", 8)):
        generator = GenerateDecoder if decoder == "generate" else HFGenerator
        gen = generator(path, max_new_tokens=new_tokens, greedy=True, num_samples=samples, dtype="bfloat16",
                        use_gpu=True, sample_chunk=prompts)
        gen(warm)
        torch.cuda.synchronize()
        start = time.perf_counter()
        out = gen(batch)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        tokens = int(out["n_tokens"].sum()) + (sum(sum(s) for s in out["sample_tokens"]) if samples else 0)
        timed[f"{decoder}_{samples}"] = {"seconds": seconds, "tokens_per_s": tokens / seconds, "out": out}
        del gen
        torch.cuda.empty_cache()
    greedy = (timed[k]["out"]["completion"] for k in ("generate_0", "compact_0"))
    same = sum(a == b for a, b in zip(*greedy))
    result = {"device": str(torch.cuda.get_device_name(0)), "prompts": prompts, "max_new_tokens": new_tokens,
              "greedy_rows_identical_to_generate": f"{same}/{prompts}",
              **{k: {"seconds": v["seconds"], "tokens_per_s": v["tokens_per_s"]} for k, v in timed.items()}}
    print(f"[gpu_check] hf decoder: greedy {timed['compact_0']['tokens_per_s']:,.0f} tokens/s against generate's "
          f"{timed['generate_0']['tokens_per_s']:,.0f} ({same}/{prompts} rows identical); greedy + 8 samples "
          f"{timed['compact_8']['tokens_per_s']:,.0f} tokens/s", flush=True)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    name = torch.cuda.get_device_name(0)
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), 989.0) * 1e12
    config = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=4096,
                         tie_word_embeddings=True, torch_dtype="bfloat16")
    tok = tokenizer(config.vocab_size)
    config.pad_token_id, config.eos_token_id = tok.pad_token_id, tok.eos_token_id

    def fresh_model():  # each trainer wraps its own model in its own DeepSpeed engine
        torch.manual_seed(0)
        return Qwen2ForCausalLM(config)

    model = fresh_model()
    n_params = sum(p.numel() for p in model.parameters())
    rng = torch.Generator().manual_seed(0)
    words = lambda n: " ".join(f"t{int(i)}" for i in torch.randint(0, 150000, (n,), generator=rng))  # noqa: E731
    half = args.seq // 2
    n_rows = args.steps * args.batch
    results = {"gpu": name, "params": n_params, "seq_len": args.seq, "batch": args.batch,
               "torch": torch.__version__, "deepspeed_zero": 2, "dtype": "bf16"}
    common = dict(output_dir="/tmp/gpu_check", per_device_train_batch_size=args.batch, max_steps=args.steps,
                  bf16=True, deepspeed=zero2(), report_to=[], save_strategy="no", logging_steps=10,
                  gradient_checkpointing=False, learning_rate=1e-5, max_length=args.seq, disable_tqdm=True)
    sft_rows = [{"prompt": words(half), "completion": " " + words(half - 1)} for _ in range(n_rows)]
    timer = StepTimer()
    SFTTrainer(model=model, args=SFTConfig(**common), train_dataset=Dataset.from_list(sft_rows),
               processing_class=tok, callbacks=[timer]).train()
    steady = timer.times[5:]
    tokens = args.batch * args.seq
    tps = tokens / (sum(steady) / len(steady))
    results["sft"] = {"step_s": sum(steady) / len(steady), "tokens_per_s": tps, "mfu": 6 * n_params * tps / peak}
    print(f"[gpu_check] SFT  {name}: {tps:,.0f} tokens/s, MFU {results['sft']['mfu']:.1%} "
          f"({n_params / 1e6:.0f}M params, seq {args.seq}, batch {args.batch}, ZeRO-2 bf16)", flush=True)
    dpo_rows = [{"prompt": words(half), "chosen": " " + words(half - 1), "rejected": " " + words(half - 1)} for _ in range(n_rows)]
    timer = StepTimer()
    dpo_batch = max(1, args.batch // 2)
    del model
    torch.cuda.empty_cache()
    DPOTrainer(model=fresh_model(), ref_model=None, args=DPOConfig(**{**common, "per_device_train_batch_size": dpo_batch},
                                                           precompute_ref_log_probs=True, beta=0.1),
               train_dataset=Dataset.from_list(dpo_rows[: args.steps * dpo_batch]), processing_class=tok,
               callbacks=[timer]).train()
    steady = timer.times[5:]
    tokens = dpo_batch * 2 * args.seq  # chosen and rejected sequences
    tps = tokens / (sum(steady) / len(steady))
    results["dpo"] = {"step_s": sum(steady) / len(steady), "tokens_per_s": tps, "mfu": 6 * n_params * tps / peak,
                      "reference": "precomputed log-probs (no reference model in memory)"}
    print(f"[gpu_check] DPO  {name}: {tps:,.0f} tokens/s (chosen+rejected), MFU {results['dpo']['mfu']:.1%}",
          flush=True)
    torch.cuda.empty_cache()
    try:
        results["decode"] = decode_check(config, tok, words)
    except Exception as e:  # the training figures above still count; say why this part did not run
        results["decode"] = {"error": f"{type(e).__name__}: {e}"}
        print(f"[gpu_check] hf decoder: failed: {results['decode']['error']}", flush=True)
    out = os.environ.get("OUT")
    if out:
        with open(os.path.join(out, "gpu_check.json"), "w") as f:
            json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
