"""Analyses over a LoadedModel and a Run: pure computation, no Qt.

Quick ones are plain functions (they take cancel=, checked between layers like the engine):
head_roles, logit_lens, direct_logit_attribution, attention_rollout. Long jobs are generators
that yield small immutable steps as they are computed, so a worker can stop between items and
a progress bar can fill: iter_sweep, iter_patching (importance_sweep and activation_patching
run them to the end). Every result has to_json().
"""

from .common import AnalysisError, Metric, head_outputs
from .dla import DLAResult, direct_logit_attribution
from .lens import LensResult, logit_lens
from .patching import (
    PatchResult,
    PatchStep,
    activation_patching,
    iter_patching,
    patched_value,
)
from .roles import ROLES, HeadRoles, head_roles, repeated_random_tokens
from .rollout import RolloutResult, attention_rollout
from .sweep import SweepResult, SweepStep, importance_sweep, iter_sweep

__all__ = [
    "ROLES",
    "AnalysisError",
    "DLAResult",
    "HeadRoles",
    "LensResult",
    "Metric",
    "PatchResult",
    "PatchStep",
    "RolloutResult",
    "SweepResult",
    "SweepStep",
    "activation_patching",
    "attention_rollout",
    "direct_logit_attribution",
    "head_outputs",
    "head_roles",
    "importance_sweep",
    "iter_patching",
    "iter_sweep",
    "logit_lens",
    "patched_value",
    "repeated_random_tokens",
]
