"""Fixtures of the results-store tests: an open store per backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from db import Store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An open, migrated, empty store (SQLite and PostgreSQL)."""
    st = Store(store_url)
    try:
        yield st
    finally:
        st.close()
