from pathlib import Path

import pytest
from train_data import make_dataset


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    return make_dataset(tmp_path / "data")
