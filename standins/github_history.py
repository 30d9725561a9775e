"""GitHub stand-in, part two: what was deployed when. Tags, releases, deployments and git over smart HTTP, on the
same real bare repositories as `standins/github.py` (installed into its handler by `install`).

Served (REST v3 shapes, as GitHub documents them):
  GET  /repos/{o}/{r}/git/tags/{sha}                 annotated tag object {"sha", "tag", "message", "object":
                                                     {"sha", "type": "commit"}} | 404
  GET  /repos/{o}/{r}/releases/tags/{tag}            {"id", "tag_name", "target_commitish", "name", "published_at",
                                                     "draft", "prerelease"} | 404
  GET  /repos/{o}/{r}/releases?per_page=&page=       newest first
  GET  /repos/{o}/{r}/deployments?sha=&ref=&environment=&per_page=&page=   newest first: {"id", "sha", "ref",
                                                     "task", "environment", "description", "payload", "created_at",
                                                     "updated_at", "statuses_url"}
  GET  /repos/{o}/{r}/deployments/{id}/statuses      newest first: {"id", "state", "environment", "created_at"}
  git smart HTTP (upload-pack only, `git http-backend`), as https://github.com/{o}/{r}.git serves it:
  GET  /{o}/{r}.git/info/refs?service=git-upload-pack ; POST /{o}/{r}.git/git-upload-pack
       Basic auth `x-access-token:<token>` (or the token as password with any user); any commit can be fetched by
       sha (`uploadpack.allowAnySHA1InWant`, as GitHub allows), so `git fetch --depth 1 <url> <sha>` works.
Control API: POST /_standin/commits/{o}/{r} {"branch", "files": {path: text|null (delete)}, "message", "tag",
  "annotated", "at"} -> {"sha"}; POST /_standin/releases/{o}/{r} {"tag_name", "target_commitish", "name", "at"};
  POST /_standin/deployments/{o}/{r} {"sha", "ref", "environment", "description", "payload", "at",
  "statuses": [{"state", "at"}]}.
"""
from __future__ import annotations

import base64
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from standins.httpbase import route

NAME = r"[A-Za-z0-9_.\-]{1,100}"
REPO = rf"/(?:api/v3/)?repos/(?P<owner>{NAME})/(?P<name>{NAME})"
_HISTORY: dict[str, Any] = {"releases": {}, "deployments": {}, "next": 1}
_MODULE: list[Any] = []  # the module of the handler these routes were installed into (it runs as __main__)


def _gh():
    if _MODULE:
        return _MODULE[0]
    from standins import github
    return github


def reset() -> None:
    _HISTORY.update(releases={}, deployments={}, next=1)


def _page(handler, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    q = handler.query
    per_page = max(1, min(int(q.get("per_page") or 30), 100))
    page = max(1, int(q.get("page") or 1))
    return items[(page - 1) * per_page: page * per_page]


def commit_change(repo: Path, branch: str, files: dict[str, bytes | None], message: str,
                  at: str | None = None) -> str:
    """A commit on `branch` adding/changing files (bytes) and deleting them (None); returns its sha."""
    gh = _gh()
    parent = gh.try_git(repo, "rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}")
    env = {"GIT_AUTHOR_DATE": at, "GIT_COMMITTER_DATE": at} if at else {}
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        if parent:
            gh.git(repo, "read-tree", parent, env=index)
        for path, data in files.items():
            if data is None:  # mode 0 in --index-info removes the entry (no work tree needed)
                gh.git(repo, "update-index", "--index-info", input=f"0 {'0' * 40}\t{path}\n".encode(), env=index)
            else:
                blob = gh.git(repo, "hash-object", "-w", "--stdin", input=data)
                gh.git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=index)
        tree = gh.git(repo, "write-tree", env=index)
    commit = gh.git(repo, "commit-tree", tree, "-m", message, *(["-p", parent] if parent else []), env=env)
    gh.git(repo, "update-ref", f"refs/heads/{branch}", commit, *([parent] if parent else []))
    return commit


# ---------------------------------------------------------------------------------------------- REST routes

@route("GET", REPO + r"/git/tags/(?P<sha>[0-9a-f]{40})")
def get_tag(self, owner: str, name: str, sha: str) -> None:
    if not self._auth() or (repo := self._repo(owner, name)) is None:
        return
    gh = _gh()
    if gh.try_git(repo, "cat-file", "-t", sha) != "tag":
        return self._error(404, "Not Found")
    raw = gh.git(repo, "cat-file", "tag", sha)
    fields = dict(line.split(" ", 1) for line in raw.split("\n\n", 1)[0].splitlines() if " " in line)
    self.send_json(200, {"sha": sha, "tag": fields.get("tag", ""), "message": raw.split("\n\n", 1)[-1],
                         "object": {"sha": fields.get("object", ""), "type": fields.get("type", "commit")}})


@route("GET", REPO + r"/releases/tags/(?P<tag>.+)")
def get_release_by_tag(self, owner: str, name: str, tag: str) -> None:
    if not self._auth() or self._repo(owner, name) is None:
        return
    release = _HISTORY["releases"].get((owner.lower(), name.lower()), {}).get(unquote(tag))
    if release is None:
        return self._error(404, "Not Found")
    self.send_json(200, release)


@route("GET", REPO + r"/releases")
def list_releases(self, owner: str, name: str) -> None:
    if not self._auth() or self._repo(owner, name) is None:
        return
    items = sorted(_HISTORY["releases"].get((owner.lower(), name.lower()), {}).values(), key=lambda r: -r["id"])
    self.send_json(200, _page(self, items))


@route("GET", REPO + r"/deployments")
def list_deployments(self, owner: str, name: str) -> None:
    if not self._auth() or self._repo(owner, name) is None:
        return
    q = self.query
    items = [d for d in _HISTORY["deployments"].get((owner.lower(), name.lower()), [])
             if all(not q.get(k) or d.get(k) == q[k] for k in ("sha", "ref", "environment", "task"))]
    self.send_json(200, _page(self, [{k: v for k, v in d.items() if k != "statuses"}
                                     for d in sorted(items, key=lambda d: -d["id"])]))


@route("GET", REPO + r"/deployments/(?P<number>\d+)/statuses")
def list_deployment_statuses(self, owner: str, name: str, number: str) -> None:
    if not self._auth() or self._repo(owner, name) is None:
        return
    found = [d for d in _HISTORY["deployments"].get((owner.lower(), name.lower()), []) if d["id"] == int(number)]
    if not found:
        return self._error(404, "Not Found")
    self.send_json(200, _page(self, sorted(found[0]["statuses"], key=lambda s: -s["id"])))


# ---------------------------------------------------------------------------------------------- git smart HTTP

def _git_auth(self) -> bool:
    scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
    token = ""
    if scheme.lower() == "basic":
        try:
            token = base64.b64decode(value.strip()).decode().split(":", 1)[-1]
        except (ValueError, UnicodeDecodeError):
            token = ""
    self._log("git-token" if token and token == _gh().STATE.token else "none")
    if token and token == _gh().STATE.token:
        return True
    self.send_raw(401, b"Authentication required", "text/plain", {"WWW-Authenticate": 'Basic realm="GitHub"'})
    return False


def _http_backend(self, owner: str, name: str, service_path: str) -> None:
    if not _git_auth(self) or self._repo(owner, name) is None:
        return
    gh = _gh()
    env = {**os.environ, "GIT_PROJECT_ROOT": str(gh.STATE.root), "GIT_HTTP_EXPORT_ALL": "1",
           "PATH_INFO": f"/{owner.lower()}/{name.lower()}.git/{service_path}", "REQUEST_METHOD": self.command,
           "QUERY_STRING": self.path.split("?", 1)[1] if "?" in self.path else "",
           "CONTENT_TYPE": self.headers.get("Content-Type") or "", "REMOTE_USER": "x-access-token",
           "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "uploadpack.allowAnySHA1InWant", "GIT_CONFIG_VALUE_0": "true"}
    body = self.body_bytes()
    if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
        import gzip
        body = gzip.decompress(body)
    env["CONTENT_LENGTH"] = str(len(body))
    proc = subprocess.run(["git", "http-backend"], input=body, capture_output=True, env=env, timeout=60)
    head, _, payload = proc.stdout.partition(b"\r\n\r\n")
    headers, status = {}, 200
    for line in head.decode("latin-1").split("\r\n"):
        key, _, value = line.partition(": ")
        if key.lower() == "status":
            status = int(value.split()[0])
        elif key:
            headers[key] = value
    content_type = headers.pop("Content-Type", "application/octet-stream")
    self.send_raw(status, payload, content_type, headers)


@route("GET", rf"/(?P<owner>{NAME})/(?P<name>{NAME})\.git/info/refs")
def git_info_refs(self, owner: str, name: str) -> None:
    if self.query.get("service") != "git-upload-pack":
        return self.send_raw(403, b"only git-upload-pack is served", "text/plain")
    _http_backend(self, owner, name, "info/refs")


@route("POST", rf"/(?P<owner>{NAME})/(?P<name>{NAME})\.git/git-upload-pack")
def git_upload_pack(self, owner: str, name: str) -> None:
    _http_backend(self, owner, name, "git-upload-pack")


# ---------------------------------------------------------------------------------------------- control API

@route("POST", rf"/_standin/commits/(?P<owner>{NAME})/(?P<name>{NAME})")
def add_commit(self, owner: str, name: str) -> None:
    if (repo := self._repo(owner, name)) is None:
        return
    body = self.json_body() or {}
    gh = _gh()
    files = {p: (None if t is None else str(t).encode()) for p, t in (body.get("files") or {}).items()}
    with gh.STATE.lock:
        sha = commit_change(repo, str(body.get("branch") or "main"), files, str(body.get("message") or "change"),
                            body.get("at"))
        tag = body.get("tag")
        if tag:
            if not re.fullmatch(r"[A-Za-z0-9_.\-/]{1,100}", str(tag)):
                return self._error(400, "bad tag")
            if body.get("annotated"):
                gh.git(repo, "tag", "-a", str(tag), "-m", f"release {tag}", sha)
            else:
                gh.git(repo, "update-ref", f"refs/tags/{tag}", sha)
    self.send_json(201, {"sha": sha})


@route("POST", rf"/_standin/releases/(?P<owner>{NAME})/(?P<name>{NAME})")
def add_release(self, owner: str, name: str) -> None:
    body = self.json_body() or {}
    key = (owner.lower(), name.lower())
    rid = _HISTORY["next"]
    _HISTORY["next"] += 1
    tag = str(body.get("tag_name") or "")
    release = {"id": rid, "tag_name": tag, "target_commitish": str(body.get("target_commitish") or "main"),
               "name": str(body.get("name") or tag), "draft": False, "prerelease": False,
               "created_at": body.get("at"), "published_at": body.get("at")}
    _HISTORY["releases"].setdefault(key, {})[tag] = release
    self.send_json(201, release)


@route("POST", rf"/_standin/deployments/(?P<owner>{NAME})/(?P<name>{NAME})")
def add_deployment(self, owner: str, name: str) -> None:
    body = self.json_body() or {}
    did = _HISTORY["next"]
    _HISTORY["next"] += 1
    statuses = []
    for s in body.get("statuses") or [{"state": "success", "at": body.get("at")}]:
        statuses.append({"id": _HISTORY["next"], "state": s.get("state", "success"),
                         "environment": body.get("environment") or "production", "created_at": s.get("at")})
        _HISTORY["next"] += 1
    deployment = {"id": did, "sha": str(body.get("sha") or ""), "ref": str(body.get("ref") or body.get("sha") or ""),
                  "task": "deploy", "environment": str(body.get("environment") or "production"),
                  "description": body.get("description"), "payload": body.get("payload") or {},
                  "created_at": body.get("at"), "updated_at": body.get("at"),
                  "statuses_url": f"{self.base_url()}/repos/{owner}/{name}/deployments/{did}/statuses",
                  "statuses": statuses}
    _HISTORY["deployments"].setdefault((owner.lower(), name.lower()), []).append(deployment)
    self.send_json(201, {k: v for k, v in deployment.items() if k != "statuses"})


@route("POST", rf"/_standin/merged_at/(?P<owner>{NAME})/(?P<name>{NAME})/(?P<number>\d+)")
def set_merged_at(self, owner: str, name: str, number: str) -> None:
    """Back-date a merge (tests and the drill replay days that are not today)."""
    pr = self._find(owner, name, number)
    if pr is None or pr["merged_at"] is None:
        return self._error(404, "no merged pull request")
    pr["merged_at"] = str((self.json_body() or {}).get("at"))
    self.send_json(200, {"merged_at": pr["merged_at"]})


ROUTES = (set_merged_at, get_tag, get_release_by_tag, list_releases, list_deployments, list_deployment_statuses, git_info_refs,
          git_upload_pack, add_commit, add_release, add_deployment)


def install(handler_cls) -> None:
    """Add these routes to the GitHub stand-in's handler (more specific routes first)."""
    import sys
    _MODULE[:] = [sys.modules[handler_cls.__module__]]
    handler_cls.routes = [(*fn._route, fn) for fn in ROUTES] + list(handler_cls.routes)
