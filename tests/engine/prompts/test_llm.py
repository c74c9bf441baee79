"""The chat-completions client and LLM backend against real HTTP servers on 127.0.0.1."""
import json
import os

import pytest

from engine.prompts import get_recipe
from engine.prompts.llm import ChatClient, LLMBackend, LLMConfig, LLMError, parse_retry_after

from .servers import FakeChatServer, closed_port_url

FAST = dict(retries=2, backoff_s=0.01, timeout_s=5.0)


def client(url, **kw):
    return ChatClient(LLMConfig(url=url, model="tiny-llm", **{**FAST, **kw}))


def test_cd_through_the_llm_uses_the_paper_request_and_caches(isolated_cache, papillon):
    with FakeChatServer("ok") as server:
        recipe = get_recipe("cd", llm_url=server.url, llm_model="gpt-test")
        out = recipe.prompts(papillon, 45, seed=0)
        assert len(server.requests) == 3                     # 20 descriptions per call
        assert len(out) == len(set(out)) == 45
        assert out[0] == "a photograph of papillon number 1-0 in front, place 1-0, light 0, shot 0"
        body = server.requests[0]
        assert body["model"] == "gpt-test" and body["temperature"] == 0.75
        text = body["messages"][-1]["content"]
        assert "Imagine there is a photo of papillon." in text
        assert "be creative and avoid repetition" in text.lower() and "20" in text
        assert server.paths[0] == "/v1/chat/completions"
        again = get_recipe("cd", llm_url=server.url, llm_model="gpt-test").prompts(papillon, 45, 0)
        assert again == out and len(server.requests) == 3    # rerun: no calls
        get_recipe("cd", llm_url=server.url, llm_model="other-model").prompts(papillon, 5, 0)
        assert len(server.requests) == 4                     # the model is part of the key
    files = [f for _, _, fs in os.walk(isolated_cache / "llm") for f in fs]
    assert len(files) == 4
    assert recipe.stats() == {papillon.wnid: {"answers": 3, "parsed": 60, "kept": 60, "repaired": 0,
                                              "class_inserted": 0, "dropped": 0,
                                              "duplicates": 0}}


def test_sd_through_the_llm_uses_the_cd_descriptions(isolated_cache, papillon):
    with FakeChatServer("ok") as server:
        cd = get_recipe("cd", llm_url=server.url, llm_model="m").prompts(papillon, 20, seed=0)
        sd = get_recipe("sd", llm_url=server.url, llm_model="m").prompts(papillon, 20, seed=5)
        assert len(server.requests) == 1                      # sd read cd's cached answer
    assert [p.split(" of ", 1)[1] for p in sd] == [p.split(" of ", 1)[1] for p in cd]
    assert not any(p.startswith("a photograph") for p in sd)


def test_call_index_is_part_of_the_cache_key(isolated_cache):
    with FakeChatServer("ok") as server:
        c = client(server.url)
        msgs = [{"role": "user", "content": "hi"}]
        first, second = c.chat(msgs, 0), c.chat(msgs, 1)
        assert first != second and c.chat(msgs, 0) == first and c.calls == 2


def test_retries_then_succeeds(isolated_cache):
    with FakeChatServer("flaky", fail_first=2) as server:
        c = client(server.url, retries=2)
        assert "number 3-0" in c.chat([{"role": "user", "content": "x"}])
        assert len(server.requests) == 3


@pytest.mark.parametrize("mode", ["fail500", "garbage"])
def test_persistent_failure_is_an_llm_error_after_bounded_retries(isolated_cache, mode):
    with FakeChatServer(mode) as server:
        with pytest.raises(LLMError, match="127.0.0.1") as err:
            client(server.url, retries=2).chat([{"role": "user", "content": "x"}])
        assert len(server.requests) == 3
    assert "3 attempts" in str(err.value)
    assert "server running" not in str(err.value)            # it answered: the hint says so
    assert "answered" in str(err.value)
    assert not os.path.exists(isolated_cache / "llm") or not any(
        fs for _, _, fs in os.walk(isolated_cache / "llm"))  # failures are not cached


def test_one_attempt_is_singular(isolated_cache):
    with FakeChatServer("fail500") as server:
        with pytest.raises(LLMError, match=r"after 1 attempt \(") as err:
            client(server.url, retries=0).chat([{"role": "user", "content": "x"}])
    assert "1 attempts" not in str(err.value)


class Sleeps(list):
    """Records what the client sleeps (instead of sleeping)."""

    def __call__(self, seconds):
        self.append(seconds)


@pytest.fixture
def sleeps(monkeypatch):
    import engine.prompts.llm as llm

    rec = Sleeps()
    monkeypatch.setattr(llm.time, "sleep", rec)
    return rec


def test_retry_after_on_429_is_honoured(isolated_cache, sleeps):
    with FakeChatServer("rate_limited", fail_first=2, retry_after="7") as server:
        text = client(server.url, retries=3, backoff_s=0.01).chat([{"role": "user", "content": "x"}])
        assert len(server.requests) == 3 and "number 3-0" in text
    assert sleeps == [7.0, 7.0]                              # not the 0.01 s / 0.02 s backoff


def test_retry_after_on_503_as_an_http_date(isolated_cache, sleeps):
    import email.utils
    import time

    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    with FakeChatServer("unavailable", retry_after=when) as server:
        with pytest.raises(LLMError, match="503"):
            client(server.url, retries=1, backoff_s=0.01).chat([{"role": "user", "content": "x"}])
    assert len(sleeps) == 1 and 20 < sleeps[0] <= 31


def test_parse_retry_after():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0   # in the past


def test_hanging_server_times_out(isolated_cache):
    with FakeChatServer("hang", hang_s=1.5) as server:
        with pytest.raises(LLMError, match="timed out|Timeout"):
            client(server.url, retries=1, timeout_s=0.2).chat([{"role": "user", "content": "x"}])
        assert len(server.requests) == 2


def test_unreachable_server_names_the_url(isolated_cache):
    url = closed_port_url()
    with pytest.raises(LLMError) as err:
        client(url, retries=1).chat([{"role": "user", "content": "x"}])
    assert url + "/chat/completions" in str(err.value)
    assert "is the server running" in str(err.value)


def test_unauthorized_is_not_retried_and_names_the_key_variable(isolated_cache, monkeypatch):
    monkeypatch.setenv("MY_LLM_KEY", "sk-test")
    with FakeChatServer("unauthorized") as server:
        with pytest.raises(LLMError, match=r"\$MY_LLM_KEY"):
            client(server.url, api_key_env="MY_LLM_KEY").chat([{"role": "user", "content": "x"}])
        assert len(server.requests) == 1
        assert server.headers[0]["Authorization"] == "Bearer sk-test"


def test_too_few_distinct_descriptions_is_bounded(isolated_cache):
    with FakeChatServer("repeat") as server:
        backend = LLMBackend(LLMConfig(url=server.url, model="m", **FAST))
        with pytest.raises(LLMError, match="only 3 distinct"):
            backend.descriptions("papillon", 40)
        assert len(server.requests) == 2 * 2 + 2
    stats = backend.stats()["papillon"]
    assert stats["answers"] == 6 and stats["duplicates"] == 15


def test_meanings_query(isolated_cache):
    with FakeChatServer("meanings") as server:
        backend = LLMBackend(LLMConfig(url=server.url, model="m", **FAST))
        assert backend.meanings("crane", 2) == ["a large long-legged bird",
                                                "a machine for lifting heavy objects"]


def test_meanings_query_reads_markdown_and_reasoning(isolated_cache):
    with FakeChatServer("meanings_markdown") as server:
        backend = LLMBackend(LLMConfig(url=server.url, model="m", **FAST))
        assert backend.meanings("crane", 5) == ["a large long-legged bird",
                                                "a machine for lifting heavy objects",
                                                "to stretch the neck to see better"]


def test_endpoint_forms():
    assert LLMConfig(url="http://h:1", model="m").endpoint == "http://h:1/v1/chat/completions"
    assert LLMConfig(url="http://h:1/v1/", model="m").endpoint == "http://h:1/v1/chat/completions"
    full = "http://h:1/api/v1/chat/completions"
    assert LLMConfig(url=full, model="m").endpoint == full
    with pytest.raises(ValueError, match="http"):
        LLMConfig(url="h:1", model="m")


def test_cache_record_is_readable_json(isolated_cache):
    with FakeChatServer("ok") as server:
        c = client(server.url)
        c.chat([{"role": "user", "content": "hello"}], 4)
    (path,) = [os.path.join(d, f) for d, _, fs in os.walk(isolated_cache / "llm") for f in fs]
    record = json.load(open(path))
    assert record["call_index"] == 4 and record["model"] == "tiny-llm"
    assert "number 1-0" in record["content"]
