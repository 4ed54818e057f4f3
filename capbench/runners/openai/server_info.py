"""Small synchronous queries to an OpenAI-compatible server before a run: reachability, models, version."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from capbench.errors import CapbenchError


def get_json(base_url: str, path: str, headers: Mapping[str, str] | None = None, timeout_s: float = 10.0) -> Any:
    """GET ``base_url + path`` and parse JSON; a clear error when the server cannot be reached."""
    url = base_url.rstrip("/") + path
    try:
        request = urllib.request.Request(url, headers=dict(headers or {}))
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        hint = ""
        if exc.code in (401, 403):
            hint = ": the server wants an API key; put it in OPENAI_API_KEY (or the variable named by api_key_env)"
        elif exc.code == 404:
            hint = ": is base_url the server's root (e.g. http://host:8000, capbench adds /v1/...)?"
        raise CapbenchError(f"{url} answered HTTP {exc.code}{hint}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CapbenchError(f"cannot reach the server at {base_url}: {reason}") from exc
    except json.JSONDecodeError as exc:
        raise CapbenchError(f"{url} did not return JSON") from exc


def model_list(base_url: str, headers: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The entries of the server's ``/v1/models`` list (each has an ``id``)."""
    data = get_json(base_url, "/v1/models", headers)
    models = data.get("data") if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise CapbenchError(f"{base_url}/v1/models did not return an OpenAI model list")
    return [m for m in models if isinstance(m, dict) and m.get("id")]


def served_models(base_url: str, headers: Mapping[str, str] | None = None) -> list[str]:
    """Model ids the server lists under ``/v1/models``."""
    return [str(m["id"]) for m in model_list(base_url, headers)]


def context_length(entry: Mapping[str, Any]) -> int | None:
    """A model's context length as the server states it (vLLM: ``max_model_len``), else None."""
    value = entry.get("max_model_len")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def server_version(base_url: str, headers: Mapping[str, str] | None = None) -> str | None:
    """The server's version where it exposes one (vLLM: ``GET /version``), else None."""
    try:
        data = get_json(base_url, "/version", headers, timeout_s=5.0)
    except CapbenchError:
        return None
    version = data.get("version") if isinstance(data, dict) else None
    return str(version) if version is not None else None
