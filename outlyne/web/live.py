"""Live scoring's small protocol between the page and the server: never show stale scores as current.

The page keeps one number, `outlyne.want`, raised the moment anything that should be scored changes (a
stroke, undo, clear, an upload, a setting, a tab). Each scoring request carries the number it had when it
left (read by `READ_VERSION_JS` at submit time, after Gradio has gathered the inputs it sends), and the
server echoes it in the score view as `data-version`. The view is current only when the two agree; until
then `#outlyne-concepts` carries the class `outlyne-pending` (shown as a quiet dimming). Gradio's
`trigger_mode="always_last"` drops intermediate runs, so one run follows a burst of strokes, and any
answer that was overtaken while it ran simply stays "pending" until the newest one arrives.
"""

from __future__ import annotations

import gradio as gr

from outlyne.web import format

# `changedAt` / `currentAt` (performance.now() of the latest change and of the moment its scores were
# shown) are for scripts/measure_live.py; the page itself only needs `want`.
PAGE_STATE_JS = """
window.outlyne = window.outlyne || {
  want: 0, changedAt: 0, currentAt: 0, tab: 'sketch',
  view() { return document.getElementById('outlyne-concepts'); },
  touch() {
    this.want += 1; this.changedAt = performance.now();
    this.view()?.classList.add('outlyne-pending');
    return this.want;
  },
  showTab(tab) { if (tab !== this.tab) { this.tab = tab; this.touch(); } },
  shown(version) {
    const current = Number(version) === this.want;
    if (current) this.currentAt = performance.now();
    this.view()?.classList.toggle('outlyne-pending', !current);
  },
};
"""

# Runs in the browser when something that changes the scores happens (before any request is queued).
TOUCH_JS = "(...values) => { " + PAGE_STATE_JS + " outlyne.touch(); return values; }"


# An example goes into the Upload tab, which the server brings forward: the page is on that tab now (so its
# own `select` that follows is no change) and shows a new picture.
EXAMPLE_JS = (
    "(...values) => { " + PAGE_STATE_JS + " outlyne.tab = 'upload'; outlyne.touch(); return values; }"
)


def tab_select_js(tab: str) -> str:
    """For the input tabs' `select`: a change only when the page was showing the other tab.

    Gradio also fires `select` for the tab that is selected when the page mounts: that is no change, and
    scoring then would put the blank paper's empty scores over a shared run the page just restored
    (outlyne/web/share.py). The server skips it too (the session's source is already that tab); here the
    version stays, so the view stays current."""
    return "(...values) => { " + PAGE_STATE_JS + f" outlyne.showTab('{tab}'); return values; }}"


# At submit time, the inputs as the page shows them now: the last input (the hidden version number) becomes
# the page's current version, and the settings typed into a box are read from the box itself. Gradio
# gathers a component's value from its own state, which can lag a number or text typed and entered at once
# on a busy machine (the run then scored the old top-K, or searched an empty query); the box is never behind.
def read_inputs_js(*, top_k_at: int, extra_at: int, query_first: bool = False) -> str:
    """`top_k_at`, `extra_at`: positions of the top-K slider and the extra-concepts box among the inputs;
    `query_first`: the first input is the query box ("search with this text")."""
    query = (
        " const query = document.querySelector('#outlyne-query input, #outlyne-query textarea');"
        " if (query) values[0] = query.value;"
        if query_first
        else ""
    )
    return (
        "(...values) => { "
        + PAGE_STATE_JS
        + " const topK = document.querySelector('#outlyne-top-k input[type=number]');"
        + f" if (topK && topK.value !== '') values[{top_k_at}] = Number(topK.value);"
        + " const extra = document.querySelector('#outlyne-extra input, #outlyne-extra textarea');"
        + f" if (extra) values[{extra_at}] = extra.value;"
        + query
        + " values[values.length - 1] = outlyne.want; return values; }"
    )


# The score view: clicking a concept asks "why?"; every new value is checked against the page's version.
SCORES_JS = (
    PAGE_STATE_JS
    + """
element.addEventListener('click', event => {
  const concept = event.target.closest('[data-label]');
  if (concept) trigger('click', { label: concept.dataset.label });
});
const check = () => {
  const shown = element.querySelector('[data-version]');
  if (shown) outlyne.shown(shown.dataset.version);
};
watch('value', check);
check();
"""
)


def score_view() -> gr.HTML:
    return gr.HTML(
        value=format.scores_html([], 0),
        js_on_load=SCORES_JS,
        elem_id="outlyne-concepts",
        css_template=format.SCORES_CSS,
    )


def version_box() -> gr.Number:
    """The hidden input that carries the page's version to the server (filled by READ_VERSION_JS)."""
    return gr.Number(value=0, precision=0, visible=False)
