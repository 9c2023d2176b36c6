"""Activation patching: run a corrupted prompt (same number of tokens), put one activation of the
clean run in its place, and show how much of the metric that restores, for every head's output
and for the residual stream at every layer and position. Fills in while it is computed."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ...analysis import PatchResult
from ..analysis_worker import AnalysisResult, PatchRequest, TokenizeRequest
from ..widgets.heatmap import Heatmap, colormap, visible_label
from ..widgets.token_view import TokenView
from .analysis_base import (
    ERROR_STYLE,
    JobDock,
    clear_heatmap,
    esc,
    note_label,
    number_texts,
    percent,
)

TOKENIZE_MS = 150


class PatchingDock(JobDock):
    title = "Activation patching"
    name = "patching"
    kind = "patch"
    what = "patching run"

    def __init__(self, state, controller, parent=None):
        super().__init__(state, controller, parent)
        self.prompt_text = lambda: ""  # the clean prompt's text (the main window sets this)
        self.corrupted_tokens: tuple[list[int], list[str]] | None = None
        self.tokenize_id = -1
        self.count_note = ""  # why the corrupted prompt has no tokens (empty, too long)
        w = QWidget()
        self.editor = QPlainTextEdit()
        self.editor.setPlaceholderText(
            "The corrupted prompt: the same number of tokens, with what matters changed "
            "(e.g. other names in the IOI prompt)"
        )
        self.editor.setTabChangesFocus(True)
        lines = self.fontMetrics().lineSpacing()
        self.editor.setFixedHeight(lines * 3 + 12)
        self.copy_button = QPushButton("Copy the prompt")
        self.copy_button.setToolTip("Start from the clean prompt and change a word or two")
        top = QHBoxLayout()
        top.addWidget(QLabel("Corrupted prompt"))
        top.addStretch(1)
        top.addWidget(self.copy_button)
        self.count = note_label()
        self.chips = TokenView()
        self.chips.setToolTip("The corrupted prompt's tokens; coloured where they differ")
        self.description = note_label()
        self.description.setTextFormat(Qt.TextFormat.RichText)
        self.heads = Heatmap(cmap=state.diverging)
        self.heads.getPlotItem().setLabel("left", "layer")
        self.heads.getPlotItem().setLabel("bottom", "head output")
        self.resid = Heatmap(cmap=state.diverging)
        self.resid.getPlotItem().setLabel("left", "residual stream into layer")
        self.resid.getPlotItem().setLabel("bottom", "position")
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.heads)
        split.addWidget(self.resid)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 2)
        self.readout = QLabel(" ")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.editor)
        lay.addWidget(self.chips)
        lay.addWidget(self.count)
        lay.addLayout(self.buttons())
        lay.addWidget(self.description)
        lay.addWidget(split, 1)
        lay.addWidget(self.readout)
        lay.addWidget(self.status)
        self.setWidget(w)
        self.tokenize_timer = QTimer(self)
        self.tokenize_timer.setSingleShot(True)
        self.tokenize_timer.setInterval(TOKENIZE_MS)
        self.tokenize_timer.timeout.connect(self.tokenize)
        self.editor.textChanged.connect(self._on_edit)
        self.copy_button.clicked.connect(lambda: self.editor.setPlainText(self.prompt_text()))
        self.heads.hovered.connect(lambda r, c, v: self._on_hover("head", r, c, v))
        self.resid.hovered.connect(lambda r, c, v: self._on_hover("resid", r, c, v))
        self.resid.clicked.connect(lambda r, c: state.select(position=c))
        self.heads.clicked.connect(lambda r, c: state.select(layer=r, head=c))
        state.run_changed.connect(lambda _: self.show_count())
        state.model_changed.connect(lambda _: self.tokenize())
        state.diverging_changed.connect(self._on_diverging)
        controller.result.connect(self._on_tokens)
        self.set_status("Type a corrupted prompt, then press Start.")

    # --- settings ---------------------------------------------------------------------------

    def settings(self) -> dict:
        return {"corrupted": self.editor.toPlainText()}

    def apply_settings(self, settings: dict) -> None:
        if isinstance(settings.get("corrupted"), str):
            self.editor.setPlainText(settings["corrupted"])

    # --- the corrupted prompt's tokens ------------------------------------------------------

    def _on_edit(self):
        self.corrupted_tokens = None
        self.show_count()
        self.tokenize_timer.start()

    def tokenize(self):
        self.tokenize_timer.stop()
        text = self.editor.toPlainText()
        if self.state.model is None or not text.strip():
            self.corrupted_tokens = None
            self.show_count()
            return
        self.tokenize_id = self.controller.submit(TokenizeRequest(text))

    def _on_tokens(self, r):
        if isinstance(r, AnalysisResult) and r.kind == "tokenize" and r.id == self.tokenize_id:
            self.corrupted_tokens = r.value
            self.count_note = r.note
            self.show_count()

    def length_problem(self) -> str:
        """Why patching cannot start with this corrupted prompt ("" when it can)."""
        run = self.state.run
        if run is None or self.corrupted_tokens is None:
            return ""
        n, m = len(run.ids), len(self.corrupted_tokens[0])
        if n != m:
            return (
                f"The prompt has {n} tokens and the corrupted prompt {m}: patching needs the "
                "same number of tokens."
            )
        return ""

    def show_count(self):
        run = self.state.run
        text = self.editor.toPlainText()
        if not text.strip():
            self.chips.set_tokens([])
            self.count.setStyleSheet("")
            self.count.setText("")
            return
        if self.corrupted_tokens is None:
            if self.count_note and self.tokenize_id >= 0:
                self.count.setStyleSheet(ERROR_STYLE)
                self.count.setText(self.count_note[:1].upper() + self.count_note[1:])
            return
        ids, texts = self.corrupted_tokens
        self.chips.set_tokens(texts)
        differs = np.array(
            [run is not None and (i >= len(run.ids) or run.ids[i] != t) for i, t in enumerate(ids)],
            dtype=float,
        )
        lut = colormap("CET-L17").getLookupTable(nPts=256)
        self.chips.set_values(np.where(differs > 0, 0.6, np.nan), (0.0, 1.0), lut)
        problem = self.length_problem()
        if problem:
            self.count.setStyleSheet(ERROR_STYLE)
            self.count.setText(problem)
        elif run is not None:
            k = int(differs.sum())
            self.count.setStyleSheet("")
            self.count.setText(
                f"{len(ids)} tokens, as many as the prompt ✓ — {k} "
                f"{'position differs' if k == 1 else 'positions differ'}"
            )

    # --- the job ----------------------------------------------------------------------------

    def make_request(self):
        text = self.editor.toPlainText()
        if not text.strip():
            self.set_status("Type a corrupted prompt first.", ERROR_STYLE)
            return None
        problem = self.length_problem()
        if problem:
            self.set_status(problem, ERROR_STYLE)
            return None
        st = self.state
        return PatchRequest(text, st.selected_position, st.target, st.foil)

    def begin(self, info):
        m = self.state.model
        self.result = PatchResult.empty(
            m.n_layers, m.n_heads, None, info["texts"], info["corrupted_texts"]
        )
        L, H = m.n_layers, m.n_heads
        self.heads.set_matrix(
            np.full((L, H), np.nan), [f"L{l}" for l in range(L)], [f"H{h}" for h in range(H)],
            (-100.0, 100.0),
        )  # fmt: skip
        self.resid.set_matrix(
            np.full((L, len(info["texts"])), np.nan), [f"L{l}" for l in range(L)],
            info["texts"], (-100.0, 100.0),
        )  # fmt: skip
        self.heads.reset_view()
        self.resid.reset_view()

    def is_current(self, info) -> bool:
        run = self.state.run
        return (
            run is not None
            and list(run.ids) == info["ids"]
            and (info["ablation"] == self.state.ablation)
        )

    def reset(self):
        super().reset()
        clear_heatmap(self.heads)
        clear_heatmap(self.resid)
        self.description.setText("")

    def redraw(self):
        r, info = self.result, self.info
        if r is None or info is None:
            return
        heads, resid = 100 * r.restored_heads, 100 * r.restored_resid  # percent
        both = np.concatenate([heads.ravel(), resid.ravel()])
        finite = np.abs(both[np.isfinite(both)])
        lim = max(100.0, float(finite.max()) if finite.size else 100.0)
        for view, m in ((self.heads, heads), (self.resid, resid)):
            view.set_matrix(m, levels=(-lim, lim))
            view.set_cell_texts(number_texts(m, percent), elide=False)
        values = ""
        if np.isfinite(r.clean_value) and np.isfinite(r.corrupted_value):
            values = f"clean {r.clean_value:+.3f}, corrupted {r.corrupted_value:+.3f}. "
        warning = f"<br><span style='color:#d7263d'>{esc(r.warning)}</span>" if r.warning else ""
        stale = " <b>(stale)</b>" if self.stale else ""
        self.description.setText(
            f"<b>{esc(info['metric'])}</b>{stale}<br>{values}Each cell: the percentage of the "
            "difference restored when that one activation is taken from the clean run "
            f"(100 = all of it).{warning}"
        )

    def _on_diverging(self, name):
        self.heads.set_colormap(name)
        self.resid.set_colormap(name)

    def _on_hover(self, which, row, col, value):
        r, info = self.result, self.info
        if r is None or info is None or row < 0:
            self.readout.setText(" ")
            return
        if which == "head":
            raw = r.heads[row, col]
            where = f"head {row}.{col} output"
        else:
            raw = r.resid[row, col]
            tok = visible_label(info["texts"][col], 20)
            bad = visible_label(info["corrupted_texts"][col], 20)
            where = f"residual into layer {row} at {col} “{tok}” (corrupted “{bad}”)"
        if not np.isfinite(value):
            self.readout.setText(f"{where}: not computed yet")
            return
        self.readout.setText(f"{where}: restores {value:.1f}% (metric {raw:+.3f})")

    # --- export -----------------------------------------------------------------------------

    def plots(self) -> dict:
        return {"Patching heads": self.heads, "Patching residual stream": self.resid}

    def export_tables(self) -> dict:
        from ...export_data import Table

        r, info = self.result, self.info
        if r is None or info is None:
            return {}
        t = Table(["kind", "layer", "index", "token", "corrupted_token", "metric", "restored"])
        for (l, h), v in np.ndenumerate(r.heads):
            t.rows.append(["head", l, h, None, None, v, r.restored_heads[l, h]])
        for (l, p), v in np.ndenumerate(r.resid):
            t.rows.append(["resid", l, p, info["texts"][p], info["corrupted_texts"][p], v,
                           r.restored_resid[l, p]])  # fmt: skip
        return {"Activation patching": t}
