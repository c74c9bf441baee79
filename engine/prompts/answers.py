"""Reading an LLM's list answer the way real models write it, and checking each item.

Models asked for "a numbered list, one description per line" answer in many shapes: markdown
emphasis (``**Foreground:** x``), headings, code fences, reasoning blocks (``<think>…</think>``),
a bare ``1.`` line followed by ``- Foreground: …`` sub-bullets, ``**Description 1:**`` headings,
JSON arrays, preambles ("Here are 20 descriptions:") and closing remarks. :func:`segment` turns
an answer into raw items; :func:`parse_list` cleans them into plain strings (the meanings request
of seed 003 §3.1 uses it); :func:`check_description` validates one contextual description
(seed 003 §3.2) and repairs what can be repaired:

* **Aspects.** Items whose aspects are labelled (``Foreground:``, ``Background:``,
  ``Lighting (condition):``, ``Camera (angle):``) must have all four; they are joined in the
  paper's order whatever order the model used. *Fallback*: an unlabelled item is kept as the
  model wrote it when it has at least four comma-separated parts (the request asks for the four
  aspects in order, so the parts cannot be told apart further). Anything else is dropped.
* **Class in the foreground.** The prompt is "a photograph of <foreground>, …" with the class
  in the foreground ("goldfish swimming in a fish tank"). When the foreground does not name the
  class (a model describing only the companion objects), the class text is put in front:
  ``tench with a fishing rod and a landing net`` -- counted as ``class_inserted``.
* No markup, reasoning text or aspect names reach a prompt.
"""
from __future__ import annotations

import dataclasses
import json
import re

ASPECTS = ("foreground", "background", "lighting", "camera angle")
"""Seed 003 §3.2's four aspects, in the paper's order."""

STAT_KEYS = ("answers", "parsed", "kept", "repaired", "class_inserted", "dropped", "duplicates")
"""Per-class counters of the LLM backend, in the order the plan summary prints them."""

REASONING = re.compile(r"<(think|thinking|reasoning|reflection|analysis)>.*?</\1>",
                       re.IGNORECASE | re.DOTALL)
UNCLOSED_REASONING = re.compile(r"<(think|thinking|reasoning|reflection|analysis)>.*\Z",
                                re.IGNORECASE | re.DOTALL)
STRAY_CLOSE = re.compile(r"\A.*</(think|thinking|reasoning|reflection|analysis)>",
                         re.IGNORECASE | re.DOTALL)
FENCE = re.compile(r"```[\w-]*[ \t]*\n?(.*?)```", re.DOTALL)
ASPECT_LABEL = re.compile(
    r"(?<![\w-])(foreground|background|lighting|camera)"
    r"(?:[ \t]+(?:objects?|elements?|conditions?|angles?|setting|perspective|details?))?"
    r"[ \t]*(?:\([^)]*\))?[ \t]*:[ \t]*", re.IGNORECASE)
NUMBER = re.compile(r"^(?:\d{1,3}\s*[.):\]]|\(\d{1,3}\))(?=\s|$)\s*")
BULLET = re.compile(r"^[-*\u2022\u2013+]\s+")
BLOCK_HEADING = re.compile(
    r"^(?:description|prompt|option|example|scene|photo|image|item)\s*#?\s*\d{1,3}\s*[:.)-]?\s*",
    re.IGNORECASE)
EMPHASIS = (re.compile(r"(\*\*|__)(.+?)\1"), re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"),
            re.compile(r"(?<![\w_])_(?!\s)(.+?)(?<!\s)_(?![\w_])"))


@dataclasses.dataclass
class RawItem:
    """One item of an answer, before validation."""

    parts: list
    """Its text fragments (the marker line, then sub-bullets / continuation lines)."""
    plain: bool = False
    """Came from an answer without list markers (one item per line)."""
    open: bool = False
    """Started by a bare ``N.`` line or a ``Description N`` heading: takes the lines after it."""
    indent: int = 0
    fields: dict | None = None
    """Aspect -> text, when the item came as a JSON object."""

    @property
    def text(self) -> str:
        return ", ".join(p.strip().rstrip(",;") for p in self.parts if p.strip())


# ------------------------------------------------------------------------------ cleaning
def strip_reasoning(text: str) -> str:
    """Remove ``<think>…</think>`` (and similar) blocks; an unclosed one runs to the end, a
    closing tag without its opening one (servers that drop it) cuts everything before it."""
    text = REASONING.sub("", text)
    text = STRAY_CLOSE.sub("", text)
    return UNCLOSED_REASONING.sub("", text)


def strip_markup(line: str) -> str:
    """Markdown emphasis, inline code and leftover asterisks/hashes out of one line of text."""
    for pattern in EMPHASIS:
        line = pattern.sub(r"\2" if pattern is EMPHASIS[0] else r"\1", line)
    line = line.replace("**", "").replace("__", "").replace("`", "")
    line = re.sub(r"<[^>\n]{1,40}>", "", line)  # stray tags (<br>, </think>)
    return line


def clean_text(text: str) -> str:
    """Final tidying of an item: markup, quotes, separators, spaces, a lone final period."""
    text = strip_markup(text)
    text = re.sub(r"[*#]+", "", text)
    text = re.sub(r"\s*[;|]\s*", ", ", text)
    text = re.sub(r"\s+", " ", text).strip().strip("\"'\u201c\u201d").strip()
    text = re.sub(r"(,\s*)+", ", ", text).strip(" ,")
    if text.endswith(".") and text.count(".") == 1:
        text = text[:-1].rstrip()
    return text


# ------------------------------------------------------------------------------ segmenting
def _json_items(text: str) -> list[RawItem] | None:
    candidates = [m.group(1).strip() for m in FENCE.finditer(text)] + [text.strip()]
    first, last = text.find("["), text.rfind("]")
    if 0 <= first < last:
        candidates.append(text[first:last + 1])
    for c in candidates:
        if c[:1] not in "[{":
            continue
        try:
            obj = json.loads(c)
        except ValueError:
            continue
        items = _from_json(obj)
        if items is not None:
            return items
    return None


def _from_json(obj) -> list[RawItem] | None:
    if isinstance(obj, dict):
        lists = [v for v in obj.values() if isinstance(v, list)]
        return _from_json(lists[0]) if len(lists) == 1 else None
    if not isinstance(obj, list):
        return None
    out = []
    for item in obj:
        if isinstance(item, dict):
            fields = {}
            for k, v in item.items():
                aspect = aspect_of(str(k).replace("_", " ") + ":")
                if aspect and v not in (None, ""):
                    fields.setdefault(aspect, str(v))
            values = [str(v) for v in item.values() if v not in (None, "")]
            out.append(RawItem([", ".join(values)], fields=fields or None))
        elif isinstance(item, (list, tuple)):
            out.append(RawItem([", ".join(str(v) for v in item)]))
        else:
            out.append(RawItem([str(item)]))
    return out


def aspect_of(text: str) -> str | None:
    """The aspect a label at the start of ``text`` names (``Camera angle:`` -> camera angle)."""
    m = ASPECT_LABEL.match(text.strip())
    if not m:
        return None
    word = m.group(1).lower()
    return "camera angle" if word == "camera" else word


TABLE_ROW = re.compile(r"^\s*\|(.*)\|\s*$")
TABLE_RULE = re.compile(r"^:?-{2,}:?$")


def _table_items(text: str) -> list[RawItem] | None:
    """Rows of a markdown table (``| # | Foreground | Background | ... |``); aspect columns
    named in the header become fields."""
    rows = [[strip_markup(c).strip() for c in m.group(1).split("|")]
            for m in map(TABLE_ROW.match, text.splitlines()) if m]
    rows = [r for r in rows if not all(TABLE_RULE.match(c) for c in r if c)]
    if len(rows) < 2:
        return None
    header = [aspect_of(c + ":") for c in rows[0]]
    out = []
    for row in rows[1:]:
        cells = [c for c in row if c and not c.rstrip(".").isdigit()]
        fields = {a: c for a, c in zip(header, row) if a and c}
        out.append(RawItem([", ".join(cells)], fields=fields or None))
    return out


def segment(answer: str) -> list[RawItem]:
    """The items of an answer: JSON elements, markdown table rows, numbered/bulleted entries with
    their sub-bullets, ``Description N`` blocks, or (without any list marker) one item per line.
    Preambles, section headings and closing remarks are left out."""
    text = strip_reasoning(answer)
    items = _json_items(text)
    if items is None:
        items = _table_items(text)
    if items is not None:
        return items
    text = FENCE.sub(lambda m: m.group(1), text).replace("```", "")
    lines = []
    for raw in text.splitlines():
        indent = len(raw) - len(raw.lstrip())
        line = raw.strip()
        if line.startswith(">"):
            line = line.lstrip("> ")
        heading = line.startswith("#")
        line = line.lstrip("#").strip()
        if line.startswith("* ") or line.startswith("*\t"):
            line = "- " + line[2:]
        lines.append((indent, heading, strip_markup(line).strip()))
    marked = any(NUMBER.match(ln) or BULLET.match(ln) or BLOCK_HEADING.match(ln)
                 for _, _, ln in lines)
    items: list[RawItem] = []
    current: RawItem | None = None
    blank = False
    for indent, heading, line in lines:
        if not line:
            blank = True
            continue
        num, block = NUMBER.match(line), BLOCK_HEADING.match(line)
        bullet = BULLET.match(line)
        if block or (num and (heading or not line[num.end():].strip())):
            rest = line[(block or num).end():].strip()
            current = RawItem([rest] if rest else [], open=True, indent=indent)
            items.append(current)
        elif num:
            current = RawItem([line[num.end():]], indent=indent)
            items.append(current)
        elif bullet:
            rest = line[bullet.end():]
            if current is not None and (current.open or indent > current.indent
                                        or aspect_of(rest)):
                current.parts.append(rest)
            else:
                current = RawItem([rest], indent=indent)
                items.append(current)
        elif heading:
            current = None  # a section heading ("## Descriptions") ends the item before it
        elif current is not None and (aspect_of(line) or (current.open and not current.parts)
                                      or (indent > current.indent and not blank)):
            current.parts.append(line)
        elif marked:
            current = None  # preamble or closing remark between/after the list
        else:
            current = RawItem([line], plain=True, indent=indent)
            items.append(current)
        blank = False
    return [it for it in items if it.parts or it.fields]


# ------------------------------------------------------------------------------ items
def split_aspects(text: str) -> tuple[dict, str]:
    """``{aspect: text}`` of the labelled aspects in ``text`` (first label of each wins) and
    the text before the first label (a title, dropped)."""
    found = list(ASPECT_LABEL.finditer(text))
    fields: dict = {}
    for m, nxt in zip(found, found[1:] + [None]):
        value = text[m.end():nxt.start() if nxt else len(text)]
        word = m.group(1).lower()
        aspect = "camera angle" if word == "camera" else word
        value = clean_text(value).rstrip(".")
        if value:
            fields.setdefault(aspect, value)
    return fields, (text[:found[0].start()] if found else text)


def parse_list(text: str) -> list[str]:
    """Items of a list answer as clean strings (aspects, when labelled, joined in the paper's
    order with the labels removed). No validation: see :func:`check_description`."""
    out = []
    for item in segment(text):
        fields = item.fields or split_aspects(item.text)[0]
        if fields:
            value = ", ".join(fields[a] for a in ASPECTS if a in fields)
        else:
            value = clean_text(item.text)
        value = clean_text(value)
        if value:
            out.append(value)
    return out


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome of checking one description."""

    text: str | None
    """The description to use (None: dropped)."""
    reason: str = ""
    """Why it was dropped or what was repaired."""
    repaired: bool = False
    class_inserted: bool = False
    commentary: bool = False
    """Not an item at all (a remark on its own line in a plain answer): not counted."""


def _split_commas(text: str) -> list[str]:
    """Top-level comma parts (commas inside parentheses do not split)."""
    parts, depth, cur = [], 0, []
    for ch in text:
        depth += ch == "("
        depth -= ch == ")" and depth > 0
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _norm(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9]+", " ", text.lower()).strip() + " "


def names_class(text: str, names) -> bool:
    """Whether ``text`` names the class: one of ``names`` as whole words, case-insensitive,
    hyphens and spaces alike, a plural ``s``/``es`` allowed."""
    hay = _norm(text)
    for name in names:
        n = _norm(name).strip()
        if n and re.search(r"\s" + re.escape(n) + r"(?:e?s)?\s", hay):
            return True
    return False


def _lower_article(text: str) -> str:
    return re.sub(r"^(A|An|The) ", lambda m: m.group(1).lower() + " ", text)


def check_description(item: RawItem, class_text: str, names) -> Verdict:
    """Validate and repair one contextual description (see the module docstring)."""
    fields = item.fields
    title = ""
    if fields is None:
        fields, title = split_aspects(item.text)
    if fields:
        missing = [a for a in ASPECTS if a not in fields]
        if missing:
            return Verdict(None, f"no {', '.join(missing)} in {clean_text(item.text)!r}")
        reordered = list(fields) != list(ASPECTS)
        parts = [_lower_article(fields[a]) for a in ASPECTS]
    else:
        text = clean_text(item.text)
        parts = [_lower_article(p) for p in _split_commas(text)]
        reordered = False
        if len(parts) < len(ASPECTS):
            if item.plain and ("," not in text or text.endswith((":", "!", "?"))):
                return Verdict(None, "commentary", commentary=True)
            return Verdict(None, f"fewer than four aspects in {text!r}")
    inserted = not names_class(parts[0], names)
    if inserted:
        parts[0] = f"{class_text} with {parts[0]}"
    text = clean_text(", ".join(parts))
    if not text or not parts[0]:
        return Verdict(None, "empty")
    reason = ("class inserted; " if inserted else "") + ("aspects reordered" if reordered else "")
    return Verdict(text, reason.strip("; "), repaired=inserted or reordered,
                   class_inserted=inserted)


def check_meaning(item: RawItem) -> str | None:
    """A candidate meaning phrase (seed 003 §3.1): cleaned, or None if empty or not a phrase."""
    text = _lower_article(clean_text(item.fields and ", ".join(item.fields.values())
                                     or item.text))
    if not text or len(text.split()) > 40 or text.endswith((":", "!", "?")):
        return None
    return text
