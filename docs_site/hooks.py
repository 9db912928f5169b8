"""MkDocs hook: the site is the repository as GitHub shows it, rendered.

MkDocs wants every page under one docs_dir, but the README sits at the top of the
repository and the pages link to it, to notebooks/ and to examples/ with paths written
for GitHub. So instead of copying files around, this hook hands MkDocs the files where
they are: README.md (the home page), docs/ (pages and figures), notebooks/ (rendered by
mkdocs-jupyter, without running them), examples/*.py (linked from the pages), and one
API page per module, generated here (each is a `::: resnet_np.<module>` line that
mkdocstrings fills from the docstrings). The navigation lists every page of each
folder, so a page added to docs/tutorials/, docs/questions/ or docs/exercises/ (and
its notebook) appears without editing mkdocs.yml. In the notebook pages, which
mkdocs-jupyter renders as they are, links to the pages' .md files point at their .html.
After the build, every relative href and src of every HTML page must name a file of
the site (MkDocs checks the Markdown pages' links; this also covers the notebooks').
"""
import logging
import pkgutil
import re
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("mkdocs.hooks.site")          # a warning here fails a --strict build
SOURCES = ["README.md", "docs/**/*.md", "docs/figures/**/*.png", "notebooks/**/*.ipynb",
           "examples/*.py", "docs_site/mathjax.js"]
API = sorted(module.name for module in pkgutil.iter_modules([str(ROOT / "resnet_np")])
             if not module.name.startswith("_"))          # every public module and package


def _pages(pattern):
    return [path.relative_to(ROOT).as_posix() for path in sorted(ROOT.glob(pattern))]


def _title(notebook):
    """A notebook's title in the navigation: its page's heading, without backticks."""
    page = ROOT / "docs" / Path(notebook).relative_to("notebooks").with_suffix(".md")
    heading = next((line for line in page.read_text().splitlines() if line.startswith("# ")),
                   f"# {Path(notebook).stem}")
    return heading[2:].replace("`", "")


def on_config(config):
    config["nav"] = [
        {"Home": "README.md"}, {"Docs": "docs/index.md"}, {"Notation": "docs/notation.md"},
        {"Tutorials": _pages("docs/tutorials/*.md")},
        {"Questions": _pages("docs/questions/*.md")},
        {"Exercises": _pages("docs/exercises/*.md")},
        {"Errors": "docs/errors.md"}, {"Performance": "docs/performance.md"},
        {"Notebooks": [{_title(path): path} for path in _pages("notebooks/*/*.ipynb")]},
        {"API": [f"api/{module}.md" for module in API]}]
    listed = {"docs/index.md", "docs/notation.md", "docs/errors.md", "docs/performance.md"}
    for page in sorted(set(_pages("docs/*.md")) - listed):   # a new top-level page: list it above
        log.warning(f"{page} is not in the navigation: add it to on_config in docs_site/hooks.py")
    return config


@event_priority(100)           # before mkdocs-jupyter looks for notebooks among the files
def on_files(files, config):
    docs_dir = str(Path(config["docs_dir"]).resolve())
    site = Files([f for f in files if not f.src_dir or str(Path(f.src_dir).resolve()) != docs_dir])
    for pattern in SOURCES:
        for path in sorted(ROOT.glob(pattern)):
            site.append(File(path.relative_to(ROOT).as_posix(), str(ROOT), config["site_dir"],
                             config["use_directory_urls"]))
    for module in API:
        site.append(File.generated(config, f"api/{module}.md",
                                   content=f"# resnet_np.{module}\n\n::: resnet_np.{module}\n"))
    return site


def on_post_page(output, page, config):
    """Notebook pages: relative links to docs/*.md (right on GitHub) go to the .html pages."""
    if not page.file.src_uri.endswith(".ipynb"):
        return output
    output = re.sub(r'href="((?:\.\./)+)README\.md', r'href="\1index.html', output)
    return re.sub(r'href="((?![a-z]+:)[^"]+)\.md(#[^"]*)?"', r'href="\1.html\2"', output)


def on_post_build(config):
    """Warn (so --strict fails) for each relative link or image that names no site file."""
    site = Path(config["site_dir"])
    for page in sorted(site.rglob("*.html")):
        for target in re.findall(r'(?:href|src)="([^"#?]+)', page.read_text()):
            if re.match(r"^[a-z]+:", target) or target.startswith("/"):
                continue                                    # https:, data:, mailto:, absolute
            if not (page.parent / target).exists():
                log.warning(f"{page.relative_to(site)} links to {target}, which is not in the site")
