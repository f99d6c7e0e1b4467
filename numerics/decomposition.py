"""Bias-variance decompositions of an ensemble's predictions (members trained on independent data).

- Regression, known truth f and noise σ²: E(y − f_k(x))² = bias² + variance + σ², with
  bias² = mean_x (f̄(x) − f(x))², variance = mean_x mean_k (f_k(x) − f̄(x))².
- Classification (Yang et al. 2020), members' probabilities p_k(x), one-hot label e_y:
  MSE: mean_k ||p_k − e_y||² = ||p̄ − e_y||² (bias²) + mean_k ||p_k − p̄||² (variance), p̄ the mean;
  cross-entropy: mean_k −log p_k,y = −log p̃_y (bias) + mean_k KL(p̃ ‖ p_k) (variance), with p̃ the
  renormalized geometric mean ∝ exp(mean_k log p_k). Both identities are exact per sample.
"""

from __future__ import annotations

import torch


def regression(preds: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """``preds`` (K, n, d) members' predictions at n test inputs, ``truth`` (n, d) = f(x)."""
    mean = preds.mean(0)
    return {"bias2": float(((mean - truth) ** 2).sum(-1).mean()), "variance": float(((preds - mean) ** 2).sum(-1).mean(0).mean())}


def classification_mse(probs: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """``probs`` (K, n, C), ``y`` (n,) labels."""
    onehot = torch.nn.functional.one_hot(y, probs.shape[-1]).to(probs)
    mean = probs.mean(0)
    bias2 = ((mean - onehot) ** 2).sum(-1).mean()
    variance = ((probs - mean) ** 2).sum(-1).mean()
    risk = ((probs - onehot) ** 2).sum(-1).mean()
    return {"risk": float(risk), "bias2": float(bias2), "variance": float(variance)}


def classification_ce(log_probs: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """``log_probs`` (K, n, C) members' log-probabilities, ``y`` (n,) labels."""
    log_geo = log_probs.mean(0)
    log_geo = log_geo - torch.logsumexp(log_geo, -1, keepdim=True)  # log p̃, renormalized
    bias = -log_geo.gather(1, y[:, None]).mean()
    variance = (log_geo.exp() * (log_geo - log_probs)).sum(-1).mean()  # mean_k KL(p̃ ‖ p_k)
    risk = -log_probs.gather(2, y[None, :, None].expand(log_probs.shape[0], -1, 1)).mean()
    return {"risk": float(risk), "bias": float(bias), "variance": float(variance)}
