from eventstore import Asset, Store


def test_store_starts_empty_on_every_backend(store: Store) -> None:
    assert store.assets() == []
    assert store.events() == []
    store.activate(Asset("a"))
    assert [info.name for info in store.assets()] == ["a"]
