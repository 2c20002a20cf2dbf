"""The loctube signer and verifier against the document's vectors and digests computed here with hashlib."""

from __future__ import annotations

import hashlib

import pytest

from gatewayd.clouds.auth.loctubesign import (
    canonical_query,
    sign_body,
    sign_query,
    split_query,
    verify_response,
)


def md5(text: str | bytes) -> str:
    return hashlib.md5(text.encode() if isinstance(text, str) else text).hexdigest()


# ---- the document's published vectors


def test_document_get_vector() -> None:
    sign = sign_query([("pageIndex", "0"), ("pageSize", "20")], "1574993804802", "testSecure", "md5")
    assert sign == "837fe7fa29e7a5e4852d447578269523"


def test_document_get_vector_from_unsorted_mapping() -> None:
    sign = sign_query({"pageSize": "20", "pageIndex": "0"}, "1574993804802", "testSecure", "md5")
    assert sign == "837fe7fa29e7a5e4852d447578269523"


def test_document_response_vector() -> None:
    body = b'{"status":200,result:[]}'
    assert verify_response(body, "1574994269075", "c23faa3c46784ada64423a8bba433f25", "testSecure", "md5")


# ---- hand-computed cases


def test_repeated_keys_join_values_with_comma_in_given_order() -> None:
    pairs = [("tag", "b"), ("id", "7"), ("tag", "a")]
    assert canonical_query(pairs) == "id=7&tag=b,a"
    assert sign_query(pairs, "100", "key", "md5") == md5("id=7&tag=b,a100key")
    assert sign_query({"tag": ["b", "a"], "id": "7"}, "100", "key", "md5") == md5("id=7&tag=b,a100key")


def test_empty_query_signs_timestamp_and_key_only() -> None:
    assert sign_query([], "1574993804802", "testSecure", "md5") == md5("1574993804802testSecure")
    assert sign_query({}, "1", "k", "md5") == md5("1k")


def test_sha256() -> None:
    expected = hashlib.sha256(b"pageIndex=0&pageSize=201574993804802testSecure").hexdigest()
    assert (
        sign_query({"pageIndex": "0", "pageSize": "20"}, "1574993804802", "testSecure", "sha256") == expected
    )
    body = b'{"expires":7200}'
    assert sign_body(body, "5", "k", "sha256") == hashlib.sha256(body + b"5k").hexdigest()


def test_sort_is_ascii_not_insertion_order() -> None:
    assert canonical_query([("b", "1"), ("B", "2"), ("a", "3"), ("_", "4")]) == "B=2&_=4&a=3&b=1"


def test_url_encoded_values_are_decoded_before_signing() -> None:
    query = split_query("name=caf%C3%A9%20bar&q=a%2Cb&p=x+y")
    assert query == [("name", "caf%C3%A9%20bar"), ("q", "a%2Cb"), ("p", "x+y")]
    assert canonical_query(query) == "name=café bar&p=x y&q=a,b"
    assert sign_query(query, "9", "k", "md5") == md5("name=café bar&p=x y&q=a,b9k".encode())


def test_empty_value_is_kept_as_key_equals() -> None:
    assert canonical_query(split_query("a=&b=1")) == "a=&b=1"


def test_body_is_signed_as_exact_bytes() -> None:
    compact = b'{"pageIndex":0,"pageSize":20}'
    spaced = b'{"pageIndex": 0, "pageSize": 20}'
    assert sign_body(compact, "1687750302000", "testSecure", "md5") == md5(
        compact + b"1687750302000testSecure"
    )
    assert sign_body(compact, "1", "k", "md5") != sign_body(spaced, "1", "k", "md5")


def test_verification_ignores_case_and_rejects_wrong_signs() -> None:
    body = b'{"status":200,"result":{"id":"d1"}}'
    good = md5(body + b"1234secret")
    assert verify_response(body, "1234", good.upper(), "secret", "md5")
    assert verify_response(body, "1234", good, "secret", "md5")
    assert not verify_response(body, "1235", good, "secret", "md5")
    assert not verify_response(body + b" ", "1234", good, "secret", "md5")
    assert not verify_response(body, "1234", good, "other", "md5")
    assert not verify_response(body, "1234", "", "secret", "md5")


def test_unknown_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="sha1"):
        sign_body(b"", "1", "k", "sha1")
