"""What a websocket subscription gets, through channels' WebsocketCommunicator."""
from channels.testing import WebsocketCommunicator


def communicator_for(consumer, path: str, user, url_kwargs: dict | None = None):
    communicator = WebsocketCommunicator(consumer.as_asgi(), path)
    communicator.scope["user"] = user
    if url_kwargs is not None:
        communicator.scope["url_route"] = {"kwargs": url_kwargs}
    return communicator


async def close_code(consumer, path: str, user, url_kwargs: dict | None = None) -> int:
    """The close code of a refused subscription. The handshake must complete first (refused
    before it, the browser sees only 1006) and no data may come before the close."""
    communicator = communicator_for(consumer, path, user, url_kwargs)
    connected, _ = await communicator.connect()
    assert connected, "refused before the handshake: the browser would see 1006"
    try:
        message = await communicator.receive_output(timeout=5)
        assert message["type"] == "websocket.close", f"sent to a refused subscriber: {message}"
        return message["code"]
    finally:
        await communicator.disconnect()


async def stays_open(consumer, path: str, user, url_kwargs: dict | None = None) -> bool:
    """True when the subscription is accepted and neither closed nor sent anything at once."""
    communicator = communicator_for(consumer, path, user, url_kwargs)
    connected, _ = await communicator.connect()
    try:
        return connected and await communicator.receive_nothing(timeout=0.5)
    finally:
        await communicator.disconnect()
