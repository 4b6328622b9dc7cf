"""A local GitHub REST server over real HTTP: the endpoints `llmci report` uses, with state.

It serves under `/api/v3` (as GitHub Enterprise Server does) and keeps pull
request comments, check runs, commit statuses, deployments with their
statuses (newest first, as GitHub lists them), and issues (created, edited,
opened and closed, listed by state and labels, commented on). Every answer carries
`X-RateLimit-*` headers; lists are paginated with `Link` headers. Tokens are
either user tokens (GET /user answers their login) or installation tokens
like Actions' GITHUB_TOKEN (GET /user is 403, comments are by
github-actions[bot]), each with its own permissions. Faults are queued per
request: a status with headers, injected before the request takes effect or
after (the write happened, the answer was lost).
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

PREFIX = "/api/v3"
ALL = frozenset({"pull_requests", "checks", "statuses", "deployments", "issues"})
NOT_ACCESSIBLE = "Resource not accessible by integration"


@dataclass
class Token:
    login: str | None  # None: an installation token, which cannot read /user
    permissions: frozenset[str] = ALL

    @property
    def author(self) -> str:
        return self.login or "github-actions[bot]"


@dataclass
class Fault:
    method: str
    path: str  # a regular expression searched in the path
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    after: bool = False  # apply the request, then answer with the fault
    message: str = "injected fault"


class GitHubServer:
    def __init__(self, repository: str = "octo/widgets", pulls: tuple[int, ...] = (7,)) -> None:
        self.repository = repository
        self.pulls = set(pulls)
        self.tokens: dict[str, Token] = {}
        self.comments: list[dict[str, Any]] = []
        self.check_runs: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self.deployments: list[dict[str, Any]] = []
        self.deployment_statuses: dict[int, list[dict[str, Any]]] = {}
        #: Issue number -> issue (numbers follow the pull requests', as on GitHub where they share one sequence).
        self.issues: dict[int, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.faults: list[Fault] = []
        self.remaining = 5000
        self._next_id = 1000
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return self.root + PREFIX

    def __enter__(self) -> GitHubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- helpers for tests ----------------------------------------------------------------

    def add_comment(self, pr: int, body: str, author: str) -> dict[str, Any]:
        with self._lock:
            return self._create_comment(pr, body, author)

    def comments_on(self, pr: int) -> list[dict[str, Any]]:
        return [c for c in self.comments if c["_pr"] == pr]

    def issue_states(self) -> dict[int, str]:
        return {number: issue["state"] for number, issue in self.issues.items()}

    def count(self, method: str | None = None) -> int:
        return sum(1 for m, _ in self.requests if method is None or m == method)

    # -- the REST API -------------------------------------------------------------------------

    def _create_comment(self, pr: int, body: str, author: str) -> dict[str, Any]:
        self._next_id += 1
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        page = "issues" if pr in self.issues else "pull"
        comment = {
            "id": self._next_id,
            "_pr": pr,
            "body": body,
            "user": {"login": author, "id": hash(author) % 10**6, "type": "Bot" if "[bot]" in author else "User"},
            "url": f"{self.api_url}/repos/{self.repository}/issues/comments/{self._next_id}",
            "html_url": f"{self.root}/{self.repository}/{page}/{pr}#issuecomment-{self._next_id}",
            "created_at": now,
            "updated_at": now,
        }
        self.comments.append(comment)
        if pr in self.issues:
            self.issues[pr]["comments"] += 1
        return comment

    def _create_issue(self, body: dict[str, Any], author: str) -> dict[str, Any]:
        self._next_id += 1
        number = max([*self.pulls, *self.issues], default=0) + 1
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        issue = {
            "id": self._next_id,
            "number": number,
            "title": body["title"],
            "body": body.get("body"),
            "state": "open",
            "state_reason": None,
            "labels": [{"name": name} for name in body.get("labels") or []],
            "user": {"login": author, "id": hash(author) % 10**6, "type": "Bot" if "[bot]" in author else "User"},
            "comments": 0,
            "url": f"{self.api_url}/repos/{self.repository}/issues/{number}",
            "html_url": f"{self.root}/{self.repository}/issues/{number}",
            "created_at": now,
            "updated_at": now,
            "closed_at": None,
        }
        self.issues[number] = issue
        return issue

    def _edit_issue(self, issue: dict[str, Any], body: dict[str, Any]) -> tuple:
        if body.get("state", issue["state"]) not in ("open", "closed"):
            return 422, {"message": "Validation Failed"}, {}
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for name in ("title", "body", "state", "state_reason"):
            if name in body:
                issue[name] = body[name]
        if "labels" in body:
            issue["labels"] = [{"name": name} for name in body["labels"]]
        issue["closed_at"] = now if issue["state"] == "closed" else None
        issue["updated_at"] = now
        return 200, issue, {}

    def _route(self, method: str, path: str, query: dict[str, list[str]], token: Token | None, body: Any) -> tuple:
        repo = f"/repos/{self.repository}"
        if token is None:
            return 401, {"message": "Bad credentials"}, {}
        if method == "GET" and path == "/user":
            if token.login is None:
                return 403, {"message": NOT_ACCESSIBLE}, {}
            return 200, {"login": token.login, "id": 1, "type": "User"}, {}

        if match := re.fullmatch(rf"{repo}/issues/(\d+)/comments", path):
            pr = int(match[1])
            if pr not in self.pulls and pr not in self.issues:
                return 404, {"message": "Not Found"}, {}
            if method == "GET":
                return self._page([self._public(c) for c in self.comments_on(pr)], path, query)
            if method == "POST":
                if pr in self.issues and "issues" not in token.permissions:
                    return self._denied("issues=write")
                if pr in self.pulls and "pull_requests" not in token.permissions:
                    return self._denied("issues=write; pull_requests=write")
                if len(body.get("body", "")) > 65536:
                    return self._too_long()
                return 201, self._public(self._create_comment(pr, body["body"], token.author)), {}

        if (match := re.fullmatch(rf"{repo}/issues/comments/(\d+)", path)) and method == "PATCH":
            comment = next((c for c in self.comments if c["id"] == int(match[1])), None)
            if comment is None:
                return 404, {"message": "Not Found"}, {}
            if "pull_requests" not in token.permissions:
                return self._denied("issues=write; pull_requests=write")
            if comment["user"]["login"] != token.author:
                return 403, {"message": "You cannot edit this comment"}, {}
            if len(body.get("body", "")) > 65536:
                return self._too_long()
            comment["body"] = body["body"]
            comment["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            return 200, self._public(comment), {}

        if path == f"{repo}/issues":
            if method == "POST":
                if "issues" not in token.permissions:
                    return self._denied("issues=write")
                if not body.get("title"):
                    return 422, {"message": "Validation Failed"}, {}
                return 201, self._create_issue(body, token.author), {}
            state = query.get("state", ["open"])[0]
            wanted = {name for name in query.get("labels", [""])[0].split(",") if name}
            found = [
                issue
                for issue in reversed(self.issues.values())  # newest first, as GitHub sorts by default
                if state in ("all", issue["state"]) and wanted <= {label["name"] for label in issue["labels"]}
            ]
            return self._page(found, path, query, keep=("state", "labels"))
        if match := re.fullmatch(rf"{repo}/issues/(\d+)", path):
            issue = self.issues.get(int(match[1]))
            if issue is None:
                return 404, {"message": "Not Found"}, {}
            if method == "GET":
                return 200, issue, {}
            if method == "PATCH":
                if "issues" not in token.permissions:
                    return self._denied("issues=write")
                return self._edit_issue(issue, body)

        if path == f"{repo}/check-runs" and method == "POST":
            if "checks" not in token.permissions:
                return self._denied("checks=write")
            if len(body.get("output", {}).get("summary", "")) > 65535:
                return 422, {"message": "Invalid request. output.summary is too long (maximum is 65535 characters)"}, {}
            self._next_id += 1
            run = {
                **body,
                "id": self._next_id,
                "html_url": f"{self.root}/{self.repository}/runs/{self._next_id}",
                "url": f"{self.api_url}{repo}/check-runs/{self._next_id}",
            }
            self.check_runs.append(run)
            return 201, run, {}

        if (match := re.fullmatch(rf"{repo}/statuses/([0-9a-f]+)", path)) and method == "POST":
            if "statuses" not in token.permissions:
                return self._denied("statuses=write")
            self._next_id += 1
            status = {**body, "id": self._next_id, "sha": match[1], "url": f"{self.api_url}{path}"}
            self.statuses.append(status)
            return 201, status, {}
        if path == f"{repo}/deployments":
            if method == "POST":
                if "deployments" not in token.permissions:
                    return self._denied("deployments=write")
                self._next_id += 1
                deployment = {
                    **body,
                    "id": self._next_id,
                    "sha": body["ref"],
                    "url": f"{self.api_url}{repo}/deployments/{self._next_id}",
                    "statuses_url": f"{self.api_url}{repo}/deployments/{self._next_id}/statuses",
                    "creator": {"login": token.author},
                }
                self.deployments.append(deployment)
                self.deployment_statuses[deployment["id"]] = []
                return 201, deployment, {}
            found = [d for d in reversed(self.deployments) if d["environment"] == query.get("environment", [None])[0]]
            return self._page(found, path, query)
        if match := re.fullmatch(rf"{repo}/deployments/(\d+)/statuses", path):
            statuses = self.deployment_statuses.get(int(match[1]))
            if statuses is None:
                return 404, {"message": "Not Found"}, {}
            if method == "GET":
                return self._page(list(reversed(statuses)), path, query)
            if "deployments" not in token.permissions:
                return self._denied("deployments=write")
            if body.get("state") not in ("error", "failure", "inactive", "in_progress", "queued", "pending", "success"):
                return 422, {"message": "Validation Failed"}, {}
            self._next_id += 1
            status = {**body, "id": self._next_id, "url": f"{self.api_url}{path}/{self._next_id}"}
            statuses.append(status)
            return 201, status, {}
        return 404, {"message": "Not Found"}, {}

    def deployment_states(self, environment: str) -> list[list[str]]:
        """Each deployment to `environment` (oldest first) as the list of its states, oldest first."""
        return [
            [s["state"] for s in self.deployment_statuses[d["id"]]]
            for d in self.deployments
            if d["environment"] == environment
        ]

    @staticmethod
    def _public(comment: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in comment.items() if not k.startswith("_")}

    @staticmethod
    def _denied(accepted: str) -> tuple:
        return 403, {"message": NOT_ACCESSIBLE}, {"X-Accepted-GitHub-Permissions": accepted}

    @staticmethod
    def _too_long() -> tuple:
        error = {"resource": "IssueComment", "code": "custom", "field": "body"}
        error["message"] = "body is too long (maximum is 65536 characters)"
        return 422, {"message": "Validation Failed", "errors": [error]}, {}

    def _page(
        self, items: list[dict[str, Any]], path: str, query: dict[str, list[str]], keep: tuple[str, ...] = ()
    ) -> tuple:
        """One page of `items` with GitHub's `Link` header; the query parameters in `keep` stay in its links."""
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        last = max(1, -(-len(items) // per_page))
        links = []
        kept = "".join(f"{name}={quote(query[name][0])}&" for name in keep if name in query)
        url = f"{self.api_url}{path}?{kept}per_page={per_page}&page="
        if page < last:
            links += [f'<{url}{page + 1}>; rel="next"', f'<{url}{last}>; rel="last"']
        if page > 1:
            links += [f'<{url}1>; rel="first"', f'<{url}{page - 1}>; rel="prev"']
        headers = {"Link": ", ".join(links)} if links else {}
        return 200, items[(page - 1) * per_page : page * per_page], headers

    def _handle(self, method: str, raw_path: str, authorization: str | None, body: Any) -> tuple:
        parts = urlsplit(raw_path)
        path = parts.path[len(PREFIX) :] if parts.path.startswith(PREFIX) else parts.path
        token = None
        if authorization and authorization.lower().startswith(("token ", "bearer ")):
            token = self.tokens.get(authorization.split(" ", 1)[1])
        with self._lock:
            self.requests.append((method, raw_path))
            self.remaining = max(0, self.remaining - 1)
            fault = next((f for f in self.faults if f.method == method and re.search(f.path, path)), None)
            if fault is not None:
                self.faults.remove(fault)
                if not fault.after:
                    return fault.status, {"message": fault.message}, fault.headers
            status, data, headers = self._route(method, path, parse_qs(parts.query), token, body)
            if fault is not None:
                return fault.status, {"message": fault.message}, fault.headers
            return status, data, headers

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else {}
                status, data, headers = server._handle(method, self.path, self.headers.get("Authorization"), body)
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("X-RateLimit-Limit", "5000")
                self.send_header("X-RateLimit-Remaining", headers.pop("X-RateLimit-Remaining", str(server.remaining)))
                self.send_header("X-RateLimit-Reset", headers.pop("X-RateLimit-Reset", str(int(time.time()) + 3600)))
                self.send_header("X-RateLimit-Used", str(5000 - server.remaining))
                self.send_header("X-RateLimit-Resource", "core")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:  # noqa: N802 - http.server's names
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def do_PATCH(self) -> None:  # noqa: N802
                self._serve("PATCH")

        return Handler
