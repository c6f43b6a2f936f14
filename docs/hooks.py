"""MkDocs hooks of the dartsviz site (mkdocs.yml: `hooks:`).

1. The project's home. `HOME` in dartsviz/notebooks.py is the one place that names the GitHub
   repository (`python -m dartsviz.notebooks set-home OWNER/REPO` rewrites it and its copies).
   The site reads it from there: `repo_url`, and these placeholders in the pages:
       {{ home }}                  OWNER/REPO
       {{ repo_url }}              https://github.com/OWNER/REPO
       {{ colab_badge NAME }}      the "Open in Colab" badge of notebooks/NAME
       {{ source PATH }}           https://github.com/OWNER/REPO/blob/main/PATH (a file of the repository)
   The pages themselves hold real links (readable on GitHub too), which `set-home` rewrites with the
   README's; the placeholders are there for a page that wants them. A link to a file of the repository
   outside docs/, written relative (`[bench](../bench/README.md)`, which GitHub follows), becomes
   that file's address on the site.
2. Glossary links. On every page but the glossary, the first use of each term of TERMS in the
   prose (not in code, headings, or links) becomes a link to its entry in glossary.md.
3. The executed notebooks. docs/tutorials/ must hold an executed copy of every notebook in
   notebooks/, made from the notebook as it is now (docs/build_notebooks.py writes them and
   records the source's digest); a missing or stale copy is a warning, which `--strict` fails on.
"""
import hashlib
import json
import logging
import posixpath
import re
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.dartsviz")

ROOT = Path(__file__).resolve().parent.parent
BRANCH = "main"
_BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"


def project_home() -> str:
    """HOME from dartsviz/notebooks.py, read as text (importing dartsviz would import torch)."""
    text = (ROOT / "dartsviz" / "notebooks.py").read_text(encoding="utf-8")
    found = re.findall(r'^HOME = "([^"\n]+)"', text, re.M)
    if len(found) != 1:
        raise ValueError('dartsviz/notebooks.py: no single line HOME = "OWNER/REPO"')
    return found[0]


def on_config(config):
    home = project_home()
    config["repo_url"] = f"https://github.com/{home}"
    config["repo_name"] = home
    config["edit_uri"] = ""
    _check_tutorials()
    return config


# ---- 1. placeholders ------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)(?:\s+([^\s}]+))?\s*\}\}")


def _fill(markdown: str, page) -> str:
    home = project_home()

    def sub(m):
        name, arg = m.group(1), m.group(2)
        if name == "home" and arg is None:
            return home
        if name == "repo_url" and arg is None:
            return f"https://github.com/{home}"
        if name == "source" and arg:
            if not (ROOT / arg).exists():
                log.warning(f"{page.file.src_uri}: {{{{ source {arg} }}}}: no such file in the repository")
            return f"https://github.com/{home}/blob/{BRANCH}/{arg}"
        if name == "colab_badge" and arg:
            if not (ROOT / "notebooks" / arg).is_file():
                log.warning(f"{page.file.src_uri}: {{{{ colab_badge {arg} }}}}: no such notebook in notebooks/")
            url = f"https://colab.research.google.com/github/{home}/blob/{BRANCH}/notebooks/{arg}"
            return f"[![Open In Colab]({_BADGE_IMAGE})]({url})"
        log.warning(f"{page.file.src_uri}: unknown placeholder {m.group(0)!r}")
        return m.group(0)

    markdown = _PLACEHOLDER.sub(sub, markdown)

    def outside(m):
        target = posixpath.normpath(posixpath.join("docs", posixpath.dirname(page.file.src_uri), m.group(2)))
        if target.startswith("docs/") or target.startswith(".."):
            return m.group(0)
        if not (ROOT / target).exists():
            log.warning(f"{page.file.src_uri}: link to {m.group(2)}: no such file in the repository")
        return f"](https://github.com/{home}/blob/{BRANCH}/{target})"

    return _OUTSIDE_LINK.sub(outside, markdown)


_OUTSIDE_LINK = re.compile(r"(\]\()(\.\./[^)\s#]+)\)")       # ](../path): a repository file outside docs/


# ---- 2. glossary links ----------------------------------------------------------------------------

# glossary anchor: the pattern of the term in prose (longer terms first where they overlap)
TERMS = {
    "darts": r"DARTS(?![-\w])",
    "search-space": r"search spaces?",
    "supernet": r"supernets?",
    "normal-cell": r"normal cells?",
    "reduction-cell": r"reduction cells?",
    "cell": r"cells?",
    "node": r"nodes?",
    "edge": r"edges?",
    "mixed-op": r"mixed (?:ops?|operations?|edges?)",
    "alpha": r"alphas?|architecture logits|α",
    "softmax-weights": r"softmax weights?",
    "bilevel": r"bilevel",
    "first-order": r"first[- ]order",
    "second-order": r"second[- ]order|unrolled",
    "hvp": r"Hessian-vector products?|HVP",
    "warm-up": r"warm-up",
    "genotype": r"genotypes?",
    "derivation": r"derivation|derived?|derives",
    "parameter-free-ops": r"parameter-free (?:ops?|operations?)",
    "skip-connection": r"skip[- ]connections?",
    "collapse": r"collapse[sd]?",
    "lambda-max": r"λ_max|lambda_max",
    "darts-es": r"DARTS-ES|early stopping",
    "variant": r"variants?",
    "preset": r"presets?",
    "run-directory": r"run director(?:y|ies)",
    "record": r"(?:step|epoch) records?",
    "fast-path": r"fast path|fast supernet",
    "from-scratch": r"from scratch",
    "random-baseline": r"random(?:-search)? baseline",
    "perplexity": r"perplexity",
    "bptt": r"BPTT",
    "asgd": r"averaged SGD|ASGD",
    "drop-path": r"drop-path",
    "auxiliary-head": r"auxiliary head",
    "cutout": r"cutout",
    "rank": r"ranks?",
    "cuda-graphs": r"CUDA graphs?",
    "bf16": r"bf16",
}
_CASE_SENSITIVE = {"darts", "hvp", "bptt", "asgd", "darts-es"}

# what is never linked: fenced code, inline code, links and images, HTML tags, attribute lists,
# URLs, and whole lines that are headings, admonition titles, mkdocstrings or snippet directives
_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
_LINE = re.compile(r"^(?:#{1,6} |!!! |\?\?\? |::: |--8<--|\[[^\]]+\]:).*$", re.M)
_INLINE = re.compile(r"`[^`\n]+`|!?\[[^\]]*\]\([^)]*\)|!?\[[^\]]*\]\[[^\]]*\]|<[^>\n]+>|\{[^}\n]*\}"
                     r"|https?://\S+")


def _segments(markdown: str):
    """[(text, linkable)] covering `markdown`."""
    protected = []
    for rx in (_FENCE, _LINE):
        protected += [m.span() for m in rx.finditer(markdown)]
    protected.sort()
    out, pos = [], 0
    for a, b in protected:
        if a < pos:
            if b > pos:
                out.append((markdown[pos:b], False))
                pos = b
            continue
        out += _inline_segments(markdown[pos:a])
        out.append((markdown[a:b], False))
        pos = b
    out += _inline_segments(markdown[pos:])
    return out


def _inline_segments(text: str):
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append((text[pos:m.start()], True))
        out.append((m.group(0), False))
        pos = m.end()
    out.append((text[pos:], True))
    return [s for s in out if s[0]]


def link_terms(markdown: str, glossary: str) -> str:
    """`markdown` with the first prose use of every term linked to `glossary#anchor`."""
    segments = _segments(markdown)
    for anchor, pattern in TERMS.items():
        rx = re.compile(rf"(?<![\w-]){pattern}(?![\w-])", 0 if anchor in _CASE_SENSITIVE else re.I)
        for i, (text, linkable) in enumerate(segments):
            m = rx.search(text) if linkable else None
            if m:
                segments[i:i + 1] = [s for s in ((text[:m.start()], True),
                                                 (f"[{m.group(0)}]({glossary}#{anchor})", False),
                                                 (text[m.end():], True)) if s[0]]
                break
    return "".join(text for text, _ in segments)


def on_page_markdown(markdown, page, config, files):
    src = page.file.src_uri
    if not src.endswith(".md"):
        return markdown
    markdown = _fill(markdown, page)
    if src != "glossary.md":
        markdown = link_terms(markdown, posixpath.relpath("glossary.md", posixpath.dirname(src) or "."))
    return markdown


# ---- 3. the executed notebooks --------------------------------------------------------------------

def _check_tutorials():
    fix = "run `python docs/build_notebooks.py` (or `bash docs/build.sh`)"
    for source in sorted((ROOT / "notebooks").glob("*.ipynb")):
        copy = ROOT / "docs" / "tutorials" / source.name
        if not copy.is_file():
            log.warning(f"docs/tutorials/{source.name} is missing: {fix}")
            continue
        meta = json.loads(copy.read_text(encoding="utf-8")).get("metadata", {}).get("dartsviz_docs", {})
        if meta.get("source_sha256") != hashlib.sha256(source.read_bytes()).hexdigest():
            log.warning(f"docs/tutorials/{source.name} was made from another version of "
                        f"notebooks/{source.name}: {fix}")
