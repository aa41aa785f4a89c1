"""The host fixtures (defined in helpers.py, shared with tests/test_cli_host.py)."""

from tests.host.helpers import ns_pair, prefix, run_dir

__all__ = ["ns_pair", "prefix", "run_dir"]
