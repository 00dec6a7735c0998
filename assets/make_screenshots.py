"""Regenerate the README's screenshots from real sessions: the embedded Gemma 3 270M (llama.cpp,
greedy) continuing a demo opening, traced live against the default python-stdlib index.

    python assets/make_screenshots.py          # writes assets/*.svg (about a minute)

Each SVG is Textual's own screenshot of the running app (headless, 120x34).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.widgets import TextArea

from index_tools.opening import IndexSet
from tracetui.app.app import TraceApp
from tracetui.app.main import intro_text
from tracetui.defaults import default_index_dir, default_model_path
from tracetui.model import LlamaBackend, ModelSettings
from tracetui.openings import load_openings

HERE = Path(__file__).resolve().parent
SIZE = (120, 34)


async def wait_quiet(app: TraceApp, pilot, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    quiet = 0
    while loop.time() < end and quiet < 5:
        await pilot.pause(0.05)
        quiet = quiet + 1 if not app.busy else 0


async def main() -> None:
    settings = ModelSettings(n_ctx=1024, threads=2, temperature=0.0, seed=42, max_tokens=70)
    backend = LlamaBackend(default_model_path(), settings)
    index_dir = default_index_dir(progress=False)
    indexes = IndexSet.open([index_dir])
    openings = load_openings()
    intro = intro_text("gemma-3-270m-q4_k_m.gguf", [ix.name for ix in indexes], True, True, openings)

    app = TraceApp(indexes, backend, settings=settings, intro=intro, openings=openings, export_dir=HERE)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4", "enter")  # the first demo opening, continued by the model
        await wait_quiet(app, pilot)
        await pilot.press("tab")
        await pilot.pause(0.2)
        app.set_status(app.last_status)
        app.save_screenshot("continue-mode.svg", str(HERE))
        await pilot.press("f5")  # the memorization lens: tokens shaded by effective n
        await pilot.pause(0.2)
        app.save_screenshot("heat-view.svg", str(HERE))
        await pilot.press("f5", "f6")  # what the corpus says comes next, at the highlight's end
        await wait_quiet(app, pilot)
        await pilot.pause(0.5)
        app.save_screenshot("next-in-corpus.svg", str(HERE))
        await pilot.press("escape")
        await pilot.pause(0.2)
        await pilot.press("ctrl+o", "enter")
        await pilot.pause(0.5)
        app.save_screenshot("document.svg", str(HERE))
        await pilot.press("escape")
        await pilot.pause(0.2)
        # near-verbatim: a passage of the pydoc topics (in the default index) with one word
        # changed, pasted into Ctrl+T, with F10 on
        from pydoc_data.topics import topics

        raw = topics["for"]
        start = raw.index('A "break" statement')
        passage = raw[start : raw.index(".", start) + 1].replace(" first ", " initial ")
        await pilot.press("ctrl+n", "f10", "ctrl+t")
        await pilot.pause(0.3)
        app.screen.query_one("#trace-area", TextArea).text = passage
        await pilot.press("ctrl+s")
        await wait_quiet(app, pilot)
        await pilot.pause(0.3)
        traced = app.messages[-1].trace
        assert traced is not None and traced.near, "the changed passage has no near-verbatim span"
        app.set_status(f"near-verbatim: {traced.near[0].diff_text!r} where the corpus has "
                       f"{traced.near[0].hits[0].diff_text!r} · {len(traced.spans)} exact spans")
        app.save_screenshot("near-verbatim.svg", str(HERE))
    print("wrote", ", ".join(sorted(p.name for p in HERE.glob("*.svg"))))


if __name__ == "__main__":
    asyncio.run(main())
