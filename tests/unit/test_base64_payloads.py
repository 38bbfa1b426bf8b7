"""The one-pass base64 decode gives what the careful, repairing decode gives, or steps aside."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from server.mail_ingest.mime_tree import _base64_chunks, _base64_repaired, _clean_base64

PIECES = st.sampled_from(
    [b"QUJD", b"ZGVm", b"+/+/", b"QQ", b"QUI", b"=", b"==", b"\r\n", b"\n", b" ", b"\t", b"-", b"!"]
)


def _decode(decoder: object, body: bytes) -> tuple[bytes, list[str]]:
    defects: list[str] = []
    buf = b"headers\n\n" + body + b"\n--boundary--\n"
    start = len(b"headers\n\n")
    data = b"".join(decoder(buf, start, start + len(body), defects))  # type: ignore[operator]
    return data, defects


@given(st.lists(PIECES, max_size=40).map(b"".join))
def test_any_body_decodes_as_the_careful_path_does(body: bytes) -> None:
    assert _decode(_base64_chunks, body) == _decode(_base64_repaired, body)


@given(
    st.binary(max_size=3000), st.sampled_from([76, 72, 64, 4]), st.sampled_from([b"\n", b"\r\n"])
)
def test_clean_bodies_take_the_one_pass_path(content: bytes, line: int, eol: bytes) -> None:
    encoded = base64.b64encode(content)
    body = eol.join(encoded[i : i + line] for i in range(0, len(encoded), line)) + eol
    assert _clean_base64(body, 0, len(body)) == content


def test_junk_truncation_and_data_after_padding_take_the_careful_path() -> None:
    for body in (b"QUJD!ZGVm", b"QUJDQQ", b"QUJDQ", b"QQ==QQ=="):
        assert _clean_base64(body, 0, len(body)) is None
    assert _decode(_base64_chunks, b"QUJD!ZGVm") == (
        b"ABCdef",
        ["bad base64: invalid characters skipped"],
    )
