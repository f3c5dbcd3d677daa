import pytest

from data_processing.har import load_har_arrays


@pytest.fixture(scope="session")
def har_cache():
    """The real UCI HAR cache under data/ (built once, ~20 s), for tests that run entrypoints on it."""
    arrays, source = load_har_arrays("auto")
    return source
