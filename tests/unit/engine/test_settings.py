"""Settings that decide who is trusted: checked at start-up, naming the variable."""

from __future__ import annotations

import pytest


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    from pydantic import ValidationError

    from engine.settings import Settings

    assert Settings(trusted_proxies="").trusted_proxy_list() == []
    both = Settings(trusted_proxies="127.0.0.1, 172.18.0.0/16,::1")
    assert both.trusted_proxy_list() == ["127.0.0.1", "172.18.0.0/16", "::1"]
    with pytest.raises(ValidationError, match="LOOKALIKE_TRUSTED_PROXIES"):
        Settings(trusted_proxies="127.0.0.1,proxy.local")
