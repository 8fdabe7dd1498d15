"""Is a tracking server there? Asked once, briefly, before any work: MLflow's client retries an
unreachable server for about four minutes before it fails. Standard library only."""

from __future__ import annotations

import urllib.error
import urllib.request

from gesture_rnn.errors import TrackingError


def check_server(uri: str, key: str, timeout_s: float = 5.0) -> None:
    """An http(s) tracking URI answers within ``timeout_s``, or one TrackingError line (MLflow's
    client would retry for about four minutes first)."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s).close()
    except urllib.error.HTTPError:
        pass  # it answered: a server (perhaps behind a proxy without /health)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise TrackingError(
            f"MLflow tracking server {uri} ({key}) is unreachable: {reason}; "
            "start it, fix MLFLOW_TRACKING_URI, or unset it to use the local store"
        ) from None
