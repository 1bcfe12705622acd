"""Exit 0 when the app on this machine answers its page, 1 otherwise: the Docker HEALTHCHECK.

Plain standard library, so it runs in the slim runtime image in a fraction of a second. The port is
GRADIO_SERVER_PORT (default 7860), like app.py's.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("GRADIO_SERVER_PORT", "7860")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as error:
        print(f"healthcheck: no answer on port {port}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
