"""torch.distributed helpers that are no-ops in a single process (the default, and CPU tests)."""

from __future__ import annotations

import os

import torch
import torch.distributed as td


def is_initialized() -> bool:
    return td.is_available() and td.is_initialized()


def world_size() -> int:
    return td.get_world_size() if is_initialized() else 1


def rank() -> int:
    return td.get_rank() if is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def init_from_env() -> torch.device | None:
    """Join the process group that torchrun describes in the environment (WORLD_SIZE > 1).

    Returns this process's device, or None when not launched by torchrun.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    if not is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        td.init_process_group(backend=backend)
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


@torch.no_grad()
def gather(t: torch.Tensor) -> torch.Tensor:
    """Concatenate `t` from every rank in rank order (no gradient)."""
    if not is_initialized():
        return t
    out = [torch.empty_like(t) for _ in range(world_size())]
    td.all_gather(out, t.contiguous())
    return torch.cat(out)


def gather_with_grad(t: torch.Tensor) -> torch.Tensor:
    """Concatenate `t` from every rank; gradients flow back to each rank's own slice.

    With DDP averaging gradients over ranks, a loss computed identically on every rank from gathered
    embeddings gets exactly the gradient of the global-batch loss.
    """
    if not is_initialized():
        return t
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(t.contiguous()))


def barrier() -> None:
    if is_initialized():
        td.barrier()
