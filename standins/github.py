"""Stand-in for the GitHub REST API endpoints the error healer uses, backed by real bare git repositories on disk.

    python -m standins.github --port N --root DIR --token T

Every write is a real git object/ref written with the `git` CLI (blobs, trees, commits, refs), so branches,
commits and merges can be inspected with git. Served (REST v3 shapes, optional `/api/v3` prefix as on GHES):
  GET    /repos/{o}/{r}                                   default_branch, full_name, ...
  GET    /repos/{o}/{r}/git/ref/{ref}                     {"ref", "object": {"sha", "type": "commit"}} | 404
  POST   /repos/{o}/{r}/git/refs {"ref", "sha"}           201 | 422 "Reference already exists"
  PATCH  /repos/{o}/{r}/git/refs/{ref} {"sha", "force"}   200 | 422 not a fast-forward (without force)
  GET    /repos/{o}/{r}/contents/{path}?ref=              {"type": "file", "encoding": "base64", "content", "sha"}
  PUT    /repos/{o}/{r}/contents/{path} {"message", "content", "branch", "sha"?}   201/200 | 409 sha mismatch |
                                                          422 sha missing for an existing file
  GET    /repos/{o}/{r}/pulls?state=&head=owner:branch    list, newest first
  POST   /repos/{o}/{r}/pulls {"title", "head", "base", "body", "draft"}   201 | 422 (exists / no commits)
  GET    /repos/{o}/{r}/pulls/{n} ; PATCH same {"title", "body", "state"}
  PUT    /repos/{o}/{r}/pulls/{n}/merge                   a real merge commit on the base branch (humans only)
  GET/POST /repos/{o}/{r}/issues/{n}/comments            list by ascending id, `per_page` (max 100) and `page`,
                                                          with a `Link` header (rel="next"/"last") as on GitHub
Auth: `Authorization: token T` or `Bearer T`, else 401 {"message": "Bad credentials"}.

GitHub App (optional, `--app-id A --app-installation-id I --app-public-key PEMFILE [--app-token-seconds S]`):
  POST   /app/installations/{I}/access_tokens             `Authorization: Bearer <app JWT>`: RS256, signed by the
                                                          app's key, iss = A, iat/exp present, exp in the future and
                                                          at most 10 minutes after iat, iat not in the future (60 s
                                                          skew) → 201 {"token", "expires_at", "permissions",
                                                          "repository_selection"}; 401 for a bad JWT, 404 for
                                                          another installation
  GET    /app/installations/{I}                           the installation (app JWT)
  An installation token is accepted as `token T`/`Bearer T` until its expires_at (S seconds, default 3600); the
  request log records which credential each request carried ("auth": "token" | "installation:<n>" | "none").

Tags, releases, deployments and git over smart HTTP (shallow fetch by sha): `standins/github_history.py`.

Control API (no auth): POST /_standin/repos {"owner", "name", "files": {path: text}, "default_branch"};
GET /_standin/pulls (every PR with its comments); GET /_standin/requests (every request: method, path, body);
GET /_standin/files/{o}/{r}?ref= (every file at ref); POST /_standin/reset (also forgets installation tokens);
POST /_standin/app {"token_seconds"}; GET /_standin/app/tokens (installation tokens minted: n, expires_at);
POST /_standin/faults {"method", "path" (regex searched in the request path), "status", "count"}: the next `count`
matching authenticated requests answer `status` without doing anything (a crash or outage between two calls).
"""
from __future__ import annotations

import base64
import datetime as dt
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from standins.httpbase import JsonHandler, route, serve

NAME = r"[A-Za-z0-9_.\-]{1,100}"
REPO = rf"/(?:api/v3/)?repos/(?P<owner>{NAME})/(?P<name>{NAME})"


class State:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="github-standin-"))
        self.token = ""
        self.pulls: dict[str, list[dict[str, Any]]] = {}
        self.comments: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.requests: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self.app_id = ""
        self.app_installation_id = 0
        self.app_public_key = b""
        self.app_token_seconds = 3600
        self.installation_tokens: dict[str, tuple[int, float]] = {}  # token -> (n, expires at, epoch seconds)
        self.lock = threading.RLock()


STATE = State()
ENV = {**os.environ, "GIT_AUTHOR_NAME": "standin", "GIT_AUTHOR_EMAIL": "standin@example.invalid",
       "GIT_COMMITTER_NAME": "standin", "GIT_COMMITTER_EMAIL": "standin@example.invalid",
       "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def git(repo: Path, *args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(["git", "--git-dir", str(repo), *args], input=input, capture_output=True,
                          env={**ENV, **(env or {})}, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.decode(errors="replace").strip()[:500])
    return proc.stdout.decode().strip()


def try_git(repo: Path, *args: str) -> str | None:
    try:
        return git(repo, *args)
    except RuntimeError:
        return None


def repo_path(owner: str, name: str) -> Path:
    return STATE.root / owner.lower() / f"{name.lower()}.git"


def commit_files(repo: Path, branch: str, files: dict[str, bytes], message: str) -> str:
    """Commit `files` on top of `branch` (created if missing) with git plumbing; returns the commit sha."""
    parent = try_git(repo, "rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}")
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        if parent:
            git(repo, "read-tree", parent, env=env)
        for path, data in files.items():
            blob = git(repo, "hash-object", "-w", "--stdin", input=data)
            git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
        tree = git(repo, "write-tree", env=env)
    args = ["commit-tree", tree, "-m", message] + (["-p", parent] if parent else [])
    commit = git(repo, *args)
    git(repo, "update-ref", f"refs/heads/{branch}", commit, *([parent] if parent else []))
    return commit


class GitHubHandler(JsonHandler):
    """GitHub REST stand-in."""

    def _credential(self) -> tuple[str, str]:
        """(scheme, credential) of the Authorization header."""
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        return scheme.lower(), token.strip()

    def _log(self, auth: str) -> None:
        with STATE.lock:
            STATE.requests.append({"method": self.command, "path": self.path, "auth": auth,
                                   "body": self.body_bytes().decode("utf-8", "replace")})

    def _auth(self) -> bool:
        scheme, token = self._credential()
        auth = "none"
        if scheme in ("token", "bearer") and token:
            with STATE.lock:
                issued = STATE.installation_tokens.get(token)
            if token == STATE.token:
                auth = "token"
            elif issued is not None and issued[1] > time.time():
                auth = f"installation:{issued[0]}"
        self._log(auth)
        if auth != "none":
            return not self._faulted()
        self.send_json(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
        return False

    def _faulted(self) -> bool:
        with STATE.lock:
            for fault in STATE.faults:
                if fault["count"] > 0 and fault["method"] == self.command and re.search(fault["path"], self.path_only):
                    fault["count"] -= 1
                    break
            else:
                return False
        self._error(fault["status"], "Injected fault")
        return True

    def _repo(self, owner: str, name: str) -> Path | None:
        path = repo_path(owner, name)
        if not path.is_dir():
            self.send_json(404, {"message": "Not Found"})
            return None
        return path

    def _error(self, status: int, message: str) -> None:
        self.send_json(status, {"message": message, "documentation_url": "https://docs.github.com/rest"})

    # ------------------------------------------------------------------ GitHub App
    def _app_jwt(self) -> bool:
        """Verify the app JWT of an /app request as GitHub does; answers 401 when it is not acceptable."""
        import jwt
        scheme, token = self._credential()
        self._log("app-jwt" if scheme == "bearer" and token.count(".") == 2 else "none")
        if not STATE.app_id:
            self._error(404, "Not Found")
            return False
        if scheme != "bearer" or not token:
            self._error(401, "A JSON web token could not be decoded")
            return False
        try:
            claims = jwt.decode(token, STATE.app_public_key, algorithms=["RS256"],
                                options={"require": ["iss", "iat", "exp"], "verify_iat": False}, leeway=0)
        except jwt.ExpiredSignatureError:
            self._error(401, "'Expiration time' claim ('exp') must be a numeric value representing the future time "
                             "at which the assertion expires")
            return False
        except jwt.InvalidTokenError:
            self._error(401, "A JSON web token could not be decoded")
            return False
        now_s = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, (int, float)) or not isinstance(exp, (int, float)) or iat > now_s + 60:
            self._error(401, "'Issued at' claim ('iat') must be an Integer representing the time that the assertion "
                             "was issued")
            return False
        if exp - iat > 600 or exp > now_s + 660:
            self._error(401, "'Expiration time' claim ('exp') is too far in the future")
            return False
        if str(claims.get("iss")) != STATE.app_id:
            self._error(401, "Integration not found")  # a JWT that verifies, from another app id
            return False
        return not self._faulted()

    def _installation_json(self) -> dict[str, Any]:
        return {"id": STATE.app_installation_id, "app_id": int(STATE.app_id), "target_type": "Organization",
                "account": {"login": "contoso"}, "repository_selection": "all",
                "permissions": {"contents": "write", "pull_requests": "write", "metadata": "read"}}

    @route("POST", r"/(?:api/v3/)?app/installations/(?P<installation>\d+)/access_tokens")
    def installation_token(self, installation: str) -> None:
        if not self._app_jwt():
            return
        if int(installation) != STATE.app_installation_id:
            return self._error(404, "Not Found")
        token = "ghs_" + secrets.token_hex(18)
        expires = time.time() + STATE.app_token_seconds
        with STATE.lock:
            STATE.installation_tokens[token] = (len(STATE.installation_tokens) + 1, expires)
        expires_at = dt.datetime.fromtimestamp(expires, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.send_json(201, {"token": token, "expires_at": expires_at,
                             "permissions": self._installation_json()["permissions"],
                             "repository_selection": "all"})

    @route("GET", r"/(?:api/v3/)?app/installations/(?P<installation>\d+)")
    def get_installation(self, installation: str) -> None:
        if not self._app_jwt():
            return
        if int(installation) != STATE.app_installation_id:
            return self._error(404, "Not Found")
        self.send_json(200, self._installation_json())

    @route("POST", r"/_standin/app")
    def configure_app(self) -> None:
        body = self.json_body() or {}
        seconds = body.get("token_seconds")
        if not isinstance(seconds, int) or not 1 <= seconds <= 86_400:
            return self._error(400, "token_seconds must be 1..86400")
        with STATE.lock:
            STATE.app_token_seconds = seconds
        self.send_json(200, {"token_seconds": seconds})

    @route("GET", r"/_standin/app/tokens")
    def app_tokens(self) -> None:
        with STATE.lock:
            items = [{"n": n, "expires_at": e} for n, e in STATE.installation_tokens.values()]
        self.send_json(200, {"tokens": sorted(items, key=lambda t: t["n"])})

    # ------------------------------------------------------------------ repos and refs
    @route("GET", REPO)
    def get_repo(self, owner: str, name: str) -> None:
        if not self._auth() or (repo := self._repo(owner, name)) is None:
            return
        head = git(repo, "symbolic-ref", "HEAD").removeprefix("refs/heads/")
        self.send_json(200, {"id": abs(hash((owner, name))) % 10**8, "name": name, "full_name": f"{owner}/{name}",
                             "owner": {"login": owner}, "default_branch": head, "private": True,
                             "html_url": f"{self.base_url()}/{owner}/{name}",
                             "clone_url": f"{self.base_url()}/{owner}/{name}.git"})

    @route("GET", REPO + r"/git/ref/(?P<ref>.+)")
    def get_ref(self, owner: str, name: str, ref: str) -> None:
        if not self._auth() or (repo := self._repo(owner, name)) is None:
            return
        ref = unquote(ref)
        sha = try_git(repo, "rev-parse", "--verify", f"refs/{ref}^{{commit}}")
        if not sha:
            return self._error(404, "Not Found")
        target = try_git(repo, "rev-parse", "--verify", f"refs/{ref}")
        if target and target != sha and try_git(repo, "cat-file", "-t", target) == "tag":  # an annotated tag
            return self.send_json(200, {"ref": f"refs/{ref}", "object": {"sha": target, "type": "tag"}})
        self.send_json(200, {"ref": f"refs/{ref}", "object": {"sha": sha, "type": "commit"}})

    @route("POST", REPO + r"/git/refs")
    def create_ref(self, owner: str, name: str) -> None:
        if not self._auth() or (repo := self._repo(owner, name)) is None:
            return
        body = self.json_body() or {}
        ref, sha = str(body.get("ref", "")), str(body.get("sha", ""))
        if not ref.startswith("refs/") or ref.count("/") < 2 or not re.fullmatch(r"[0-9a-f]{40}", sha):
            return self._error(422, "Reference update failed")
        with STATE.lock:
            if try_git(repo, "rev-parse", "--verify", ref):
                return self._error(422, "Reference already exists")
            if try_git(repo, "cat-file", "-t", sha) != "commit":
                return self._error(422, "Object does not exist")
            git(repo, "update-ref", ref, sha)
        self.send_json(201, {"ref": ref, "object": {"sha": sha, "type": "commit"}})

    @route("PATCH", REPO + r"/git/refs/(?P<ref>.+)")
    def update_ref(self, owner: str, name: str, ref: str) -> None:
        if not self._auth() or (repo := self._repo(owner, name)) is None:
            return
        body = self.json_body() or {}
        full, sha = f"refs/{unquote(ref)}", str(body.get("sha", ""))
        with STATE.lock:
            current = try_git(repo, "rev-parse", "--verify", full)
            if not current:
                return self._error(422, "Reference does not exist")
            if not body.get("force") and try_git(repo, "merge-base", "--is-ancestor", current, sha) is None:
                return self._error(422, "Update is not a fast forward")
            git(repo, "update-ref", full, sha)
        self.send_json(200, {"ref": full, "object": {"sha": sha, "type": "commit"}})

    # ------------------------------------------------------------------ contents
    @route("GET", REPO + r"/contents/(?P<path>.+)")
    def get_content(self, owner: str, name: str, path: str) -> None:
        if not self._auth() or (repo := self._repo(owner, name)) is None:
            return
        path = unquote(path)
        ref = self.query.get("ref") or git(repo, "symbolic-ref", "HEAD")
        blob = try_git(repo, "rev-parse", "--verify", f"{ref}:{path}")
        if not blob or try_git(repo, "cat-file", "-t", blob) != "blob":
            return self._error(404, "Not Found")
        data = subprocess.run(["git", "--git-dir", str(repo), "cat-file", "blob", blob], capture_output=True,
                              env=ENV, timeout=30).stdout
        self.send_json(200, {"type": "file", "encoding": "base64", "size": len(data), "name": path.rsplit("/", 1)[-1],
                             "path": path, "content": base64.b64encode(data).decode(), "sha": blob,
                             "url": f"{self.base_url()}/repos/{owner}/{name}/contents/{path}"})

    @route("PUT", REPO + r"/contents/(?P<path>.+)")
    def put_content(self, owner: str, name: str, path: str) -> None:
        if not self._auth() or (repo := self._repo(owner, name)) is None:
            return
        path = unquote(path)
        body = self.json_body() or {}
        if not isinstance(body.get("message"), str) or not isinstance(body.get("content"), str):
            return self._error(422, "Invalid request: message and content are required")
        if ".." in path.split("/") or path.startswith("/"):
            return self._error(422, "Invalid path")
        branch = body.get("branch") or git(repo, "symbolic-ref", "HEAD").removeprefix("refs/heads/")
        with STATE.lock:
            if not try_git(repo, "rev-parse", "--verify", f"refs/heads/{branch}"):
                return self._error(404, f"Branch {branch} not found")
            current = try_git(repo, "rev-parse", "--verify", f"refs/heads/{branch}:{path}")
            if current and not body.get("sha"):
                return self._error(422, "Invalid request.\n\n\"sha\" wasn't supplied.")
            if current and body.get("sha") != current:
                return self._error(409, f"{path} does not match {body.get('sha')}")
            try:
                data = base64.b64decode(body["content"], validate=True)
            except ValueError:
                return self._error(422, "content is not valid Base64")
            commit = commit_files(repo, branch, {path: data}, body["message"])
            blob = git(repo, "rev-parse", f"{commit}:{path}")
        self.send_json(200 if current else 201, {"content": {"name": path.rsplit("/", 1)[-1], "path": path,
                                                             "sha": blob, "type": "file"},
                                                 "commit": {"sha": commit, "message": body["message"]}})

    # ------------------------------------------------------------------ pulls
    def _pull_json(self, owner: str, name: str, pr: dict[str, Any]) -> dict[str, Any]:
        repo = repo_path(owner, name)
        head_sha = try_git(repo, "rev-parse", "--verify", f"refs/heads/{pr['head']}") or pr.get("head_sha", "")
        return {"number": pr["number"], "state": pr["state"], "draft": pr["draft"], "title": pr["title"],
                "body": pr["body"], "merged": pr["merged_at"] is not None, "merged_at": pr["merged_at"],
                "created_at": pr["created_at"], "updated_at": pr["updated_at"], "closed_at": pr.get("closed_at"),
                "html_url": f"{self.base_url()}/{owner}/{name}/pull/{pr['number']}",
                "user": {"login": "healer[bot]"},
                "head": {"ref": pr["head"], "sha": head_sha, "label": f"{owner}:{pr['head']}"},
                "base": {"ref": pr["base"], "label": f"{owner}:{pr['base']}"}}

    @route("GET", REPO + r"/pulls")
    def list_pulls(self, owner: str, name: str) -> None:
        if not self._auth() or self._repo(owner, name) is None:
            return
        state, head = self.query.get("state", "open"), self.query.get("head")
        with STATE.lock:
            pulls = list(STATE.pulls.get(f"{owner}/{name}".lower(), []))
        if state != "all":
            pulls = [p for p in pulls if p["state"] == state]
        if head:
            h_owner, _, h_branch = head.partition(":")
            pulls = [p for p in pulls if h_owner.lower() == owner.lower() and p["head"] == h_branch]
        pulls.sort(key=lambda p: -p["number"])
        per_page = min(int(self.query.get("per_page", "30")), 100)
        self.send_json(200, [self._pull_json(owner, name, p) for p in pulls[:per_page]])

    @route("POST", REPO + r"/pulls")
    def create_pull(self, owner: str, name: str) -> None:
        if not self._auth() or (repo := self._repo(owner, name)) is None:
            return
        body = self.json_body() or {}
        head, base = str(body.get("head", "")).split(":")[-1], str(body.get("base", ""))
        if not body.get("title") or not head or not base:
            return self._error(422, "Validation Failed: title, head and base are required")
        with STATE.lock:
            head_sha = try_git(repo, "rev-parse", "--verify", f"refs/heads/{head}")
            base_sha = try_git(repo, "rev-parse", "--verify", f"refs/heads/{base}")
            if not head_sha or not base_sha:
                return self._error(422, "Validation Failed: head or base does not exist")
            if try_git(repo, "merge-base", "--is-ancestor", head_sha, base_sha) is not None:
                return self._error(422, f"Validation Failed: No commits between {base} and {head}")
            pulls = STATE.pulls.setdefault(f"{owner}/{name}".lower(), [])
            if any(p["head"] == head and p["base"] == base and p["state"] == "open" for p in pulls):
                return self._error(422, f"Validation Failed: A pull request already exists for {owner}:{head}.")
            number = 1 + max([p["number"] for p in pulls], default=0)
            pr = {"number": number, "state": "open", "draft": bool(body.get("draft")), "title": body["title"],
                  "body": body.get("body") or "", "head": head, "base": base, "merged_at": None,
                  "created_at": now(), "updated_at": now()}
            pulls.append(pr)
        self.send_json(201, self._pull_json(owner, name, pr))

    def _find(self, owner: str, name: str, number: str) -> dict[str, Any] | None:
        for p in STATE.pulls.get(f"{owner}/{name}".lower(), []):
            if p["number"] == int(number):
                return p
        self._error(404, "Not Found")
        return None

    @route("GET", REPO + r"/pulls/(?P<number>\d+)")
    def get_pull(self, owner: str, name: str, number: str) -> None:
        if not self._auth() or (pr := self._find(owner, name, number)) is None:
            return
        self.send_json(200, self._pull_json(owner, name, pr))

    @route("PATCH", REPO + r"/pulls/(?P<number>\d+)")
    def update_pull(self, owner: str, name: str, number: str) -> None:
        if not self._auth() or (pr := self._find(owner, name, number)) is None:
            return
        body = self.json_body() or {}
        with STATE.lock:
            for key in ("title", "body"):
                if isinstance(body.get(key), str):
                    pr[key] = body[key]
            if body.get("state") in ("open", "closed") and pr["merged_at"] is None:
                pr["state"] = body["state"]
                pr["closed_at"] = now() if body["state"] == "closed" else None
            pr["updated_at"] = now()
        self.send_json(200, self._pull_json(owner, name, pr))

    @route("PUT", REPO + r"/pulls/(?P<number>\d+)/merge")
    def merge_pull(self, owner: str, name: str, number: str) -> None:
        if not self._auth() or (pr := self._find(owner, name, number)) is None:
            return
        repo = repo_path(owner, name)
        with STATE.lock:
            if pr["state"] != "open" or pr["draft"]:
                return self._error(405, "Pull Request is not mergeable")
            base = git(repo, "rev-parse", f"refs/heads/{pr['base']}")
            head = git(repo, "rev-parse", f"refs/heads/{pr['head']}")
            tree = git(repo, "merge-tree", "--write-tree", base, head).splitlines()[0]
            commit = git(repo, "commit-tree", tree, "-p", base, "-p", head, "-m",
                         f"Merge pull request #{pr['number']} from {pr['head']}")
            git(repo, "update-ref", f"refs/heads/{pr['base']}", commit, base)
            pr.update(state="closed", merged_at=now(), closed_at=now(), updated_at=now())
        self.send_json(200, {"sha": commit, "merged": True, "message": "Pull Request successfully merged"})

    # ------------------------------------------------------------------ comments
    @route("POST", REPO + r"/issues/(?P<number>\d+)/comments")
    def create_comment(self, owner: str, name: str, number: str) -> None:
        if not self._auth() or self._find(owner, name, number) is None:
            return
        body = self.json_body() or {}
        if not isinstance(body.get("body"), str) or not body["body"]:
            return self._error(422, "Validation Failed: body is required")
        with STATE.lock:
            comment = self._add_comment(owner, name, int(number), body["body"], "healer[bot]")
        self.send_json(201, comment)

    @staticmethod
    def _add_comment(owner: str, name: str, number: int, text: str, login: str) -> dict[str, Any]:
        items = STATE.comments.setdefault((f"{owner}/{name}".lower(), number), [])
        comment = {"id": 1000 + sum(len(v) for v in STATE.comments.values()), "body": text,
                   "user": {"login": login}, "created_at": now()}
        items.append(comment)
        return comment

    @route("POST", rf"/_standin/comments/(?P<owner>{NAME})/(?P<name>{NAME})/(?P<number>\d+)")
    def add_comment_as(self, owner: str, name: str, number: str) -> None:
        if self._find(owner, name, number) is None:
            return
        body = self.json_body() or {}
        with STATE.lock:
            comment = self._add_comment(owner, name, int(number), str(body.get("body") or ""),
                                        str(body.get("login") or "octocat"))
        self.send_json(201, comment)

    @route("GET", REPO + r"/issues/(?P<number>\d+)/comments")
    def list_comments(self, owner: str, name: str, number: str) -> None:
        if not self._auth() or self._find(owner, name, number) is None:
            return
        with STATE.lock:
            items = list(STATE.comments.get((f"{owner}/{name}".lower(), int(number)), []))
        per_page = max(1, min(int(self.query.get("per_page", "30")), 100))
        page = max(1, int(self.query.get("page", "1")))
        last = max(1, -(-len(items) // per_page))
        url = f"{self.base_url()}{self.path_only}?per_page={per_page}&page="
        links = ([f'<{url}{page + 1}>; rel="next"'] if page < last else []) + [f'<{url}{last}>; rel="last"']
        self.send_json(200, items[(page - 1) * per_page:page * per_page],
                       headers={"Link": ", ".join(links)} if last > 1 else None)

    # ------------------------------------------------------------------ control API
    @route("POST", r"/_standin/repos")
    def seed_repo(self) -> None:
        body = self.json_body() or {}
        owner, name = str(body.get("owner", "")), str(body.get("name", ""))
        if not re.fullmatch(NAME, owner) or not re.fullmatch(NAME, name):
            return self._error(400, "owner and name required")
        branch = str(body.get("default_branch") or "main")
        repo = repo_path(owner, name)
        with STATE.lock:
            repo.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "init", "-q", "--bare", "-b", branch, str(repo)], check=True, env=ENV)
            files = {p: t.encode() for p, t in (body.get("files") or {"README.md": "# repo\n"}).items()}
            sha = commit_files(repo, branch, files, "initial commit")
        self.send_json(201, {"path": str(repo), "sha": sha})

    @route("GET", r"/_standin/pulls")
    def all_pulls(self) -> None:
        with STATE.lock:
            out = []
            for full, pulls in STATE.pulls.items():
                owner, name = full.split("/")
                for p in pulls:
                    out.append({**self._pull_json(owner, name, p), "repository": full,
                                "comments": list(STATE.comments.get((full, p["number"]), []))})
        self.send_json(200, {"pulls": out})

    @route("GET", r"/_standin/requests")
    def all_requests(self) -> None:
        with STATE.lock:
            self.send_json(200, {"requests": list(STATE.requests)})

    @route("GET", rf"/_standin/files/(?P<owner>{NAME})/(?P<name>{NAME})")
    def all_files(self, owner: str, name: str) -> None:
        repo = repo_path(owner, name)
        ref = self.query.get("ref", "HEAD")
        listing = try_git(repo, "ls-tree", "-r", "--name-only", ref) or ""
        files = {p: subprocess.run(["git", "--git-dir", str(repo), "show", f"{ref}:{p}"], capture_output=True,
                                   env=ENV, timeout=30).stdout.decode("utf-8", "replace")
                 for p in listing.splitlines() if p}
        self.send_json(200, {"files": files})

    @route("POST", rf"/_standin/undraft/(?P<owner>{NAME})/(?P<name>{NAME})/(?P<number>\d+)")
    def undraft(self, owner: str, name: str, number: str) -> None:
        if (pr := self._find(owner, name, number)) is None:
            return
        with STATE.lock:
            pr["draft"] = False
        self.send_json(200, {"draft": False})

    @route("POST", r"/_standin/reset")
    def reset(self) -> None:
        import shutil
        with STATE.lock:
            shutil.rmtree(STATE.root, ignore_errors=True)
            STATE.root.mkdir(parents=True, exist_ok=True)
            STATE.pulls.clear()
            STATE.comments.clear()
            STATE.requests.clear()
            STATE.faults.clear()
            STATE.installation_tokens.clear()
            github_history.reset()
        self.send_json(200, {"reset": True})

    @route("POST", r"/_standin/faults")
    def add_fault(self) -> None:
        body = self.json_body() or {}
        try:
            fault = {"method": str(body["method"]).upper(), "path": str(body["path"]), "status": int(body["status"]),
                     "count": int(body.get("count", 1))}
            re.compile(fault["path"])
        except (KeyError, TypeError, ValueError, re.error) as exc:
            return self._error(400, f"bad fault: {exc}")
        with STATE.lock:
            STATE.faults.append(fault)
        self.send_json(200, fault)


from standins import github_history  # noqa: E402  (tags, releases, deployments, git over HTTP)

github_history.install(GitHubHandler)


def main(argv: list[str] | None = None) -> None:
    def extra(parser) -> None:
        parser.add_argument("--root", help="directory for the bare repositories")
        parser.add_argument("--token", required=True, help="the token clients must send")
        parser.add_argument("--app-id", default="", help="GitHub App id whose JWTs mint installation tokens")
        parser.add_argument("--app-installation-id", type=int, default=0, help="that App's installation id")
        parser.add_argument("--app-public-key", help="PEM file: the App's public key (verifies its JWTs)")
        parser.add_argument("--app-token-seconds", type=int, default=3600, help="installation token lifetime")

    def configure(args) -> None:
        STATE.token = args.token
        if args.app_id:
            STATE.app_id, STATE.app_installation_id = str(args.app_id), args.app_installation_id
            STATE.app_public_key = Path(args.app_public_key).read_bytes()
            STATE.app_token_seconds = args.app_token_seconds
        if args.root:
            STATE.root = Path(args.root)
            STATE.root.mkdir(parents=True, exist_ok=True)

    serve(GitHubHandler, argv, configure=configure, extra_args=extra)


# ---------------------------------------------------------------------------------------------- test helper

class GitHubStandin:
    def __init__(self, server: Any, url: str, token: str, root: Path):
        self.server, self.url, self.token, self.root = server, url, token, root

    def control(self, method: str, path: str, body: Any = None) -> Any:
        import httpx
        resp = httpx.request(method, f"{self.url}/_standin/{path.lstrip('/')}", json=body, timeout=30)
        if resp.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text[:300]}")
        return resp.json()

    def create_repo(self, owner: str, name: str, files: dict[str, str], default_branch: str = "main") -> str:
        return self.control("POST", "repos", {"owner": owner, "name": name, "files": files,
                                              "default_branch": default_branch})["sha"]

    def pulls(self) -> list[dict[str, Any]]:
        return self.control("GET", "pulls")["pulls"]

    def requests(self) -> list[dict[str, Any]]:
        return self.control("GET", "requests")["requests"]

    def sent_text(self) -> str:
        """Everything clients sent to this GitHub (paths, bodies, and file contents decoded from base64)."""
        import base64
        import json as _json
        parts = []
        for r in self.requests():
            parts.append(r["path"] + "\n" + r["body"])
            try:
                body = _json.loads(r["body"]) if r["body"] else {}
            except ValueError:
                continue
            if isinstance(body, dict) and isinstance(body.get("content"), str):
                parts.append(base64.b64decode(body["content"]).decode("utf-8", "replace"))
        return "\n".join(parts)

    def files(self, owner: str, name: str, ref: str) -> dict[str, str]:
        return self.control("GET", f"files/{owner}/{name}?ref={ref}")["files"]

    def merge(self, owner: str, name: str, number: int, at: str | None = None) -> None:
        """A human merges (marks ready and merges) a pull request, through the REST API; `at` back-dates it."""
        import httpx
        headers = {"Authorization": f"token {self.token}"}
        self._undraft(owner, name, number)  # "Ready for review" is a GraphQL mutation on GitHub
        resp = httpx.put(f"{self.url}/repos/{owner}/{name}/pulls/{number}/merge", headers=headers, timeout=30)
        if resp.status_code != 200:
            raise RuntimeError(f"merge failed: {resp.status_code} {resp.text[:300]}")
        if at:
            self.control("POST", f"merged_at/{owner}/{name}/{number}", {"at": at})

    def _undraft(self, owner: str, name: str, number: int) -> None:
        self.control("POST", f"undraft/{owner}/{name}/{number}", {})

    def close(self, owner: str, name: str, number: int) -> None:
        import httpx
        httpx.patch(f"{self.url}/repos/{owner}/{name}/pulls/{number}", json={"state": "closed"},
                    headers={"Authorization": f"token {self.token}"}, timeout=30).raise_for_status()

    def reset(self) -> None:
        self.control("POST", "reset", {})

    def commit(self, owner: str, name: str, files: dict[str, str | None], *, branch: str = "main",
               message: str = "change", tag: str | None = None, annotated: bool = False, at: str | None = None) -> str:
        """A commit on `branch` (None deletes a file), optionally tagged; returns its sha."""
        return self.control("POST", f"commits/{owner}/{name}", {"files": files, "branch": branch, "message": message,
                                                                "tag": tag, "annotated": annotated, "at": at})["sha"]

    def release(self, owner: str, name: str, tag: str, target: str, at: str | None = None) -> dict[str, Any]:
        return self.control("POST", f"releases/{owner}/{name}", {"tag_name": tag, "target_commitish": target,
                                                                 "at": at})

    def deployment(self, owner: str, name: str, sha: str, *, ref: str | None = None, environment: str = "production",
                   description: str | None = None, payload: dict[str, Any] | None = None,
                   at: str | None = None, statuses: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return self.control("POST", f"deployments/{owner}/{name}", {
            "sha": sha, "ref": ref, "environment": environment, "description": description, "payload": payload,
            "at": at, "statuses": statuses})

    def app_token_seconds(self, seconds: int) -> None:
        """Lifetime of the installation tokens minted from now on."""
        self.control("POST", "app", {"token_seconds": seconds})

    def app_tokens(self) -> list[dict[str, Any]]:
        """Installation tokens minted so far: [{"n", "expires_at" (epoch seconds)}], by n."""
        return self.control("GET", "app/tokens")["tokens"]

    def fault(self, method: str, path: str, status: int, count: int = 1) -> None:
        """The next `count` requests `method` whose path matches the regex `path` answer `status`."""
        self.control("POST", "faults", {"method": method, "path": path, "status": status, "count": count})

    def comment(self, owner: str, name: str, number: int, body: str, login: str = "octocat") -> None:
        """Someone else (`login`) comments on a pull request."""
        self.control("POST", f"comments/{owner}/{name}/{number}", {"body": body, "login": login})

    def stop(self) -> None:
        self.server.stop()


@dataclass(frozen=True)
class StandinApp:
    """A GitHub App the stand-in knows: its id, its one installation and its public key (PEM)."""
    app_id: int
    installation_id: int
    public_key_pem: str
    token_seconds: int = 3600


def start_github(workdir: Path, token: str, app: StandinApp | None = None) -> GitHubStandin:
    from standins.harness import free_port, start_python_server
    port = free_port()
    root = workdir / "github-repos"
    args = ["--port", str(port), "--root", str(root), "--token", token]
    if app is not None:
        key_file = workdir / f"github-app-{port}.pub.pem"
        key_file.write_text(app.public_key_pem)
        args += ["--app-id", str(app.app_id), "--app-installation-id", str(app.installation_id),
                 "--app-public-key", str(key_file), "--app-token-seconds", str(app.token_seconds)]
    server = start_python_server("github", "standins.github", args, port, workdir)
    return GitHubStandin(server, f"http://127.0.0.1:{port}", token, root)


if __name__ == "__main__":
    main(sys.argv[1:])
