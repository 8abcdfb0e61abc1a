"""ChatClient and ChatPairwiseJudge against a local stub OpenAI-compatible server (never the network)."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest

from harness.judging import chat as chat_module
from harness.judging.chat import ChatClient, ChatJudgeError
from harness.judging.pairwise import ChatPairwiseJudge, parse_verdict

SHOWN = re.compile(r"## Output \(a\)\n(.*)\n\n## Output \(b\)\n(.*)\n\nWhich", re.S)


class Stub:
    """State of the stub server: requests seen, and error statuses to return first (one per request)."""

    def __init__(self, fail_first: tuple[int, ...] = ()):
        self.requests: list[dict] = []
        self.fail_first = list(fail_first)
        self.statuses: list[int] = []


def answer(body: dict) -> str:
    """Deterministic verdict from the request: the output marked [good] wins; both -> tie; [garble] -> prose."""
    user = body["messages"][-1]["content"]
    if "[garble]" in user:
        return "I would say A is better"
    a, b = SHOWN.search(user).groups()
    ga, gb = "[good]" in a, "[good]" in b
    return "tie" if ga == gb else ("A" if ga else "Output (b)")


@pytest.fixture
def server():
    stub = Stub()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server API)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != "/v1/chat/completions":
                status, payload = 404, {"error": {"message": f"no route {self.path}"}}
            elif stub.fail_first:
                status = stub.fail_first.pop(0)
                payload = {"error": {"message": "slow down" if status == 429 else "boom", "type": "server_error"}}
            else:
                stub.requests.append(body)
                status = 200
                payload = {"id": f"c{len(stub.requests)}", "object": "chat.completion", "created": 0,
                           "model": body["model"],
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": answer(body)}}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
            stub.statuses.append(status)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("retry-after-ms", "1")  # keep the client's backoff short
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield stub, f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_client_retries_429_and_500_then_answers(server):
    stub, url = server
    stub.fail_first = [429, 500]
    client = ChatClient(url, "judge-model", api_key="none", max_retries=2, timeout=5)
    msgs = [{"role": "user", "content": "## Output (a)\nx [good]\n\n## Output (b)\ny\n\nWhich?"}]
    assert client.complete(msgs) == "A"
    assert stub.statuses == [429, 500, 200]
    req = stub.requests[0]
    assert req["model"] == "judge-model" and req["temperature"] == 0.0 and req["messages"] == msgs


def test_replies_are_cached_per_request_on_disk(server, tmp_path):
    stub, url = server
    msgs = [{"role": "user", "content": "## Output (a)\nx [good]\n\n## Output (b)\ny\n\nWhich?"}]
    other = [{"role": "user", "content": "## Output (a)\nx\n\n## Output (b)\ny [good]\n\nWhich?"}]
    first = ChatClient(url, "m", api_key="none", timeout=5, cache_dir=tmp_path / "chat")
    assert first.complete(msgs) == "A" and first.complete(msgs) == "A"
    assert (first.hits, first.misses, len(stub.requests)) == (1, 1, 1)
    second = ChatClient(url, "m", api_key="none", timeout=5, cache_dir=tmp_path / "chat")  # a later run, same cache
    assert second.complete(msgs) == "A" and second.complete(other) == "Output (b)"
    assert (second.hits, second.misses, len(stub.requests)) == (1, 1, 2)
    assert len(list((tmp_path / "chat").glob("*.json"))) == 2
    other_model = ChatClient(url, "m2", api_key="none", timeout=5, cache_dir=tmp_path / "chat")
    other_model.complete(msgs)  # another model: another request, not the cached reply
    assert (other_model.misses, len(stub.requests)) == (1, 3)


def test_client_gives_up_without_retries(server):
    stub, url = server
    stub.fail_first = [429]
    client = ChatClient(url, "m", api_key="none", max_retries=0, timeout=5)
    with pytest.raises(openai.RateLimitError):
        client.complete([{"role": "user", "content": "hi"}])
    assert stub.statuses == [429]


def test_missing_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("MY_JUDGE_KEY", raising=False)
    with pytest.raises(ValueError, match=r"set \$MY_JUDGE_KEY, or pass api_key='none'"):
        ChatClient("http://127.0.0.1:9/v1", "m", api_key_env="MY_JUDGE_KEY")
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-test")
    assert ChatClient("http://127.0.0.1:9/v1", "m", api_key_env="MY_JUDGE_KEY").model == "m"


def test_rate_limit_sleeps_the_remaining_interval(monkeypatch):
    clock = {"t": 100.0}
    sleeps: list[float] = []

    def sleep(s):
        sleeps.append(s)
        clock["t"] += s

    monkeypatch.setattr(chat_module.time, "monotonic", lambda: clock["t"])
    monkeypatch.setattr(chat_module.time, "sleep", sleep)
    client = ChatClient("http://127.0.0.1:9/v1", "m", api_key="none", requests_per_second=4)  # 0.25 s apart
    client._wait_turn()  # first call: no wait
    clock["t"] += 0.1
    client._wait_turn()  # 0.1 s after the first: waits 0.15 s
    clock["t"] += 1.0
    client._wait_turn()  # long after: no wait
    assert sleeps == [pytest.approx(0.15)]


@pytest.mark.parametrize("text,expected", [
    ("A", "a"), (" b\n", "b"), ("Tie.", "tie"), ("Output (a)", "a"), ("output (B)", "b"), ("(a)", "a"),
    ("A is better", None), ("AB", None), ("", None), ("Output (c)", None),
])
def test_parse_verdict_is_strict(text, expected):
    assert parse_verdict(text) == expected


def test_pairwise_judge_maps_positions_back(server):
    stub, url = server
    judge = ChatPairwiseJudge(ChatClient(url, "m", api_key="none", timeout=5), "stub-judge", seed=3)
    instructions = [f"task {i}" for i in range(8)]
    outputs = ["p [good]", "p", "p [good]", "p", "p [good]", "p", "p [good]", "p [good]"]
    baseline = ["b", "b [good]", "b", "b", "b", "b [good]", "b [good]", "b"]
    prefs = judge(instructions, outputs, baseline)
    # [good] marks the better output wherever it is shown; both or neither -> tie
    assert prefs == [1.0, 0.0, 1.0, 0.5, 1.0, 0.0, 0.5, 1.0]
    swaps = judge.swaps(8)
    assert 0 < swaps.sum() < 8  # both positions were used for the policy
    for req, swap, out in zip(stub.requests, swaps, outputs):
        a, b = SHOWN.search(req["messages"][-1]["content"]).groups()
        assert (b if swap else a) == out
    assert judge(instructions, outputs, baseline) == prefs  # same seed, same prompts, same answers


def test_unparseable_verdict_retries_then_names_the_prompt(server):
    stub, url = server
    judge = ChatPairwiseJudge(ChatClient(url, "m", api_key="none", timeout=5), "stub-judge", parse_retries=1)
    with pytest.raises(ChatJudgeError, match=r"prompt id q7: unparseable verdict"):
        judge(["ok", "please [garble]"], ["x", "y"], ["u", "v"], ids=["q6", "q7"])
    assert len(stub.requests) == 1 + 2  # q6 once, q7 once plus one retry


class FakeChat:
    """A ChatCompleter without HTTP: always answers the same text."""

    def __init__(self, reply):
        self.reply, self.calls = reply, 0

    def complete(self, messages):
        self.calls += 1
        return self.reply


def test_protocol_fake_and_length_mismatch():
    judge = ChatPairwiseJudge(FakeChat("A"), "always-a", seed=0)
    prefs = judge(["i"] * 6, ["p"] * 6, ["b"] * 6)
    # "A" is the policy exactly where it was not swapped
    assert prefs == [0.0 if s else 1.0 for s in judge.swaps(6)]
    with pytest.raises(ValueError, match="3 instructions, 2 outputs"):
        judge(["i"] * 3, ["p"] * 2, ["b"] * 3)
