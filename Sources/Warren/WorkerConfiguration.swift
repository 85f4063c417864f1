import WarrenAMQP

/// Settings of a ``Worker`` beyond its subscriptions.
public struct WorkerConfiguration: Sendable {
    /// The broker.
    public var amqp: AMQPConfiguration
    /// Address of the health side port.
    public var healthHost: String
    /// Port of the health side port; `nil` for none (mount ``Worker/healthEndpoints`` on your own
    /// server instead).
    public var healthPort: Int?
    /// How long in-flight handlers may run after shutdown begins before the connections are closed
    /// anyway (their messages then go back to the queue). Keep it below Kubernetes' 30 s grace period.
    public var drainTimeout: Duration
    /// Reconnect backoff.
    public var reconnectPolicy: ReconnectPolicy
    /// Liveness fails when the cooperative pool or an AMQP I/O thread is silent this long.
    public var stallThreshold: Duration
    /// `version` in every health report: your service's version.
    public var version: String
    /// `releaseId` in every health report (e.g. the image tag or commit); `nil`: the version.
    public var releaseId: String?

    /// Settings; every one has a default fit for Kubernetes.
    public init(
        amqp: AMQPConfiguration = AMQPConfiguration(),
        healthHost: String = "0.0.0.0",
        healthPort: Int? = 8080,
        drainTimeout: Duration = .seconds(20),
        reconnectPolicy: ReconnectPolicy = ReconnectPolicy(initialDelay: .milliseconds(100), maximumDelay: .seconds(1)),
        stallThreshold: Duration = .seconds(5),
        version: String = WarrenBuild.version,
        releaseId: String? = nil
    ) {
        self.amqp = amqp
        self.healthHost = healthHost
        self.healthPort = healthPort
        self.drainTimeout = drainTimeout
        self.reconnectPolicy = reconnectPolicy
        self.stallThreshold = stallThreshold
        self.version = version
        self.releaseId = releaseId
    }
}

/// A ``Worker`` used the wrong way round.
public struct WorkerError: Error, CustomStringConvertible, Equatable {
    /// What was done wrong and what to do instead.
    public var description: String

    /// `what` was called after ``Worker/run()`` started: checks, start-up tasks, subscriptions and
    /// routes are fixed once the worker runs.
    static func alreadyRunning(_ what: String) -> WorkerError {
        WorkerError(description: "\(what) after the worker started running: add checks, start-up tasks, subscriptions and routes before run()")
    }

    static let noSubscription = WorkerError(description: "the worker has no subscription: add one with subscribe(_:) before run()")
}
