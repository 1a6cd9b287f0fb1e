"""Weighted kNN classifier on normalised features (Wu et al. 2018; the MoCo / solo-learn monitor).

Each test point takes its k most cosine-similar bank points; each votes for its label with weight
exp(sim / T); the prediction is the class with the largest vote. Computed in blocks of test points,
so memory is O(block x bank), never test x bank.
"""

from __future__ import annotations

import torch


def knn_predict(bank: torch.Tensor, bank_y: torch.Tensor, query: torch.Tensor, num_classes: int,
                k: int = 200, temperature: float = 0.1, block: int = 1024) -> torch.Tensor:
    """Class scores [len(query), num_classes]; rows of bank and query must be L2-normalised."""
    with torch.no_grad():
        k = min(k, bank.shape[0])
        scores = []
        for start in range(0, query.shape[0], block):
            sim = query[start:start + block] @ bank.t()
            top_sim, top_idx = sim.topk(k, dim=1)
            weights = (top_sim / temperature).exp()
            votes = torch.zeros(sim.shape[0], num_classes, device=bank.device, dtype=weights.dtype)
            votes.scatter_add_(1, bank_y[top_idx], weights)
            scores.append(votes)
        return torch.cat(scores)


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    out = {}
    for k in ks:
        k_eff = min(k, scores.shape[1])
        hit = (scores.topk(k_eff, dim=1).indices == labels.view(-1, 1)).any(1)
        out[f"top{k}"] = 100.0 * hit.float().mean().item()
    return out


def knn_accuracy(bank, bank_y, query, query_y, num_classes, k=200, temperature=0.1) -> dict[str, float]:
    return topk_accuracy(knn_predict(bank, bank_y, query, num_classes, k, temperature), query_y)
