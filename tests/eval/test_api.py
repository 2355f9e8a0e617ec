import lingvis.eval as ev


def test_public_api_resolves():
    missing = [name for name in ev.__all__ if not hasattr(ev, name)]
    assert not missing
    assert len(set(ev.__all__)) == len(ev.__all__)
