"""The ``prompt`` override: provider prompt caching and trimmed templates.

With ``prompt_cache`` the provider reads the task's fixed prompt from its cache: those tokens are
reported as ``cache_read_tokens`` and billed at the cache-read rate. A task whose profile names
its own ``template`` serves a *trimmed* template when the override's template differs: the fixed
prompt shrinks with the template's length and the answers change by the task's
``trimmed_quality_delta`` (zero: the trim is harmless; negative: it costs quality).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PromptEffect", "prompt_effect"]


@dataclass(frozen=True, slots=True)
class PromptEffect:
    """What one side's prompt config does: fixed tokens, cached tokens, quality change."""

    fixed_tokens: int
    cached_tokens: int
    quality_delta: float
    trimmed: bool


def prompt_effect(
    fixed_tokens: int,
    own_template: str | None,
    served_template: str | None,
    prompt_cache: bool,
    trimmed_quality_delta: float,
) -> PromptEffect:
    """The effect of serving ``served_template`` (with or without prompt caching).

    Args:
        fixed_tokens: The task's fixed prompt tokens with its own template.
        own_template: The template the task's profile uses (``None``: templates not simulated).
        served_template: The template the side's config names (``None``: the task's own).
        prompt_cache: Whether the side's config turns on provider prompt caching.
        trimmed_quality_delta: The quality change of answers with a trimmed template.
    """
    trimmed = (
        own_template is not None
        and served_template is not None
        and served_template != own_template
        and len(own_template) > 0
    )
    fixed = fixed_tokens
    if trimmed and own_template is not None and served_template is not None:
        fixed = round(fixed_tokens * min(1.0, len(served_template) / len(own_template)))
    return PromptEffect(
        fixed_tokens=fixed,
        cached_tokens=fixed if prompt_cache else 0,
        quality_delta=trimmed_quality_delta if trimmed else 0.0,
        trimmed=trimmed,
    )
