"""The Gradio page and API: layout (page.py), event handlers (handlers.py), display formatting (format.py)."""
