"""Command line: `tracetui` (the app), `tracetui index ...`, `count`, `search`, `trace`.

Every failure the user can cause ends as one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from index_tools.errors import IndexToolsError

from .sanitize import inert

if TYPE_CHECKING:
    from index_tools.opening import IndexSet

EXIT_ERROR = 1
EXIT_INTERRUPT = 130


class CliError(Exception):
    """A user-facing error raised by the CLI itself."""


def _print_json(data: Any) -> None:
    # ensure_ascii: every non-ASCII character is escaped, so nothing from a corpus reaches the terminal raw.
    sys.stdout.write(json.dumps(data, ensure_ascii=True, indent=2) + "\n")


def _color(enabled: bool, code: str, text: str) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if enabled else text


# -- index ------------------------------------------------------------------------------------
def cmd_index_build(args: argparse.Namespace) -> int:
    from index_tools.builder import BuildOptions, build_index

    opts = BuildOptions(
        tokenizer=args.tokenizer, text_field=args.text_field, shards=args.shards, workers=args.workers,
        memory_gb=args.memory, eos_id=args.eos_id, raw_dtype=args.raw_dtype, token_width=args.token_width,
        vocab_size=args.vocab_size, progress=not args.quiet, force=args.force, normalize=args.normalize,
    )
    if args.ray is not None:
        from index_tools.ray_build import build_index_ray

        manifest = build_index_ray(args.sources, args.output, opts, address=args.ray or None)
    else:
        manifest = build_index(args.sources, args.output, opts)
    if args.json:
        _print_json(json.loads(manifest.to_json()))
    else:
        print(f"built {inert(str(args.output))}: {manifest.documents} documents, {manifest.tokens} tokens, "
              f"{len(manifest.shards)} shard(s), u{8 * manifest.token_width} tokens")
    return 0


def _info(directory: str) -> dict[str, Any]:
    from index_tools.engine import Index

    index = Index.open(directory)
    m = index.manifest
    sizes = index.sizes()
    text_tokens = m.tokens - m.documents
    return {
        "directory": str(index.directory), "source": m.source, "tokenizer": m.tokenizer,
        "vocab_size": m.vocab_size, "token_width": f"u{8 * m.token_width}",
        "documents": m.documents, "tokens": m.tokens, "shards": [vars(s) for s in m.shards],
        "bytes": sizes["total"], "index_bytes_per_token": round(sizes["total"] / max(1, text_tokens), 3),
        "files": sizes,
    }


def cmd_index_info(args: argparse.Namespace) -> int:
    info = _info(args.directory)
    if args.json:
        _print_json(info)
        return 0
    print(f"index      {inert(info['directory'])}  ({info['source']})")
    print(f"tokenizer  {inert(info['tokenizer'])}  vocab {info['vocab_size']}  {info['token_width']}")
    print(f"documents  {info['documents']:,}")
    print(f"tokens     {info['tokens']:,} (separators included)")
    print(f"size       {info['bytes']:,} bytes, {info['index_bytes_per_token']} bytes per token")
    for n, s in enumerate(info["shards"]):
        print(f"shard {n}    {s['documents']:,} docs  {s['tokens']:,} tokens  {s['pointer_width']}-byte pointers")
    return 0


def cmd_index_verify(args: argparse.Namespace) -> int:
    from index_tools.verify import verify_index

    faults = verify_index(args.directory, sample=args.sample, full=args.full)
    if args.json:
        _print_json({"directory": str(args.directory), "ok": not faults, "faults": faults})
    else:
        for f in faults:
            print(f"FAULT {inert(f)}", file=sys.stderr)
        if not faults:
            print(f"{inert(args.directory)}: OK")
    return 0 if not faults else EXIT_ERROR


def cmd_index_adopt(args: argparse.Namespace) -> int:
    from index_tools.adopt import adopt_index

    manifest = adopt_index(args.directory, args.tokenizer, args.token_width, args.eos_id)
    print(f"adopted {inert(args.directory)}: {manifest.documents} documents, {manifest.tokens} tokens")
    return 0


# -- queries ----------------------------------------------------------------------------------
def _open_indexes(paths: list[str | Path] | None) -> IndexSet:
    from index_tools.opening import IndexSet

    if not paths:
        from .defaults import default_index_dir

        paths = [str(default_index_dir(build_if_missing=True))]
    return IndexSet.open(paths)


def cmd_count(args: argparse.Namespace) -> int:
    from .lazy_imports import defer_numpy

    defer_numpy()  # a substring count of a local index never needs numpy: start as fast as a C++ engine
    indexes = _open_indexes(args.index)
    results: list[dict[str, Any]] = []
    for index in indexes:
        ids = index.tokenizer.encode_ids(args.text)
        n = index.count(ids) if args.substring else index.count_words(ids)
        results.append({"index": index.name, "tokens": ids, "count": n})
    if args.json:
        _print_json({"text": args.text, "whole_words": not args.substring, "results": results})
    else:
        for r in results:
            print(f"{r['count']}\t{inert(r['index'])}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from .tracing.search import search_documents

    indexes = _open_indexes(args.index)
    found = search_documents(indexes, args.text, limit=args.limit, context=args.context,
                             whole_words=not args.substring)
    if args.json:
        _print_json({"text": args.text, **found})
        return 0
    color = sys.stdout.isatty()
    for r in found["counts"]:
        print(f"{r['count']} occurrence(s) in {inert(r['index'])}")
    for d in found["documents"]:
        src = d["metadata"].get("path", "") if isinstance(d["metadata"], dict) else ""
        print(_color(color, "1", f"\n[{inert(d['index'])}] doc {d['doc_id']}  {inert(str(src))}:{d['metadata'].get('linenum', '')}"))
        s, e = d["match"]
        text = d["snippet"]
        print(inert(text[:s]) + _color(color, "7", inert(text[s:e])) if color else inert(text[:s]) + "»" + inert(text[s:e]) + "«", end="")
        print(inert(text[e:]))
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    from .tracing.pipeline import TraceParams, Tracer
    from .tracing.render import render_trace_text

    if args.file in (None, "-"):
        text = sys.stdin.read()
    else:
        try:
            text = Path(args.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"{args.file}: cannot read as UTF-8 text ({exc})") from None
    indexes = _open_indexes(args.index)
    tracer = Tracer(indexes, TraceParams(whole_words=not args.substring))
    result = tracer.trace(text, prompt=args.prompt or "", near=args.near)
    if args.json:
        _print_json(result.to_json())
    else:
        sys.stdout.write(render_trace_text(result, color=sys.stdout.isatty()))
        if result.near is not None:
            from .tracing.near import summary_lines

            sys.stdout.write("".join(inert(line) + "\n" for line in summary_lines(result.near, text)))
    return 0


def cmd_overlap(args: argparse.Namespace) -> int:
    from .overlap.command import cmd_overlap as run_overlap_command

    if args.n < 1 or args.min_span < 1 or args.docs < 0:
        raise CliError("-n and --min-span must be at least 1, --docs at least 0")
    if not 0 <= args.suspicious <= args.contaminated <= 1:
        raise CliError("thresholds must satisfy 0 <= --suspicious <= --contaminated <= 1")
    return run_overlap_command(args, list(_open_indexes(args.index)))


def _read_text(arg: str | None) -> str:
    if arg in (None, "-"):
        return sys.stdin.read()
    try:
        return Path(arg).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{arg}: cannot read as UTF-8 text ({exc})") from None


def _bar(p: float, width: int = 20) -> str:
    full = int(round(p * width))
    return "█" * full + "·" * (width - full)


def cmd_ntd(args: argparse.Namespace) -> int:
    import numpy as np

    from index_tools.ngram import DOC_END, ntd

    indexes = _open_indexes(args.index)
    out = []
    for index in indexes:
        ids = index.encode(args.text)
        if args.max_support is not None and args.max_support <= 0:
            raise CliError("--max-support must be a positive integer")
        dist = ntd(index, ids, max_support=args.max_support)
        order = np.argsort(-dist.counts, kind="stable")[: args.top]
        rows = []
        for i in order.tolist():
            tid = int(dist.ids[i])
            text = "<document end>" if tid == DOC_END else index.tokenizer.token_text(tid)
            rows.append({"token": tid, "text": text, "count": int(dist.counts[i]),
                         "prob": float(dist.counts[i] / dist.prompt_cnt)})
        out.append({"index": index.name, "prompt_tokens": ids.tolist(), "prompt_count": dist.prompt_cnt,
                    "distinct": len(dist.ids), "approx": dist.approx, "next": rows})
    if args.json:
        _print_json({"schema": "tracetui.ntd/1", "text": args.text, "results": out})
        return 0
    for r in out:
        approx = " (sampled as infini-gram's max_support)" if r["approx"] else ""
        print(f"[{inert(r['index'])}] {r['prompt_count']:,} occurrence(s), {r['distinct']:,} distinct next tokens{approx}")
        for row in r["next"]:
            print(f"  {_bar(row['prob'])} {row['prob']:7.2%} {row['count']:>10,}  {inert(repr(row['text']))}")
    return 0


def cmd_infgram(args: argparse.Namespace) -> int:
    from .tracing.memorization import memorization

    text = _read_text(args.file)
    indexes = _open_indexes(args.index)
    results = [(index.name, memorization(index, text, args.min_tokens)) for index in indexes]
    if args.json:
        _print_json({"schema": "tracetui.infgram/1", "text": text,
                     "results": [{"index": name, **m.to_json()} for name, m in results]})
        return 0
    for name, m in results:
        print(f"[{inert(name)}] memorization: {m.covered_share:.1%} of characters in matches of "
              f">= {m.min_tokens} tokens, mean effective n {m.mean_effective_n:.2f}")
        for t in m.tokens:
            print(f"  n={t.effective_n:<4} {_bar(t.prob, 10)} {t.prob:7.2%} {t.count:>9,}/{t.context_count:<11,} "
                  f"{inert(repr(t.text))}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import serve

    if not args.index:
        raise CliError("serve: give at least one --index DIR")
    serve(args.index, host=args.host, port=args.port, timeout=args.timeout, token=args.token,
          allow_hosts=tuple(args.allow_host or ()), infinigram_api_only=args.infinigram_api_only)
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    from .app.main import run_app

    return run_app(model=args.model, indexes=args.index, config_path=args.config, model_name=args.model_name,
                   api_key=args.api_key, in_process=args.in_process)


INDEX_HELP = ("index directory or served index URL http(s)://HOST:PORT[/NAME] (several URLs joined by commas: "
              "one index split over servers); repeatable; default: the built-in index")
#: global options only the app reads: given with a subcommand they are refused, never ignored
APP_ONLY = ("model", "config", "model_name", "api_key")
TOKEN_HELP = ("bearer token: the one `serve` requires, or the one sent to a served index that asks for one "
              "(default: $TRACETUI_TOKEN)")


API_TOKENIZER_HELP = ("tokenizer.json of an infini-gram API index (--index https://api.infini-gram.io/NAME), "
                      "or 'bytes' (default: $TRACETUI_TOKENIZER; without either, the server's own answers tokenize)")


def _add_index(parser: argparse.ArgumentParser, help: str = INDEX_HELP) -> None:
    """A subcommand's --index: its own destination, joined after parsing to the --index given
    before the subcommand (argparse would otherwise replace the global list by the subcommand's
    default or its own values)."""
    parser.add_argument("--index", action="append", dest="sub_index", metavar="INDEX", help=help)
    parser.add_argument("--token", dest="sub_token", metavar="TOKEN", help=TOKEN_HELP)
    parser.add_argument("--tokenizer", dest="sub_api_tokenizer", metavar="PATH", help=API_TOKENIZER_HELP)


def _merge_globals(args: argparse.Namespace) -> None:
    """One meaning for an option before or after the subcommand: --index lists are joined (global
    first); an option the subcommand would ignore is a CliError, one line."""
    args.token = getattr(args, "sub_token", None) or args.token
    api_tok = getattr(args, "sub_api_tokenizer", None) or getattr(args, "api_tokenizer", None)
    if api_tok:  # the tokenizer of infini-gram API indexes opened in this process
        os.environ["TRACETUI_TOKENIZER"] = api_tok
    if args.token:  # one place every index URL opened in this process (and `serve`) reads it from
        from index_tools.wire import TOKEN_ENV

        os.environ[TOKEN_ENV] = args.token
    if args.command is None:
        return
    for name in APP_ONLY:
        if getattr(args, name, None) is not None:
            raise CliError(f"--{name.replace('_', '-')} applies to the app only, not to `tracetui {args.command}`")
    if not hasattr(args, "sub_index"):  # `tracetui index ...`: its directories are arguments
        if args.index:
            raise CliError(f"--index does not apply to `tracetui {args.command}` (give the index directory "
                           "as its argument)")
        return
    merged = (args.index or []) + (args.sub_index or [])
    args.index = merged or None

    del args.sub_index


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tracetui", description=__doc__)
    p.add_argument("--model", help="GGUF model file, or an OpenAI-compatible server http(s)://HOST:PORT/v1 "
                   "(default: the embedded Gemma 3 270M)")
    p.add_argument("--model-name", help="the server's model to use (default: the first of GET /v1/models)")
    p.add_argument("--api-key", help="the model server's API key (default: $OPENAI_API_KEY)")
    p.add_argument("--in-process", action="store_true",
                   help="run the embedded model and the tracer in the UI's process (threads) instead of child "
                   "processes (config: processes = false)")
    p.add_argument("--index", action="append", help=INDEX_HELP)
    p.add_argument("--token", help=TOKEN_HELP)
    p.add_argument("--tokenizer", dest="api_tokenizer", metavar="PATH", help=API_TOKENIZER_HELP)
    p.add_argument("--config", help="configuration TOML file")
    sub = p.add_subparsers(dest="command")

    ix = sub.add_parser("index", help="build, inspect and verify indexes")
    isub = ix.add_subparsers(dest="index_command", required=True)
    b = isub.add_parser("build", help="build an index from corpus files or folders")
    b.add_argument("sources", nargs="+", help=".jsonl[.gz|.zst], .json.gz, .parquet, .txt/.md, .npy/.u16/.u32 or folders")
    b.add_argument("--output", "-o", required=True, help="index directory to write")
    b.add_argument("--tokenizer", help="tokenizer.json path, or 'bytes' (default: train a BPE on the corpus)")
    b.add_argument("--text-field", default="text", help="JSON/Parquet field holding the text (default: text)")
    b.add_argument("--shards", type=int, help="number of shards (default: as many as --memory requires)")
    b.add_argument("--workers", type=int, default=1, help="shards sorted in parallel")
    b.add_argument("--memory", type=float, help="GB of RAM one build may use (default: 60%% of available)")
    b.add_argument("--eos-id", type=int, help="end-of-text id separating documents in pre-tokenized arrays")
    b.add_argument("--raw-dtype", choices=["u16", "u32"], default="u16", help="dtype of raw token files (.bin)")
    b.add_argument("--token-width", choices=["u8", "u16", "u32"], help="force the token width")
    b.add_argument("--vocab-size", type=int, default=32000, help="vocabulary of the trained BPE")
    b.add_argument("--normalize", choices=["space", "words"], default=None,
                   help="index normalized text (space: NFKC, whitespace runs as one space; words: also lowercase, "
                        "no punctuation); every query is normalized alike, documents shown as stored")
    b.add_argument("--force", action="store_true", help="replace an existing index")
    b.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="tokenize and sort the shards as Ray tasks: on the cluster at ADDRESS, or a local "
                        "Ray runtime (shards are runs of whole input files; needs pip install -e \".[cluster]\")")
    b.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_index_build)
    i = isub.add_parser("info", help="sizes, shards, tokenizer, documents, tokens")
    i.add_argument("directory")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_index_info)
    v = isub.add_parser("verify", help="check an index thoroughly; non-zero exit on any fault")
    v.add_argument("directory")
    v.add_argument("--sample", type=int, default=20000, help="adjacent suffix pairs checked for order")
    v.add_argument("--full", action="store_true", help="check the order of every adjacent pair")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=cmd_index_verify)
    a = isub.add_parser("adopt", help="write a manifest into an index built by infini-gram, after checking it")
    a.add_argument("directory")
    a.add_argument("--tokenizer", required=True, help="tokenizer.json it was built with, or 'bytes'")
    a.add_argument("--token-width", choices=["u8", "u16", "u32"], default="u16")
    a.add_argument("--eos-id", type=int)
    a.set_defaults(func=cmd_index_adopt)

    c = sub.add_parser("count", help="how often TEXT occurs in each index")
    c.add_argument("text")
    _add_index(c)
    c.add_argument("--json", action="store_true")
    c.add_argument("--substring", action="store_true",
                   help="also count occurrences inside longer words (the published OLMoTrace behaviour)")
    c.set_defaults(func=cmd_count)
    s = sub.add_parser("search", help="documents containing TEXT, with the match in context")
    s.add_argument("text")
    _add_index(s)
    s.add_argument("--limit", type=int, default=10)
    s.add_argument("--context", type=int, default=40, help="tokens of context each side")
    s.add_argument("--json", action="store_true")
    s.add_argument("--substring", action="store_true",
                   help="also count occurrences inside longer words (the published OLMoTrace behaviour)")
    s.set_defaults(func=cmd_search)
    o = sub.add_parser("overlap", help="which test items (benchmarks, prompts) sit verbatim in the indexes")
    o.add_argument("items", nargs="+", help="JSONL (.gz/.zst), Parquet, CSV or text (one item per line) files")
    _add_index(o)
    o.add_argument("--field", action="append", help="field(s) to join into an item's text (default: text)")
    o.add_argument("-n", type=int, default=13, help="word n-gram length (default 13, as GPT-3 / OLMo)")
    o.add_argument("--min-span", type=int, default=13, help="shortest match counted in coverage, tokens (13)")
    o.add_argument("--suspicious", type=float, default=0.0, help="score above this: suspicious (default 0)")
    o.add_argument("--contaminated", type=float, default=0.5, help="score at or above: contaminated (0.5)")
    o.add_argument("--docs", type=int, default=3, help="documents reported per item (default 3)")
    o.add_argument("--normalize-space", action="store_true",
                   help="collapse whitespace runs in items to one space (the index still matches verbatim)")
    o.add_argument("--json", action="store_true", help="stream a JSON document (schema tracetui.overlap/1)")
    o.add_argument("--markdown", metavar="FILE", help="also write a Markdown report")
    o.add_argument("--open", action="store_true", help="browse the items in the app's Overlap screen")
    o.set_defaults(func=cmd_overlap)
    n = sub.add_parser("ntd", help="next-token distribution after TEXT in the corpus (exact)")
    n.add_argument("text")
    _add_index(n)
    n.add_argument("--top", type=int, default=10, help="most frequent next tokens shown (default 10)")
    n.add_argument("--max-support", type=int, default=None,
                   help="sample a prompt that occurs more often, as infini-gram's max_support (default: exact)")
    n.add_argument("--json", action="store_true")
    n.set_defaults(func=cmd_ntd)
    g = sub.add_parser("infgram", help="per token of a text (FILE or stdin): ∞-gram probability, effective n; "
                       "and the text's memorization score")
    g.add_argument("file", nargs="?", help="text file, or - for stdin")
    _add_index(g)
    g.add_argument("--min-tokens", type=int, default=8, help="match length counted by the score (default 8)")
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=cmd_infgram)
    sv = sub.add_parser("serve", help="serve indexes over HTTP, read-only (infini-gram's API and the tracer's; "
                        "pip install 'tracetui[serve]')")
    _add_index(sv, "index directory to serve (repeatable)")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0: all)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--timeout", type=float, default=60.0, help="seconds of work per request before a 504")
    sv.add_argument("--allow-host", action="append", metavar="NAME",
                    help="a host name clients may reach the server by (besides IP addresses and localhost; "
                         "repeatable): other Host headers are refused (DNS rebinding)")
    sv.add_argument("--infinigram-api-only", action="store_true",
                    help="serve infini-gram's API only (POST /, GET /), none of tracetui's own endpoints")
    sv.set_defaults(func=cmd_serve)
    t = sub.add_parser("trace", help="trace a response (FILE or stdin) against indexes, OLMoTrace-style")
    t.add_argument("file", nargs="?", help="response text file, or - for stdin")
    _add_index(t)
    t.add_argument("--prompt", help="the prompt that produced the response (used for ranking)")
    t.add_argument("--json", action="store_true")
    t.add_argument("--substring", action="store_true",
                   help="also count occurrences inside longer words (the published OLMoTrace behaviour)")
    t.add_argument("--near", action="store_true",
                   help="also near-verbatim spans: two exact spans one changed, added or dropped word apart in a "
                        "document (JSON: the \"near\" key)")
    t.set_defaults(func=cmd_trace)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _merge_globals(args)
        if args.command is None:
            return cmd_app(args)
        return int(args.func(args))
    except KeyboardInterrupt:
        print("tracetui: interrupted (a rerun of the same build resumes where it stopped)", file=sys.stderr)
        return EXIT_INTERRUPT
    except (IndexToolsError, CliError) as exc:
        print(f"tracetui: error: {inert(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except MemoryError:
        print("tracetui: error: out of memory (lower --memory or use more shards)", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(f"tracetui: error: {inert(str(exc))}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
