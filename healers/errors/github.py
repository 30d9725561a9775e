"""GitHub through githubkit: the few REST calls the error healer makes. Never merges, never force-pushes a branch
that has an open pull request, never touches the base branch, and never writes a file outside Healer's triage
folder (`write_prefix`): a branch Healer pushes carries no source, build, test or CI change that a push-triggered
workflow could run.

Calls: GET /repos/{o}/{r}, GET /repos/{o}/{r}/git/ref/heads/{b}, POST /repos/{o}/{r}/git/refs,
PATCH /repos/{o}/{r}/git/refs/heads/{b}, GET/PUT /repos/{o}/{r}/contents/{path}, GET /repos/{o}/{r}/pulls?head=,
POST /repos/{o}/{r}/pulls (draft), PATCH /repos/{o}/{r}/pulls/{n}, GET/POST /repos/{o}/{r}/issues/{n}/comments.

Auth: a token, or a GitHub App installation (`GitHubApp`): githubkit signs an RS256 app JWT (iss = app id, 10
minutes) and exchanges it at POST /app/installations/{id}/access_tokens for an installation token, which it caches
until a minute before its `expires_at` and then refreshes by itself.
"""
from __future__ import annotations

import base64
import hashlib
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

from healers.errors.redact import redact
from healers.errors.triage import TRIAGE_DIR


class GitHubError(Exception):
    pass


class GitHubAuthError(GitHubError):
    """GitHub refused Healer's credentials: every further call would fail the same way."""


@dataclass(frozen=True)
class GitHubApp:
    """A GitHub App installation. `private_key` is the app's PEM private key (never printed)."""
    app_id: int
    installation_id: int
    private_key: str = field(repr=False)


MAX_PRIVATE_KEY_CHARS = 16_000


def app_private_key(text: str) -> str:
    """The app's PEM private key, checked: an RSA private key without a passphrase (GitHub App keys are RSA and
    the JWT is RS256). Accepts the key with its newlines written as the two characters backslash-n, as app settings
    sometimes hold it. Raises ValueError with a message that quotes nothing of the key."""
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    pem = text.strip()
    if "\n" not in pem and "\\n" in pem:
        pem = pem.replace("\\n", "\n")
    if not pem or len(pem) > MAX_PRIVATE_KEY_CHARS or "-----BEGIN" not in pem:
        raise ValueError("is not a PEM private key")
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("is not a readable PEM private key (or it has a passphrase)") from None
    except Exception:  # cryptography's UnsupportedAlgorithm and the like
        raise ValueError("is not a supported PEM private key") from None
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("is not an RSA private key (GitHub App keys are RSA)")
    return pem + "\n"


_TOKEN_CACHES: dict[str, Any] = {}  # credentials digest -> githubkit MemCacheStrategy
MAX_TOKEN_CACHES = 8


def _token_cache(api_url: str, app: GitHubApp) -> Any:
    """githubkit's default cache is process-wide and keyed by app id and installation id only: a second key or API
    host for the same ids would reuse the first one's JWT and installation token. One cache per credentials (and
    host) keeps them apart while a warm host still reuses an installation token across runs until it expires."""
    from githubkit.cache import MemCacheStrategy
    digest = hashlib.sha256("\0".join((api_url, str(app.app_id), str(app.installation_id),
                                        app.private_key)).encode()).hexdigest()
    if digest not in _TOKEN_CACHES:
        while len(_TOKEN_CACHES) >= MAX_TOKEN_CACHES:
            _TOKEN_CACHES.pop(next(iter(_TOKEN_CACHES)))
        _TOKEN_CACHES[digest] = MemCacheStrategy()
    return _TOKEN_CACHES[digest]


MAX_PATH_CHARS = 400
WRITE_PREFIX = TRIAGE_DIR.strip("/") + "/"
MAX_COMMENT_PAGES = 3
_LAST_PAGE = re.compile(r'<[^>]*[?&]page=(\d+)[^>]*>;\s*rel="last"')
_UNSAFE_PATH_CHARS = re.compile(r"[\x00-\x1f\x7f\\?#%]")


def safe_path(path: str) -> bool:
    """A repository-relative file path that cannot leave /repos/{o}/{r}/contents/ once put in a URL.

    Paths reach here from untrusted stack frames. githubkit puts them into the URL as they are and httpx removes
    dot segments, so `app/../../../other/contents/x.py` would read (or write) another repository the token can
    reach; `?`, `#` and `%` would change the query, cut the path or smuggle encoded dots."""
    if not path or len(path) > MAX_PATH_CHARS or path.startswith("/") or _UNSAFE_PATH_CHARS.search(path):
        return False
    return all(seg not in ("", ".", "..") for seg in path.split("/"))


@dataclass(frozen=True)
class PullRef:
    number: int
    state: str  # "open" | "closed"
    merged: bool
    draft: bool
    head: str
    title: str
    created_at: str
    body: str = ""
    author: str = ""


@dataclass(frozen=True)
class Comment:
    id: int
    author: str
    body: str


class Repo:
    def __init__(self, api_url: str, auth: str | GitHubApp, repository: str, *, timeout: float = 30.0,
                 write_prefix: str = WRITE_PREFIX):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from githubkit import AppInstallationAuthStrategy, GitHub
        if repository.count("/") != 1:
            raise GitHubError("repository must be 'owner/name'")
        self.owner, self.name = repository.split("/")
        if not write_prefix.endswith("/") or not safe_path(write_prefix.rstrip("/")):
            raise GitHubError("write_prefix must be a folder path ending in '/'")
        self.write_prefix = write_prefix
        base_url = api_url.rstrip("/") + "/"
        if isinstance(auth, GitHubApp):
            strategy: Any = AppInstallationAuthStrategy(auth.app_id, auth.private_key, auth.installation_id)
            self.gh = GitHub(strategy, base_url=base_url, timeout=timeout, http_cache=False,
                             user_agent="healer-errors", cache_strategy=_token_cache(base_url, auth))
        else:
            self.gh = GitHub(auth, base_url=base_url, timeout=timeout, http_cache=False, user_agent="healer-errors")

    def _call(self, fn, *args, **kwargs) -> Any:
        from githubkit.exception import GitHubException, RequestFailed
        try:
            return fn(self.owner, self.name, *args, **kwargs)
        except RequestFailed as exc:
            status = exc.response.status_code
            if status == 401:
                raise GitHubAuthError(f"GitHub {fn.__name__} answered HTTP 401: bad credentials") from None
            if status == 404:
                return None
            raise GitHubError(f"GitHub {fn.__name__} answered HTTP {status}") from None
        except GitHubException as exc:  # transport (refused, reset, timeout) or auth: this group fails, not the run
            cause = getattr(exc, "exc", None)
            if isinstance(cause, RequestFailed) and cause.request.url.path.endswith("/access_tokens"):
                # the App's installation token request, failed inside githubkit's auth flow
                raise GitHubAuthError(
                    "GitHub App authentication failed: the installation token request answered HTTP "
                    f"{cause.response.status_code} (check HEALER_ERRORS_GITHUB_APP_ID, "
                    "HEALER_ERRORS_GITHUB_APP_INSTALLATION_ID and HEALER_ERRORS_GITHUB_APP_PRIVATE_KEY)") from None
            raise GitHubError(f"GitHub {fn.__name__} failed: {type(exc).__name__}"
                              + (f" ({type(cause).__name__})" if cause is not None else "")) from None

    # ------------------------------------------------------------------------------------------ reads
    def default_branch(self) -> str:
        resp = self._call(self.gh.rest.repos.get)
        if resp is None:
            raise GitHubError(f"repository {self.owner}/{self.name} not found or not accessible")
        return str(resp.json()["default_branch"])

    def head_sha(self, branch: str) -> str | None:
        resp = self._call(self.gh.rest.git.get_ref, f"heads/{branch}")
        return None if resp is None else str(resp.json()["object"]["sha"])

    def file(self, path: str, ref: str) -> tuple[str, str] | None:
        """(text, blob sha) of a file at `ref`, or None (also for a path that is not a safe repository path)."""
        if not safe_path(path):
            return None
        resp = self._call(self.gh.rest.repos.get_content, path, ref=ref)
        if resp is None:
            return None
        body = resp.json()
        if not isinstance(body, dict) or body.get("type") != "file":
            return None
        raw = base64.b64decode(body.get("content") or "")
        return raw.decode("utf-8", "replace"), str(body["sha"])

    def pulls_for(self, branch: str) -> list[PullRef]:
        """Every pull request (open and closed) whose head is `branch` in this repository, newest first."""
        resp = self._call(self.gh.rest.pulls.list, state="all", head=f"{self.owner}:{branch}", per_page=100)
        out = []
        for p in (resp.json() if resp is not None else []):
            out.append(PullRef(int(p["number"]), str(p["state"]), bool(p.get("merged_at")), bool(p.get("draft")),
                               str(p["head"]["ref"]), str(p.get("title") or ""), str(p.get("created_at") or ""),
                               str(p.get("body") or ""), str((p.get("user") or {}).get("login") or "")))
        return sorted(out, key=lambda p: -p.number)

    def latest_comments(self, number: int) -> list[Comment]:
        """The newest comments of a pull request, oldest first: its last page (GitHub lists comments by ascending
        id, 100 a page) and up to MAX_COMMENT_PAGES - 1 pages before it."""
        first = self._call(self.gh.rest.issues.list_comments, number, per_page=100)
        if first is None:
            return []
        m = _LAST_PAGE.search(first.headers.get("link") or "")
        last = int(m.group(1)) if m else 1
        wanted = range(max(1, last - MAX_COMMENT_PAGES + 1), last + 1)
        out: list[Comment] = []
        for page in wanted:
            resp = first if page == 1 else self._call(self.gh.rest.issues.list_comments, number, per_page=100,
                                                      page=page)
            for c in (resp.json() if resp is not None else []):
                out.append(Comment(int(c["id"]), str((c.get("user") or {}).get("login") or ""),
                                   str(c.get("body") or "")))
        return sorted(out, key=lambda c: c.id)

    # ------------------------------------------------------------------------------------------ writes
    def create_branch(self, branch: str, sha: str) -> None:
        resp = self._call(self.gh.rest.git.create_ref, data={"ref": f"refs/heads/{branch}", "sha": sha})
        if resp is None:
            raise GitHubError("could not create branch")

    def reset_branch(self, branch: str, sha: str) -> None:
        """Point an existing branch (whose pull request was merged or closed) at `sha` again."""
        resp = self._call(self.gh.rest.git.update_ref, f"heads/{branch}", data={"sha": sha, "force": True})
        if resp is None:
            raise GitHubError("could not reset branch")

    def put_file(self, branch: str, path: str, text: str, message: str) -> bool:
        """Commit `text` at `path` on `branch` unless it is already there. True when a commit was made."""
        if not safe_path(path):
            raise GitHubError(f"refusing to write an unsafe path {path[:100]!r}")
        if not path.startswith(self.write_prefix):
            raise GitHubError(f"refusing to write {path[:100]!r}: Healer only writes under {self.write_prefix}")
        text, message = redact(text), redact(message)   # final pass over everything that leaves Healer
        current = self.file(path, branch)
        if current is not None and current[0] == text:
            return False
        data: dict[str, Any] = {"message": message, "content": base64.b64encode(text.encode()).decode(),
                                "branch": branch}
        if current is not None:
            data["sha"] = current[1]
        resp = self._call(self.gh.rest.repos.create_or_update_file_contents, path, data=data)
        if resp is None:
            raise GitHubError(f"could not write {path}")
        return True

    def open_draft(self, branch: str, base: str, title: str, body: str) -> int:
        resp = self._call(self.gh.rest.pulls.create, data={"title": redact(title), "head": branch, "base": base,
                                                            "body": redact(body), "draft": True,
                                                            "maintainer_can_modify": True})
        if resp is None:
            raise GitHubError("could not open the pull request")
        return int(resp.json()["number"])

    def update_pull(self, number: int, body: str) -> None:
        self._call(self.gh.rest.pulls.update, number, data={"body": redact(body)})

    def comment(self, number: int, body: str) -> None:
        resp = self._call(self.gh.rest.issues.create_comment, number, data={"body": redact(body)})
        if resp is None:
            raise GitHubError("could not comment")
