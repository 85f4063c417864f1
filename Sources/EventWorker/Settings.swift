import Logging
import Warren
import WarrenAMQP
import WarrenPostgres
import WarrenRedis
import WarrenSystem

/// A setting that is missing or malformed: the process stops with exit code 2 and this one line.
struct SettingError: Error, CustomStringConvertible {
    var setting: String
    var problem: String
    var description: String { "invalid setting \(setting): \(problem)" }
}

/// Which job the worker runs.
enum HandlerKind: String, CaseIterable, Sendable {
    /// Ingest events into Postgres, with Redis as a dedupe cache.
    case ingest
    /// Acknowledge only: smoke tests and consume-path benchmarks.
    case noop
}

/// Where handlers run (`HANDLER_THREAD`). The worker's own handlers (ingest, noop) await Redis and
/// Postgres and compute little, so by default they run on the AMQP I/O thread.
enum HandlerThread: String, CaseIterable, Sendable {
    /// Swift's cooperative pool.
    case pool
    /// The AMQP connection's I/O thread (``Warren/HandlerExecutor/connectionThread``).
    case connection
}

/// Everything `event-worker run` needs, resolved from flags and environment (flags win).
struct Settings: Sendable {
    var amqp: AMQPConfiguration
    var redis: RedisConfiguration
    var postgres: PostgresConfiguration
    var queue: String
    var queueType: QueueType
    var prefetch: UInt16
    var concurrency: Int
    var handler: HandlerKind
    var handlerThread: HandlerThread
    var healthHost: String
    var healthPort: Int
    var logLevel: Logger.Level
    var logFormat: LogFormat
    var drainTimeout: Duration
    var retry: RetryPolicy
    var handlerTimeout: Duration

    static let defaults: [String: String] = [
        "AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/%2F",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
        "QUEUE": "events",
        "QUEUE_TYPE": "classic",
        "PREFETCH": "100",
        "CONCURRENCY": "16",
        "HANDLER": "ingest",
        "HANDLER_THREAD": "connection",
        "HEALTH_HOST": "0.0.0.0",
        "HEALTH_PORT": "8080",
        "LOG_LEVEL": "info",
        "LOG_FORMAT": "json",
        "DRAIN_TIMEOUT": "20",
        "MAX_ATTEMPTS": "5",
        "RETRY_DELAY": "1",
        "RETRY_DELAY_MAX": "60",
        "HANDLER_TIMEOUT": "30",
    ]

    /// Resolves settings: `flags` (by env name) win over `environment`, which wins over the defaults.
    static func resolve(flags: [String: String], environment: [String: String]) throws(SettingError) -> Settings {
        func value(_ name: String) -> String {
            flags[name] ?? environment[name] ?? defaults[name]!
        }
        func integer(_ name: String, _ range: ClosedRange<Int>) throws(SettingError) -> Int {
            let text = value(name)
            guard let number = Int(text) else {
                throw SettingError(setting: name, problem: "'\(text.prefix(32))' is not a whole number")
            }
            guard range.contains(number) else {
                throw SettingError(setting: name, problem: "\(number) is outside \(range.lowerBound)...\(range.upperBound)")
            }
            return number
        }
        /// Seconds with up to 3 decimals (`0.5`, `1`, `2.25`), within `range`.
        func seconds(_ name: String, _ range: ClosedRange<Double>) throws(SettingError) -> Duration {
            let text = value(name)
            guard let number = Double(text), number.isFinite, text.allSatisfy({ $0.isNumber || $0 == "." }) else {
                throw SettingError(setting: name, problem: "'\(text.prefix(32))' is not a number of seconds (decimals allowed)")
            }
            guard range.contains(number) else {
                throw SettingError(setting: name, problem: "\(text) is outside \(range.lowerBound)...\(range.upperBound) seconds")
            }
            return .milliseconds(Int64((number * 1000).rounded()))
        }
        func choice<T: RawRepresentable & CaseIterable>(_ name: String, _: T.Type) throws(SettingError) -> T where T.RawValue == String {
            let text = value(name).lowercased()
            guard let parsed = T(rawValue: text) else {
                let options = T.allCases.map(\.rawValue).joined(separator: ", ")
                throw SettingError(setting: name, problem: "'\(text.prefix(32))' is not one of \(options)")
            }
            return parsed
        }

        let amqp: AMQPConfiguration
        do { amqp = try AMQPConfiguration(url: value("AMQP_URL"), connectionName: "event-worker") } catch {
            throw SettingError(setting: "AMQP_URL", problem: error.message)
        }
        let redis: RedisConfiguration
        do { redis = try RedisConfiguration(url: value("REDIS_URL")) } catch {
            throw SettingError(setting: "REDIS_URL", problem: error.message)
        }
        let postgres: PostgresConfiguration
        do { postgres = try PostgresConfiguration(url: value("DATABASE_URL")) } catch {
            throw SettingError(setting: "DATABASE_URL", problem: error.message)
        }
        let queue = value("QUEUE")
        guard !queue.isEmpty, queue.utf8.count <= 200, !queue.contains(where: { $0.isWhitespace }) else {
            throw SettingError(setting: "QUEUE", problem: "must be 1-200 characters without spaces")
        }
        let prefetch = try integer("PREFETCH", 1...65535)
        let concurrency = try integer("CONCURRENCY", 1...65535)
        guard concurrency <= prefetch else {
            throw SettingError(setting: "CONCURRENCY", problem: "\(concurrency) exceeds PREFETCH (\(prefetch)); handlers would wait for deliveries that cannot come")
        }
        let drain = try integer("DRAIN_TIMEOUT", 1...29)
        let level = value("LOG_LEVEL").lowercased()
        guard let logLevel = Logger.Level(rawValue: level) else {
            throw SettingError(setting: "LOG_LEVEL", problem: "'\(level.prefix(32))' is not one of trace, debug, info, notice, warning, error, critical")
        }
        let maxAttempts = try integer("MAX_ATTEMPTS", 1...100)
        let retryDelay = try seconds("RETRY_DELAY", 0.001...3600)
        let retryDelayMax = try seconds("RETRY_DELAY_MAX", 0.001...86400)
        guard retryDelayMax >= retryDelay else {
            throw SettingError(setting: "RETRY_DELAY_MAX", problem: "\(value("RETRY_DELAY_MAX")) is below RETRY_DELAY (\(value("RETRY_DELAY")))")
        }
        // Below RabbitMQ's default consumer_timeout (30 min), past which the broker closes the channel.
        let handlerTimeout = try seconds("HANDLER_TIMEOUT", 0.001...1500)
        let healthHost = value("HEALTH_HOST")
        guard !healthHost.isEmpty else { throw SettingError(setting: "HEALTH_HOST", problem: "must not be empty") }
        return Settings(
            amqp: amqp, redis: redis, postgres: postgres, queue: queue,
            queueType: try choice("QUEUE_TYPE", QueueType.self),
            prefetch: UInt16(prefetch), concurrency: concurrency,
            handler: try choice("HANDLER", HandlerKind.self),
            handlerThread: try choice("HANDLER_THREAD", HandlerThread.self),
            healthHost: healthHost, healthPort: try integer("HEALTH_PORT", 0...65535),
            logLevel: logLevel, logFormat: try choice("LOG_FORMAT", LogFormat.self),
            drainTimeout: .seconds(drain),
            retry: RetryPolicy(maxAttempts: maxAttempts, initialDelay: retryDelay, maximumDelay: retryDelayMax),
            handlerTimeout: handlerTimeout
        )
    }

    /// The effective configuration for the start-up log line, secrets redacted.
    var summary: Logger.Metadata {
        [
            "warren.amqp.url": "\(amqp.redactedURL)",
            "warren.amqp.heartbeat": "\(amqp.heartbeat)",
            "warren.redis.url": "\(redis.redactedURL)",
            "warren.postgres.url": "\(postgres.redactedURL)",
            "warren.queue": "\(queue)",
            "warren.queue_type": "\(queueType.rawValue)",
            "warren.prefetch": "\(prefetch)",
            "warren.concurrency": "\(concurrency)",
            "warren.handler": "\(handler.rawValue)",
            "warren.handler_thread": "\(handlerThread.rawValue)",
            "warren.health": "\(healthHost):\(healthPort)",
            "warren.drain_timeout": "\(drainTimeout)",
            "warren.max_attempts": "\(retry.maxAttempts)",
            "warren.retry_delay": "\(retry.initialDelay.secondsText)",
            "warren.retry_delay_max": "\(retry.maximumDelay.secondsText)",
            "warren.handler_timeout": "\(handlerTimeout.secondsText)",
            "warren.log_level": "\(logLevel.rawValue)",
            "warren.log_format": "\(logFormat.rawValue)",
        ]
    }
}
