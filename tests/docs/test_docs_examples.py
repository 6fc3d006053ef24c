"""Every code example of the documentation runs, so the docs cannot rot.

Python examples in the site's pages (``docs/**/*.md``) and model cards (``zoo/*/README.md``) are
doctest sessions (``>>>`` prompts with their expected output) inside ``python`` fences; each file
runs top to bottom in one namespace, like a reader pasting it into a console. A ``python`` fence
without prompts fails here, unless the line right before it says why it cannot run, as a MyST
comment: ``% not-executed: needs the real SAM ViT-B checkpoint (2.5 GB)``. Docstring examples
(``Examples:`` sections with ``>>>``) of every ``segblocks`` module run too.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import segblocks

ROOT = Path(__file__).resolve().parents[2]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
PYTHON_LANGS = {"python", "py", "python3", "pycon", "ipython"}
CODE_DIRECTIVES = {"code-block", "code", "sourcecode", "code-cell"}
SKIP_MARK = re.compile(r"^\s*%\s*not-executed:\s*\S")
OPTION = re.compile(r"^:\w[\w-]*:")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>.*?)\s*$")


@dataclass
class Fence:
    """One fenced code block of a Markdown file: language, 1-based line of its opening, body lines."""

    lang: str
    line: int
    body: list[str]
    skipped: bool


def parse_fences(text: str) -> list[Fence]:
    """Return the code fences of a MyST file, including those nested in directive fences."""
    lines = text.splitlines()
    fences: list[Fence] = []
    directives: list[str] = []  # open non-code directive fences (their content is Markdown)
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, info = match["fence"], match["info"]
        if not info and directives and fence[0] == directives[-1][0] and len(fence) >= len(directives[-1]):
            directives.pop()
            i += 1
            continue
        directive = re.match(r"\{([\w-]+)\}\s*(.*)", info)
        if directive and directive[1] not in CODE_DIRECTIVES:
            directives.append(fence)
            i += 1
            continue
        lang = (directive[2] if directive else info).split()[0].lower() if info else ""
        prev = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            close = FENCE.match(lines[j])
            if (
                close
                and not close["info"]
                and close["fence"][0] == fence[0]
                and len(close["fence"]) >= len(fence)
            ):
                break
            body.append(lines[j])
            j += 1
        fences.append(Fence(lang, i + 1, body, bool(SKIP_MARK.match(prev))))
        i = j + 1
    return fences


def _is_session(fence: Fence) -> bool:
    return any(line.lstrip().startswith(">>>") for line in fence.body)


def _code_lines(fence: Fence) -> list[str]:
    # MyST options at the top of a {code-block} (":caption: x") are not code.
    return ["" if OPTION.match(line) else line for line in fence.body]


def problems(text: str) -> list[str]:
    """Python code the runner would silently skip: code before the first prompt of a session."""
    found = []
    for fence in parse_fences(text):
        if fence.lang in PYTHON_LANGS and not fence.skipped and _is_session(fence):
            first = next(line for line in _code_lines(fence) if line.strip())
            if not first.lstrip().startswith(">>>"):
                found.append(f"line {fence.line}: a doctest session must start with `>>>`")
    return found


def build_doctest(text: str, name: str) -> doctest.DocTest:
    """One doctest made of all executable python fences of ``text``, in file order.

    Sessions (``>>>``) check their outputs; plain code blocks run as scripts and must not raise.
    Failure reports and tracebacks give the line numbers of the file.
    """
    parser = doctest.DocTestParser()
    examples: list[doctest.Example] = []
    for fence in parse_fences(text):
        if fence.lang not in PYTHON_LANGS or fence.skipped:
            continue
        body = _code_lines(fence)
        if _is_session(fence):
            for example in parser.get_examples("\n".join(body)):
                example.lineno += fence.line
                examples.append(example)
        else:
            code = "\n" * fence.line + "\n".join(body) + "\n"
            source = f"exec(compile({code!r}, {name!r}, 'exec'))\n"
            examples.append(doctest.Example(source, "", lineno=fence.line))
    return doctest.DocTest(examples, {"__name__": name}, name, name, 0, None)


def run_doctest_text(text: str, name: str) -> tuple[int, int, str]:
    """Run the python fences of ``text``; return (failed, attempted, report)."""
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    runner.run(build_doctest(text, name), out=report.append, clear_globs=True)
    results = runner.summarize(verbose=False)
    return results.failed, results.attempted, "".join(report)


def doc_files() -> list[Path]:
    generated = {
        ROOT / "docs" / "_build",
        ROOT / "docs" / "api" / "generated",
        ROOT / "docs" / "zoo" / "cards",
    }
    pages = [p for p in sorted((ROOT / "docs").rglob("*.md")) if not any(g in p.parents for g in generated)]
    return pages + sorted((ROOT / "zoo").glob("*/README.md"))


def segblocks_modules() -> list[str]:
    names = [segblocks.__name__]
    names += [m.name for m in pkgutil.walk_packages(segblocks.__path__, prefix="segblocks.")]
    return sorted(names)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_doc_page_examples_run(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not problems(text), f"{path.relative_to(ROOT)}: {problems(text)}"
    failed, _, report = run_doctest_text(text, str(path.relative_to(ROOT)))
    assert failed == 0, report


@pytest.mark.parametrize("module", segblocks_modules())
def test_docstring_examples_run(module: str) -> None:
    mod = importlib.import_module(module)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []
    for test in finder.find(mod, module):
        runner.run(test, out=report.append)
    assert runner.summarize(verbose=False).failed == 0, "".join(report)


def test_the_quickstart_is_executed() -> None:
    # The mechanism must actually run something: the quickstart is made of examples.
    text = (ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8")
    failed, attempted, _ = run_doctest_text(text, "quickstart")
    assert (failed, attempted >= 10) == (0, True)


SAMPLE = """# Page

```python
>>> 1 + 1
2
```

:::{note}
````{code-block} python
:caption: nested
def double(x):
    return 2 * x
````
:::

```python
>>> double(3)
6
```

% not-executed: needs a GPU
```python
torch.cuda.init()
```

```bash
python -c "print('not a python fence')"
```
"""


def test_fences_are_found_nested_and_skipped_ones_marked() -> None:
    fences = parse_fences(SAMPLE)
    assert [(f.lang, f.line, f.skipped) for f in fences] == [
        ("python", 3, False),
        ("python", 9, False),
        ("python", 16, False),
        ("python", 22, True),
        ("bash", 26, False),
    ]
    assert problems(SAMPLE) == []
    assert run_doctest_text(SAMPLE, "sample")[:2] == (0, 3)


def test_a_wrong_output_fails_with_its_file_line() -> None:
    text = "# T\n\n```python\n>>> 1 + 1\n3\n```\n"
    failed, attempted, report = run_doctest_text(text, "page.md")
    assert (failed, attempted) == (1, 1)
    assert 'File "page.md", line 4' in report and "Expected:\n    3" in report


def test_a_failing_code_block_reports_its_file_line() -> None:
    text = "# T\n\n```python\nx = 1\nraise ValueError('broken example')\n```\n"
    failed, _, report = run_doctest_text(text, "page.md")
    assert failed == 1
    assert 'File "page.md", line 5' in report and "ValueError: broken example" in report


def test_code_before_the_first_prompt_is_reported() -> None:
    text = "# T\n\n```python\nimport torch\n>>> torch.zeros(1)\ntensor([0.])\n```\n"
    assert problems(text) == ["line 3: a doctest session must start with `>>>`"]
