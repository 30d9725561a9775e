"""Stack traces: parse .NET, Python, Java and Node stacks (raw text or App Insights `details`), normalise frames,
and compute stable fingerprints.

A fingerprint is the exception type plus the top in-app frames, normalised: no line numbers or columns, no
framework or library frames, no compiler-generated names (async state machines, lambdas, closures, proxies),
no deploy-specific path prefixes. The same root cause on another day, instance, build or role has the same
fingerprint.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any
from collections.abc import Iterable

from shared import safejson

TOP_FRAMES = 3
MAX_STACK_CHARS = 16_000   # hard cap of one stack's text; the rest is not parsed
MAX_LINE_CHARS = 1_000     # a longer line is not a frame (no frame regex ever sees more)
MAX_FRAMES = 200


@dataclass(frozen=True)
class Frame:
    function: str  # normalised qualified function name
    file: str  # normalised repo-relative-ish path ("" when unknown)
    line: int | None
    in_app: bool
    lang: str

    @property
    def key(self) -> str:
        base = self.file.rsplit("/", 1)[-1] if self.file else ""
        return f"{base}:{self.function}" if base else self.function


# ---------------------------------------------------------------------------------------------- normalisation

_DEPLOY_PREFIXES = re.compile(
    r"^(?:[A-Za-z]:)?(?:/tmp/[0-9a-f]{6,}/|/home/site/wwwroot/|/usr/src/app/|/app/|/srv/app/|/workspace/|"
    r"/opt/app/|/var/task/|/home/runner/work/[^/]+/[^/]+/|/src/|/code/|/w/|/home/[^/]+/[^/]+/)")
_HASHED_FILE = re.compile(r"\.[0-9a-f]{6,}(?=\.(?:m?js|cjs)$)")
_ARITY = re.compile(r"`\d+")
_GENERIC_ARGS = re.compile(r"\[[^\[\]]*\]|<[A-Z][\w.,\s]*>")


def normalise_path(path: str) -> str:
    path = (path or "").strip().replace("\\", "/")
    path = re.sub(r"^file://", "", path)
    path = re.sub(r"\?.*$", "", path)
    path = re.sub(r"^webpack:///?(?:\./)?", "", path)
    previous = None
    while previous != path:
        previous = path
        path = _DEPLOY_PREFIXES.sub("", path)
    path = _HASHED_FILE.sub("", path)
    return path.lstrip("./")


def _dotnet_name(name: str) -> str:
    name = _ARITY.sub("", name.strip())
    paren = name.find("(")
    if paren >= 0 and name.endswith(")"):  # parameters (what `\(.*\)$` removed, without its quadratic scan)
        name = name[:paren]
    name = re.sub(r"\.<(\w+)>d__\d+\.MoveNext$", r".\1", name)  # async/iterator state machine
    name = re.sub(r"\.<>c__DisplayClass[\w]+\.<(\w+)>b__\w+$", r".\1.lambda", name)  # closure lambda
    name = re.sub(r"\.<>c\.<(\w+)>b__\w+$", r".\1.lambda", name)  # static lambda
    name = re.sub(r"\.<(\w+)>g__(\w+)\|\w+$", r".\1.\2", name)  # local function
    name = re.sub(r"<(\w+)>b__[\w]+", r"\1.lambda", name)
    name = re.sub(r"\.<>c(?:__DisplayClass\w+)?", "", name)
    name = re.sub(r"\.MoveNext$", "", name)
    return name


def _java_name(name: str) -> str:
    name = re.sub(r"\$\$Lambda\$?[\w/]*(?:/0x[0-9a-f]+)?", "$$Lambda", name)
    name = re.sub(r"lambda\$(\w+?)\$\d+", r"lambda$\1", name)
    name = re.sub(r"\$\$(?:EnhancerBy\w+|FastClassBy\w+|SpringCGLIB)\$\$[0-9a-f]+", "", name)
    name = re.sub(r"\$\d+(?=\.|$)", "$anon", name)
    name = re.sub(r"\bGeneratedMethodAccessor\d+", "GeneratedMethodAccessor", name)
    name = re.sub(r"\$HibernateProxy\$\w+", "", name)
    return name


def _node_name(name: str) -> str:
    name = re.sub(r"^(?:async |new )", "", name.strip())
    alias = re.search(r"\[as \w+\]$", name)
    if alias:
        name = name[:alias.start()].rstrip()
    return name or "<anonymous>"


# ---------------------------------------------------------------------------------------------- framework frames

_DOTNET_FRAMEWORK = re.compile(r"^(?:System|Microsoft|Internal|Newtonsoft|Grpc|Azure\.Core|Polly|Castle|Npgsql|"
                               r"StackExchange|Dapper|MediatR|AutoMapper|FluentValidation|Serilog)(?:\.|$)")
_JAVA_FRAMEWORK = re.compile(r"^(?:java|javax|jakarta|sun|com\.sun|jdk|kotlin|kotlinx|scala|org\.springframework|"
                             r"org\.apache|org\.hibernate|io\.netty|reactor|io\.micrometer|com\.fasterxml|"
                             r"org\.junit|com\.azure|com\.microsoft|okhttp3|io\.grpc|org\.eclipse|org\.glassfish)\.")
_PY_FRAMEWORK = re.compile(r"(?:site-packages/|dist-packages/|^/usr/lib/python|^/usr/local/lib/python|"
                           r"^<frozen |lib/python3\.\d+/|^azure_functions_worker/|/azure_functions_worker/)")
_NODE_FRAMEWORK = re.compile(r"(?:node_modules/|^node:|^internal/|^<anonymous>$|^native$)")


def _in_app(lang: str, function: str, file: str, in_app_prefixes: tuple[str, ...]) -> bool:
    if in_app_prefixes:
        if any(function.startswith(p) or file.startswith(p) for p in in_app_prefixes):
            return True
    if "GeneratedMethodAccessor" in function or function.endswith("$$Lambda") or "$$" in function \
            or file == "<generated>":
        return False  # runtime-generated proxies and accessors
    if lang == "dotnet":
        return not _DOTNET_FRAMEWORK.match(function)
    if lang == "java":
        return not _JAVA_FRAMEWORK.match(function)
    if lang == "python":
        return not _PY_FRAMEWORK.search(file)
    if lang == "node":
        return not _NODE_FRAMEWORK.search(file or function)
    return True


# ---------------------------------------------------------------------------------------------- parsing

_RE_DOTNET = re.compile(r"^\s*at (?P<fn>[^\s(][^(]*\([^)]*\))(?: in (?P<file>.+?):line (?P<line>\d+))?\s*$")
_RE_PY = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<fn>.*\S)\s*$')
_RE_JAVA = re.compile(r"^\s*at (?P<fn>[\w$.<>/]+)\((?P<file>[^:)]*)(?::(?P<line>\d+))?\)\s*$")
# no parentheses inside the function or the location: each part is found in one pass (the former `.+?` pair
# backtracked cubically on long lines of " (")
_RE_NODE_NAMED = re.compile(r"^\s*at (?P<fn>[^()]+?) \((?P<file>[^()]+?)(?::(?P<line>\d+))?(?::\d+)?\)\s*$")
_RE_NODE_BARE = re.compile(r"^\s*at (?P<file>(?:/|[A-Za-z]:\\|node:|file://|webpack:)[^\s]+?)(?::(?P<line>\d+))?"
                           r"(?::\d+)?\s*$")


def _parse_line(line: str, prefixes: tuple[str, ...]) -> Frame | None:
    m = _RE_PY.match(line)
    if m:
        file = normalise_path(m["file"])
        fn = m["fn"]
        module = re.sub(r"\.py$", "", file).replace("/", ".")
        return Frame(f"{module}.{fn}" if module else fn, file, int(m["line"]), _in_app("python", fn, m["file"]
                     .replace("\\", "/"), prefixes) and _in_app("python", fn, file, prefixes), "python")
    m = _RE_JAVA.match(line)
    if m and ("." in m["fn"]) and (m["file"].endswith((".java", ".kt", ".scala", ".groovy")) or
                                  m["file"] in ("Native Method", "Unknown Source", "<generated>")):
        fn = _java_name(re.sub(r"^[\w.\-]+/", "", m["fn"]))  # drop the JPMS module ("java.base/")
        file = m["file"]
        if file.endswith((".java", ".kt", ".scala", ".groovy")):
            package = fn.split("$", 1)[0].rsplit(".", 2)[0]  # com.contoso.billing.Invoice.render -> package
            file = package.replace(".", "/") + "/" + file if "." in fn.split("$", 1)[0] else file
        return Frame(fn, file, int(m["line"]) if m["line"] else None, _in_app("java", fn, m["file"], prefixes),
                     "java")
    m = _RE_DOTNET.match(line)
    if m and ("(" in m["fn"]) and not m["fn"].startswith(("/", "file:", "node:")) and " (" not in m["fn"]:
        fn = _dotnet_name(m["fn"])
        file = normalise_path(m["file"] or "")
        return Frame(fn, file, int(m["line"]) if m["line"] else None, _in_app("dotnet", fn, file, prefixes),
                     "dotnet")
    m = _RE_NODE_NAMED.match(line)
    if m:
        raw_file = m["file"].replace("\\", "/")
        file = normalise_path(raw_file)
        fn = _node_name(m["fn"])
        located = "/" in raw_file or raw_file.endswith((".js", ".ts", ".mjs", ".cjs"))
        return Frame(fn, file if located else "", int(m["line"]) if m["line"] else None,
                     located and _in_app("node", fn, raw_file, prefixes), "node")
    m = _RE_NODE_BARE.match(line)
    if m:
        raw_file = m["file"].replace("\\", "/")
        file = normalise_path(raw_file)
        return Frame("<anonymous>", file, int(m["line"]) if m["line"] else None,
                     _in_app("node", "", raw_file, prefixes), "node")
    return None


def parse_text(stack: str, in_app_prefixes: Iterable[str] = ()) -> list[Frame]:
    """Frames of a raw stack, innermost (throwing) frame first, whatever the language."""
    prefixes = tuple(p for p in in_app_prefixes if p)
    lines = (stack or "")[:MAX_STACK_CHARS].splitlines()
    frames = [f for f in (_parse_line(line, prefixes) for line in lines if len(line) <= MAX_LINE_CHARS)
              if f is not None][:MAX_FRAMES]
    if frames and frames[0].lang == "python":
        frames.reverse()  # Python prints the outermost call first
    return frames


def _parsed_stack(items: list[Any], prefixes: tuple[str, ...]) -> list[Frame]:
    frames = []
    for item in items[:MAX_FRAMES]:
        if not isinstance(item, dict):
            continue
        raw = str(item.get("method") or "")
        file = normalise_path(str(item.get("fileName") or ""))
        lang = "python" if file.endswith(".py") else "java" if file.endswith((".java", ".kt")) else \
            "node" if file.endswith((".js", ".ts", ".mjs", ".cjs")) else "dotnet"
        fn = {"dotnet": _dotnet_name, "java": _java_name, "node": _node_name}.get(lang, lambda s: s)(raw)
        line = item.get("line")
        frames.append(Frame(fn, file, line if isinstance(line, int) and line > 0 else None,
                            _in_app(lang, fn, str(item.get("fileName") or "").replace("\\", "/"), prefixes)
                            and _in_app(lang, fn, file, prefixes), lang))
    return frames


def parse_details(details: Any, in_app_prefixes: Iterable[str] = ()) -> tuple[list[Frame], str]:
    """Frames and the raw stack text from App Insights `details` (JSON text or list) or a plain stack string.

    The outermost exception's stack is used (`details[0]`): parsedStack when the SDK sent one, else rawStack.
    """
    prefixes = tuple(p for p in in_app_prefixes if p)
    value = details
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("[", "{")):
            try:
                value = safejson.loads(text[:MAX_STACK_CHARS * 4], MAX_STACK_CHARS * 16)
            except ValueError:  # cut short (the query keeps SAMPLE_CHARS) or hostile: keep what can be read
                return _salvage(text[:MAX_STACK_CHARS * 4], prefixes)
        else:
            return parse_text(text, prefixes), text[:MAX_STACK_CHARS]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value or not isinstance(value[0], dict):
        return [], ""
    outer = value[0]
    raw = outer.get("rawStack") or outer.get("stack") or ""
    if isinstance(outer.get("parsedStack"), list) and outer["parsedStack"]:
        frames = _parsed_stack(outer["parsedStack"], prefixes)
        text = raw or "\n".join(f"   at {f.function}" + (f" in {f.file}:line {f.line}" if f.file else "")
                                for f in frames)
        return frames, str(text)[:MAX_STACK_CHARS]
    return parse_text(str(raw), prefixes), str(raw)[:MAX_STACK_CHARS]


_PARSED_ITEM = re.compile(r'\{[^{}]{0,2000}"method"\s*:[^{}]{0,2000}\}')
_RAW_STACK = re.compile(r'"(?:rawStack|stack)"\s*:\s*"')


def _salvage(text: str, prefixes: tuple[str, ...]) -> tuple[list[Frame], str]:
    """Frames from `details` JSON that does not parse, typically cut short by the query: the complete parsedStack
    items before the cut, else the rawStack string up to the cut. Linear: one scan each."""
    items = []
    for m in _PARSED_ITEM.finditer(text):
        try:
            item = safejson.loads(m.group(0), 8192)
        except ValueError:
            continue
        if isinstance(item, dict):
            items.append(item)
        if len(items) >= MAX_FRAMES:
            break
    if items:
        frames = _parsed_stack(items, prefixes)
        return frames, "\n".join(f"   at {f.function}" + (f" in {f.file}:line {f.line}" if f.file else "")
                                 for f in frames)[:MAX_STACK_CHARS]
    start = _RAW_STACK.search(text)
    if start:
        raw = _json_string_prefix(text[start.end():])
        return parse_text(raw, prefixes), raw[:MAX_STACK_CHARS]
    return parse_text(text, prefixes), text[:MAX_STACK_CHARS]


def _json_string_prefix(text: str) -> str:
    """The decoded content of a JSON string body that may be cut short (no closing quote, a dangling escape)."""
    end = re.search(r'(?<!\\)(?:\\\\)*"', text)
    body = text[:end.end() - 1] if end else text
    body = re.sub(r"\\(?:u[0-9a-fA-F]{0,3})?$", "", body)   # a dangling backslash or a cut \u escape
    try:
        return json.loads('"' + body + '"')
    except ValueError:
        return body.replace("\\n", "\n").replace('\\"', '"')


# ---------------------------------------------------------------------------------------------- fingerprints

def normalise_type(exc_type: str) -> str:
    t = _ARITY.sub("", (exc_type or "").strip())
    t = re.sub(r"^builtins\.", "", t)
    t = re.sub(r"^(?:Uncaught\s+)", "", t)
    return t[:200] or "Exception"


def stack_signature(exc_type: str, frames: list[Frame], top: int = TOP_FRAMES) -> str | None:
    """The canonical text a stack fingerprint hashes, or None when there are no frames at all."""
    if not frames:
        return None
    app = [f for f in frames if f.in_app]
    chosen = (app or frames)[:top]
    kind = "app" if app else "lib"
    return "stack|" + normalise_type(exc_type) + "|" + kind + "|" + "|".join(f.key for f in chosen)


def message_signature(exc_type: str, template: str) -> str:
    return "message|" + normalise_type(exc_type) + "|" + template


def fingerprint(signature: str) -> str:
    return hashlib.sha256(signature.encode("utf-8")).hexdigest()[:32]


def short(fp: str) -> str:
    return fp[:12]


def in_app_files(frames: list[Frame], limit: int = 5) -> list[str]:
    """Distinct source files named by in-app frames, innermost first."""
    out: list[str] = []
    for f in frames:
        if f.in_app and f.file and f.file not in out and not f.file.startswith("<"):
            out.append(f.file)
        if len(out) >= limit:
            break
    return out
