"""The emulated loctube server: its routes, who is authenticated, and what each answer carries.

Every request first meets the signature filter (:mod:`.signature`): one with ``X-Client-Id`` is a
signed request and is verified; one without goes on to token authentication. A route that needs
authentication then takes, in this order: a valid signature, ``X-Access-Token`` (:mod:`.tokens`), an
OAuth2 access token from ``?access_token=`` or ``Authorization`` (:mod:`.oauth2`); none of them is 401.

Only successful answers to signature-authenticated requests carry ``X-Timestamp`` and ``X-Sign`` =
digest(body bytes + X-Timestamp + secure key), the document's "sign-off". Errors and answers to
token-authenticated requests carry neither, as on the real server.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gatewayd.emulator.loctube.bodies import Rejected, json_bytes, unauthorized
from gatewayd.emulator.loctube.devices import Trackers
from gatewayd.emulator.loctube.oauth2 import OAuth2Server, bearer_token, get_params, post_params
from gatewayd.emulator.loctube.signature import SignatureFilter
from gatewayd.emulator.loctube.tokens import KINDS, ApiTokens, TokenStore
from gatewayd.inventory.config import LoctubeConfig

DETAIL = "GET /api/v1/device/{id}/_detail"
LATEST = "GET /api/v1/device/{id}/properties/_latest"
QUERY = "POST /api/v1/device/_query"
INSTANCE_QUERY = "POST /device/instance/_query"
TOKEN = "POST /api/v1/token"
TYPED_TOKEN = "POST /api/v1/token/{type}"
OAUTH2_TOKEN = "POST /loctube/oauth2/token"
OAUTH2_TOKEN_GET = "GET /loctube/oauth2/token"
ENDPOINTS: tuple[str, ...] = (
    DETAIL,
    LATEST,
    QUERY,
    INSTANCE_QUERY,
    TOKEN,
    TYPED_TOKEN,
    OAUTH2_TOKEN,
    OAUTH2_TOKEN_GET,
)

#: What a route does with an authenticated (or, for the token endpoint, any) request and its body.
Body = Callable[[web.Request, bytes], Any]


class LoctubeEmulator:
    """loctube routes for one client (``config.client_id`` / ``config.secure_key``) and its trackers.

    ``oauth2_form_only`` is read on every OAuth2 token request: when it answers True, a token request
    that is not form-encoded gets 415 (the fault of that name in :mod:`gatewayd.emulator.faults`).
    """

    cloud = "loctube"

    def __init__(
        self,
        config: LoctubeConfig,
        *,
        clock: Callable[[], float] = time.time,
        oauth2_form_only: Callable[[], bool] = lambda: False,
    ) -> None:
        secure_key = config.secure_key.reveal()
        self._client_id = config.client_id
        self._filter = SignatureFilter(config.client_id, secure_key, config.sign)
        self._trackers = Trackers(list(config.devices))
        self._clock = clock
        self._tokens = TokenStore(clock)
        self._api_tokens = ApiTokens(self._tokens, config.client_id)
        self._oauth2 = OAuth2Server(config.client_id, secure_key, self._tokens, clock)
        self._oauth2_form_only = oauth2_form_only
        self._requests: Counter[str] = Counter()
        self._ok: Counter[str] = Counter()
        self._auth_used: Counter[str] = Counter()
        self._rejections: Counter[str] = Counter()

    # ----------------------------------------------------------------------------------------------
    # Public interface

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(
                "/api/v1/device/{id}/_detail", self._route(DETAIL, self._detail, auth=True), allow_head=False
            ),
            web.get(
                "/api/v1/device/{id}/properties/_latest",
                self._route(LATEST, self._latest, auth=True),
                allow_head=False,
            ),
            web.post("/api/v1/device/_query", self._route(QUERY, self._query, auth=True)),
            web.post("/device/instance/_query", self._route(INSTANCE_QUERY, self._query, auth=True)),
            web.post("/api/v1/token", self._route(TOKEN, self._issue_token, auth=True)),
            web.post("/api/v1/token/{type}", self._route(TYPED_TOKEN, self._issue_typed_token, auth=True)),
            web.post("/loctube/oauth2/token", self._route(OAUTH2_TOKEN, self._oauth2_post, auth=False)),
            web.get(
                "/loctube/oauth2/token",
                self._route(OAUTH2_TOKEN_GET, self._oauth2_get, auth=False),
                allow_head=False,
            ),
        ]

    def snapshot(self) -> dict[str, Any]:
        return {
            "cloud": self.cloud,
            "client_id": self._client_id,
            "sign": self._filter.algorithm,
            "devices": list(self._trackers.ids),
            "requests": {k: self._requests[k] for k in ENDPOINTS},
            "ok": {k: self._ok[k] for k in ENDPOINTS},
            "auth": dict(sorted(self._auth_used.items())),
            "tokens_issued": {k: self._tokens.issued[k] for k in KINDS},
            "tokens_active": self._tokens.active(),
            "rejections": dict(sorted(self._rejections.items())),
        }

    def expire_tokens(self) -> None:
        """Expire every X-Access-Token and OAuth2 access token now; refresh tokens stay valid."""
        self._tokens.expire_access()

    def digest(self, data: bytes) -> str:
        """The configured digest (md5 or sha256) of ``data``, lowercase hex."""
        return self._filter.digest(data)

    def device_detail(self, device_id: str, now_ms: int) -> dict[str, Any]:
        """A tracker's detail as the document shows it, plus ``properties`` (latest values) and their time."""
        return self._trackers.device_detail(device_id, now_ms)

    # ----------------------------------------------------------------------------------------------
    # Plumbing

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _answer(self, status: int, payload: Any, *, signed: bool) -> web.Response:
        body = json_bytes(payload)
        headers: dict[str, str] = {}
        if signed:
            timestamp = str(self._now_ms())
            headers = {"X-Timestamp": timestamp, "X-Sign": self._filter.sign(body, timestamp)}
        return web.Response(
            status=status, body=body, content_type="application/json", charset="utf-8", headers=headers
        )

    def _route(
        self, endpoint: str, body: Body, *, auth: bool
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            self._requests[endpoint] += 1
            raw = await request.read()
            try:
                signed = self._filter.verify(
                    method=request.method,
                    content_type=request.content_type,
                    headers=request.headers,
                    query=request.query.items(),
                    raw=raw,
                    now_ms=self._now_ms(),
                )
                if signed:
                    self._auth_used["signature"] += 1
                elif auth:
                    self._authenticate(request)
                result = body(request, raw)
            except Rejected as err:
                self._rejections[err.reason] += 1
                return self._answer(err.status, err.body(request.path, self._now_ms()), signed=False)
            self._ok[endpoint] += 1
            return self._answer(200, result, signed=signed)

        return handle

    def _authenticate(self, request: web.Request) -> None:
        """Accept a valid X-Access-Token or OAuth2 access token; 401 otherwise."""
        x_token = request.headers.get("X-Access-Token")
        if x_token:
            self._tokens.use(x_token, "x-access")
            self._auth_used["token"] += 1
            return
        oauth2 = request.query.get("access_token") or bearer_token(request.headers.get("Authorization", ""))
        if oauth2:
            self._tokens.use(oauth2, "oauth2-access")
            self._auth_used["oauth2"] += 1
            return
        raise unauthorized("unauthenticated")

    # ----------------------------------------------------------------------------------------------
    # Routes

    def _detail(self, request: web.Request, raw: bytes) -> Any:
        device_id = self._trackers.known(request.match_info["id"])
        return {"result": self.device_detail(device_id, self._now_ms()), "status": 200, "code": "success"}

    def _latest(self, request: web.Request, raw: bytes) -> Any:
        device_id = self._trackers.known(request.match_info["id"])
        result = self._trackers.latest(device_id, self._now_ms())
        return {"result": result, "status": 200, "code": "success"}

    def _query(self, request: web.Request, raw: bytes) -> Any:
        return {"result": self._trackers.query(raw, self._now_ms()), "status": 200, "code": "success"}

    def _issue_token(self, request: web.Request, raw: bytes) -> Any:
        return self._api_tokens.issue(raw)

    def _issue_typed_token(self, request: web.Request, raw: bytes) -> Any:
        return self._api_tokens.issue_typed(request.match_info["type"], raw)

    def _oauth2_post(self, request: web.Request, raw: bytes) -> Any:
        form_only = self._oauth2_form_only()
        return self._oauth2.grant(post_params(request.content_type, raw, form_only=form_only))

    def _oauth2_get(self, request: web.Request, raw: bytes) -> Any:
        return self._oauth2.grant(get_params(request.query.items()))
