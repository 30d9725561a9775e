"""One-pass masking of variable parts in a message: the word scanner behind `templates.py`. Pure, linear time.

A message is capped at MAX_MESSAGE_CHARS, then read once:

1. One combined regex (an alternation, one `sub` over the text) masks the only variables that span spaces:
   timestamps written with spaces ("Sat Jun 18 02:23:10 2005", "2024-01-05 10:11:12") and quoted values with
   spaces after a key (`tag="View Lock"`). Every branch is bounded, so the pass is linear in the text.
2. The text is split on whitespace; each *distinct* word (at most MAX_TOKEN_CHARS characters, longer ones are a
   placeholder) is classified once per batch (a cache), so the cost per message is one dictionary lookup per
   repeated word. A word keeps its surrounding punctuation (`[`, `(`, `)`, `,`, `:`...) and its core is
   replaced by one `<*>` when it is, as a whole:
   a URL, an e-mail address, a file path (unix or windows), an IPv4/IPv6 address or `host:port`, a GUID, a MAC
   address, a hex literal or a long hex string, a host name, a number (with a unit written onto it: `16K`,
   `350ms`, `4.5GiB`), a version (`1.4.1`, `2.6.5-1.358`), an id with a word prefix (`blk_-7724...`,
   `job_1445_0020`, `part-00590`: one placeholder, not `blk_<*>`), a quoted value, or a boolean/null literal.
   Otherwise the word is split on delimiters (`= : , ; ( ) [ ] { } | " ' @ #`) and each segment that contains a
   digit (except short names such as `eth0`, `tty2`, `SOCKS5`) becomes `<*>`; adjacent placeholders inside a
   word merge into one.
3. A quantity written with a separate unit symbol ("350 ms", "16 KB", "5 %") is one placeholder, as if written
   together; spelled-out units ("900 seconds", "4096 bytes") stay words of the sentence.

No rule names one system's vocabulary: every rule above is about the shape of a value.
"""
from __future__ import annotations

import re

WILDCARD = "<*>"
MAX_MESSAGE_CHARS = 4096  # longer messages are truncated before any processing
MAX_TOKENS = 256  # tokens beyond this are dropped
MAX_TOKEN_CHARS = 512  # longer words (blobs, encoded data) are one placeholder
MAX_CACHE = 200_000  # distinct words remembered per batch

_W = WILDCARD

# ---------------------------------------------------------------------------------------------- text level

_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]{0,6}"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]{0,6}"
_CLOCK = r"\d{1,2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?"
_SPANS = re.compile(
    # a timestamp with spaces in it: [weekday] month day [year] time [year] | date time
    rf"(?:{_DAY},?[ \t]{{1,3}})?{_MONTH}[ \t]{{1,3}}\d{{1,2}},?(?:[ \t]\d{{4}})?[ \t]{{1,3}}{_CLOCK}(?:[ \t]\d{{4}}\b)?"
    rf"|\b\d{{4}}-\d{{2}}-\d{{2}}[ T]{_CLOCK}"
    # a quoted value with spaces after a key
    r"|(?<=[=:])[ ]?(?:\"[^\"\n]{0,256}\"|'[^'\n]{0,256}')"
    # a quantity with a separate unit abbreviation
    r"|(?<![\w.])[<>~]?[-+]?\d{1,20}(?:\.\d{1,20})?[ ](?:[KMGTP]?i?B|[KMGTP]B/s|ms|us|ns|s|secs?|mins?|hrs?|%)(?![\w/])"
)
_SPAN_HINT = re.compile(r"\d:\d\d:\d\d|[=:] ?[\"']|\d (?:[KMGTPB]|[mun]?s\b|sec|min|hr|%)")


def _span(m: re.Match[str]) -> str:
    return " " + _W if m.group(0).startswith(" ") else _W


# ---------------------------------------------------------------------------------------------- word level

_LEAD = "([{\"'`"
_TRAIL = ")]}\"'`,;:.!?"
_TLD = r"(?:com|net|org|edu|gov|mil|int|io|info|biz|local|lan|internal|[a-z]{2})"
_HEX = r"[0-9a-fA-F]"
_UNIT = r"(?:[KMGTP]i?B|[KMGTP]B/s|[kKMGTP]|bytes?|B|ms|us|ns|sec|secs|s|mins?|h|%)"
_WHOLE = re.compile("|".join((
    r"[A-Za-z][A-Za-z0-9+.\-]{0,30}://\S*",  # URL
    r"[\w.+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){0,10}\.[A-Za-z]{2,24}",  # e-mail
    r"~?/[^\s,;)\]'\"]*",  # unix path (a single "/" too)
    r"\.{1,2}/[^\s,;)\]'\"]+",  # relative path
    r"[A-Za-z]:\\[^\s\"']*",  # windows path
    r"\\\\[^\s\"']+",  # UNC path
    r"\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?",  # IPv4[:port]
    r"[a-z0-9][a-z0-9\-]{0,62}(?:\.[a-z0-9\-]{1,63}){0,10}:\d{2,5}",  # host:port (lower-case host names)
    rf"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}",  # GUID
    rf"(?=[0-9a-fA-F:]{{0,40}}::|(?:{_HEX}{{1,4}}:){{7}}){_HEX}{{0,4}}(?::{_HEX}{{0,4}}){{2,7}}(?:%\w{{1,16}})?",  # IPv6
    rf"(?:{_HEX}{{2}}[:-]){{5}}{_HEX}{{2}}",  # MAC
    rf"0[xX]{_HEX}{{1,64}}",  # hex literal
    rf"(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F]){_HEX}{{8,}}",  # long hex string (hashes, addresses)
    rf"[A-Za-z0-9\-]{{1,63}}(?:\.[A-Za-z0-9\-]{{1,63}}){{0,10}}\.{_TLD}",  # host name
    rf"[<>~]?[-+]?\d+(?:[.,]\d+)*{_UNIT}?",  # number, with a unit written onto it
    r"v?\d+(?:[.\-_]\d+)*(?:[.\-][A-Za-z0-9]+)*\d",  # version
    r"[A-Za-z][A-Za-z0-9]*(?:[_\-][A-Za-z]*)?[_\-]-?\d[\w\-]*",  # id with a word prefix
    r"(?:true|false|null|True|False|NULL|TRUE|FALSE)",  # literals
)))
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'|`[^`]*`")
_SEG = re.compile(r"([=:,;()\[\]{}|\"'@#])")
_DOT = re.compile(r"(\.)")
_DIGIT = re.compile(r"\d")
_SHORT_NAME = re.compile(r"[A-Za-z]{2,}[A-Za-z_]*\d[A-Za-z_]*")  # eth0, SOCKS5, jk2_init: names, not values
_RUN = re.compile(r"<\*>(?:[.#\-_/+]+<\*>)+")  # placeholders joined by connectors: one value
_DELIMS = frozenset("=:,;()[]{}|\"'@#")
_LITERALS = frozenset({"true", "false", "null", "True", "False", "NULL", "TRUE", "FALSE"})
LONG_RUN = 8  # more placeholders than this in a row are one list
MAX_LIST = 64  # words a bracketed list may span
_LIST = re.compile(r"([^\s\[(]*[\[(])<\*>(?:,? <\*>)+([\])][^\s]*)")
_ANNOTATIONS = frozenset({"(<*>)", "()"})
_PATHLIKE = re.compile(r"[^/]*(?:/\.|\./|/[^/]*/)")  # a qualified name with a path part: pkg/.Class, a/b/c


def _is_variable_segment(seg: str) -> bool:
    if _W in seg or seg in _LITERALS:
        return True
    if _DIGIT.search(seg) is None:
        return False
    return _SHORT_NAME.fullmatch(seg) is None


def _segments(core: str) -> str:
    """A word that is not a value as a whole: digit-bearing segments between delimiters become placeholders (a
    segment that is a value as a whole first, then its dot-separated parts)."""
    parts: list[str] = []
    for seg in _SEG.split(core):
        if not seg:
            continue
        if seg in _DELIMS:
            parts.append(seg)
        elif _is_variable_segment(seg) and "." not in seg or _WHOLE.fullmatch(seg) or _PATHLIKE.match(seg):
            parts.append(_W)
        elif "." in seg:
            parts.extend(_W if p and p != "." and _is_variable_segment(p) else p for p in _DOT.split(seg))
        else:
            parts.append(seg)
    out = "".join(parts)
    return _RUN.sub(_W, out) if _W in out else out


def word_token(word: str) -> str:
    """The token of one whitespace-delimited word (the rules in the module docstring)."""
    if len(word) > MAX_TOKEN_CHARS:
        return _W
    if _W == word:
        return _W
    body = word.rstrip(",;:.!?")
    if len(body) >= 2 and _QUOTED.fullmatch(body):
        return _W + word[len(body):]  # a quoted value
    core = word.lstrip(_LEAD)
    lead = word[: len(word) - len(core)]
    stripped = core.rstrip(_TRAIL)
    trail = core[len(stripped):]
    core = stripped
    if not core:
        return word
    if _WHOLE.fullmatch(core):
        return lead + _W + trail
    if _W in core and _W != core and _SEG.search(core) is None:
        return lead + _W + trail
    return lead + _segments(core) + trail


def mask_spans(message: str) -> str:
    """The message, capped, with the variables that span spaces masked (one combined regex pass)."""
    text = str(message)[:MAX_MESSAGE_CHARS]
    if _SPAN_HINT.search(text) is not None:
        text = _SPANS.sub(_span, text)
    return text


def _open_bracket(token: str) -> bool:
    return token.count("[") > token.count("]") or token.count("(") > token.count(")")


def _close_bracket(token: str) -> bool:
    return token.count("]") > token.count("[") or token.count(")") > token.count("(")


def _list_value(group: list[str]) -> str | None:
    """A bracketed list whose items are all values (`[1 2 3]`, `(a, b)` masked) as one token, else None."""
    m = _LIST.fullmatch(" ".join(group))
    return None if m is None else m.group(1) + _W + m.group(2)


def tokens(message: str, cache: dict[str, str], merge: bool = False) -> tuple[str, ...]:
    """Tokens of one message. `cache` maps words to tokens across a batch (bounded by MAX_CACHE). A bracketed
    list of values spread over several words is one placeholder; a parenthesised value after a word is dropped
    (an annotation); with `merge`, a run of placeholders is one."""
    out: list[str] = []
    opened: int | None = None  # where an unclosed bracket started in `out`
    for word in mask_spans(message).split():
        tok = cache.get(word)
        if tok is None:
            tok = word_token(word)
            if len(cache) < MAX_CACHE:
                cache[word] = tok
        if out and (tok in _ANNOTATIONS or (merge and tok == _W and out[-1] == _W)):
            continue
        out.append(tok)
        if opened is None:
            if _open_bracket(tok):
                opened = len(out) - 1
        elif _close_bracket(tok) or len(out) - opened > MAX_LIST:
            merged = _list_value(out[opened:]) if _close_bracket(tok) else None
            if merged is not None:
                out[opened:] = [merged]
            opened = None
        if len(out) >= MAX_TOKENS:
            break
    return _long_runs_merged(out)


def _long_runs_merged(out: list[str]) -> tuple[str, ...]:
    """A run of more than LONG_RUN placeholders in a row is a list of values: one placeholder."""
    if out.count(_W) <= LONG_RUN:
        return tuple(out)
    merged: list[str] = []
    run = 0
    for tok in out:
        run = run + 1 if tok == _W else 0
        merged.append(tok)
        if run == LONG_RUN + 1:
            del merged[-LONG_RUN - 1:]
            merged.append(_W)
        elif run > LONG_RUN + 1:
            merged.pop()
    return tuple(merged)


def mask(message: str) -> str:
    """The message, capped at MAX_MESSAGE_CHARS, with variables as <*> (words joined by single spaces)."""
    return " ".join(tokens(message, {}, merge=False))
