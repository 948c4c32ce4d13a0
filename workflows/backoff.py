"""Backoff maths: pure functions of ``(policy, attempt)``, safe inside a workflow.

``delay_ms(policy, strategy, n)`` is the wait after failed attempt ``n`` before
attempt ``n + 1``, exactly the reference formulas. Jitter needs randomness, which
inside a workflow must come from ``workflow.random()``; callers pass it in.
"""

from __future__ import annotations

from random import Random

from workflows.models import Jitter, RecoveryPolicy, RecoveryStrategy


def base_delay_ms(policy: RecoveryPolicy, strategy: RecoveryStrategy, attempt: int) -> int:
    """Return the reference delay after failed attempt ``attempt`` (1-based), before jitter.

    Raises:
        ValueError: ``attempt`` is below 1, or the strategy has no timer (manual).
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    if strategy is RecoveryStrategy.EXPONENTIAL_BACKOFF:
        try:
            raw = policy.initial_delay_ms * policy.backoff_multiplier ** (attempt - 1)
        except OverflowError:  # 1000 attempts of a large multiplier: far past any cap
            return policy.max_delay_ms if policy.initial_delay_ms > 0 else 0
    elif strategy is RecoveryStrategy.LINEAR_BACKOFF:
        raw = policy.initial_delay_ms * attempt
    elif strategy is RecoveryStrategy.IMMEDIATE:
        return 0
    else:
        raise ValueError("the manual strategy waits for an operator, not a timer")
    return int(min(raw, policy.max_delay_ms))


def apply_jitter(delay: int, jitter: Jitter, rng: Random) -> int:
    """Spread ``delay`` as AWS's full or equal jitter does; ``none`` keeps it exact."""
    if jitter is Jitter.FULL:
        return rng.randint(0, delay)
    if jitter is Jitter.EQUAL:
        half = delay // 2
        return half + rng.randint(0, delay - half)
    return delay


def delay_ms(
    policy: RecoveryPolicy, strategy: RecoveryStrategy, attempt: int, rng: Random
) -> int:
    """Return the wait after failed attempt ``attempt``, jitter included."""
    return apply_jitter(base_delay_ms(policy, strategy, attempt), policy.jitter, rng)
