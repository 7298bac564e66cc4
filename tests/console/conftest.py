"""The console on a vhost of its own per module (one browser per module keeps them fast)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.console.support import Console, console_on_fresh_vhost


@pytest.fixture(scope="module")
def console(management_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with console_on_fresh_vhost(tmp_path_factory.mktemp("console"), management_url) as served:
        yield served
