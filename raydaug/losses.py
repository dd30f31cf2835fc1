"""Named losses of the four players (BCE-with-logits for the discriminators, CE for C)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bce_real(logits: torch.Tensor) -> torch.Tensor:
    """-log σ(logits): the target is 'real'."""
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


def bce_fake(logits: torch.Tensor) -> torch.Tensor:
    """-log(1 - σ(logits)): the target is 'fake'."""
    return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """L_DC (eq. 3) and L_DD (eq. 4)."""
    return bce_real(real_logits) + bce_fake(fake_logits)


def fool_classifier(logits: torch.Tensor, labels: torch.Tensor, form: str) -> torch.Tensor:
    """G's third term, small when C misclassifies G(x).

    ``paper``: -log(1 - C_y(G(x))) of eq. 2, computed stably as logsumexp over k≠y minus logsumexp over k.
    ``code``: the authors' published form, a cross-entropy whose logits are 1 - softmax(C(G(x))).
    """
    if form == "paper":
        others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
        return -(torch.logsumexp(others, dim=1) - torch.logsumexp(logits, dim=1)).mean()
    if form == "code":
        return F.cross_entropy(1.0 - logits.softmax(dim=1), labels)
    raise ValueError(f"unknown gadv_form {form!r}")


def soft_label_loss(logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor,
                    weight: float) -> torch.Tensor:
    """Per image, (1 − w)·CE(logits, y) + w·CE(logits, softmax(teacher_logits)): the soft cross-entropy is
    KL(teacher ‖ C) plus the teacher's entropy, a constant for C, so it has KL's gradient and equals the
    hard CE where the teacher is certain of one class. ``teacher_logits`` must carry no graph."""
    hard = F.cross_entropy(logits, labels, reduction="none")
    soft = F.cross_entropy(logits, teacher_logits.softmax(dim=1), reduction="none")
    return (1.0 - weight) * hard + weight * soft


def mode_seeking(fake1: torch.Tensor, fake2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor,
                 eps: float = 1e-5) -> torch.Tensor:
    """Mode-seeking term (Mao et al. 2019): small when two noises give images far apart relative to the
    distance between the noises; 1/(ratio + eps) saturates instead of rewarding unbounded change."""
    ratio = (fake1 - fake2).abs().mean() / (z1 - z2).abs().mean()
    return 1.0 / (ratio + eps)
