"""Redaction of secrets and personal data in untrusted exception text, before it leaves Healer.

Applied to every collected row (messages, stacks, operation names) as soon as it is read, and once more to every
text sent to the model or to GitHub. Pure and deterministic: the same input always gives the same output, so
fingerprints computed after redaction stay stable.
"""
from __future__ import annotations

import re

MARK = "<redacted>"

# (name, pattern, replacement). Order matters: whole structures (private keys, connection strings, URLs with
# credentials) before the generic key=value and token shapes.
_RULES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("private-key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
                               re.S), "<redacted:private-key>"),
    # the user may be empty: redis://:password@host is the usual Redis form
    ("url-credentials", re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/@:]*:[^\s/@]+@"), r"\1<redacted>@"),
    ("conn-secret", re.compile(
        r"(?i)\b(AccountKey|SharedAccessKey|SharedAccessSignature|Password|Pwd|ClientSecret|Client_Secret|"
        r"ApiKey|Api_Key|AccessKey|Access_Key|Secret|Token|Sig)\s*=\s*(\"[^\"]*\"|'[^']*'|"
        # a connection-string value runs to the `;` (spaces included: Password=correct horse;), else to a space
        r"[^;&\s\"',]+(?:[ \t]+[^;&\s\"',=]+)*(?=;)|[^;&\s\"',]+)"),
     r"\1=<redacted>"),
    ("bearer", re.compile(r"(?i)\b(Bearer|Basic|Token|SharedAccessSignature)\s+[A-Za-z0-9\-._~+/]{8,}=*"),
     r"\1 <redacted>"),
    ("auth-header", re.compile(r"(?i)\b(Authorization|Proxy-Authorization|X-Api-Key|Api-Key|Ocp-Apim-Subscription-Key"
                               r"|X-Functions-Key)\s*[:=]\s*[^\r\n,;]+"), r"\1: <redacted>"),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}"), "<redacted:jwt>"),
    ("github-token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"), "<redacted:token>"),
    ("openai-key", re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_\-]{20,}"), "<redacted:token>"),
    ("aws-key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "<redacted:token>"),
    ("slack-token", re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"), "<redacted:token>"),
    ("key-value", re.compile(
        r"(?i)(\"?\b(?:password|passwd|pwd|secret|client[_-]?secret|api[_-]?key|apikey|access[_-]?token|"
        r"refresh[_-]?token|auth[_-]?token|token|private[_-]?key|connection[_-]?string|sas)\b\"?\s*[:=]\s*)"
        r"(\"[^\"]*\"|'[^']*'|[^\s,;&\"'}]+)"), r"\1<redacted>"),
    ("email", re.compile(r"(?<![\w.+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b"),
     "<email>"),
    ("long-base64", re.compile(r"(?<![A-Za-z0-9+/])(?=[A-Za-z0-9+/]*[0-9])(?=[A-Za-z0-9+/]*[A-Z])"
                               r"[A-Za-z0-9+/]{40,}={0,2}(?![A-Za-z0-9+/=])"), "<redacted:blob>"),
)


def redact(text: str | None) -> str:
    """`text` with every secret-looking span replaced."""
    if not text:
        return text or ""
    for _, pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


def findings(text: str) -> list[str]:
    """Names of the rules that would fire on `text` (for tests and the audit trail, never the values)."""
    return [name for name, pattern, _ in _RULES if pattern.search(text or "")]
