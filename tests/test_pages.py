"""resnet_np._pages: NumPy's huge-page requests off for training and benchmarks."""
import pytest

from resnet_np import _pages

multiarray = pytest.importorskip("numpy._core.multiarray")


@pytest.fixture
def restore_numpy_setting():
    before = multiarray._get_madvise_hugepage()
    yield
    multiarray._set_madvise_hugepage(before)


def test_prefer_small_pages_turns_numpy_requests_off(monkeypatch, restore_numpy_setting):
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    multiarray._set_madvise_hugepage(True)
    assert _pages.prefer_small_pages() is True            # the setting it found
    assert multiarray._get_madvise_hugepage() is False
    assert _pages.prefer_small_pages() is False            # already off


def test_the_users_environment_variable_wins(monkeypatch, restore_numpy_setting):
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
    multiarray._set_madvise_hugepage(True)
    assert _pages.prefer_small_pages() is None
    assert multiarray._get_madvise_hugepage() is True


def test_train_command_turns_them_off(monkeypatch, restore_numpy_setting, tmp_path):
    import resnet_np.__main__ as cli
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    multiarray._set_madvise_hugepage(True)
    monkeypatch.setattr("resnet_np.runs.train_run", lambda args: 0)   # no training here
    assert cli.main(["train", "--out", str(tmp_path)]) == 0
    assert multiarray._get_madvise_hugepage() is False
