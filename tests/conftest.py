import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """Batches of a few thousand points in few dimensions: more threads only contend on a shared machine.
    Use with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
