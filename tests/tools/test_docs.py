"""The docs' examples, run: what docs/operator-guide.md and the README show is what is printed.

Every ```console block of a page is a piece of one terminal session. A line that starts with
`$ ` is a command (a trailing backslash continues it on the next line); the lines after it, up to
the next command or the end of the block, are what it prints, standard error included. The test
runs the blocks in the order of the page, each command with `bash -c` in one scratch folder that
holds `samples/`, against a real Azurite and a served receiver with fresh tables, and compares.
So adding an example is adding a block: nothing here changes. ```bash blocks are not run.
`UPDATE_DOCS=1 .venv/bin/python -m pytest tests/tools/test_docs.py` writes what the commands
printed into the page where it differs, instead of failing: review that diff as any other.

The shell is an operator's after `make run`: `python` is the project's venv, CHARGEPILOT_KEY
holds the key of local.settings.sample.json (which the receiver accepts), the receiver's settings
are in the environment (they win over any local.settings.json), and `$?` is the status of the
previous command, so `$ echo $?` shows it.

What changes in every run is compared by shape, not by value (the only normalisations):
- the receiver's address: `http://localhost:7071` in a page is the test receiver's;
- push ids: any UUID matches, but the same push must show the same id everywhere in the page,
  and two pushes two different ids; eight hex digits that begin a push id printed before stand
  for that push (`pushes` shows them); a push id in a command names the push the page showed;
- times of arrival: a date (YYYY-MM-DD or YYYY/MM/DD), with the time that follows it, from a week
  before the day of the run to the day after it, matches any digits of the same shape. The
  samples' sessions are from 2025, so their times stay exact;
- durations: a number followed by `ms`, ` s` or ` minutes`, and the values of a column headed
  `MS`, match any number;
- runs of two or more spaces match any such run (a column is as wide as its widest value);
- what a terminal does not show: carriage returns at line ends, a UTF-8 byte-order mark, and
  trailing spaces.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from devtools.served import ServedReceiver
from sessions.settings import Setting
from tests.helpers import PROJECT
from tools.cli import parser

DOCS = PROJECT / "docs"
GUIDE = DOCS / "operator-guide.md"
# The pages whose ```console blocks are run, each as a terminal session of its own.
RUN_PAGES = (PROJECT / "README.md", GUIDE)
DOC_URL = "http://localhost:7071"
# Commands that run until stopped: the guide shows them in a ```bash block, and the test's own
# receiver is one of them.
SHOWN_NOT_RUN = frozenset({"serve"})
COMMAND_TIMEOUT_SECONDS = 300
# With UPDATE_DOCS=1, a page whose outputs differ is rewritten with what the commands printed.
UPDATE = "UPDATE_DOCS"

_FENCE = re.compile(r"^```(\S*)\s*$")
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_MOMENT = r"\d{4}[-/]\d{2}[-/]\d{2}(?:[T /]\d{2}:?\d{2}(?::?\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?"
_DURATION = r"(?<![\w.,])\d[\d,]*(?:\.\d+)?(?P<unit> ?ms| s| minutes)\b"
_SHORT_ID = r"\b[0-9a-f]{8}\b"
_VOLATILE = re.compile(
    rf"(?P<uuid>{_UUID})|(?P<moment>{_MOMENT})|(?P<duration>{_DURATION})|(?P<short>{_SHORT_ID})"
)
_NUMBER = r"\d[\d,]*(?:\.\d+)?"
_SPACES = re.compile(r" {2,}")
_MS_HEADER = re.compile(r"(?<=  )MS(?=  |$)")


@dataclass(frozen=True)
class Example:
    """One command of a page and what the page shows it printing."""

    line: int
    command: str
    shown: str


def examples(markdown: str) -> list[Example]:
    """Every command of every ```console block, in order."""
    found: list[Example] = []
    language: str | None = None
    command: list[str] = []
    command_line = 0
    shown: list[str] = []

    def close() -> None:
        if command:
            found.append(Example(command_line, "\n".join(command), "\n".join(shown)))

    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        text = lines[index]
        fence = _FENCE.match(text)
        if fence and language is None:
            language = fence.group(1)
        elif fence:
            if language == "console":
                close()
            language, command, shown = None, [], []
        elif language == "console" and text.startswith("$ "):
            close()
            command_line, command, shown = index + 1, [text[2:]], []
            while command[-1].endswith("\\") and index + 1 < len(lines):
                index += 1
                command.append(lines[index])
        elif language == "console":
            assert command, f"line {index + 1}: output before any `$ ` command"
            shown.append(text)
        index += 1
    return found


def as_a_terminal_shows(printed: str) -> str:
    lines = printed.replace("\r\n", "\n").replace("\ufeff", "").split("\n")
    return "\n".join(line.rstrip() for line in lines).rstrip("\n")


def shape_pattern(
    printed: str, run_days: frozenset[date], known: dict[str, str]
) -> tuple[str, dict[str, str]]:
    """`printed` as a regular expression that the page's text must match in full.

    Returns it with the named group of each push id not seen before (`known` maps the ids
    printed earlier to those the page shows).
    """
    groups: dict[str, str] = {}

    def push_id(text: str) -> str:
        if text in known:
            return re.escape(known[text])
        if text in groups:
            return f"(?P={groups[text]})"
        groups[text] = f"push{len(groups)}"
        return f"(?P<{groups[text]}>{_UUID})"

    def short_id(text: str) -> str:
        for printed_id, shown_id in known.items():
            if printed_id.startswith(text):
                return re.escape(shown_id[: len(text)])
        if any(printed_id.startswith(text) for printed_id in groups):
            return "[0-9a-f]{8}"  # a push of this same output: its full id is matched there
        return re.escape(text)

    def volatile(token: re.Match[str]) -> str:
        text = token.group()
        if token.group("uuid"):
            return push_id(text)
        if token.group("moment"):
            on_run_day = _day(text) in run_days
            return re.sub(r"\d", r"\\d", re.escape(text)) if on_run_day else re.escape(text)
        if token.group("duration"):
            return _NUMBER + re.escape(token.group("unit"))
        return short_id(text)

    # A column of milliseconds first; then the tokens, in the order of the text.
    spans: list[tuple[int, int, re.Match[str] | None]] = [(a, b, None) for a, b in _ms_column(printed)]
    spans += [(token.start(), token.end(), token) for token in _VOLATILE.finditer(printed)]
    parts: list[str] = []
    end = 0
    for start, stop, token in sorted(spans, key=lambda span: (span[0], span[2] is not None)):
        if start < end:
            continue  # inside a value already taken
        parts.append(_literal(printed[end:start]))
        parts.append(_NUMBER if token is None else volatile(token))
        end = stop
    parts.append(_literal(printed[end:]))
    return "".join(parts), groups


def _literal(text: str) -> str:
    return " {2,}".join(re.escape(piece) for piece in _SPACES.split(text))


def _ms_column(printed: str) -> Iterator[tuple[int, int]]:
    """The spans of the values under a column headed `MS` (milliseconds), to the table's end."""
    offset, column = 0, None
    for line in printed.split("\n"):
        header = _MS_HEADER.search(line)
        if header:
            column = header.start()
        elif not line.strip():
            column = None
        elif column is not None and line[column : column + 1].strip() and line[column - 1] == " ":
            value = re.match(r"\S+", line[column:])
            assert value is not None
            yield offset + column, offset + column + value.end()
        offset += len(line) + 1


def _day(moment: str) -> date | None:
    try:
        return date.fromisoformat(moment[:10].replace("/", "-"))
    except ValueError:
        return None


@dataclass
class Transcript:
    """Compares outputs by shape where they change every run; remembers which push is which."""

    run_days: frozenset[date]
    push_ids: dict[str, str] = field(default_factory=dict)  # printed id -> the id the page shows

    def matches(self, printed: str, shown: str) -> bool:
        pattern, groups = shape_pattern(printed, self.run_days, self.push_ids)
        found = re.fullmatch(pattern, shown)
        if found is None:
            return False
        for printed_id, group in groups.items():
            if found.group(group) in self.push_ids.values():
                return False  # the page shows one id for two different pushes
            self.push_ids[printed_id] = found.group(group)
        return True

    def as_run(self, command: str) -> str:
        """The command with each push id (or its first digits) the page showed as the one printed."""

        def printed(token: re.Match[str]) -> str:
            text = token.group()
            for printed_id, shown_id in self.push_ids.items():
                if shown_id.startswith(text):
                    return printed_id[: len(text)]
            return text

        return re.sub(r"\b[0-9a-f]{8}(?:-[0-9a-f]{1,4}){0,3}(?:-[0-9a-f]{1,12})?\b", printed, command)

    def difference(self, printed: str, shown: str) -> str:
        """A diff in which the lines that match by shape read as the page has them."""
        shown_lines = shown.split("\n")
        printed_lines = printed.split("\n")
        for number, line in enumerate(printed_lines[: len(shown_lines)]):
            if re.fullmatch(shape_pattern(line, self.run_days, self.push_ids)[0], shown_lines[number]):
                printed_lines[number] = shown_lines[number]
        diff = "\n".join(
            difflib.unified_diff(
                shown_lines, printed_lines, "the page shows", "the command printed", lineterm=""
            )
        )
        return diff or "each line matches, but the page shows one push id for two different pushes"


def sample_key() -> str:
    """The API key of local.settings.sample.json: what `make run` accepts, and the docs use."""
    values = json.loads((PROJECT / "local.settings.sample.json").read_text(encoding="utf-8"))["Values"]
    return str(values[Setting.API_KEYS])


def operator_environment(receiver: ServedReceiver) -> dict[str, str]:
    """An operator's shell: the venv first on PATH, the key in CHARGEPILOT_KEY, the settings set."""
    env = dict(receiver.env)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', os.defpath)}"
    env["PYTHONPATH"] = str(PROJECT)
    env["CHARGEPILOT_KEY"] = sample_key()
    env.pop("VIRTUAL_ENV", None)
    return env


def run_in_shell(command: str, *, previous_status: int, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(
        ["bash", "-c", f"(exit {previous_status}); {command}"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )
    return done.returncode, done.stdout


def days_of_the_run() -> frozenset[date]:
    """From a week before today (`pushes --since 7d`) to tomorrow (the end of a window of today)."""
    today = datetime.now(UTC).date()
    return frozenset(today + timedelta(days=offset) for offset in range(-7, 2))


def test_the_guide_has_examples() -> None:
    found = examples(GUIDE.read_text(encoding="utf-8"))
    assert len(found) >= 10, "the operator guide's ```console blocks were not found"
    for example in found:
        assert example.command.strip(), f"{GUIDE.name}:{example.line}: an empty command"


def test_every_command_has_an_example_in_the_guide() -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    run = " ".join(example.command for example in examples(guide))
    for command in command_paths():
        written = f"python -m sessions {command}"
        if command.split()[0] in SHOWN_NOT_RUN:
            assert written in guide, f"{GUIDE.name} does not show `{written}`"
        else:
            assert re.search(rf"{re.escape(written)}(\s|$)", run), (
                f"{GUIDE.name} has no example of `{written}`"
            )


def command_paths() -> list[str]:
    """`serve`, `push`, ..., `rejected list`, ...: every command and action of `python -m sessions`."""

    def walk(command_parser: object, prefix: str) -> Iterator[str]:
        subparsers = [
            action
            for action in getattr(command_parser, "_actions", [])
            if isinstance(getattr(action, "choices", None), dict)
        ]
        if not subparsers and prefix:
            yield prefix
        for action in subparsers:
            for name, child in action.choices.items():
                yield from walk(child, f"{prefix} {name}".strip())

    return list(walk(parser(), ""))


@pytest.mark.parametrize("page", RUN_PAGES, ids=lambda page: str(page.relative_to(PROJECT)))
def test_the_examples_show_what_their_commands_print(
    page: Path, serve: Callable[..., ServedReceiver], tmp_path: Path
) -> None:
    receiver = serve(**{Setting.API_KEYS: sample_key()})
    (tmp_path / "samples").symlink_to(PROJECT / "samples", target_is_directory=True)
    env = operator_environment(receiver)
    transcript = Transcript(run_days=days_of_the_run())
    text = page.read_text(encoding="utf-8")
    failures: list[str] = []
    printed_by: dict[Example, str] = {}
    status = 0
    for example in examples(text):
        command = transcript.as_run(example.command).replace(DOC_URL, receiver.base_url)
        status, printed = run_in_shell(command, previous_status=status, cwd=tmp_path, env=env)
        printed = as_a_terminal_shows(printed).replace(receiver.base_url, DOC_URL)
        if not transcript.matches(printed, example.shown):
            printed_by[example] = printed
            difference = transcript.difference(printed, example.shown)
            failures.append(f"{page.name}:{example.line}: $ {example.command}\n{difference}")
    if failures and os.environ.get(UPDATE) == "1":
        page.write_text(with_outputs(text, printed_by, transcript.push_ids), encoding="utf-8")
        pytest.skip(f"{UPDATE}=1: {len(failures)} outputs written into {page.name}; review the diff")
    assert not failures, "\n\n".join(failures) + f"\n\n(Run with {UPDATE}=1 to write what was printed.)"


def with_outputs(markdown: str, printed_by: dict[Example, str], push_ids: dict[str, str]) -> str:
    """The page with these examples' outputs replaced by what their commands printed (with the
    push ids that the page already shows for the same pushes)."""
    lines = markdown.split("\n")
    for example in sorted(printed_by, key=lambda example: example.line, reverse=True):
        first = example.line - 1 + len(example.command.split("\n"))
        shown = len(example.shown.split("\n")) if example.shown else 0
        printed = printed_by[example]
        for printed_id, shown_id in push_ids.items():
            printed = re.sub(rf"\b{printed_id[:8]}", shown_id[:8], printed.replace(printed_id, shown_id))
        lines[first : first + shown] = printed.split("\n") if printed else []
    return "\n".join(lines)


# --- every file and page the docs name exists -----------------------------------------------

_LINK = re.compile(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)")
_SAMPLE = re.compile(r"\bsamples/[\w.-]+")
_HEADING = re.compile(r"#{1,6} +(.+?) *$")


def doc_pages() -> list[Path]:
    return [PROJECT / "README.md", *sorted(DOCS.rglob("*.md"))]


def anchors(markdown: str) -> set[str]:
    """The anchors of a page's headings, as GitHub makes them (lower case, punctuation dropped)."""
    found: set[str] = set()
    in_code = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            in_code = not in_code
        heading = None if in_code else _HEADING.match(line)
        if heading:
            found.add(re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-"))
    return found


@pytest.mark.parametrize("page", doc_pages(), ids=lambda page: str(page.relative_to(PROJECT)))
def test_every_link_and_sample_of_the_docs_exists(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    for target, anchor in _LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        linked = (page.parent / target).resolve()
        assert linked.is_relative_to(PROJECT), f"{page.name} links {target}, outside the repository"
        assert linked.exists(), f"{page.name} links {target}, which does not exist"
        if anchor and linked.suffix == ".md":
            headings = anchors(linked.read_text(encoding="utf-8"))
            assert anchor in headings, f"{page.name} links {target}#{anchor}, a heading that does not exist"
    for sample in _SAMPLE.findall(text):
        assert (PROJECT / sample).is_file(), f"{page.name} uses {sample}, which does not exist"
