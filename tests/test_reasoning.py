"""Reasoning apart from the answer: `<think>` blocks in the content and reasoning fields in the
stream (scripted streams of each shape), shown folded under the reply, stored and exported apart,
traced only on request."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from index_tools.opening import IndexSet
from tracetui.app.app import TraceApp
from tracetui.conversation import Conversation
from tracetui.export import export_conversation
from tracetui.model import ModelSettings, ScriptedBackend, Turn
from tracetui.model_server import ServerBackend
from tracetui.reasoning import Reasoning, ReplySplitter
from tracetui.store import ConversationStore, restore_traces

from .test_app import REPLY, wait_idle

THOUGHT = "The user wants a proverb. A stitch in time saves nine is one."


def split(pieces: list[str]) -> tuple[str, str]:
    s = ReplySplitter()
    for p in pieces:
        s.add_reasoning(p) if isinstance(p, Reasoning) else s.feed(p)
    s.finish()
    return s.answer, s.reasoning


def every_cut(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 1000])
def test_think_block_cut_at_any_point(size: int) -> None:
    """Tags split over pieces anywhere still separate; the blank lines after the block go."""
    stream = f"<think>{THOUGHT}</think>\n\n{REPLY}"
    assert split(every_cut(stream, size)) == (REPLY, THOUGHT)


@pytest.mark.parametrize("size", [1, 4, 1000])
def test_text_without_tags_is_kept_verbatim(size: int) -> None:
    text = "\n  a < b and <thin ice> </thin> x <"  # tag-like text, a '<' held at the end
    assert split(every_cut(text, size)) == (text, "")


def test_reasoning_field_and_other_shapes() -> None:
    assert split([Reasoning("Think"), Reasoning("ing."), "\n", "Answer."]) == ("Answer.", "Thinking.")
    # DeepSeek-R1 style: the template opened the block, only </think> comes
    assert split(every_cut(f"{THOUGHT}</think>\n{REPLY}", 3)) == (REPLY, THOUGHT)
    # cut off while thinking: everything is reasoning, no answer
    assert split(["<think>still thin", "king"]) == ("", "still thinking")
    # a closing tag after a real block is text
    assert split(["<think>a</think>b </think> c"]) == ("b </think> c", "a")
    # two blocks: both reasoning, joined
    assert split(["<think>a</think>x<think>b</think>y"]) == ("xy", "ab")


def sse(events: list[dict | str]) -> bytes:
    return b"".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events)


def chat_events(deltas: list[dict]) -> list[dict | str]:
    out: list[dict | str] = [{"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}]
    out += [{"choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    out += [{"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}, "[DONE]"]
    return out


def scripted_server(body: bytes, models: tuple[str, ...] = ("m",)) -> ServerBackend:
    """A ServerBackend whose HTTP answers are scripted (httpx's MockTransport): the real client,
    SSE reader and event parsing, no network."""
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": m} for m in models]})
        return httpx.Response(200, content=iter([body[i : i + 7] for i in range(0, len(body), 7)]),
                              headers={"content-type": "text/event-stream"})

    return ServerBackend("http://scripted.test/v1", transport=httpx.MockTransport(handler))


SHAPES = {
    "reasoning_content": [{"reasoning_content": "The user wants "}, {"reasoning_content": "a proverb."},
                          {"content": "A stitch in time "}, {"content": "saves nine."}],
    "reasoning": [{"reasoning": "The user wants "}, {"reasoning": "a proverb."},
                  {"content": "A stitch in time "}, {"content": "saves nine."}],
    "think_tags": [{"content": "<thi"}, {"content": "nk>The user wants "}, {"content": "a proverb.</th"},
                   {"content": "ink>\n\nA stitch in time "}, {"content": "saves nine."}],
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_server_stream_shapes(shape: str) -> None:
    import threading

    backend = scripted_server(sse(chat_events(SHAPES[shape])))
    pieces = list(backend.stream([Turn("user", "a proverb?")], ModelSettings(), threading.Event()))
    assert split(pieces) == ("A stitch in time saves nine.", "The user wants a proverb.")
    assert backend.model == "m"  # the first model the server lists


async def test_reasoning_in_the_app_folded_stored_exported_traced_on_request(text_index: Path,
                                                                             tmp_path: Path) -> None:
    pieces = [Reasoning(THOUGHT[:20]), Reasoning(THOUGHT[20:]), *every_cut(REPLY, 9)]
    store = ConversationStore(tmp_path / "c.sqlite3")
    app = TraceApp(IndexSet.open([text_index]), ScriptedBackend([pieces]), intro="t", export_dir=tmp_path,
                   store=store)
    async with app.run_test(size=(120, 36)) as pilot:
        assert not app.main.check_action("toggle_reasoning", ()) and not app.check_action("pick_model", ())
        await pilot.click("#prompt")
        await pilot.press(*"a proverb?", "enter")
        await wait_idle(app, pilot)
        msg = app.conversation.messages[-1]
        assert (msg.text, msg.reasoning) == (REPLY, THOUGHT)
        # the answer alone is traced; the reasoning is not, until asked
        assert msg.trace is not None and msg.trace.text == REPLY and msg.reasoning_trace is None
        # never sent back to the model
        assert all(THOUGHT not in t.text for t in app.conversation.model_turns())
        view = app.messages[-1]
        shown = str(view.build_content())
        assert "reasoning hidden" in shown and THOUGHT not in shown
        assert app.main.check_action("toggle_reasoning", ()) and app.main.check_action("trace_reasoning", ())
        await pilot.press("f9")
        assert THOUGHT in str(view.build_content())
        await pilot.press("f9")
        assert THOUGHT not in str(view.build_content())
        # Ctrl+G: traced as its own piece, shown, its documents in the panel
        await pilot.press("ctrl+g")
        await wait_idle(app, pilot)
        rt = msg.reasoning_trace
        assert rt is not None and rt.text == THOUGHT and rt.spans
        assert any(s.text.startswith("A stitch in time saves nine") for s in rt.spans)
        assert msg.trace.text == REPLY  # the answer's trace is untouched
        assert app.main.show_reasoning and THOUGHT in str(view.build_content())
        assert app.last_status.startswith("reasoning: ")
        # exported apart from the answer
        base = app.main.action_export()
        assert base is not None
        data = json.loads(base.with_suffix(".json").read_text())
        turn = data["turns"][-1]
        assert turn["text"] == REPLY and turn["reasoning"] == THOUGHT
        assert turn["reasoning_trace"]["text"] == THOUGHT and turn["trace"]["text"] == REPLY
        md = base.with_suffix(".md").read_text()
        assert f"### Reasoning\n\n> {THOUGHT}" in md and md.index(REPLY) < md.index("### Reasoning")
    # stored apart, and both traces come back
    cid = app.conversation.stored_id
    assert cid is not None
    conv = store.load(cid)
    loaded = conv.messages[-1]
    assert (loaded.text, loaded.reasoning) == (REPLY, THOUGHT)
    assert restore_traces(conv, IndexSet.open([text_index])) == 1  # the answer's
    assert loaded.trace is not None and loaded.reasoning_trace is not None
    assert [(s.start, s.end) for s in loaded.reasoning_trace.spans] == [(s.start, s.end) for s in rt.spans]


async def test_trace_reasoning_option_traces_every_reasoning(text_index: Path, tmp_path: Path) -> None:
    stream = f"<think>{THOUGHT}</think>\n\n{REPLY}"
    app = TraceApp(IndexSet.open([text_index]), ScriptedBackend([stream], piece=5), intro="t",
                   export_dir=tmp_path, trace_reasoning=True)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.click("#prompt")
        await pilot.press(*"a proverb?", "enter")
        await wait_idle(app, pilot)
        msg = app.conversation.messages[-1]
        assert (msg.text, msg.reasoning) == (REPLY, THOUGHT)
        assert msg.trace is not None and msg.trace.text == REPLY
        assert msg.reasoning_trace is not None and msg.reasoning_trace.text == THOUGHT


def test_old_store_gains_reasoning_columns(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""CREATE TABLE conversations (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL,
                        created REAL NOT NULL, updated REAL NOT NULL);
                        CREATE TABLE messages (conversation INTEGER NOT NULL, position INTEGER NOT NULL,
                        role TEXT NOT NULL, text TEXT NOT NULL, trace TEXT, PRIMARY KEY (conversation, position));
                        INSERT INTO conversations VALUES (1, 't', 0, 0);
                        INSERT INTO messages VALUES (1, 0, 'user', 'hi', NULL);""")
    db.commit()
    db.close()
    store = ConversationStore(path)
    conv = store.load(1)
    assert [(m.text, m.reasoning) for m in conv.messages] == [("hi", "")]
    c = Conversation()
    c.stored_id = 1
    c.add_user("q")
    r = c.start_reply()
    r.text, r.reasoning, r.done = "a", "because", True
    store.save(c)
    assert [(m.text, m.reasoning) for m in store.load(1).messages] == [("q", ""), ("a", "because")]
    # an answer without reasoning exports as before
    base = export_conversation(store.load(1), tmp_path)
    turns = json.loads(base.with_suffix(".json").read_text())["turns"]
    assert "reasoning" not in turns[0] and turns[1]["reasoning"] == "because"
