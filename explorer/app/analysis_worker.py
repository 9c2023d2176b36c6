"""The analyses on the worker thread: their requests, results, and the Worker's methods for them.

Quick analyses (head roles, logit lens, direct logit attribution, rollout) are ordinary requests
for one run: latest wins per kind, stale ones are dropped like the other panels' requests.

Long ones (importance sweep, activation patching) are Jobs: the worker method builds a generator
over the analysis' steps and the controller advances it a slice (about JOB_SLICE seconds) at a
time, sending a JobUpdate with the steps of that slice, and serving any other request between
slices, so the rest of the app stays responsive while a sweep fills in. A job takes the run that
is current when it starts and keeps it: a new prompt or ablation does not stop it (its result is
then stale, which the dock says); a new job of the same kind, cancel(kind) or loading a model do.
No Qt in here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..analysis import (
    AnalysisError,
    Metric,
    PatchResult,
    SweepResult,
    attention_rollout,
    direct_logit_attribution,
    head_roles,
    iter_patching,
    iter_sweep,
    logit_lens,
)
from ..analysis.cli import token as _token
from ..analysis.common import check_position
from ..engine import PromptError

JOB_KINDS = ("sweep", "patch")
JOB_SLICE = 0.05  # seconds of steps per update sent to the GUI
SWEEP_METRICS = ("logit_diff", "loss", "kl")


# --- requests (immutable) ------------------------------------------------------------------


@dataclass(frozen=True)
class RolesRequest:
    run_id: int
    kind: str = "roles"
    id: int = 0


@dataclass(frozen=True)
class LensRequest:
    run_id: int
    target: str = ""
    kind: str = "lens"
    id: int = 0


@dataclass(frozen=True)
class DLARequest:
    run_id: int
    position: int
    target: str = ""  # empty: the top prediction at the position
    foil: str = ""
    kind: str = "dla"
    id: int = 0


@dataclass(frozen=True)
class RolloutRequest:
    run_id: int
    position: int
    add_residual: bool = True
    kind: str = "rollout"
    id: int = 0


@dataclass(frozen=True)
class TokenizeRequest:
    """A text's tokens, e.g. the corrupted prompt of activation patching (no run needed)."""

    text: str
    kind: str = "tokenize"
    id: int = 0


@dataclass(frozen=True)
class SweepRequest:
    """An importance sweep of the worker's current run (a Job)."""

    metric: str = "logit_diff"  # logit_diff | loss | kl (to the clean run)
    position: int = -1
    target: str = ""  # logit_diff without a target: the top prediction at the position
    foil: str = ""
    mode: str = "zero"  # how each swept head is ablated
    on_top: bool = True  # base = the current ablation; False: the clean run
    kind: str = "sweep"
    id: int = 0


@dataclass(frozen=True)
class PatchRequest:
    """Activation patching of the current run (clean) with a corrupted prompt (a Job)."""

    corrupted: str
    position: int = -1
    target: str = ""  # empty: the top prediction of the clean run vs that of the corrupted
    foil: str = ""
    kind: str = "patch"
    id: int = 0


# --- results (plain data) ------------------------------------------------------------------


@dataclass
class AnalysisResult:
    """A quick analysis' result. value is None when the analysis cannot be done on this model
    or with these arguments; note then says why (one readable line)."""

    id: int
    run_id: int
    kind: str  # roles | lens | dla | rollout | tokenize
    value: object  # HeadRoles | LensResult | DLAResult | RolloutResult | (ids, texts) | None
    note: str = ""


@dataclass
class JobUpdate:
    """Steps of a long analysis as they are computed; the last update has final=True and the
    whole result."""

    id: int
    run_id: int  # the run the job works on (may be older than the one on screen)
    kind: str  # sweep | patch
    steps: list  # SweepStep | PatchStep, in order
    done: int
    total: int
    info: dict = field(default_factory=dict)  # what the job measures (see the worker methods)
    final: bool = False
    result: object = None  # SweepResult | PatchResult, when final


class Job:
    """A long analysis in progress: its request, a step generator and a result to fill."""

    def __init__(self, request, run_id: int, steps: Iterator, result, info: dict):
        self.request = request
        self.run_id = run_id
        self.steps = steps
        self.result = result
        self.info = info

    @property
    def kind(self) -> str:
        return self.request.kind

    def update(self, steps: list, final: bool = False) -> JobUpdate:
        for s in steps:
            self.result.add(s)
        r = self.result
        return JobUpdate(
            self.request.id, self.run_id, self.kind, list(steps), r.done, r.total, self.info,
            final, r if final else None,
        )  # fmt: skip


# --- the worker's methods (a mixin of compute.Worker) --------------------------------------


class AnalysisWorker:
    """do_<kind> for the analyses. Uses the Worker's lm, clean/ablated runs, run_id, cancel."""

    lm: object
    clean: object
    ablated: object
    run_id: int
    cancel: object
    _need_model: Callable
    _run_for: Callable

    def _quick(self, req, compute) -> AnalysisResult:
        run = self._run_for(req, True)
        try:
            value, note = compute(self._need_model(), run), ""
        except AnalysisError as e:
            value, note = None, str(e)
        if isinstance(value, tuple):
            value, note = value
        return AnalysisResult(req.id, req.run_id, req.kind, value, note)

    def do_roles(self, req: RolesRequest) -> AnalysisResult:
        return self._quick(req, lambda lm, run: head_roles(lm, run, cancel=self.cancel.is_set))

    def do_lens(self, req: LensRequest) -> AnalysisResult:
        def compute(lm, run):
            note = ""
            try:
                target = _token(lm, req.target, "the target") if req.target else None
            except AnalysisError as e:
                target, note = None, str(e)
            return logit_lens(lm, run, target, cancel=self.cancel.is_set), note

        return self._quick(req, compute)

    def do_dla(self, req: DLARequest) -> AnalysisResult:
        def compute(lm, run):
            p = check_position(run, req.position)
            target = _token(lm, req.target, "the target") if req.target else None
            foil = _token(lm, req.foil, "the foil") if req.foil and target is not None else None
            if target is None:
                target = _top(run, p)
            return direct_logit_attribution(lm, run, target, foil, p, cancel=self.cancel.is_set)

        return self._quick(req, compute)

    def do_rollout(self, req: RolloutRequest) -> AnalysisResult:
        return self._quick(
            req,
            lambda lm, run: attention_rollout(
                lm, run, req.position, req.add_residual, cancel=self.cancel.is_set
            ),
        )

    def do_tokenize(self, req: TokenizeRequest) -> AnalysisResult:
        lm = self._need_model()
        try:
            ids = lm.encode(req.text)
        except PromptError as e:
            return AnalysisResult(req.id, 0, req.kind, None, str(e))
        return AnalysisResult(req.id, 0, req.kind, (ids, lm.tokenizer.displays(ids)))

    def _current(self, ablated: bool):
        if self.clean is None:
            raise PromptError("run a prompt first")
        return self.ablated if ablated else self.clean

    def do_sweep(self, req: SweepRequest) -> Job:
        """info: ids, texts, base (Ablation), on_top, mode, metric (text), position."""
        lm = self._need_model()
        run = self._current(req.on_top)
        if req.metric not in SWEEP_METRICS:
            raise AnalysisError(f"the metric must be one of {SWEEP_METRICS}")
        p = check_position(run, req.position)
        target = _token(lm, req.target, "the target") if req.target else None
        foil = _token(lm, req.foil, "the foil") if req.foil and target is not None else None
        if req.metric == "logit_diff":
            auto = target is None
            metric = Metric.logit_diff(p, _top(self.clean, p) if auto else target, foil)
            text = metric.describe(lm.tokenizer) + (" (the clean top prediction)" if auto else "")
        elif req.metric == "loss":
            if p < run.n_tokens - 1:
                metric = Metric.loss(run, p)
            elif target is not None:
                metric = Metric.loss(run, p, [target])
            else:
                raise AnalysisError(
                    "the last position has no next token in the prompt: select an earlier "
                    "position or set a target token (in Predictions)"
                )
            nxt = metric.targets[0]
            text = f"loss of the next token {lm.tokenizer.display(nxt)!r} at {p}"
        else:
            metric = Metric.kl(self.clean, p)
            text = f"KL(clean ‖ run) at {p}"
        s = lm.spec
        base = run.ablation
        steps = iter_sweep(lm, run, metric, base, req.mode, cancel=self.cancel.is_set)
        info = dict(
            ids=run.tokens.tolist(), texts=lm.tokenizer.displays(run.tokens.tolist()),
            base=base, on_top=req.on_top, mode=req.mode, metric=text, metric_kind=req.metric,
            position=p,
        )  # fmt: skip
        result = SweepResult.empty(s.n_layers, s.n_heads, metric, base, req.mode)
        return Job(req, self.run_id, steps, result, info)

    def do_patch(self, req: PatchRequest) -> Job:
        """info: ids, texts, corrupted_ids, corrupted_texts, ablation, metric (text), position."""
        lm = self._need_model()
        clean = self._current(True)
        if not lm.spec.has_lm_head:
            raise AnalysisError("activation patching needs a language-model head")
        try:
            c_ids = lm.encode(req.corrupted)
        except PromptError as e:
            raise AnalysisError(f"the corrupted prompt: {e}") from None
        if len(c_ids) != clean.n_tokens:
            raise AnalysisError(
                f"the prompt has {clean.n_tokens} tokens and the corrupted prompt {len(c_ids)}: "
                "patching needs the same number of tokens"
            )
        p = check_position(clean, req.position)
        target = _token(lm, req.target, "the target") if req.target else None
        foil = _token(lm, req.foil, "the foil") if req.foil and target is not None else None
        corrupted = lm.run(c_ids, clean.ablation, cancel=self.cancel.is_set)
        auto = target is None
        if auto:
            target = _top(clean, p)
            other = _top(corrupted, p)
            foil = other if other != target else None
        metric = Metric.logit_diff(p, target, foil)
        text = metric.describe(lm.tokenizer)
        if auto:
            text += " (the top predictions of the clean and corrupted prompts)"
        tok = lm.tokenizer
        ids = clean.tokens.tolist()
        info = dict(
            ids=ids, texts=tok.displays(ids), corrupted_ids=list(c_ids),
            corrupted_texts=tok.displays(c_ids), ablation=clean.ablation, metric=text,
            position=p,
        )  # fmt: skip
        s = lm.spec
        result = PatchResult.empty(
            s.n_layers, s.n_heads, metric, info["texts"], info["corrupted_texts"]
        )
        steps = iter_patching(lm, clean, corrupted, metric, cancel=self.cancel.is_set)
        return Job(req, self.run_id, steps, result, info)


def _top(run, position: int) -> int:
    return int(run.logits([position])[0].argmax())


__all__ = [
    "JOB_KINDS",
    "AnalysisResult",
    "AnalysisWorker",
    "DLARequest",
    "Job",
    "JobUpdate",
    "LensRequest",
    "PatchRequest",
    "RolesRequest",
    "RolloutRequest",
    "SweepRequest",
    "TokenizeRequest",
]
