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
MAX_TOKENS = 64  # tokens beyond this are dropped (a template of 64 words is one message shape)
MAX_TOKEN_CHARS = 512  # longer words (blobs, encoded data) are one placeholder
MAX_WORDS = 80  # words read per message (MAX_TOKENS after annotations and lists are folded)
MAX_CACHE = 200_000  # distinct words remembered per batch
MAX_CLASSIFIED_CHARS = 200_000  # characters of distinct words one batch classifies with every rule

_W = WILDCARD

# ---------------------------------------------------------------------------------------------- text level

_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]{0,6}"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]{0,6}"
_CLOCK = r"\d{1,2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?"
_SPANS = re.compile(
    r"(?=[A-Z0-9 \"'<>~+\-])(?:"  # every branch starts with one of these: other positions fail at once
    # a timestamp with spaces in it: [weekday] month day [year] time [year] | date time
    rf"(?:{_DAY},?[ \t]{{1,3}})?{_MONTH}[ \t]{{1,3}}\d{{1,2}},?(?:[ \t]\d{{4}})?[ \t]{{1,3}}{_CLOCK}(?:[ \t]\d{{4}}\b)?"
    rf"|\b\d{{4}}-\d{{2}}-\d{{2}}[ T]{_CLOCK}"
    # a quoted value with spaces after a key
    r"|(?<=[=:])[ ]?(?:\"[^\"\n]{0,256}\"|'[^'\n]{0,256}')"
    # a quantity with a separate unit abbreviation
    r"|(?<![\w.])[<>~]?[-+]?\d{1,20}(?:\.\d{1,20})?[ ](?:[KMGTP]?i?B|[KMGTP]B/s|ms|us|ns|s|secs?|mins?|hrs?|%)(?![\w/]))"
)
_SPAN_HINT = re.compile(r"\d:\d\d:\d\d|[=:] ?[\"']|\d (?:[KMGTP]?i?B|[KMGTP]B/s|[mun]?s|secs?|mins?|hrs?|%)(?![\w/])")


def _span(m: re.Match[str]) -> str:
    return " " + _W if m.group(0).startswith(" ") else _W


# ---------------------------------------------------------------------------------------------- word level

_LEAD = "([{\"'`"
_TRAIL = ")]}\"'`,;:.!?"
_TLD = r"(?:com|net|org|edu|gov|mil|int|io|info|biz|local|lan|internal|[a-z]{2})"
_HEX = r"[0-9a-fA-F]"
_UNIT = r"(?:[KMGTP]i?B|[KMGTP]B/s|[kKMGTP]|bytes?|B|ms|us|ns|sec|secs|s|mins?|h|%)"
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
_ZEROS = bytes.maketrans(b"123456789", b"000000000")


def _shape(text: str) -> bytes:
    """The text with every ASCII digit written as 0 (bytes: translating bytes is many times faster)."""
    return text.encode("utf-8", "surrogatepass").translate(_ZEROS)
_ANNOTATIONS = frozenset({"(<*>)", "()"})
_PATHLIKE = re.compile(r"[^/]*(?:/\.|\./|/[^/]*/)")  # a qualified name with a path part: pkg/.Class, a/b/c


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{0,30}://\S*")
_EMAIL = re.compile(r"[\w.+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){0,10}\.[A-Za-z]{2,24}")
_PATH = re.compile("|".join((
    r"~?/[^\s,;)\]'\"]*",  # unix path (a single "/" too)
    r"\.{1,2}/[^\s,;)\]'\"]+",  # relative path
    r"[A-Za-z]:\\[^\s\"']*",  # windows path
    r"\\\\[^\s\"']+",  # UNC path
)))
_HOST = re.compile(rf"[A-Za-z0-9\-]{{1,63}}(?:\.[A-Za-z0-9\-]{{1,63}}){{0,10}}\.{_TLD}")
_IPV6 = re.compile(rf"(?=[0-9a-fA-F:]{{0,40}}::|(?:{_HEX}{{1,4}}:){{7}}){_HEX}{{0,4}}(?::{_HEX}{{0,4}}){{2,7}}(?:%\w{{1,16}})?")
_NUMERIC = re.compile("|".join((  # values with a digit in them
    r"\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?",  # IPv4[:port]
    r"[a-z0-9][a-z0-9\-]{0,62}(?:\.[a-z0-9\-]{1,63}){0,10}:\d{2,5}",  # host:port (lower-case host names)
    rf"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}",  # GUID
    rf"(?:{_HEX}{{2}}[:-]){{5}}{_HEX}{{2}}",  # MAC
    rf"0[xX]{_HEX}{{1,64}}",  # hex literal
    rf"(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F]){_HEX}{{8,}}",  # long hex string (hashes, addresses)
    rf"[<>~]?[-+]?\d+(?:[.,]\d+)*{_UNIT}?",  # number, with a unit written onto it
    r"v?\d+(?:[.\-_]\d+)*(?:[.\-][A-Za-z0-9]+)*\d",  # version
    r"[A-Za-z][A-Za-z0-9]*(?:[_\-][A-Za-z]*)?[_\-]-?\d[\w\-]*",  # id with a word prefix
)))


def is_value(core: str) -> bool:
    """Is this word core a value as a whole? Each shape is tried only when a character it needs is there."""
    if not core:
        return False
    if "://" in core and _URL.fullmatch(core):
        return True
    if (core[0] in "/~.\\" or core[1:3] == ":\\") and _PATH.fullmatch(core):
        return True
    if "@" in core and _EMAIL.fullmatch(core):
        return True
    if ":" in core and _IPV6.fullmatch(core):
        return True
    if _DIGIT.search(core) is not None and _NUMERIC.fullmatch(core):
        return True
    if "." in core and _HOST.fullmatch(core):
        return True
    return core in _LITERALS


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
        elif (_is_variable_segment(seg) and "." not in seg) or is_value(seg) or _PATHLIKE.match(seg):
            parts.append(_W)
        elif "." in seg:
            parts.extend(_W if p and p != "." and _is_variable_segment(p) else p for p in _DOT.split(seg))
        else:
            parts.append(seg)
    out = "".join(parts)
    return _RUN.sub(_W, out) if _W in out else out


def word_token(word: str) -> str:
    """The token of one whitespace-delimited word (the rules in the module docstring)."""
    if word.isalpha():  # most words: plain text
        return _W if word in _LITERALS else word
    if len(word) > MAX_TOKEN_CHARS or word == _W:
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
    if is_value(core):
        return lead + _W + trail
    if _W in core and core != _W and _SEG.search(core) is None:
        return lead + _W + trail
    return lead + _segments(core) + trail


def mask_spans(message: str) -> str:
    """The message, capped, with the variables that span spaces masked (one combined regex pass)."""
    text = str(message)[:MAX_MESSAGE_CHARS]
    words = text.split(None, MAX_WORDS)
    if len(words) > MAX_WORDS:  # only the words that are read are masked
        text = " ".join(words[:MAX_WORDS])
    if _SPAN_HINT.search(text) is not None:
        text = _SPANS.sub(_span, text)
    return text


def _bracket(token: str) -> int:
    """1 when the token opens a bracket it does not close, -1 when it closes one it did not open, else 0."""
    if "[" not in token and "]" not in token and "(" not in token and ")" not in token:
        return 0
    if token.count("[") > token.count("]") or token.count("(") > token.count(")"):
        return 1
    if token.count("]") > token.count("[") or token.count(")") > token.count("("):
        return -1
    return 0


def _list_value(group: list[str]) -> str | None:
    """A bracketed list whose items are all values (`[1 2 3]`, `(a, b)` masked) as one token, else None."""
    m = _LIST.fullmatch(" ".join(group))
    return None if m is None else m.group(1) + _W + m.group(2)


class WordCache:
    """Tokens of the words seen in one batch (bounded by MAX_CACHE), and the words whose tokens need structure
    (annotations, brackets)."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.flags: dict[str, int] = {}  # word -> 2 an annotation, 1 / -1 opens / closes a bracket
        self.shape_tokens: dict[bytes, str] = {}  # word shape (digits as 0) -> its digit-free token
        self.shapes: dict[bytes, tuple[str, ...]] = {}  # message shape (digits as 0) -> its digit-free tokens
        self.budget = MAX_CLASSIFIED_CHARS  # characters of distinct words left to classify in full

    def token(self, word: str) -> str:
        """The token of a word. Every rule looks at where digits are, never at which digits: a word whose token
        keeps no digit has the token of every word of its *shape* (digits as 0), so `blk_-7724` and
        `blk_-1093` are classified once."""
        shape = _shape(word)
        tok = self.shape_tokens.get(shape)
        room = len(self.tokens) < MAX_CACHE
        if tok is None:
            if self.budget > 0:
                self.budget -= len(word)
                tok = word_token(word)
            else:  # past the batch's budget (hostile input): a word with a digit or a long word is a value
                tok = _W if len(word) > 64 or _DIGIT.search(word) is not None else word
            if room and _DIGIT.search(tok) is None:
                self.shape_tokens[shape] = tok
        flag = 2 if tok in _ANNOTATIONS else _bracket(tok)
        if flag:
            self.flags[word] = flag
        if room:
            self.tokens[word] = tok
        return tok


def tokens(message: str, cache: WordCache | None = None, merge: bool = False) -> tuple[str, ...]:
    """Tokens of one message. `cache` holds word tokens across a batch. A bracketed list of values spread over
    several words is one placeholder; a parenthesised value after a word is dropped (an annotation); with
    `merge`, a run of placeholders is one."""
    cache = cache or WordCache()
    words = mask_spans(message).split()
    if len(words) > MAX_WORDS:
        del words[MAX_WORDS:]
    get, make = cache.tokens.get, cache.token
    out = [get(w) or make(w) for w in words]
    if merge or not cache.flags.keys().isdisjoint(words):
        out = _structured(out, [cache.flags.get(w, 0) for w in words], merge)
    if len(out) > MAX_TOKENS:
        del out[MAX_TOKENS:]
    return _long_runs_merged(out) if len(out) > LONG_RUN else tuple(out)


def message_tokens(message: str, cache: WordCache) -> tuple[str, ...]:
    """`tokens`, once per message shape: messages that differ only in their digits have the same tokens when
    those tokens keep no digit (the same argument as for words)."""
    text = message[:MAX_MESSAGE_CHARS]
    shape = _shape(text)
    hit = cache.shapes.get(shape)
    if hit is not None:
        return hit
    out = tokens(text, cache)
    if len(cache.shapes) < MAX_CACHE and _DIGIT.search(" ".join(out)) is None:
        cache.shapes[shape] = out
    return out


def _structured(toks: list[str], flags: list[int], merge: bool) -> list[str]:
    """Tokens of a message with annotations, brackets or (with `merge`) placeholder runs in it."""
    out: list[str] = []
    opened = -1  # where an unclosed bracket started in `out`
    for tok, flag in zip(toks, flags):
        if out and (flag == 2 or (merge and tok == _W and out[-1] == _W)):
            continue
        out.append(tok)
        if opened < 0:
            if flag == 1:
                opened = len(out) - 1
        elif flag == -1:
            merged = _list_value(out[opened:])
            if merged is not None:
                out[opened:] = [merged]
            opened = -1
        elif len(out) - opened > MAX_LIST:
            opened = -1
    return out


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
    return " ".join(tokens(message))
