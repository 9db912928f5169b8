"""MkDocs hook: the site is the repository as GitHub shows it, rendered.

MkDocs wants every page under one docs_dir, but the README sits at the top of the
repository and the pages link to it, to notebooks/ and to examples/ with paths written
for GitHub. So instead of copying files around, this hook hands MkDocs the files where
they are: README.md (the home page), docs/ (pages and figures), notebooks/ (rendered by
mkdocs-jupyter, without running them), examples/*.py (linked from the pages), and one
API page per module, generated here (each is a `::: resnet_np.<module>` line that
mkdocstrings fills from the docstrings). The navigation lists every page of each
folder, so a page added to docs/tutorials/, docs/questions/ or docs/exercises/ (and
its notebook) appears without editing mkdocs.yml.
"""
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["README.md", "docs/**/*.md", "docs/figures/*.png", "notebooks/**/*.ipynb",
           "examples/*.py", "docs_site/mathjax.js"]
API = ["blocks", "layers", "shortcuts", "models", "losses", "optim", "train", "gradcheck",
       "inspect", "data", "io", "viz", "notebooks"]


def _pages(pattern):
    return [path.relative_to(ROOT).as_posix() for path in sorted(ROOT.glob(pattern))]


def on_config(config):
    config["nav"] = [
        {"Home": "README.md"}, {"Docs": "docs/index.md"}, {"Notation": "docs/notation.md"},
        {"Tutorials": _pages("docs/tutorials/*.md")},
        {"Questions": _pages("docs/questions/*.md")},
        {"Exercises": _pages("docs/exercises/*.md")},
        {"Errors": "docs/errors.md"},
        {"Notebooks": _pages("notebooks/*/*.ipynb")},
        {"API": [f"api/{module}.md" for module in API]}]
    return config


@event_priority(100)           # before mkdocs-jupyter looks for notebooks among the files
def on_files(files, config):
    site = Files([])
    for pattern in SOURCES:
        for path in sorted(ROOT.glob(pattern)):
            site.append(File(path.relative_to(ROOT).as_posix(), str(ROOT), config["site_dir"],
                             config["use_directory_urls"]))
    for module in API:
        site.append(File.generated(config, f"api/{module}.md",
                                   content=f"# resnet_np.{module}\n\n::: resnet_np.{module}\n"))
    return site
