"""DeepSpeed config from the `deepspeed` group; batch sizes stay "auto" so that HF fills them consistently
with the world size (micro batch x accumulation x workers = train batch)."""
from __future__ import annotations

from omegaconf import DictConfig


def deepspeed_config(ds: DictConfig, use_gpu: bool) -> dict | None:
    if ds.stage == 0:
        return None
    zero: dict = {"stage": ds.stage, "overlap_comm": False, "contiguous_gradients": True}
    if ds.stage == 3:
        # buckets sized from the model by transformers ("auto": hidden_size^2 and its multiples), not DeepSpeed's
        # fixed 5e8-element defaults
        zero.update(stage3_gather_16bit_weights_on_model_save=True, reduce_bucket_size="auto",
                    stage3_prefetch_bucket_size="auto", stage3_param_persistence_threshold="auto",
                    stage3_max_live_parameters=ds.max_live_parameters,
                    stage3_max_reuse_distance=ds.max_live_parameters)
    config = {
        "train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto", "gradient_clipping": "auto",
        "bf16": {"enabled": "auto"}, "fp16": {"enabled": False}, "zero_optimization": zero,
    }
    if ds.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": use_gpu}
        # offloaded optimizer states need DeepSpeed's CPU Adam, which only an optimizer section selects
        config["optimizer"] = {"type": "AdamW", "params": {"lr": "auto", "betas": "auto", "eps": "auto",
                                                           "weight_decay": "auto"}}
    if ds.offload_param:
        zero["offload_param"] = {"device": "cpu", "pin_memory": use_gpu}
    return config
