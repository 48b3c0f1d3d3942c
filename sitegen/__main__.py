"""python -m sitegen COMMAND: build the study site and keep its sources honest.

build           docs/ + the code -> build/site-src/ -> site/ (mkdocs --strict, link check)
nav [--check]   write (or compare) mkdocs.yml's exercise navigation from the catalog
translations    list stale Japanese pages, exercise texts and quiz questions (exit 1 if any)
    --stamp FILE    after re-reading a translation: stamp x.ja.md, catalog.ja.toml or
                    quiz/questions.toml (--exercise ID / --question ID: only that one)
refs            check that every `(site: page/#anchor)` in the code lands in site/
serve [--port]  serve site/ on 127.0.0.1 (build it first)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sitegen.paths import SITE, SiteError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sitegen", description="build the study site")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="assemble build/site-src and build site/")
    nav = sub.add_parser("nav", help="write mkdocs.yml's exercise navigation from the catalog")
    nav.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")
    tr = sub.add_parser("translations", help="list stale Japanese pages")
    tr.add_argument(
        "--stamp",
        type=Path,
        help="stamp this x.ja.md, catalog.ja.toml or questions.toml as current",
    )
    tr.add_argument("--exercise", help="with --stamp catalog.ja.toml: only this exercise")
    tr.add_argument("--question", help="with --stamp quiz/questions.toml: only this question")
    sub.add_parser("refs", help="check `(site: ...)` references against site/")
    serve = sub.add_parser("serve", help="serve site/ on 127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "build":
            from sitegen.build import build

            build()
        elif args.cmd == "nav":
            from checks.catalog import load_catalog
            from sitegen.build import update_nav

            current = update_nav(load_catalog(), check=args.check)
            print(
                "mkdocs.yml: exercise navigation "
                + ("current" if current else "stale" if args.check else "rewritten")
            )
            return 0 if current or not args.check else 1
        elif args.cmd == "translations":
            return _translations(args)
        elif args.cmd == "refs":
            from sitegen.links import check_site_refs, site_refs

            if not (SITE / "index.html").is_file():
                raise SiteError("site/ is not built: run `make docs` first")
            problems = check_site_refs(SITE)
            print(f"{len(site_refs())} site references, {len(problems)} broken")
            print("\n".join(problems))
            return 1 if problems else 0
        elif args.cmd == "serve":
            return _serve(args.port)
    except SiteError as e:
        print(f"sitegen: error: {e}", file=sys.stderr)
        return 2
    return 0


def _translations(args) -> int:
    from checks.catalog import load_catalog
    from quiz import catalog as quiz_catalog
    from reference.errors import ConfigError
    from sitegen import exercises, translations

    if args.stamp is not None:
        path = args.stamp.resolve()
        if path == quiz_catalog.QUESTIONS_PATH:
            try:
                n = quiz_catalog.stamp(path, args.question)
            except ConfigError as e:
                raise SiteError(str(e)) from None
            print(f"{args.stamp}: stamped {n} questions")
        elif path.name == exercises.JA_CATALOG.name:
            n = translations.stamp_catalog(path, args.exercise)
            print(f"{args.stamp}: stamped {n} exercises")
        else:
            print(f"{args.stamp}: translation_of {translations.stamp(path)}")
        return 0
    stale = (
        translations.stale_pages()
        + exercises.stale_translations(load_catalog(), exercises.load_translations())
        + quiz_catalog.stale_translations(quiz_catalog.load_questions())
    )
    for line in stale:
        print(line)
    print(f"{len(stale)} stale translations")
    return 1 if stale else 0


def _serve(port: int) -> int:
    import functools
    import http.server

    if not (SITE / "index.html").is_file():
        raise SiteError("site/ is not built: run `make docs` first")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SITE))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as httpd:
        print(f"serving site/ on http://127.0.0.1:{port}/ (Ctrl-C stops)")
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
