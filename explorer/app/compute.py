"""EngineController: ONE worker thread owns the model; the GUI thread never computes.

The GUI submits immutable requests. Per kind, only the latest pending request is kept; a new
request cancels a running one of the same kind (a new prompt or ablation cancels everything
that depends on the old run) through a flag the engine checks between layers. Results carry
the request id and the id of the run they were computed from, and arrive as plain numpy
arrays through a queued signal; the GUI drops any result that is no longer the latest.

Long analyses (JOB_KINDS: importance sweep, activation patching) are Jobs, advanced a slice at
a time between the other requests, each slice sending its steps as a JobUpdate: see
analysis_worker.py.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from PySide6.QtCore import QObject, Signal

from ..checkpoints.memory import check_run
from ..engine import Ablation, Cancelled, LoadedModel, PromptError
from ..engine.generate import generate_from_run
from ..engine.tokenizer import clean_text
from .analysis_worker import JOB_KINDS, JOB_SLICE, AnalysisWorker, Job

# lower number = served first; a run invalidates the kinds after it
PRIORITY = {
    "load": 0, "run": 1, "pattern": 2, "grid": 3, "predict": 4, "generate": 5, "layer": 6,
    "tokenize": 7, "roles": 8, "dla": 9, "lens": 10, "rollout": 11,
    "sweep": 20, "patch": 21,  # JOB_KINDS: advanced between the others, when nothing waits
}  # fmt: skip
THUMB = 48  # grid thumbnails are at most THUMB x THUMB


# --- requests (immutable) ------------------------------------------------------------------


@dataclass(frozen=True)
class LoadRequest:
    path: str
    dtype: str = "float32"
    device: str = "cpu"
    kind: str = "load"
    id: int = 0


@dataclass(frozen=True)
class RunRequest:
    text: str
    ablation: Ablation = Ablation()
    kind: str = "run"
    id: int = 0


@dataclass(frozen=True)
class PatternRequest:
    run_id: int
    layer: int
    head: int  # -1: the average over the layer's heads
    ablated: bool = True
    kind: str = "pattern"
    id: int = 0


@dataclass(frozen=True)
class LayerRequest:
    """Every head's full pattern in one layer (for export)."""

    run_id: int
    layer: int
    ablated: bool = True
    kind: str = "layer"
    id: int = 0


@dataclass(frozen=True)
class GridRequest:
    run_id: int
    query: int = -1  # >= 0: thumbnails show only this query row's attention
    ablated: bool = True
    kind: str = "grid"
    id: int = 0


@dataclass(frozen=True)
class PredictRequest:
    run_id: int
    position: int
    target: str = ""
    foil: str = ""
    k: int = 10
    kind: str = "predict"
    id: int = 0


@dataclass(frozen=True)
class GenerateRequest:
    run_id: int
    n_new: int = 20
    greedy: bool = True
    seed: int = 0
    temperature: float = 1.0
    kind: str = "generate"
    id: int = 0


# --- results (plain data) ------------------------------------------------------------------


@dataclass
class ModelInfo:
    name: str
    path: str
    describe: dict
    has_lm_head: bool
    causal: bool
    n_layers: int
    n_heads: int
    context_length: int
    load_seconds: float = 0.0
    id: int = 0
    kind: str = "load"


@dataclass
class RunResult:
    id: int
    run_id: int
    ids: list[int]
    texts: list[str]
    ablation: Ablation
    loss_clean: np.ndarray  # (T,), nan where undefined
    loss_ablated: np.ndarray
    top_ids: np.ndarray  # (T, k) ablated run
    top_probs: np.ndarray
    top1_texts: list = field(default_factory=list)  # the top prediction's text per position
    truncated: int = 0  # tokens dropped from the start to fit the context window
    replaced: int = 0  # lone UTF-16 surrogates in the prompt, read as U+FFFD
    recomputed_from: int = 0  # first layer the ablated run computed itself
    seconds: float = 0.0
    kind: str = "run"


@dataclass
class PatternResult:
    id: int
    run_id: int
    layer: int
    head: int
    ablated: bool
    pattern: np.ndarray  # (T, T) float32
    kind: str = "pattern"


@dataclass
class LayerResult:
    id: int
    run_id: int
    layer: int
    ablated: bool
    patterns: np.ndarray  # (H, T, T) float32
    kind: str = "layer"


@dataclass
class GridResult:
    id: int
    run_id: int
    query: int
    thumbs: np.ndarray  # (L, H, t, t) float32
    kind: str = "grid"


@dataclass
class PredictResult:
    id: int
    run_id: int
    position: int
    clean: list  # [(id, text, prob)]
    ablated: list
    prob_clean_of_ablated_top: list  # p_clean of each ablated top token
    prob_ablated_of_clean_top: list
    kl: float
    target: str = ""
    foil: str = ""
    diff_clean: float | None = None
    diff_ablated: float | None = None
    note: str = ""
    kind: str = "predict"


@dataclass
class GenerateResult:
    id: int
    run_id: int
    clean: str
    ablated: str
    clean_ids: list = field(default_factory=list)
    ablated_ids: list = field(default_factory=list)
    kind: str = "generate"


@dataclass
class Failure:
    id: int
    kind: str
    message: str
    details: str = ""


def downsample(p: torch.Tensor, size: int = THUMB) -> torch.Tensor:
    """Average-pool a (..., T, T) pattern to at most size x size."""
    T = p.shape[-1]
    if T <= size:
        return p
    return torch.nn.functional.adaptive_avg_pool2d(p.reshape(-1, 1, T, T), size).reshape(
        *p.shape[:-2], size, size
    )


class Worker(AnalysisWorker):
    """The computations, on the worker thread. No Qt in here except through `emit`."""

    def __init__(self, emit):
        self.emit = emit
        self.lm: LoadedModel | None = None
        self.clean = None
        self.ablated = None
        self.run_id = 0
        self._clean_generation = None  # (key, ids) of the last clean continuation
        self.cancel = threading.Event()

    def handle(self, req):
        return getattr(self, "do_" + req.kind)(req)

    def do_load(self, req: LoadRequest):
        from ..checkpoints import load

        t0 = time.perf_counter()
        lm = load(req.path, dtype=req.dtype, device=req.device, progress=self._progress(req))
        if self.cancel.is_set():
            raise Cancelled()
        self.lm, self.clean, self.ablated, self.run_id = lm, None, None, 0
        self._clean_generation = None
        s = lm.spec
        return ModelInfo(
            id=req.id,
            name=lm.name,
            path=lm.path,
            describe=lm.describe(),
            has_lm_head=s.has_lm_head,
            causal=s.causal,
            n_layers=s.n_layers,
            n_heads=s.n_heads,
            context_length=s.context_length,
            load_seconds=time.perf_counter() - t0,
        )

    def _progress(self, req):
        def say(message):
            if self.cancel.is_set():
                raise Cancelled()
            self.emit(("progress", req.id, message))

        return say

    def _need_model(self):
        if self.lm is None:
            raise PromptError("no model is loaded")
        return self.lm

    def do_run(self, req: RunRequest):
        lm = self._need_model()
        t0 = time.perf_counter()
        all_ids = lm.tokenize(req.text)  # PromptError for an empty prompt
        ids = lm.fit(all_ids, truncate=True)
        clean = self.clean
        fresh = clean is None or clean.tokens.tolist() != ids
        # refuse (NotEnoughMemory, shown in the prompt notice) rather than be killed by the OS
        check_run(lm.spec, len(ids), lm.dtype, int(fresh) + int(bool(req.ablation)), lm.device)
        if fresh:
            clean = lm.run(ids, cancel=self.cancel.is_set)
            self.ablated = None
        if req.ablation:
            base = self.ablated if self.ablated is not None else clean
            # start from whichever cached run shares more layers with the new ablation
            d_prev = base.ablation.first_difference(req.ablation)
            d_clean = clean.ablation.first_difference(req.ablation)
            if d_clean is not None and (d_prev is None or d_clean > d_prev):
                base = clean
            ablated = base.rerun(req.ablation, cancel=self.cancel.is_set)
        else:
            ablated = clean
        if lm.spec.has_lm_head:
            loss_ablated, top_ids, top_probs = ablated.position_stats(10)
            loss_clean = loss_ablated if ablated is clean else clean.loss()
        else:
            loss_clean = loss_ablated = torch.full((len(ids),), float("nan"))
            top_ids, top_probs = (
                torch.zeros((len(ids), 0), dtype=torch.long),
                torch.zeros((len(ids), 0)),
            )
        self.clean, self.ablated = clean, ablated
        self.run_id = req.id
        texts = lm.tokenizer.displays(ids)
        return RunResult(
            id=req.id,
            run_id=req.id,
            ids=list(ids),
            texts=texts,
            ablation=req.ablation,
            loss_clean=loss_clean.numpy().copy(),
            loss_ablated=loss_ablated.numpy().copy(),
            top_ids=top_ids.numpy(),
            top_probs=top_probs.numpy(),
            top1_texts=[lm.tokenizer.display(int(i)) for i in top_ids[:, 0]]
            if top_ids.shape[1]
            else [],
            truncated=len(all_ids) - len(ids),
            replaced=clean_text(req.text)[1],
            recomputed_from=ablated.recomputed_from if req.ablation else 0,
            seconds=time.perf_counter() - t0,
        )

    def _run_for(self, req, ablated=True):
        if self.clean is None or req.run_id != self.run_id:
            raise Cancelled()  # stale: a newer run replaced the one this was asked for
        return self.ablated if ablated else self.clean

    def do_pattern(self, req: PatternRequest):
        run = self._run_for(req, req.ablated)
        if req.head < 0:
            p = run.mean_pattern(req.layer)
        else:
            p = run.pattern(req.layer, req.head)
        return PatternResult(
            req.id, req.run_id, req.layer, req.head, req.ablated, p.cpu().numpy().astype(np.float32)
        )

    def do_layer(self, req: LayerRequest):
        run = self._run_for(req, req.ablated)
        p = run.layer_patterns(req.layer).cpu().numpy().astype(np.float32)
        return LayerResult(req.id, req.run_id, req.layer, req.ablated, p)

    def do_grid(self, req: GridRequest):
        run = self._run_for(req, req.ablated)
        s = run.spec
        T = run.n_tokens
        size = min(T, THUMB)
        thumbs = np.zeros((s.n_layers, s.n_heads, size, size), dtype=np.float32)
        for l in range(s.n_layers):
            if self.cancel.is_set():
                raise Cancelled()
            for c in run.head_chunks():  # never every head's T x T at once
                thumbs[l, c] = downsample(run.layer_patterns(l, heads=c)).cpu().numpy()
        return GridResult(req.id, req.run_id, req.query, thumbs)

    def do_predict(self, req: PredictRequest):
        lm = self._need_model()
        clean, ablated = self._run_for(req, False), self._run_for(req, True)
        if not lm.spec.has_lm_head:
            return PredictResult(
                req.id, req.run_id, req.position, [], [], [], [], float("nan"),
                note="this model has no language-model head: no predictions",
            )  # fmt: skip
        pos = max(0, min(req.position, clean.n_tokens - 1))
        pc, pa = clean.probs(pos).cpu(), ablated.probs(pos).cpu()
        show = lm.tokenizer.display
        k = req.k
        tc, ta = pc.topk(k), pa.topk(k)
        kl = float(
            torch.sum(pc * (torch.log(pc.clamp_min(1e-30)) - torch.log(pa.clamp_min(1e-30))))
        )
        out = PredictResult(
            id=req.id,
            run_id=req.run_id,
            position=pos,
            clean=[(int(i), show(int(i)), float(p)) for p, i in zip(tc.values, tc.indices)],
            ablated=[(int(i), show(int(i)), float(p)) for p, i in zip(ta.values, ta.indices)],
            prob_clean_of_ablated_top=[float(pc[i]) for i in ta.indices],
            prob_ablated_of_clean_top=[float(pa[i]) for i in tc.indices],
            kl=max(kl, 0.0),
            target=req.target,
            foil=req.foil,
        )
        if req.target and req.foil:
            t, f = lm.tokenizer.token_id(req.target), lm.tokenizer.token_id(req.foil)
            if t is None or f is None:
                bad = req.target if t is None else req.foil
                out.note = f"{bad!r} is not a single token of this model"
            else:
                lc, la = clean.logits([pos])[0], ablated.logits([pos])[0]
                out.diff_clean = float(lc[t] - lc[f])
                out.diff_ablated = float(la[t] - la[f])
        return out

    def do_generate(self, req: GenerateRequest):
        lm = self._need_model()
        clean = self._run_for(req, False)
        if not (lm.spec.causal and lm.spec.has_lm_head):
            return GenerateResult(req.id, req.run_id, "(this model does not generate text)", "")
        kw = dict(greedy=req.greedy, seed=req.seed, temperature=req.temperature,
                  cancel=self.cancel.is_set)  # fmt: skip
        # the clean continuation does not change when only the ablation does
        key = (tuple(clean.tokens.tolist()), req.n_new, req.greedy, req.seed, req.temperature)
        if self._clean_generation is None or self._clean_generation[0] != key:
            self._clean_generation = (key, generate_from_run(clean, req.n_new, **kw))
        out_c = self._clean_generation[1]
        ablated = self.ablated
        out_a = generate_from_run(ablated, req.n_new, **kw) if ablated.ablation else out_c
        return GenerateResult(
            req.id, req.run_id, lm.tokenizer.decode(out_c), lm.tokenizer.decode(out_a), out_c, out_a
        )


class EngineController(QObject):
    """The GUI's handle on the worker thread. Signals arrive queued on the GUI thread."""

    result = Signal(object)  # any *Result or ModelInfo
    failed = Signal(object)  # Failure
    progress = Signal(int, str)  # request id, message
    busy = Signal(bool)
    _deliver = Signal(object)  # worker -> GUI thread hop

    def __init__(self, parent=None):
        super().__init__(parent)
        self._cv = threading.Condition()
        self._pending: dict[str, object] = {}
        self._jobs: dict[str, Job] = {}  # long analyses in progress, by kind
        self._running = None
        self._undelivered = 0  # results emitted by the worker, not yet handled here
        self._next_id = 0
        self.latest: dict[str, int] = {}
        self.computed: list[str] = []  # kinds actually computed, in order (for tests)
        self._stop = False
        self._worker = Worker(self._deliver.emit)
        self._deliver.connect(self._on_deliver)
        self._thread = threading.Thread(target=self._loop, name="engine-worker", daemon=True)
        self._thread.start()

    # --- GUI side ---------------------------------------------------------------------------

    def submit(self, request) -> int:
        """Queue a request; returns its id. Replaces a pending one of the same kind."""
        with self._cv:
            self._next_id += 1
            request = replace(request, id=self._next_id)
            kind = request.kind
            self.latest[kind] = request.id
            self._pending[kind] = request
            running = self._running
            if running is not None:
                rk = running.kind
                stops = kind == "load" or kind == "run" and rk not in JOB_KINDS
                if rk == kind or PRIORITY[kind] < PRIORITY[rk] and stops:
                    self._worker.cancel.set()
            if kind in ("load", "run"):  # everything pending after it is stale
                for k in list(self._pending):  # (a job takes the run current when it starts)
                    if PRIORITY[k] > PRIORITY[kind] and (kind == "load" or k not in JOB_KINDS):
                        del self._pending[k]
            if kind == "load":
                self._jobs.clear()
            self._jobs.pop(kind, None)  # a new job replaces the old one
            self._cv.notify()
        return request.id

    def cancel(self, kind: str):
        """Stop a running request of this kind and forget a pending one."""
        with self._cv:
            self._pending.pop(kind, None)
            self._jobs.pop(kind, None)
            if self._running is not None and self._running.kind == kind:
                self._worker.cancel.set()
            self.latest[kind] = -1  # a result already on its way is dropped

    def is_latest(self, item) -> bool:
        return self.latest.get(item.kind) == item.id

    def is_idle(self) -> bool:
        """Nothing pending, nothing running, and no result on its way to the GUI thread."""
        with self._cv:
            return (
                self._running is None
                and not self._pending
                and not self._jobs
                and not self._undelivered
            )

    def shutdown(self, timeout: float = 2.0) -> bool:
        """Stop the worker (cancelling what runs); True when it ended within the timeout."""
        with self._cv:
            self._stop = True
            self._pending.clear()
            self._jobs.clear()
            self._worker.cancel.set()
            self._cv.notify()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _on_deliver(self, item):
        if not isinstance(item, (tuple, str)):
            with self._cv:
                self._undelivered -= 1
        if isinstance(item, tuple) and item[0] == "progress":
            self.progress.emit(item[1], item[2])
        elif item == "busy":
            self.busy.emit(True)
        elif item == "idle":
            self.busy.emit(False)
        elif isinstance(item, Failure):
            if self.latest.get(item.kind) == item.id:
                self.failed.emit(item)
        elif self.is_latest(item):
            self.result.emit(item)

    # --- worker side ------------------------------------------------------------------------

    def _emit_result(self, item):
        with self._cv:
            self._undelivered += 1
        self._deliver.emit(item)

    def _loop(self):
        torch.set_grad_enabled(False)
        while True:
            with self._cv:
                while not self._pending and not self._jobs and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                job = None
                if self._pending:
                    kind = min(self._pending, key=PRIORITY.__getitem__)
                    req = self._running = self._pending.pop(kind)
                else:
                    job = self._jobs[min(self._jobs, key=PRIORITY.__getitem__)]
                    req = self._running = job.request
                self._worker.cancel.clear()
            self._deliver.emit("busy")
            try:
                if job is not None:
                    self._advance(job)
                    continue
                out = self._worker.handle(req)
                if self._stop:
                    return  # the window closed while this ran: nobody waits for it
                if isinstance(out, Job):
                    with self._cv:
                        if self.latest.get(req.kind) == req.id:
                            self._jobs[req.kind] = out
                    continue
                self.computed.append(req.kind)
                self._emit_result(out)
            except Cancelled:
                pass
            except BaseException as e:  # shown to the user; the worker keeps serving. Not only
                # Exception: a Rust library's panic (pyo3's PanicException) is a BaseException,
                # and letting it end this thread would leave the window waiting forever
                if self._stop:
                    return
                msg = str(e) or type(e).__name__
                self._emit_result(Failure(req.id, req.kind, msg, traceback.format_exc()))
            finally:
                with self._cv:
                    self._running = None
                    idle = not self._pending and not self._jobs
                if idle and not self._stop:
                    self._deliver.emit("idle")

    def _advance(self, job: Job):
        """Run a job's steps for about JOB_SLICE seconds (less when a request waits), send
        them; at the end send the whole result. Raises Cancelled when it was stopped."""
        steps, finished = [], False
        t0 = time.perf_counter()
        try:
            while True:
                try:
                    steps.append(next(job.steps))
                except StopIteration:
                    finished = True
                    break
                if self._worker.cancel.is_set():
                    raise Cancelled()
                if self._pending or time.perf_counter() - t0 >= JOB_SLICE:
                    break
        except BaseException:
            with self._cv:
                if self._jobs.get(job.kind) is job:
                    del self._jobs[job.kind]
            raise
        with self._cv:
            if self._jobs.get(job.kind) is not job:
                return  # replaced or cancelled meanwhile
            if finished:
                del self._jobs[job.kind]
        if steps and not finished:
            self._emit_result(job.update(steps))
        if finished:
            self.computed.append(job.kind)
            self._emit_result(job.update(steps, final=True))
