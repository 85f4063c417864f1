"""FastStream 0.7.8 peer of `event-worker` with HANDLER=noop, for bench/run.

A RabbitMQ subscriber whose handler does nothing; FastStream acks after the handler returns
(AckPolicy.REJECT_ON_ERROR, its default: ack on success, reject on an exception). aio-pika runs
one task per delivery, so up to PREFETCH handlers are in flight, like Warren's PREFETCH.
The queue is declared with Warren's arguments (classic, dead-lettering to QUEUE.dlx), so both
workers can consume the same prefilled queue.

The app is served the way FastStream's "Healthchecks" article does it (article.py): uvicorn
runs `app.as_asgi(...)`, whose lifespan starts the broker; /internal/alive is the article's.

Environment: AMQP_URL, QUEUE (events), PREFETCH (1000), HEALTH_PORT.
"""

from faststream import FastStream
from faststream.rabbit import RabbitBroker

from article import broker_log_level, env, liveness, run, serve, subscriber

QUEUE = env("QUEUE", "events")
PREFETCH = int(env("PREFETCH", "1000"))


async def main() -> None:
    broker = RabbitBroker(env("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"), log_level=broker_log_level())

    @subscriber(broker, QUEUE, PREFETCH)
    async def noop(body) -> None:
        pass

    app = FastStream(broker)
    # Liveness only: this peer has no Redis or Postgres for the article's readiness to check.
    await serve(app, [('/internal/alive', liveness)])


if __name__ == "__main__":
    run(main)
