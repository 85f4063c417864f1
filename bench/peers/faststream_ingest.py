"""FastStream 0.7.8 peer of `event-worker` with HANDLER=ingest, for bench/run.

The same job as Warren's IngestJob (Sources/EventWorker/IngestJob.swift), written the way a
FastStream user would: the body is validated into a pydantic model (id: UUID, non-empty type,
payload object); Redis GET "warren:seen:<id>" → ack if seen; else INSERT INTO events … ON CONFLICT
(id) DO NOTHING (asyncpg pool), then Redis SET NX EX 86400; FastStream acks after the handler
returns (AckPolicy.REJECT_ON_ERROR, its default: an invalid body or any error rejects without
requeue, i.e. dead-letters to QUEUE.dlx). aio-pika runs one task per delivery, so up to PREFETCH
handlers are in flight, sharing asyncpg's pool (the article's `create_pool(url)`: 10 connections).

Served the way FastStream's "Healthchecks" article does it (article.py), with its liveness and
its readiness that pings Redis, the broker and Postgres on every probe.

Environment: AMQP_URL, REDIS_URL, DATABASE_URL, QUEUE (events), PREFETCH (100), HEALTH_PORT.
"""

import json
from uuid import UUID

import asyncpg
import redis.asyncio as redis
from faststream import FastStream
from faststream.rabbit import RabbitBroker
from pydantic import BaseModel, Field

from article import broker_log_level, env, routes, run, serve, subscriber

QUEUE = env("QUEUE", "events")
PREFETCH = int(env("PREFETCH", "100"))
SEEN_TTL_SECONDS = 24 * 3600

CREATE_TABLE = """
    CREATE TABLE IF NOT EXISTS events (
        id uuid PRIMARY KEY,
        type text NOT NULL,
        payload jsonb NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now()
    )
"""


class Event(BaseModel):
    id: UUID
    type: str = Field(min_length=1)
    payload: dict


async def main() -> None:
    redis_connection = redis.Redis.from_url(env("REDIS_URL", "redis://127.0.0.1:6379/0"))
    postgres_connection = await asyncpg.create_pool(env("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    await postgres_connection.execute(CREATE_TABLE)
    broker = RabbitBroker(env("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"), log_level=broker_log_level())

    @subscriber(broker, QUEUE, PREFETCH)
    async def ingest(event: Event) -> None:
        key = f"warren:seen:{event.id}"
        if await redis_connection.get(key) is not None:
            return
        await postgres_connection.execute(
            "INSERT INTO events (id, type, payload) VALUES ($1, $2, $3::jsonb) ON CONFLICT (id) DO NOTHING",
            event.id, event.type, json.dumps(event.payload))
        await redis_connection.set(key, "1", ex=SEEN_TTL_SECONDS, nx=True)

    app = FastStream(broker)
    await serve(app, routes(broker, redis_connection, postgres_connection))


if __name__ == "__main__":
    run(main)
