"""Redaction of secrets and personal data in untrusted exception text, before it leaves Healer.

Applied to every collected row (messages, stacks, operation names) as soon as it is read, and once more, as a final
pass, to every text sent to the model or to GitHub (`redact` on the whole request, PR body, comment, file, patch).
Pure and deterministic: the same input always gives the same output, so fingerprints stay stable.

Three layers, all linear in the input (every quantifier is bounded or anchored so that no match attempt re-scans
a run it already scanned):

1. Structural rules: private keys, connection strings, URL userinfo, auth headers, well-known token formats
   (GitHub, OpenAI, Google, Stripe, Azure DevOps, Entra client secrets, npm, Slack, JWT, ...), e-mail addresses.
2. The token detectors of Yelp's `detect-secrets` (pinned in requirements.txt): the regex plugins whose patterns
   are bounded (AWS, Azure storage keys, basic auth, Discord, GitHub, GitLab, Mailchimp, private keys, PyPI,
   SendGrid, Slack, Square, Stripe, Telegram, Twilio, and the Cloudant/SoftLayer URL forms). Its keyword and
   entropy plugins are replaced by (3), and Artifactory/JWT/npm/OpenAI by bounded equivalents in (1): their
   patterns re-scan unbounded runs (quadratic on hostile text).
3. Heuristics on key=value pairs (`key=value`, `key: value`, `"key": "value"`, UPPER_SNAKE and `_private` names,
   query parameters such as `?code=`; hex keys such as Cognitive Services' after a key name), high-entropy
   tokens; run on the text and on its decoded
   view (JSON/backslash escapes undone), and every value found is replaced in the text in each of its forms.

Caps: `MAX_CHARS` (128 KiB) per call, the rest cut with a marker; the text is processed in pieces of at most
`PIECE_CHARS` (16 KiB, split at line ends) so that the cost per piece is bounded; key=value values at most 512
characters; at most `MAX_VALUES` values replaced per piece.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache
from typing import Any

MARK = "<redacted>"
MAX_CHARS = 128 * 1024
PIECE_CHARS = 16 * 1024
MAX_VALUES = 256
_B = r"(?<![A-Za-z0-9_\-])"  # start of a token run: a match can only begin where a run begins

# (name, pattern, replacement). Order matters: whole structures before the generic shapes.
_RULES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    # the body is base64, line ends and escaped line ends only: a key cut short (no END line) never swallows the
    # text after it, nor the closing quote of the JSON string it sits in
    ("private-key", re.compile(r"-----BEGIN [A-Z ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
                               r"(?:(?:\r?\n|\\n)[A-Za-z-]{1,32}: [^\r\n\\\"]{0,128})*"
                               r"(?:[A-Za-z0-9+/=\r\n]|\\[nr]){0,16384}(?:-----END [A-Z ]{0,40}PRIVATE KEY(?: BLOCK)?-----)?"),
     "<redacted:private-key>"),
    ("putty-key", re.compile(r"PuTTY-User-Key-File-\d: .{0,16384}?(?:Private-MAC: \S{0,128}|\Z)", re.S),
     "<redacted:private-key>"),
    # the user may be empty: redis://:password@host is the usual Redis form
    ("url-credentials", re.compile(r"(?i)(?<![a-z0-9+.\-])([a-z][a-z0-9+.\-]{0,31}://)[^\s/@:]{0,256}:[^\s/@]{1,256}@"),
     r"\1<redacted>@"),
    ("conn-secret", re.compile(
        r"(?i)\b(AccountKey|SharedAccessKey|SharedAccessSignature|Password|Pwd|ClientSecret|Client_Secret|"
        r"ApiKey|Api_Key|AccessKey|Access_Key|Secret|Token|Sig|InstrumentationKey)\s*=\s*(\"[^\"]{0,512}\"|"
        r"'[^']{0,512}'|"
        # a connection-string value runs to the `;` (spaces included: Password=correct horse;), else to a space
        r"[^;&\s\"',\\]{1,512}(?:[ \t]{1,8}[^;&\s\"',=\\]{1,64}){0,16}(?=;)|[^;&\s\"',\\]{1,512})"),
     r"\1=<redacted>"),
    ("bearer", re.compile(r"(?i)\b(Bearer|Basic|Token|SharedAccessSignature)\s{1,8}[A-Za-z0-9\-._~+/]{8,4096}=*"),
     r"\1 <redacted>"),
    ("auth-header", re.compile(r"(?i)\b(Authorization|Proxy-Authorization|X-Api-Key|Api-Key|Ocp-Apim-Subscription-Key"
                               r"|X-Functions-Key|X-Goog-Api-Key)\s{0,8}[:=]\s{0,8}(?:[A-Za-z]{2,32}[ \t]{1,4})?"
                               r"[^\s,;\"'\\]{1,4096}"),
     r"\1: <redacted>"),
    ("jwt", re.compile(_B + r"eyJ[A-Za-z0-9_\-]{5,4096}\.[A-Za-z0-9_\-]{5,8192}\.[A-Za-z0-9_\-]{5,4096}"),
     "<redacted:jwt>"),
    ("github-token", re.compile(_B + r"(?:gh[pousr]_[A-Za-z0-9_]{30,255}|github_pat_[A-Za-z0-9_]{30,255})"),
     "<redacted:token>"),
    ("openai-key", re.compile(_B + r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,255}"), "<redacted:token>"),
    ("aws-key", re.compile(r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"), "<redacted:token>"),
    ("slack-token", re.compile(_B + r"xox[abposr]-[A-Za-z0-9\-]{10,255}"), "<redacted:token>"),
    ("google-api-key", re.compile(_B + r"AIza[0-9A-Za-z\-_]{35}"), "<redacted:token>"),
    ("stripe-key", re.compile(_B + r"(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,255}"), "<redacted:token>"),
    ("npm-token", re.compile(_B + r"npm_[A-Za-z0-9]{36}"), "<redacted:token>"),
    ("mailgun-key", re.compile(_B + r"key-[0-9a-f]{32}\b"), "<redacted:token>"),
    ("sendgrid-key", re.compile(_B + r"SG\.[A-Za-z0-9_\-]{16,32}\.[A-Za-z0-9_\-]{16,64}"), "<redacted:token>"),
    ("artifactory", re.compile(_B + r"(?:AKC[a-zA-Z0-9]{10,128}|AP[\dABCDEF][a-zA-Z0-9]{8,128})(?![A-Za-z0-9])"),
     "<redacted:token>"),
    ("entra-client-secret", re.compile(r"(?<![A-Za-z0-9_~.\-])[A-Za-z0-9_~.\-]{3}\dQ~[A-Za-z0-9_~.\-]{31,34}"
                                       r"(?![A-Za-z0-9_~.\-])"), "<redacted:token>"),
    ("azure-devops-pat", re.compile(r"(?<![A-Za-z0-9])(?:[a-z2-7]{52}|[A-Za-z0-9]{76}AZDO[A-Za-z0-9]{4})"
                                    r"(?![A-Za-z0-9])"), "<redacted:token>"),
    ("email", re.compile(r"(?<![\w.+%\-])[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){0,8}"
                         r"\.[A-Za-z]{2,24}\b"), "<email>"),
    ("long-base64", re.compile(r"(?<![A-Za-z0-9+/])(?=[A-Za-z0-9+/]{0,4096}[0-9])(?=[A-Za-z0-9+/]{0,4096}[A-Z])"
                               r"[A-Za-z0-9+/]{40,4096}={0,2}(?![A-Za-z0-9+/=])"), "<redacted:blob>"),
)

# Key names whose value is a secret whatever it looks like, and names whose value is one if it looks random.
_STRONG = ("password", "passwd", "pwd", "passphrase", "secret", "token", "apikey", "accesskey", "accountkey",
           "privatekey", "credential", "connectionstring", "sharedaccess", "instrumentationkey", "authorization",
           "signature", "subscriptionkey", "functionkey", "masterkey", "hostkey", "sas")
_WEAK_EXACT = frozenset({"key", "code", "sig", "auth", "pat", "pass", "pw", "se", "sv"})
_KEY = (r"(?P<q>\\?[\"']?)(?<![A-Za-z0-9_.\-$])(?P<key>[A-Za-z_$][A-Za-z0-9_.\-$]{0,63})(?P=q)\s{0,8}"
        r"(?::=|=>|=|:(?!//))\s{0,8}")
# A bare value is consumed; a quoted one only looked at (lookahead), so that key=value pairs inside a quoted string
# (a JSON message holding "password=...") are found too. A quoted value stops at the next quote: linear.
_KV_BARE = re.compile(_KEY + r"(?P<value>[^\s,;&\"'<>{}\[\]()|\\]{1,512})")
_KV_QUOTED = re.compile(_KEY + r"(?=(?P<value>\\?\"[^\"\r\n\\]{0,512}\\?\"|'[^'\r\n]{0,512}'))")
_TOKEN = re.compile(r"(?<![A-Za-z0-9+/_\-~.=])[A-Za-z0-9+/_\-~.]{20,512}={0,2}")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ESCAPES = re.compile(r"\\([\"\\/'])")


# detect-secrets plugin -> literals one of which its patterns need (a cheap test before running them)
_DS_PLUGINS = {
    "aws.AWSKeyDetector": ("A3T", "AKIA", "ASIA", "ABIA", "ACCA", "aws", "AWS"),
    "azure_storage_key.AzureStorageKeyDetector": ("AccountKey=",),
    "basic_auth.BasicAuthDetector": ("://",),
    "discord.DiscordBotTokenDetector": ("",),
    "github_token.GitHubTokenDetector": ("gh",),
    "gitlab_token.GitLabTokenDetector": ("gl", "GR1348941"),
    "mailchimp.MailchimpDetector": ("-us",),
    "pypi_token.PypiTokenDetector": ("pypi-",),
    "sendgrid.SendGridDetector": ("SG.",),
    "slack.SlackDetector": ("xox", "hooks.slack.com"),
    "square_oauth.SquareOAuthDetector": ("sq0csp-",),
    "stripe.StripeDetector": ("k_live_",),
    "telegram_token.TelegramBotTokenDetector": (":",),
    "twilio.TwilioKeyDetector": ("AC", "SK"),
    "private_key.PrivateKeyDetector": ("PRIVATE KEY", "PuTTY"),
    # keyword forms backtrack on runs of spaces; only their URL forms are used
    "cloudant.CloudantDetector": ("cloudant.com",),
    "softlayer.SoftlayerDetector": ("softlayer.com",),
}


@lru_cache(maxsize=1)
def _detect_secrets_patterns() -> tuple[tuple[tuple[str, ...], re.Pattern[str]], ...]:
    """The bounded regex detectors of detect-secrets (see the module docstring), each with its literals."""
    import importlib
    out = []
    for path, literals in _DS_PLUGINS.items():
        module, name = path.split(".")
        detector = getattr(importlib.import_module(f"detect_secrets.plugins.{module}"), name)()
        keyword_forms = name in ("CloudantDetector", "SoftlayerDetector")
        out += [(literals, p) for p in detector.denylist if not keyword_forms or p.pattern.startswith("(?:http")]
    return tuple(out)


def _entropy(text: str) -> float:
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _looks_random(value: str) -> bool:
    classes = sum((any(c.islower() for c in value), any(c.isupper() for c in value), any(c.isdigit() for c in value)))
    return len(value) >= 12 and classes >= 2 and _entropy(value) >= 3.0


def _secret_key(key: str) -> str | None:
    """'strong', 'weak' or None for a key name (UPPER_SNAKE, camelCase, _private and dotted names included)."""
    k = key.lower().lstrip("_$").replace("_", "").replace("-", "").replace(".", "")
    if k.endswith(("name", "id", "type", "version", "endpoint", "url", "uri", "count", "length", "expiry")):
        return None
    if any(s in k for s in _STRONG):
        return "strong"
    if k in _WEAK_EXACT or k.endswith(("key", "pass")):
        return "weak"
    return None


def _kv_values(text: str) -> list[str]:
    out = []
    for m in (*_KV_QUOTED.finditer(text), *_KV_BARE.finditer(text)):
        kind = _secret_key(m["key"])
        if kind is None:
            continue
        value = m["value"].strip("\\\"'")
        if not value or "redacted" in value or value == "<email>" or value.lower() in ("null", "none", "true",
                                                                                        "false", "undefined"):
            continue
        if kind == "strong" or _looks_random(value):
            out.append(value)
    return out


def _token_values(text: str) -> list[str]:
    out = []
    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        core = tok.rstrip("=")
        if _GUID.match(core) or core.count(".") > 1 or "redacted" in core:
            continue
        classes = sum((any(c.islower() for c in core), any(c.isupper() for c in core),
                       any(c.isdigit() for c in core)))
        if classes == 3 and _entropy(core) >= 4.0:
            out.append(tok)
    return out


def _ds_values(text: str) -> list[str]:
    out = []
    for literals, pattern in _detect_secrets_patterns():
        if not any(lit in text for lit in literals):
            continue
        for m in pattern.finditer(text):
            group = m.group(1) if m.re.groups and m.group(1) and len(m.group(1)) >= 8 else m.group(0)
            value = group.strip(" \t\"'=:")
            if len(value) >= 8 and "redacted" not in value:
                out.append(value)
    return out


def _values(text: str) -> set[str]:
    found = set(_kv_values(text)) | set(_token_values(text)) | set(_ds_values(text))
    if "\\\"" in text or "\\'" in text:      # the decoded view: key=value pairs inside JSON-escaped strings
        found.update(_kv_values(_ESCAPES.sub(r"\1", text)))
    return found


def _forms(value: str) -> list[str]:
    """The value as written in the text: as is, and with quotes and backslashes escaped as JSON would."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return [value] if escaped == value else [escaped, value]


# Lower-case literals one of which a rule needs: a rule whose literals are all absent is not run (most text has
# none of them, and a skipped scan is the cheapest one).
_NEEDS: dict[str, tuple[str, ...]] = {
    "private-key": ("private key",), "putty-key": ("putty-user-key",), "url-credentials": ("://",),
    "conn-secret": ("=",), "bearer": ("bearer", "basic", "token", "sharedaccesssignature"),
    "auth-header": ("authorization", "api-key", "apikey", "subscription-key", "functions-key", "goog-api-key"),
    "jwt": ("eyj",), "github-token": ("gh", "github_pat_"), "openai-key": ("sk-",), "slack-token": ("xox",),
    "google-api-key": ("aiza",), "stripe-key": ("_live_", "_test_"), "npm-token": ("npm_",),
    "mailgun-key": ("key-",), "sendgrid-key": ("sg.",), "artifactory": ("akc", "ap"), "entra-client-secret": ("q~",),
    "email": ("@",),
}


def _redact_piece(text: str) -> str:
    lower = text.lower()
    for name, pattern, replacement in _RULES:
        needs = _NEEDS.get(name)
        if needs and not any(n in lower for n in needs):
            continue
        text = pattern.sub(replacement, text)
    values = sorted(_values(text), key=len, reverse=True)[:MAX_VALUES]
    for value in values:
        for form in _forms(value):
            text = text.replace(form, MARK)
    return text


def _pieces(text: str) -> list[str]:
    pieces, start = [], 0
    while start < len(text):
        end = min(start + PIECE_CHARS, len(text))
        if end < len(text):
            cut = text.rfind("\n", start + PIECE_CHARS // 2, end)
            end = cut + 1 if cut != -1 else end
        pieces.append(text[start:end])
        start = end
    return pieces


def redact(text: str | None) -> str:
    """`text` with every secret-looking span replaced (at most MAX_CHARS characters are kept)."""
    if not text:
        return text or ""
    cut = ""
    if len(text) > MAX_CHARS:
        cut = f"\n[{len(text) - MAX_CHARS} characters cut by Healer's redaction cap]"
        text = text[:MAX_CHARS]
    return "".join(_redact_piece(p) for p in _pieces(text)) + cut


def redact_json(value: Any, depth: int = 0) -> Any:
    """Every string of a JSON-like value (keys too) redacted in its decoded form, before it is serialised: a secret
    inside a quoted JSON string is seen as the sender wrote it, not JSON-escaped."""
    if isinstance(value, str):
        return redact(value)
    if depth > 32:
        return "<redacted:too deep>"
    if isinstance(value, dict):
        return {redact(str(k)): redact_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_json(v, depth + 1) for v in value]
    return value


def findings(text: str) -> list[str]:
    """Names of the rules and detectors that would fire on `text` (for tests and the audit, never the values)."""
    text = (text or "")[:PIECE_CHARS]
    names = [name for name, pattern, _ in _RULES if pattern.search(text)]
    if _values(text):
        names.append("value")
    return names
