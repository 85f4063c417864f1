"""The health endpoints of FastStream's own "Healthchecks" example, as the article shows them.

Source: FastStream's documentation, "Healthchecks" (the seed article Warren started from,
shared/seeds/000_*.txt). The two handlers below are the article's code; the only changes are
marked `# bench:` (addresses from the environment, a port of our choosing, uvicorn's access log).

What the article's readiness does, faithfully kept (a benchmark of it, not a fix of it):
- every probe does three round trips: Redis PING, `broker.ping(timeout=5)`, Postgres `SELECT 1`;
- no timeout on the Redis and Postgres calls (a hung dependency hangs the probe);
- `broker.ping()` in FastStream 0.7.8 *returns* False when the connection is down (it waits up to
  `timeout` for the robust connection to come back); it does not raise, so the article's
  `try/except` never sees it: readiness stays 204 while RabbitMQ is down (after up to 5 s);
- answers are 204 (ready/alive) and 500 (not ready), with empty bodies.
"""

import asyncio
import logging
import os
from typing import Awaitable, Callable

import asyncpg
import redis.asyncio as redis
import uvicorn
from faststream import AckPolicy, FastStream
from faststream.asgi import AsgiResponse, get
from faststream.rabbit import Channel, RabbitBroker, RabbitQueue


@get
async def liveness(scope: dict) -> AsgiResponse:
    return AsgiResponse(b'', status_code=204)


def readiness(
    broker: RabbitBroker,
    redis_connection: redis.Redis,
    postgres_connection: asyncpg.Pool,
) -> Callable[[dict], Awaitable[AsgiResponse]]:
    healthy_response = AsgiResponse(b'', 204)
    unhealthy_response = AsgiResponse(b'', 500)

    @get
    async def func(scope: dict) -> AsgiResponse:
        try:
            await redis_connection.ping()
        except (redis.ConnectionError, Exception):
            logging.exception('Redis not ready')
            return unhealthy_response

        try:
            await broker.ping(timeout=5)
        except Exception:
            logging.exception('RabbitMQ not ready')
            return unhealthy_response

        try:
            await postgres_connection.fetchval('SELECT 1')
        except (asyncpg.exceptions.PostgresConnectionError, Exception):
            logging.exception('Postgres not ready')
            return unhealthy_response

        return healthy_response

    return func


def env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def routes(broker: RabbitBroker, redis_connection: redis.Redis, postgres_connection: asyncpg.Pool) -> list:
    """The article's routes."""
    return [
        ('/internal/alive', liveness),
        ('/internal/ready', readiness(broker, redis_connection, postgres_connection)),
    ]


async def serve(app: FastStream, asgi_routes: list) -> None:
    """The rest of the article's main(), once it has made its connections and the app."""
    uvicorn_config = uvicorn.Config(
        app.as_asgi(asgi_routes),
        host=env("HEALTH_HOST", "127.0.0.1"),  # bench: the article binds 0.0.0.0
        port=int(env("HEALTH_PORT", "8000")),  # bench: the article uses 8000
        # bench: the article leaves uvicorn's access log on (one line per request); off here,
        # as Warren logs no probe, unless FS_ACCESS_LOG=1.
        access_log=os.environ.get("FS_ACCESS_LOG") == "1",
    )
    server = uvicorn.Server(uvicorn_config)
    await server.serve()


def broker_log_level() -> int:
    """FastStream logs every message received and processed at INFO by default; a hot consumer
    would not, and Warren logs none: DEBUG (not shown) unless FS_MESSAGE_LOG=1."""
    return logging.INFO if os.environ.get("FS_MESSAGE_LOG") == "1" else logging.DEBUG


def subscriber(broker: RabbitBroker, queue: str, prefetch: int):
    """`@broker.subscriber` on `queue` declared as event-worker declares it (classic, dead-lettering
    to `<queue>.dlx`), so both consume the same prefilled queue; prefetch as given; FastStream acks
    after the handler returns (AckPolicy.REJECT_ON_ERROR, its default: an exception rejects without
    requeue, i.e. dead-letters)."""
    return broker.subscriber(
        RabbitQueue(queue, durable=True,
                    arguments={"x-queue-type": "classic", "x-dead-letter-exchange": f"{queue}.dlx"}),
        channel=Channel(prefetch_count=prefetch),
        ack_policy=AckPolicy.REJECT_ON_ERROR,
    )


def run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(main())
