import pytest
import torch


@pytest.fixture(autouse=True)
def _restore_threads():
    """Benchmarks pin torch's thread count (1 on CPU); give the rest of the test session its own back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
