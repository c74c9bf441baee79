"""LLM backends for seed 003's prompt diversification and label-ambiguity resolution.

:class:`ChatClient` speaks the OpenAI-compatible ``POST /v1/chat/completions`` API (vLLM,
llama.cpp server, Ollama, OpenAI) with the standard library only: bounded retries with
exponential backoff, a timeout per request, an API key read from an environment variable, and an
on-disk cache of responses under ``cache_dir("llm")`` keyed by (model, messages, temperature,
call index), so a plan is reproducible and a rerun makes no calls.

:class:`LLMBackend` asks for contextualized descriptions with the paper's request (§3.2: 20
descriptions per call, "be creative and avoid repetition", temperature 0.75) and for candidate
meanings of a class name (§3.1). Answers are read with :mod:`engine.prompts.answers` (markdown,
reasoning blocks, sub-bullets, JSON, commentary); every description is checked, repaired when it
can be (class put into the foreground, aspects reordered) and otherwise dropped and asked for
again; per-class counts of what happened are kept for the plan header (:meth:`LLMBackend.stats`).
"""
from __future__ import annotations

from engine.errors import UserError
import dataclasses
import hashlib
import json
import math
import os
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

RETRY_AFTER_MAX_S = 300.0
"""Longest wait a server's ``Retry-After`` header may ask for (longer asks are capped)."""


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
    """A failure worth retrying; ``answered``: the server replied (an HTTP error or a body that
    is not a chat completion), so it is running; ``retry_after``: seconds it asked us to wait."""

    def __init__(self, message: str, answered: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.answered = answered
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    import datetime

    now = datetime.datetime.now(when.tzinfo or datetime.timezone.utc)
    return max(0.0, (when - now).total_seconds())


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
                    wait = cfg.backoff_s * 2 ** attempt
                    if exc.retry_after is not None:  # 429/503 with Retry-After: as asked
                        wait = min(max(wait, exc.retry_after), RETRY_AFTER_MAX_S)
                    time.sleep(wait)
        attempts = cfg.retries + 1
        if last is not None and last.answered:
            hint = ("the server answered, but with errors: wait and rerun (answers so far are "
                    "cached), or allow more attempts with --llm-retries")
        else:
            hint = ("is the server running and the URL right (--llm-url)? Without an LLM, use "
                    "the offline backend")
        raise LLMError(f"LLM server {cfg.endpoint} failed after {attempts} "
                       f"attempt{'s' if attempts != 1 else ''} (last error: {last}); {hint}.")

    def _post(self, messages: list[dict]) -> str:
        cfg = self.config
        body = {"model": cfg.model, "messages": messages, "temperature": cfg.temperature}
        if cfg.max_tokens:
            body["max_tokens"] = cfg.max_tokens
        headers = {"Content-Type": "application/json"}
        from engine import env

        key = env.secret(cfg.api_key_env)
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
                retry_after = (parse_retry_after(exc.headers.get("Retry-After"))
                               if exc.code in (429, 503) and exc.headers else None)
                raise _Transient(f"HTTP {exc.code}: {detail}", answered=True,
                                 retry_after=retry_after) from exc
            hint = (f" (is ${cfg.api_key_env} set to a valid key?)"
                    if exc.code in (401, 403) else "")
            raise LLMError(f"LLM server {cfg.endpoint} refused the request: HTTP {exc.code} "
                           f"{detail}{hint}") from exc
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise _Transient(f"not a chat-completions answer: {raw[:200]!r}",
                             answered=True) from exc
        if not isinstance(content, str):
            raise _Transient(f"message content is not text: {content!r:.200}", answered=True)
        return content


# ------------------------------------------------------------------------------- backend
class LLMBackend:
    """Seed 003's LLM queries over a :class:`ChatClient`."""

    def __init__(self, config: LLMConfig):
        self.client = ChatClient(config)
        self._stats: dict[str, dict] = {}

    def config(self) -> dict:
        return {"backend": "llm", **self.client.config.public()}

    def stats(self) -> dict:
        """Per class key: ``answers`` read (sent or from the cache), items ``parsed``, ``kept`` as written,
        ``repaired`` (class inserted or aspects reordered; ``class_inserted`` counts the first),
        ``dropped`` (unusable, asked for again) and ``duplicates``."""
        return {k: dict(v) for k, v in sorted(self._stats.items())}

    def descriptions(self, class_text: str, count: int, seed: int = 0, names=(),
                     key: str | None = None) -> list[str]:
        """``count`` distinct, checked "foreground, background, lighting, camera angle"
        descriptions, asking 20 per call (call index 0, 1, ...) until there are enough.

        ``names``: the words that count as naming the class in a foreground (its lemmas);
        ``key``: where the counts are kept (the class's wnid). ``seed`` is unused: the response
        cache is what makes a rerun identical. Raises :class:`LLMError` when most answers are
        unusable (quoting one) or too few distinct descriptions come back."""
        from engine.prompts.answers import STAT_KEYS, check_description, segment

        names = tuple(names) or (class_text,)
        messages = [{"role": "user",
                     "content": CD_REQUEST.format(c=class_text, k=DESCRIPTIONS_PER_CALL)}]
        needed_calls = math.ceil(count / DESCRIPTIONS_PER_CALL)
        max_calls = 2 * needed_calls + 2
        stats = dict.fromkeys(STAT_KEYS, 0)
        out: list[str] = []
        seen: set[str] = set()
        good = bad = 0
        bad_example = None
        while len(out) < count and stats["answers"] < max_calls:
            answer = self.client.chat(messages, stats["answers"])
            stats["answers"] += 1
            valid = dropped = 0
            reason = ""
            for item in segment(answer):
                verdict = check_description(item, class_text, names)
                if verdict.commentary:
                    continue
                stats["parsed"] += 1
                if verdict.text is None:
                    stats["dropped"] += 1
                    dropped += 1
                    reason = reason or verdict.reason
                    continue
                valid += 1
                stats["repaired" if verdict.repaired else "kept"] += 1
                stats["class_inserted"] += verdict.class_inserted
                if verdict.text.lower() in seen:
                    stats["duplicates"] += 1
                    continue
                seen.add(verdict.text.lower())
                out.append(verdict.text)
            if valid and valid >= dropped:
                good += 1
            else:
                bad += 1
                bad_example = bad_example or (answer, reason or "no list items found")
        self._stats[key or class_text] = stats
        cfg = self.client.config
        if bad > good:
            answer, reason = bad_example
            excerpt = " ".join(answer.split())[:240]
            raise LLMError(
                f"LLM {cfg.model} at {cfg.endpoint}: {bad} of {good + bad} answers for "
                f"{class_text!r} were unusable ({reason}); one of them: \"{excerpt}\". The model "
                "does not follow the requested format (a numbered list, four aspects per line); "
                f"try another model, or check the answers cached in {cache_dir('llm')}")
        if len(out) < count:
            raise LLMError(f"LLM {cfg.model} at {cfg.endpoint} gave only {len(out)} distinct "
                           f"descriptions of {class_text!r} in {stats['answers']} answers, {count} "
                           f"needed; check its answers in {cache_dir('llm')}")
        return out[:count]

    def meanings(self, name: str, k: int) -> list[str]:
        """Up to ``k`` candidate meaning phrases of a class name (seed 003 §3.1), read with the
        same parsing as the descriptions (markdown, reasoning blocks, JSON, commentary)."""
        from engine.prompts.answers import check_meaning, segment

        messages = [{"role": "user", "content": MEANINGS_REQUEST.format(c=name, k=k)}]
        answer = self.client.chat(messages, 0)
        items = [m for m in (check_meaning(it) for it in segment(answer)) if m]
        if not items:
            excerpt = " ".join(answer.split())[:240]
            raise LLMError(f"LLM {self.client.config.model} gave no meanings of {name!r}; its "
                           f"answer: \"{excerpt}\"")
        return list(dict.fromkeys(items))[:k]

