"""The SDK's client surface against the real gateway: async, sync, default client, errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

import toolmesh
from toolmesh.wire import RawImage


async def test_function_documents(client: toolmesh.Client) -> None:
    find = await client.function("find")
    assert find.model == "find"
    assert find.parameters_schema["properties"]["threshold"]["default"] == 0.3
    with pytest.raises(toolmesh.FunctionNotFound):
        await client.function("nope")


async def test_concurrent_calls_share_one_client(
    client: toolmesh.Client, street_paths: list[Path]
) -> None:
    serial = [await client.call("find", image=p, object_name="person") for p in street_paths[:4]]
    concurrent = await asyncio.gather(
        *(client.call("find", image=p, object_name="person") for p in street_paths[:4])
    )
    assert list(concurrent) == serial


async def test_with_options_shares_the_channel_and_close_is_final(address: str) -> None:
    client = toolmesh.Client(address)
    assert client.state is toolmesh.ClientState.UNOPENED
    view = client.with_options(timeout=5)
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    assert (await view.call("greyscale", image=image)).size == (4, 4)
    assert client.state is toolmesh.ClientState.OPENED
    await client.aclose()
    with pytest.raises(toolmesh.ClientClosed):
        await view.call("greyscale", image=image)
    with pytest.raises(toolmesh.ClientClosed):
        async with client:
            pass


async def test_default_client_reads_the_environment(
    address: str, monkeypatch: pytest.MonkeyPatch, street_jpeg: bytes
) -> None:
    monkeypatch.setenv("TOOLMESH_ADDRESS", address)
    people = await toolmesh.call("find", image=street_jpeg, object_name="person")
    assert len(people) >= 3
    assert toolmesh.default_client().address == address
    assert [f.name for f in await toolmesh.functions()]
    await toolmesh.aclose_default_client()


async def test_unreachable_gateway_is_unavailable() -> None:
    from toolmesh_local.triton import free_port

    async with toolmesh.Client(f"127.0.0.1:{free_port()}", timeout=5) as client:
        with pytest.raises(toolmesh.Unavailable):
            await client.functions()


def test_sync_client_matches_async(address: str, street_jpeg: bytes) -> None:
    with toolmesh.SyncClient(address) as sync:
        people = sync.call("find", image=street_jpeg, object_name="person")
        assert len(people) >= 3
        with pytest.raises(toolmesh.InvalidArgument):
            sync.call("find", image=street_jpeg, object_name=7)


async def test_sync_client_refuses_to_block_a_running_loop(address: str) -> None:
    sync = toolmesh.SyncClient(address)
    try:
        with pytest.raises(RuntimeError, match="await"):
            sync.functions()
    finally:
        await asyncio.to_thread(sync.close)


async def test_raw_images_are_accepted(client: toolmesh.Client) -> None:
    image = RawImage(array=np.full((3, 5, 3), 255, dtype=np.uint8))
    grey = await client.call("greyscale", image=image)
    assert np.asarray(grey).tolist() == [[255] * 5] * 3
