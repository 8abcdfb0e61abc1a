"""KL coefficient (beta) controllers for PPO.

Fixed: beta never changes (InstructGPT used a fixed beta = 0.02, appendix C.4).
Adaptive: Ziegler et al. 2019 (arXiv 1909.08593) section 2.2: with
``e = clip(KL / KL_target - 1, -0.2, 0.2)``, ``beta <- beta * (1 + K_beta * e)`` where
``K_beta = n_steps / horizon``: beta rises when the policy drifts past the target KL.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FixedKLController:
    """beta stays at its initial value."""

    value: float

    def update(self, current_kl: float, n_steps: int) -> float:
        """No-op; returns beta."""
        return self.value


@dataclass
class AdaptiveKLController:
    """Proportional controller driving the measured KL (nats per episode) towards ``target``."""

    value: float
    target: float
    horizon: float

    def update(self, current_kl: float, n_steps: int) -> float:
        """Update beta after ``n_steps`` episodes with mean episode KL ``current_kl``; returns beta."""
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
        return self.value


def make_kl_controller(kind: str, init: float, target: float | None = None, horizon: float = 10000.0):
    """``fixed`` or ``adaptive`` controller; raises ``ValueError`` on another name or a missing target."""
    if kind == "fixed":
        return FixedKLController(init)
    if kind == "adaptive":
        if not target:
            raise ValueError("adaptive KL control needs ppo.kl_target > 0")
        return AdaptiveKLController(init, target, horizon)
    raise ValueError(f"unknown KL controller '{kind}' (fixed | adaptive)")
