"""The RCMS signer against strings written out by hand from the document, and HMACs computed here."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from gatewayd.clouds.auth.rcms import canonical_query, sign_request

CLIENT_ID = "AbCdClient01"
SECRET = "s3cr3t-Key"
TS = "1700000000123"


def expected_hmac(string_to_sign: str, key: str = CLIENT_ID + CLIENT_ID) -> str:
    return hmac.new(key.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def test_status_data_request_matches_hand_written_string_to_sign() -> None:
    signed = sign_request(
        "GET",
        "/api/link/device/devices/SN001/statusData",
        {"pageNum": 1, "pageSize": 10, "beginTime": 1699996400123, "endTime": 1700000000123},
        client_id=CLIENT_ID,
        client_secret=SECRET,
        timestamp=TS,
    )
    canonical = (
        "apiVersion=1.0&beginTime=1699996400123&clientId=AbCdClient01&endTime=1700000000123"
        "&pageNum=1&pageSize=10&signatureVersion=1.0&timestamp=1700000000123&uniqueCode=AbCdClient01"
    )
    assert signed.query == canonical
    string_to_sign = "GET/api/link/device/devices/SN001/statusData" + canonical + "s3cr3t-Key"
    assert signed.signature == expected_hmac(string_to_sign)
    assert signed.headers == {
        "apiVersion": "1.0",
        "signatureVersion": "1.0",
        "uniqueCode": CLIENT_ID,
        "clientId": CLIENT_ID,
        "timestamp": TS,
        "signature": signed.signature,
    }


def test_request_without_query_signs_the_five_public_parameters() -> None:
    signed = sign_request(
        "GET", "/api/link/dashboard/deviceTotal", {}, client_id="c1", client_secret="k", timestamp="42"
    )
    canonical = "apiVersion=1.0&clientId=c1&signatureVersion=1.0&timestamp=42&uniqueCode=c1"
    assert signed.query == canonical
    assert signed.signature == expected_hmac(
        "GET/api/link/dashboard/deviceTotal" + canonical + "k", key="c1c1"
    )


def test_put_signs_method_and_path_but_no_body() -> None:
    signed = sign_request(
        "PUT", "/api/link/devices/SN9/group", {}, client_id="c1", client_secret="k", timestamp="42"
    )
    canonical = "apiVersion=1.0&clientId=c1&signatureVersion=1.0&timestamp=42&uniqueCode=c1"
    assert signed.signature == expected_hmac("PUT/api/link/devices/SN9/group" + canonical + "k", key="c1c1")
    get = sign_request(
        "GET", "/api/link/devices/SN9/group", {}, client_id="c1", client_secret="k", timestamp="42"
    )
    assert get.signature != signed.signature


def test_sort_is_by_code_point_and_values_are_not_encoded() -> None:
    signed = sign_request(
        "GET",
        "/p",
        {"zeta": "a b", "Zeta": "x/y", "alpha": 3},
        client_id="c",
        client_secret="s",
        timestamp="1",
    )
    # Upper case sorts before lower case; nothing is percent-encoded.
    assert signed.query == (
        "Zeta=x/y&alpha=3&apiVersion=1.0&clientId=c&signatureVersion=1.0&timestamp=1&uniqueCode=c&zeta=a b"
    )


def test_signature_is_lowercase_hex_and_depends_on_every_input() -> None:
    base = {"client_id": "c", "client_secret": "s", "timestamp": "1"}
    ref = sign_request("GET", "/p", {"a": 1}, **base).signature
    assert ref == ref.lower() and len(ref) == 64
    assert sign_request("GET", "/p", {"a": 1}, **base).signature == ref  # pure: same inputs, same output
    assert sign_request("GET", "/q", {"a": 1}, **base).signature != ref
    assert sign_request("GET", "/p", {"a": 2}, **base).signature != ref
    assert sign_request("GET", "/p", {"a": 1}, **{**base, "timestamp": "2"}).signature != ref
    assert sign_request("GET", "/p", {"a": 1}, **{**base, "client_secret": "t"}).signature != ref


def test_query_may_not_override_a_public_parameter() -> None:
    with pytest.raises(ValueError, match="timestamp"):
        canonical_query({"timestamp": "9"}, client_id="c", timestamp="1")
