"""LLM backends for seed 003's prompt diversification and label-ambiguity resolution.

:class:`ChatClient` speaks the OpenAI-compatible ``POST /v1/chat/completions`` API (vLLM,
llama.cpp server, Ollama, OpenAI) with the standard library only: bounded retries with
exponential backoff, a timeout per request, an API key read from an environment variable, and an
on-disk cache of responses under ``cache_dir("llm")`` keyed by (model, messages, temperature,
call index), so a plan is reproducible and a rerun makes no calls.

:class:`LLMBackend` asks for contextualized descriptions with the paper's request (§3.2: 20
descriptions per call, "be creative and avoid repetition", temperature 0.75) and for candidate
meanings of a class name (§3.1).  :func:`parse_list` reads numbered, bulleted or JSON lists.
"""
from __future__ import annotations

from engine.errors import UserError
import dataclasses
import hashlib
import json
import math
import os
import re
import socket
import time
import urllib.error
import urllib.request

from engine.paths import atomic_write, cache_dir

DESCRIPTIONS_PER_CALL = 20
"""Seed 003 §3.2: "we ask the LLM for 20 descriptions per prompt"."""
PAPER_TEMPERATURE = 0.75
"""Seed 003 §3.2: "We also use a high temperature of 0.75"."""

CD_REQUEST = (
    "Imagine there is a photo of {c}. What foreground and background objects can show up "
    "together with it? Describe the photo in the following four aspects:\n"
    "- Foreground\n- Background\n- Lighting Condition\n- Camera Angle\n\n"
    "Give {k} different descriptions. Be creative and avoid repetition. Answer with a numbered "
    "list, one description per line, the four aspects in this order separated by commas, "
    "without the aspect names.")
"""Seed 003 §3.2's request (quoted up to "Camera Angle"), plus the count and answer format."""

MEANINGS_REQUEST = (
    "The word \"{c}\" can have several meanings. List up to {k} different possible meanings of "
    "\"{c}\" as short noun phrases (for \"crane\": a large long-legged bird; a machine for "
    "lifting heavy objects). Answer with a numbered list, one meaning per line.")
"""Seed 003 §3.1 asks an LLM for K meaning phrases of a class name; its wording is not given."""

ASPECT_LABEL = re.compile(r"\b(foreground|background|lighting(?: condition)?|camera(?: angle)?)"
                          r"\s*(?:objects?)?\s*:\s*", re.IGNORECASE)
MARKER = re.compile(r"^\s*(?:\d+\s*[.):\]]|[-*\u2022]|\(\d+\))\s+")


class LLMError(UserError, RuntimeError):
    """The LLM server could not be used (unreachable, errors, unusable answers)."""


@dataclasses.dataclass
class LLMConfig:
    """Where and how to reach an OpenAI-compatible chat-completions server."""

    url: str
    """Base URL (``http://127.0.0.1:8000/v1``) or the full ``.../chat/completions`` endpoint."""
    model: str
    """Model name sent to the server (``gpt-3.5-turbo`` in the paper)."""
    temperature: float = PAPER_TEMPERATURE
    """Sampling temperature (0.75 in the paper)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key; unset means no Authorization header."""
    timeout_s: float = 120.0
    """Seconds to wait for one response."""
    retries: int = 4
    """Further attempts after a failed request (connection error, timeout, 5xx/429, garbage)."""
    backoff_s: float = 2.0
    """Sleep before retry ``i`` is ``backoff_s * 2**i``."""
    max_tokens: int | None = None
    """Optional ``max_tokens`` for the server."""
    use_cache: bool = True
    """Read and write the response cache under ``cache_dir("llm")``."""

    def __post_init__(self):
        if not self.url or not self.url.startswith(("http://", "https://")):
            raise ValueError(f"LLM url must start with http:// or https://, got {self.url!r}")
        if not self.model:
            raise ValueError("LLM model name is empty (CLI: --llm-model NAME)")
        if self.retries < 0 or self.timeout_s <= 0:
            raise ValueError("LLM retries must be >= 0 and timeout_s > 0")

    @property
    def endpoint(self) -> str:
        base = self.url.rstrip("/")
        if base.endswith("/chat/completions"):
            return base
        return base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")

    def public(self) -> dict:
        """The config for plan headers (never the key itself)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "use_cache"}


class _Transient(Exception):
    """A failure worth retrying."""


class ChatClient:
    """One chat-completions endpoint with retries and a response cache."""

    def __init__(self, config: LLMConfig):
        self.config = config
        self.calls = 0
        """HTTP requests actually sent (cache hits do not count)."""

    def cache_key(self, messages: list[dict], call_index: int) -> str:
        key = {"model": self.config.model, "messages": messages,
               "temperature": self.config.temperature, "call_index": call_index}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()

    def _cache_path(self, key: str) -> str:
        return os.path.join(cache_dir("llm", key[:2]), key + ".json")

    def chat(self, messages: list[dict], call_index: int = 0) -> str:
        """The assistant's answer to ``messages``; call ``call_index`` of a repeated request."""
        key = self.cache_key(messages, call_index)
        path = self._cache_path(key)
        if self.config.use_cache and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                return json.load(f)["content"]
        content = self._post_with_retries(messages)
        if self.config.use_cache:
            record = {"model": self.config.model, "temperature": self.config.temperature,
                      "call_index": call_index, "messages": messages, "content": content}
            with atomic_write(path, "w", encoding="utf-8") as f:
                json.dump(record, f, ensure_ascii=False, indent=1)
        return content

    def _post_with_retries(self, messages: list[dict]) -> str:
        cfg = self.config
        last = None
        for attempt in range(cfg.retries + 1):
            try:
                return self._post(messages)
            except _Transient as exc:
                last = exc
                if attempt < cfg.retries:
                    time.sleep(cfg.backoff_s * 2 ** attempt)
        raise LLMError(f"LLM server {cfg.endpoint} failed after {cfg.retries + 1} attempts "
                       f"(last error: {last}); is the server running and the URL right "
                       "(--llm-url)? Without an LLM, use the offline backend.")

    def _post(self, messages: list[dict]) -> str:
        cfg = self.config
        body = {"model": cfg.model, "messages": messages, "temperature": cfg.temperature}
        if cfg.max_tokens:
            body["max_tokens"] = cfg.max_tokens
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(cfg.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(cfg.endpoint, data=json.dumps(body).encode("utf-8"),
                                     headers=headers, method="POST")
        self.calls += 1
        try:
            with urllib.request.urlopen(req, timeout=cfg.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", errors="replace")
            if exc.code in (408, 429) or exc.code >= 500:
                raise _Transient(f"HTTP {exc.code}: {detail}") from exc
            hint = (f" (is ${cfg.api_key_env} set to a valid key?)"
                    if exc.code in (401, 403) else "")
            raise LLMError(f"LLM server {cfg.endpoint} refused the request: HTTP {exc.code} "
                           f"{detail}{hint}") from exc
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise _Transient(f"not a chat-completions answer: {raw[:200]!r}") from exc
        if not isinstance(content, str):
            raise _Transient(f"message content is not text: {content!r:.200}")
        return content


# ------------------------------------------------------------------------------- parsing
def _from_json(obj) -> list[str] | None:
    if isinstance(obj, dict):
        lists = [v for v in obj.values() if isinstance(v, list)]
        return _from_json(lists[0]) if len(lists) == 1 else None
    if not isinstance(obj, list):
        return None
    out = []
    for item in obj:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            out.append(", ".join(str(v) for v in item.values() if v not in (None, "")))
        else:
            out.append(str(item))
    return out


def _clean(item: str) -> str:
    item = ASPECT_LABEL.sub("", item)
    item = re.sub(r"\s*[;|]\s*", ", ", item)
    item = re.sub(r"\s+", " ", item).strip().strip('"').strip()
    return item.rstrip(".").strip() if item.count(".") == 1 and item.endswith(".") else item


def parse_list(text: str) -> list[str]:
    """Items of an LLM's list answer: a JSON array (or object holding one), or numbered/bulleted
    lines (continuation lines that start with an aspect label join their item), or plain lines.
    Preambles ("Here are 20 descriptions:") and aspect names are dropped."""
    body = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", body, re.DOTALL)
    candidate = fence.group(1).strip() if fence else body
    if candidate[:1] in "[{":
        try:
            items = _from_json(json.loads(candidate))
        except ValueError:
            items = None
        if items is not None:
            return [c for c in (_clean(i) for i in items) if c]
    lines = [ln.rstrip() for ln in body.splitlines()]
    has_markers = any(MARKER.match(ln) for ln in lines)
    items: list[str] = []
    current: list[str] | None = None
    for ln in lines:
        if not ln.strip() or ln.strip().startswith("```"):
            continue
        m = MARKER.match(ln)
        if m:
            current = [ln[m.end():]]
            items.append(current)  # type: ignore[arg-type]
        elif has_markers:
            if current is not None and ASPECT_LABEL.match(ln.strip()):
                current.append(ln.strip())
        elif not ln.strip().endswith(":"):
            items.append([ln])  # type: ignore[arg-type]
    out = [_clean(", ".join(p.strip().rstrip(",") for p in parts)) for parts in items]
    return [o for o in out if o]


# ------------------------------------------------------------------------------- backend
class LLMBackend:
    """Seed 003's LLM queries over a :class:`ChatClient`."""

    def __init__(self, config: LLMConfig):
        self.client = ChatClient(config)

    def config(self) -> dict:
        return {"backend": "llm", **self.client.config.public()}

    def descriptions(self, class_text: str, count: int, seed: int = 0) -> list[str]:
        """``count`` distinct "foreground, background, lighting, camera angle" descriptions,
        asking 20 per call (call index 0, 1, ...) and de-duplicating; ``seed`` is unused (the
        response cache is what makes a rerun identical)."""
        messages = [{"role": "user",
                     "content": CD_REQUEST.format(c=class_text, k=DESCRIPTIONS_PER_CALL)}]
        needed_calls = math.ceil(count / DESCRIPTIONS_PER_CALL)
        max_calls = 2 * needed_calls + 2
        out: list[str] = []
        seen: set[str] = set()
        call = 0
        while len(out) < count and call < max_calls:
            for item in parse_list(self.client.chat(messages, call)):
                if item.lower() not in seen:
                    seen.add(item.lower())
                    out.append(item)
            call += 1
        if len(out) < count:
            raise LLMError(f"LLM {self.client.config.model} at {self.client.config.endpoint} gave "
                           f"only {len(out)} distinct descriptions of {class_text!r} in {call} "
                           f"calls, {count} needed; check its answers in {cache_dir('llm')}")
        return out[:count]

    def meanings(self, name: str, k: int) -> list[str]:
        """Up to ``k`` candidate meaning phrases of a class name (seed 003 §3.1)."""
        messages = [{"role": "user", "content": MEANINGS_REQUEST.format(c=name, k=k)}]
        items = parse_list(self.client.chat(messages, 0))
        if not items:
            raise LLMError(f"LLM {self.client.config.model} gave no meanings of {name!r}")
        return list(dict.fromkeys(items))[:k]
