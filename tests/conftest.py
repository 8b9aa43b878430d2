from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tb_build_root():
    """Shared cocotb build folder: one build per (simulator, config), reused across tests and runs."""
    return str(ROOT / "build" / "tb")
