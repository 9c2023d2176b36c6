"""Check that every panel of a window shows what a fresh engine computation of the window's
current state gives: tokens, loss, the selected head's pattern, the head grid, predictions,
generation and the ablation buttons. Used by the worker-fault and soak tests."""

from __future__ import annotations

import numpy as np
import torch

from explorer.app.compute import THUMB

ATOL = 1e-4  # the window's run is computed incrementally (reruns from a cached layer)


def check_panels(window, lm) -> dict:
    """Assert the panels equal a fresh computation; returns what was compared (for reports)."""
    st = window.state
    text = window.prompt.text()
    ids = lm.encode(text, truncate=True)
    run = st.run
    assert run is not None, "no run shown"
    assert run.ids == ids, "the tokens shown are not the prompt's"
    assert run.ablation == st.ablation, "the run shown is not for the current ablation"
    clean = lm.run(ids)
    ablated = lm.run(ids, st.ablation) if st.ablation else clean
    # tokens and loss
    assert window.docks["tokens"].view.texts == lm.tokenizer.displays(ids)
    if lm.spec.has_lm_head and lm.spec.causal:
        np.testing.assert_allclose(run.loss_clean[:-1], clean.loss()[:-1].numpy(), atol=ATOL)
        np.testing.assert_allclose(run.loss_ablated[:-1], ablated.loss()[:-1].numpy(), atol=ATOL)
    # the selected head's pattern, from the run the view shows
    att = window.docks["attention"]
    view = att.ablated_view()
    shown_run = ablated if view else clean
    assert att.shown == (st.run_id, st.layer, st.head, view), (att.shown, st.layer, st.head)
    want = (
        shown_run.layer_patterns(st.layer).mean(0) if st.head < 0
        else shown_run.pattern(st.layer, st.head)
    )  # fmt: skip
    np.testing.assert_allclose(att.heatmap.data, want.numpy(), atol=ATOL)
    # the head grid (thumbnails are the full patterns while T <= THUMB)
    assert att.grid_run == st.run_id
    T = len(ids)
    if T <= THUMB:
        mosaic, cell = att.grid.image.image, att.grid.cell
        for l in range(lm.spec.n_layers):
            pats = shown_run.layer_patterns(l).numpy()
            for h in range(lm.spec.n_heads):
                got = mosaic[l * cell : l * cell + T, h * cell : h * cell + T]
                np.testing.assert_allclose(got, pats[h], atol=ATOL)
    # predictions at the selected position
    p = window.docks["predictions"].last
    pos = st.selected_position
    assert p is not None and p.run_id == st.run_id and p.position == pos
    if lm.spec.has_lm_head:
        for got, r in ((p.clean, clean), (p.ablated, ablated)):
            probs = torch.softmax(r.logits([pos])[0], -1)
            np.testing.assert_allclose(
                [x[2] for x in got], probs[[x[0] for x in got]].numpy(), atol=ATOL
            )
            assert float(probs.max()) - got[0][2] < ATOL  # the top one is the top one
    # generation (greedy)
    gen = window.docks["generation"]
    g = gen.last
    assert g is not None and g.run_id == st.run_id
    if lm.spec.causal and lm.spec.has_lm_head and not gen.sample.isChecked():
        n = gen.n.value()
        assert g.clean_ids == lm.generate(ids, n)
        assert g.ablated_ids == (lm.generate(ids, n, st.ablation) if st.ablation else g.clean_ids)
    # the ablation buttons
    abl = window.docks["ablation"]
    checked = {k for k, b in abl.heads.items() if b.isChecked()}
    assert checked == {(l, h) for l, h, _ in st.ablation.heads}
    return {"tokens": T, "layer": st.layer, "head": st.head, "ablated": len(st.ablation.heads)}
