"""The drawing surface: a plain 2D canvas inside `gr.HTML`, wired to Gradio events.

Why not `gr.Sketchpad`: measured in Debian chromium (software rendering, no GPU), Gradio 6's image editor
paints every pointer move through WebGL in software (seconds per move on a busy machine) and uploads its
background, layers and composite as PNGs several times per stroke (3-19 uploads). This canvas draws with
the 2D API and, at pen-up, sends one PNG data URL inside the event itself: no upload at all.

Each finished stroke, undo or clear raises the page's version (web/live.py) before anything is sent, so
scores of an older drawing are never taken for those of the paper as it is now.

The server can put a picture on the paper by setting the value to a PNG data URL (a shared drawing,
outlyne/web/share.py): it becomes the paper's background, under every stroke drawn after it, and a
Clear (undoable, like any clear) hides it. Setting '' empties the paper. Neither fires `input`: the server
already knows what it sent.
"""

from __future__ import annotations

import base64
import binascii

import gradio as gr
from PIL import Image

from outlyne.errors import BadImage
from outlyne.images import ImageLimits, open_image
from outlyne.web.live import PAGE_STATE_JS

CANVAS_SIDE = 512  # pixels the browser draws on; the sketch is normalized to 224 for the model anyway
DEFAULT_BRUSH = 4
MAX_BRUSH = 24

CANVAS_TEMPLATE = f"""
<div class="outlyne-pad">
  <canvas width="{CANVAS_SIDE}" height="{CANVAS_SIDE}" aria-label="Drawing paper"></canvas>
  <div class="outlyne-tools">
    <button type="button" data-tool="pen" class="active" aria-pressed="true" title="Pen">Pen</button>
    <button type="button" data-tool="eraser" aria-pressed="false" title="Eraser">Eraser</button>
    <label>Size <input type="range" min="1" max="{MAX_BRUSH}" value="{DEFAULT_BRUSH}"
      aria-label="Brush size"></label>
    <button type="button" data-action="undo" title="Undo (Ctrl+Z)">Undo</button>
    <button type="button" data-action="clear" title="Clear the paper">Clear</button>
  </div>
</div>
"""

CANVAS_CSS = """
.outlyne-pad { display: flex; flex-direction: column; gap: 6px; align-items: center; }
canvas { width: 100%; max-width: var(--outlyne-paper, 560px); aspect-ratio: 1; background: #fff;
  border: 1px solid var(--border-color-primary); border-radius: 6px; touch-action: none; cursor: crosshair; }
.outlyne-tools { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; justify-content: center; }
.outlyne-tools button { padding: 4px 12px; border-radius: 6px; border: 1px solid var(--border-color-primary);
  background: var(--button-secondary-background-fill); color: var(--body-text-color); }
.outlyne-tools button.active { background: var(--button-primary-background-fill);
  color: var(--button-primary-text-color); }
.outlyne-tools label { display: flex; gap: 4px; align-items: center; font-size: var(--text-sm); }
.outlyne-tools input[type=range] { width: 90px; }
"""

# Strokes are kept as data, so undo replays them; a clear is an action too, so it can be undone. A picture
# the server sends (a shared drawing) is the background: drawn first, until a clear.
CANVAS_JS = (
    PAGE_STATE_JS
    + """
const canvas = element.querySelector('canvas');
const context = canvas.getContext('2d');
const size = element.querySelector('input[type=range]');
const actions = [];
let current = null;
let tool = 'pen';
let background = null;
let sent = props.value || '';

function point(event) {
  const box = canvas.getBoundingClientRect();
  return [(event.clientX - box.left) * canvas.width / box.width,
          (event.clientY - box.top) * canvas.height / box.height];
}
function line(stroke, from) {
  context.strokeStyle = stroke.color; context.lineWidth = stroke.width;
  context.lineCap = 'round'; context.lineJoin = 'round';
  context.beginPath();
  const points = stroke.points;
  context.moveTo(points[from][0], points[from][1]);
  if (points.length === 1) context.lineTo(points[0][0] + 0.01, points[0][1]);
  for (let i = from + 1; i < points.length; i++) context.lineTo(points[i][0], points[i][1]);
  context.stroke();
}
function visible() {
  const start = actions.map(a => a.clear).lastIndexOf(true);
  return actions.slice(start + 1);
}
function backgroundShown() { return background !== null && !actions.some(a => a.clear); }
function repaint() {
  context.fillStyle = '#fff'; context.fillRect(0, 0, canvas.width, canvas.height);
  if (backgroundShown()) context.drawImage(background, 0, 0, canvas.width, canvas.height);
  for (const stroke of visible()) line(stroke, 0);
}
function send() {
  outlyne.touch();
  const inked = backgroundShown() || visible().some(s => s.color !== '#fff');
  props.value = sent = inked ? canvas.toDataURL('image/png') : '';
  trigger('input');
}
// A value the server set (not one this script sent): a new paper with that picture as its background.
function receive() {
  const value = props.value || '';
  if (value === sent) return;
  sent = value;
  actions.length = 0; current = null; background = null;
  delete canvas.dataset.background;
  if (!value.startsWith('data:image/png;base64,')) { repaint(); return; }
  const picture = new Image();
  picture.onload = () => {
    if (sent !== value) return;  // replaced meanwhile
    background = picture; repaint();
    canvas.dataset.background = 'true';  // tests wait for this
  };
  picture.src = value;
}
watch('value', receive);
canvas.addEventListener('pointerdown', event => {
  if (event.button !== 0) return;
  canvas.setPointerCapture(event.pointerId);
  current = { points: [point(event)], width: Number(size.value) * (tool === 'eraser' ? 3 : 1),
              color: tool === 'eraser' ? '#fff' : '#000' };
  actions.push(current);
  line(current, 0);
});
canvas.addEventListener('pointermove', event => {
  if (!current) return;
  // Every position the browser saw since the last event (fast pens skip frames), not only the last.
  const seen = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  const moves = seen.length ? seen : [event];
  for (const e of moves) current.points.push(point(e));
  line(current, Math.max(0, current.points.length - 1 - moves.length));
});
function finish() { if (!current) return; current = null; send(); }
canvas.addEventListener('pointerup', finish);
canvas.addEventListener('pointercancel', finish);
function undo() { if (!actions.length) return; actions.pop(); repaint(); send(); }
function clear() {
  if (!visible().length && !backgroundShown()) return;
  actions.push({ clear: true }); repaint(); send();
}
element.querySelector('[data-action=undo]').addEventListener('click', undo);
element.querySelector('[data-action=clear]').addEventListener('click', clear);
element.querySelectorAll('[data-tool]').forEach(button => button.addEventListener('click', () => {
  tool = button.dataset.tool;
  element.querySelectorAll('[data-tool]').forEach(b => {
    b.classList.toggle('active', b === button); b.setAttribute('aria-pressed', String(b === button));
  });
}));
element.addEventListener('keydown', event => {
  if ((event.ctrlKey || event.metaKey) && event.key === 'z') { event.preventDefault(); undo(); }
});
canvas.tabIndex = 0;
repaint();
if (sent) { sent = ''; receive(); }  // a value that arrived before this script ran
canvas.dataset.ready = 'true';  // listeners attached: strokes count from now on (tests wait for this)
"""
)


def sketch_canvas() -> gr.HTML:
    """The paper. Its value is a PNG data URL of the drawing ('' when the paper is blank); it fires
    `input` once per finished stroke, undo or clear."""
    return gr.HTML(
        value="",
        html_template=CANVAS_TEMPLATE,
        css_template=CANVAS_CSS,
        js_on_load=CANVAS_JS,
        elem_id="outlyne-sketch",
        apply_default_css=False,
    )


# -- the server's side: what the canvas sends, bounded before it is decoded ----------------------------

DATA_URL_PREFIX = "data:image/png;base64,"
MAX_SKETCH_CHARS = 4_000_000  # a 512x512 PNG of pure noise is ~1 MB (1.4 MB in base64); drawings ~20 KB
MAX_SKETCH_PIXELS = CANVAS_SIDE * CANVAS_SIDE


def sketch_image(value: object) -> Image.Image | None:
    """The canvas value -> the decoded drawing, or None when the paper is blank.

    Anyone can post any value to the page's events, so the size is checked before base64 decoding and
    the bytes go through the one image intake (outlyne.images) with the canvas's own pixel count."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_SKETCH_CHARS:
        raise BadImage("The drawing is too large to process.")
    if not value.startswith(DATA_URL_PREFIX):
        raise BadImage("The drawing did not arrive as a PNG image.")
    try:
        data = base64.b64decode(value[len(DATA_URL_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise BadImage("The drawing did not arrive as a PNG image.") from None
    return open_image(data, ImageLimits(max_pixels=MAX_SKETCH_PIXELS), name="The drawing")
