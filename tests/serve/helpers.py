"""Shared assertions for the serving tests."""
from __future__ import annotations


def assert_error(response, status: int, param=..., code=...) -> dict:
    """`response` (httpx) has `status` and the OpenAI error shape; returns the error object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"]
    if param is not ...:
        assert err["param"] == param, err
    if code is not ...:
        assert err["code"] == code, err
    return err
